"""Connect, waiting out a database that is starting up or resuming (Aurora Serverless v2).

Why: an Aurora Serverless v2 cluster with a minimum of 0 ACU pauses after being idle;
the first connections after that are refused, time out, or get "the database system
is starting up" (SQLSTATE 57P03) / "resuming after being auto-paused" for up to about
two minutes.  A nightly batch job must wait that out instead of failing.  Errors that
waiting cannot fix (wrong password, unknown database, no pg_hba entry, bad TLS
certificate) fail at once, so a misconfiguration never costs ``db_resume_wait_s``.

Every attempt re-resolves the credentials (``aws_auth.refresh_conninfo``): an IAM token
is made fresh for each connection, and a password rejected right after a Secrets
Manager rotation gets one retry with the re-read secret.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dbembed.errors import mask_url

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import StoreSettings

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 15.0

# SQLSTATEs that mean "not now, later": cannot_connect_now (starting up / shutting down /
# in recovery), too_many_connections, admin/crash shutdown.
TRANSIENT_SQLSTATES = {"57P03", "53300", "57P01", "57P02"}
# libpq / server messages that mean the server is not (yet) accepting connections.
TRANSIENT_MESSAGES = (
    "connection refused",
    "the database system is starting up",
    "the database system is not yet accepting connections",
    "the database system is in recovery mode",
    "the database system is shutting down",
    "resuming after being auto-paused",
    "is resuming",
    "auto-paused",
    "server closed the connection unexpectedly",
    "connection reset by peer",
    "timeout expired",
    "connection timed out",
    "no route to host",
    "network is unreachable",
    "could not receive data from server",
    "ssl syscall error: eof detected",
    "eof detected",
    "sorry, too many clients already",
    "temporary failure in name resolution",
)
# Checked first: these never get better by waiting.
PERMANENT_MESSAGES = (
    "password authentication failed",
    "pam authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "certificate verify failed",
    "server does not support ssl",
    "invalid sslmode",
    "permission denied",
    "is not permitted to log in",
)
_AUTH_FAILED = ("password authentication failed", "pam authentication failed")


def is_transient(exc: BaseException) -> bool:
    """True when waiting may help (server starting/resuming/unreachable for now)."""
    text = str(exc).lower()
    if any(p in text for p in PERMANENT_MESSAGES):
        return False
    if getattr(exc, "sqlstate", None) in TRANSIENT_SQLSTATES:
        return True
    return any(p in text for p in TRANSIENT_MESSAGES)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect_with_retry(
    info: str,
    settings: StoreSettings,
    *,
    autocommit: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> psycopg.Connection:
    """``psycopg.connect`` that retries transient failures for up to ``settings.db_resume_wait_s``.

    Backoff doubles from 1 s to 15 s with +-20 % jitter (many array-job workers start
    together).  Each wait is logged at WARNING.  The last error is re-raised
    (``psycopg.OperationalError``) when the time is up or the error is permanent;
    ``store.connection.connect`` turns it into ``DatabaseUnavailable``.
    """
    import psycopg

    from dbembed.store import aws_auth

    if settings.db_iam_auth and "sslmode" not in kwargs:
        mode = aws_auth.default_sslmode(settings)
        if mode:
            kwargs["sslmode"] = mode
    budget = settings.resume_wait_s(info)
    start = time.monotonic()
    delay = FIRST_DELAY_S
    attempt = 0
    reload_secret = False
    secret_reloaded = False
    while True:
        attempt += 1
        current = aws_auth.refresh_conninfo(info, settings, reload_secret=reload_secret)
        reload_secret = False
        try:
            conn = psycopg.connect(current, autocommit=autocommit, **kwargs)
        except psycopg.OperationalError as exc:
            text = str(exc).lower()
            if (
                settings.db_secret_id
                and not settings.db_iam_auth
                and not secret_reloaded
                and any(p in text for p in _AUTH_FAILED)
            ):
                # The secret may have rotated since we cached it: re-read it once.
                log.warning("database rejected the password; re-reading secret %s", settings.db_secret_id)
                reload_secret = secret_reloaded = True
                continue
            if not is_transient(exc):
                raise
            elapsed = time.monotonic() - start
            remaining = budget - elapsed
            if remaining <= 0:
                log.error(
                    "database at %s still unavailable after %.0fs (%d attempts): %s",
                    mask_url(info),
                    elapsed,
                    attempt,
                    _first_line(exc),
                )
                raise
            wait = min(delay * random.uniform(0.8, 1.2), MAX_DELAY_S, remaining)
            log.warning(
                "database at %s not ready (%s); waiting %.1fs and retrying (%.0fs of %.0fs used, attempt %d)",
                mask_url(info),
                _first_line(exc),
                wait,
                elapsed,
                budget,
                attempt,
            )
            sleep(wait)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if attempt > 1:
            log.warning("database at %s is available after %d attempts", mask_url(info), attempt)
        return conn
