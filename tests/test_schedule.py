"""The scheduler: cron slots in UTC, and no two runs at once across schedulers
(a PostgreSQL advisory lock on the embedded server)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("croniter")


@pytest.fixture()
def restore_logging() -> Iterator[None]:
    root, events = logging.getLogger(), logging.getLogger("dbembed.events")
    saved = (list(root.handlers), root.level, list(events.handlers), events.level)
    yield
    root.handlers[:], events.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    events.setLevel(saved[3])


def test_second_scheduler_skips_while_a_run_holds_the_lock(settings, caplog) -> None:  # noqa: ANN001
    from dbembed.run.schedule import SKIPPED_MESSAGE, locked_run

    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    class Summary:
        exit_code = 1  # partial failure is passed through

    def slow_run(roots: list[str], *, settings: object) -> Summary:
        calls.append("A")
        started.set()
        assert release.wait(20)
        return Summary()

    results: dict[str, object] = {}
    first = threading.Thread(target=lambda: results.update(a=locked_run(["/data"], settings, slow_run)))
    first.start()
    assert started.wait(20)
    caplog.set_level(logging.INFO, logger="dbembed.run.schedule")

    def must_not_run(roots: list[str], *, settings: object) -> int:
        calls.append("B")
        return 0

    second = locked_run(["/data"], settings, must_not_run)
    assert not second.ran and second.exit_code == 0
    assert SKIPPED_MESSAGE in caplog.text
    release.set()
    first.join(20)
    a = results["a"]
    assert a.ran and a.exit_code == 1  # type: ignore[attr-defined]
    assert calls == ["A"]

    # The lock died with the first run: the next run goes ahead.
    third = locked_run(["/data"], settings, lambda roots, settings: 0)
    assert third.ran and third.exit_code == 0


def test_lock_is_per_index(settings) -> None:  # noqa: ANN001
    from dbembed.run.schedule import lock_key

    other = settings.model_copy(update={"collection": "other"})
    assert lock_key(settings) != lock_key(other)
    assert lock_key(settings) == lock_key(settings.model_copy())
    assert -(2**63) <= lock_key(settings) < 2**63


def test_cron_slots_are_utc_and_a_crash_does_not_stop_the_loop(settings) -> None:  # noqa: ANN001
    from dbembed.run.schedule import run_schedule

    now = [datetime(2026, 3, 1, 1, 58, 30, tzinfo=UTC).timestamp()]
    fired: list[datetime] = []

    def wait(seconds: float) -> bool:
        now[0] += seconds
        return False

    def run(roots: list[str], *, settings: object) -> int:
        fired.append(datetime.fromtimestamp(now[0], UTC))
        now[0] += 90  # the run takes 90 s
        if len(fired) == 2:
            raise RuntimeError("boom")
        return 0

    code = run_schedule(
        ["/d"], settings, "*/5 2 * * *", run_fn=run, max_runs=3, clock=lambda: now[0], wait=wait
    )
    assert [t.strftime("%H:%M:%S") for t in fired] == ["02:00:00", "02:05:00", "02:10:00"]
    assert code == 0  # the last run succeeded; the crash in between was logged, not fatal


def test_overrun_skips_missed_slots(settings) -> None:  # noqa: ANN001
    from dbembed.run.schedule import run_schedule

    now = [datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC).timestamp()]
    fired: list[str] = []

    def wait(seconds: float) -> bool:
        now[0] += seconds
        return False

    def run(roots: list[str], *, settings: object) -> int:
        fired.append(datetime.fromtimestamp(now[0], UTC).strftime("%H:%M"))
        now[0] += 150 * 60  # 2.5 hours: two hourly slots pass during the run
        return 1

    code = run_schedule(
        ["/d"], settings, "0 * * * *", run_fn=run, max_runs=2, clock=lambda: now[0], wait=wait
    )
    assert fired == ["01:00", "04:00"]
    assert code == 1


def test_invalid_cron_is_a_usage_error() -> None:
    from dbembed.errors import UsageError
    from dbembed.run.schedule import parse_cron

    for bad in ("0 2 * *", "61 2 * * *", "cron(0 2 * * ? *)"):
        with pytest.raises(UsageError, match=r"^cron: .*\(got ") as err:
            parse_cron(bad)
        assert err.value.field == "cron"  # type: ignore[attr-defined]  # the CLI names it --cron
    with pytest.raises(UsageError, match=r"^cron: never fires: .*\(got '0 2 30 2 \*'\)"):
        parse_cron("0 2 30 2 *")  # February 30
    parse_cron("0 0 29 2 *")  # leap days fire


def test_cli_cron_that_never_fires_exits_2_naming_it() -> None:
    from typer.testing import CliRunner

    from dbembed.cli.main import app

    bad = CliRunner().invoke(app, ["schedule", "/data", "--cron", "0 2 30 2 *"])
    assert bad.exit_code == 2 and "--cron: never fires" in bad.stderr, bad.stderr


def test_cli_once_skips_when_locked_and_needs_cron_otherwise(
    settings,  # noqa: ANN001
    restore_logging: None,
    tmp_path: Path,
) -> None:
    import psycopg
    from typer.testing import CliRunner

    from dbembed.cli.main import app
    from dbembed.run.schedule import SKIPPED_MESSAGE, lock_key

    runner = CliRunner()
    usage = runner.invoke(app, ["schedule", "/data", "--database-url", settings.database_url])
    assert usage.exit_code == 2
    assert "--cron" in usage.output

    bad = runner.invoke(
        app, ["schedule", "/data", "--cron", "0 2 * *", "--database-url", settings.database_url]
    )
    assert bad.exit_code == 2

    with psycopg.connect(settings.database_url, autocommit=True) as holder:
        assert holder.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(settings),)).fetchone()[0]
        result = runner.invoke(
            app,
            [
                "schedule",
                "/data",
                "--once",
                "--database-url",
                settings.database_url,
                "--data-dir",
                str(tmp_path),
                "--log-format",
                "json",
            ],
        )
    assert result.exit_code == 0, result.output
    assert SKIPPED_MESSAGE in result.output
    assert '"status":"skipped"' in result.output  # the JSON event line
