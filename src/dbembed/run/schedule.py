"""Run an indexing callable (``Dbembed.index``, passed in as ``run_fn``) on a cron schedule in a
long-lived process, never two runs at once.

Why: on a VM or an ECS service there is no AWS Batch/EventBridge to start runs; a
small scheduler loop does it.  Several schedulers may run (an ECS service with two
tasks, a VM and a container during a migration): a PostgreSQL session advisory lock,
taken with ``pg_try_advisory_lock`` on a dedicated connection and held for the whole
run, lets exactly one of them run; the others log "skipped: another run holds the
lock".  A crashed holder's lock disappears with its connection, so nothing goes stale.

Cron expressions are evaluated in UTC (like EventBridge ``cron(...)``), with croniter.
A run that overruns its next slot does not queue up: the next run is the next slot
after it ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dbembed.errors import EXIT_FATAL, EXIT_OK, DbembedError, InvalidInput, UsageError, echo
from dbembed.store.locks import try_lock, unlock

if TYPE_CHECKING:
    from dbembed.config import Settings

log = logging.getLogger(__name__)
events = logging.getLogger("dbembed.events")

RunFn = Callable[..., Any]
SKIPPED_MESSAGE = "skipped: another run holds the lock"


def lock_key(settings: Settings) -> int:
    """A stable signed 64-bit advisory-lock key per index (collection, else model)."""
    name = f"dbembed-schedule:{settings.store.collection or settings.embed.model}"
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@dataclass
class Outcome:
    """What one scheduled tick did."""

    ran: bool
    exit_code: int
    duration_s: float
    error: str | None = None


def _exit_code(result: Any) -> int:
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    code = getattr(result, "exit_code", None)
    return int(code) if isinstance(code, int) else EXIT_OK


def locked_run(roots: Sequence[str], settings: Settings, run_fn: RunFn) -> Outcome:
    """Run ``run_fn(roots, settings=settings)`` (e.g. ``Dbembed.index``; returns an exit code or
    something with ``exit_code``) if no other scheduler holds the lock; return what happened."""
    from dbembed.store.connection import connect

    started = time.monotonic()
    key = lock_key(settings)
    try:
        lock_conn = connect(settings, autocommit=True, register_vector=False)
    except DbembedError as exc:
        log.error("scheduled run not started: %s", exc)
        return Outcome(False, exc.exit_code, time.monotonic() - started, str(exc))
    try:
        if not try_lock(lock_conn, key):
            log.info(SKIPPED_MESSAGE)
            events.info("schedule", extra={"event": {"status": "skipped", "reason": SKIPPED_MESSAGE}})
            return Outcome(False, EXIT_OK, time.monotonic() - started)
        log.info("scheduled run started (roots: %s)", " ".join(roots))
        events.info("schedule", extra={"event": {"status": "started", "roots": list(roots)}})
        error: str | None = None
        try:
            code = _exit_code(run_fn(list(roots), settings=settings))
        except DbembedError as exc:
            code, error = exc.exit_code, str(exc)
        except Exception as exc:  # noqa: BLE001 - a long-lived scheduler survives a bad run
            code, error = EXIT_FATAL, f"{type(exc).__name__}: {exc}"
            log.exception("scheduled run crashed")
        duration = time.monotonic() - started
        level = logging.INFO if code == EXIT_OK else logging.ERROR
        log.log(
            level,
            "scheduled run finished: exit code %d in %.1fs%s",
            code,
            duration,
            f" ({error})" if error else "",
        )
        events.info(
            "schedule",
            extra={
                "event": {
                    "status": "finished",
                    "exit_code": code,
                    "duration_s": round(duration, 3),
                    "error": error,
                }
            },
        )
        return Outcome(True, code, duration, error)
    finally:
        with contextlib.suppress(Exception):  # closing the session releases it anyway
            unlock(lock_conn, key)
        lock_conn.close()


def parse_cron(expr: str) -> Any:
    """Validate a 5-field cron expression (UTC) that fires at least once from now on; raise
    ``InvalidInput`` (field ``cron``) with the reason (``never fires`` for ``0 2 30 2 *``)."""
    try:
        from croniter import CroniterBadDateError, croniter
    except ImportError as exc:
        raise UsageError("dbembed schedule needs croniter: pip install 'dbembed[schedule]'") from exc
    if len(expr.split()) != 5:
        raise InvalidInput(
            f"cron: use 5 fields 'minute hour day month weekday', e.g. '0 2 * * *' (got {echo(expr)})", "cron"
        )
    if not croniter.is_valid(expr):
        raise InvalidInput(f"cron: not a valid cron expression (got {echo(expr)})", "cron")
    try:
        croniter(expr, datetime.now(UTC)).get_next(float)
    except CroniterBadDateError:
        raise InvalidInput(
            f"cron: never fires: no date matches it, e.g. February 30 (got {echo(expr)})", "cron"
        ) from None
    return croniter


def next_fire(expr: str, after: float) -> float:
    """The first time strictly after ``after`` (unix seconds) that matches ``expr`` in UTC."""
    croniter = parse_cron(expr)
    base = datetime.fromtimestamp(after, UTC)
    return float(croniter(expr, base).get_next(float))


def run_schedule(
    roots: Sequence[str],
    settings: Settings,
    cron: str,
    *,
    run_fn: RunFn,
    max_runs: int | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
    wait: Callable[[float], bool] | None = None,
) -> int:
    """Loop forever (or ``max_runs`` ticks, or until ``stop`` is set): wait for the slot, run locked.

    Returns the exit code of the last run that actually ran (0 if none ran).  ``clock`` and
    ``wait`` (returns True when stopped) exist so tests can run a day of slots instantly.
    """
    parse_cron(cron)
    stop = stop or threading.Event()
    wait = wait or stop.wait
    last_code = EXIT_OK
    ticks = 0
    while not stop.is_set() and (max_runs is None or ticks < max_runs):
        fire = next_fire(cron, clock())
        log.info(
            "next scheduled run at %s UTC", datetime.fromtimestamp(fire, UTC).isoformat(timespec="seconds")
        )
        while not stop.is_set():
            remaining = fire - clock()
            if remaining <= 0:
                break
            if wait(min(remaining, 60.0)):
                break
        if stop.is_set():
            break
        outcome = locked_run(roots, settings, run_fn)
        ticks += 1
        if outcome.ran:
            last_code = outcome.exit_code
    log.info("scheduler stopped after %d tick(s)", ticks)
    return last_code
