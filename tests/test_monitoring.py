"""JSON logs, CloudWatch EMF lines and the Prometheus textfile, driven through the real
``dbembed.events`` logger exactly as the pipeline logs its events."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run_event(**kw: object) -> dict:
    """The pipeline's real run event: ``RunSummary.as_dict()``."""
    from dbembed.run.index import RunSummary

    values: dict = {
        "run_id": 42,
        "collection": "titan_v2",
        "model": "bedrock:amazon.titan-embed-text-v2:0",
        "status": "partial",
        "files_found": 39,
        "files_ok": 7,
        "files_failed": 2,
        "files_skipped": 30,
        "chunks": 1234,
        "texts_embedded": 1000,
        "texts_reused": 234,
        "seconds": 12.5,
        "usage": {"tokens": 56789, "throttles": 3, "cost_usd": 0.0011},
        **kw,
    }
    return {"event": "run", **RunSummary(**values).as_dict()}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root, events = logging.getLogger(), logging.getLogger("dbembed.events")
    saved = (list(root.handlers), root.level, list(events.handlers), events.level)
    yield
    root.handlers[:], events.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    events.setLevel(saved[3])


def _settings(**kw: object):  # noqa: ANN202
    from dbembed.config import load_settings

    return load_settings(**kw)


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_logs_one_object_per_line(tmp_path: Path) -> None:
    from dbembed.cli.logging_setup import install

    buf = io.StringIO()
    install(_settings(log_format="json"), stream=buf)
    events = logging.getLogger("dbembed.events")
    events.info(
        "file",
        extra={
            "event": {"run_id": "r1", "file": "/sqlite-load-test/a.db", "status": "failed", "error": "bad\nx"}
        },
    )
    logging.getLogger("dbembed.store").debug("hidden at INFO")
    try:
        raise ValueError("kaput")
    except ValueError:
        logging.getLogger("dbembed.run").exception("run crashed")
    docs = _lines(buf)  # every line is JSON, even with a newline inside a value
    assert len(docs) == 2
    file_doc, crash = docs
    assert file_doc["message"] == "file" and file_doc["logger"] == "dbembed.events"
    assert file_doc["level"] == "INFO"
    assert file_doc["event"]["status"] == "failed" and file_doc["event"]["error"] == "bad\nx"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", file_doc["timestamp"])
    assert crash["level"] == "ERROR" and "ValueError: kaput" in crash["exception"]


def test_text_logs_hide_events_below_level() -> None:
    from dbembed.cli.logging_setup import install

    buf = io.StringIO()
    install(_settings(log_format="text"), stream=buf)
    logging.getLogger("dbembed.events").info("file", extra={"event": {"status": "ok"}})
    logging.getLogger("dbembed.x").warning("something odd")
    out = buf.getvalue()
    assert "something odd" in out and "WARNING" in out
    assert "file" not in out.replace("something odd", "")
    with pytest.raises(Exception, match="log_format"):
        _settings(log_format="yaml")


def test_emf_document_for_run_event() -> None:
    from dbembed.cli.logging_setup import install

    buf = io.StringIO()
    install(_settings(log_format="json", emf=True, metrics_namespace="LoadTest/Embedding"), stream=buf)
    install(
        _settings(log_format="json", emf=True, metrics_namespace="LoadTest/Embedding"), stream=buf
    )  # idempotent
    logging.getLogger("dbembed.events").info("file", extra={"event": {"status": "ok"}})
    logging.getLogger("dbembed.events").info("run", extra={"event": _run_event()})
    emf = [d for d in _lines(buf) if "_aws" in d]
    assert len(emf) == 1, "one EMF document per run event, none for file events"
    doc = emf[0]
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "LoadTest/Embedding"
    assert isinstance(doc["_aws"]["Timestamp"], int)
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    for dims in directive["Dimensions"]:
        assert all(key in doc for key in dims)  # every dimension key is a root member
    for name in names:
        assert isinstance(doc[name], int | float)  # every metric has its value at the root
    assert doc["FilesProcessed"] == 7 and doc["FilesFailed"] == 2 and doc["Chunks"] == 1234
    assert doc["TextsEmbedded"] == 1000 and doc["TextsReused"] == 234 and doc["Tokens"] == 56789
    assert doc["Throttles"] == 3 and doc["RunDuration"] == 12.5 and names["RunDuration"] == "Seconds"
    assert doc["RunSucceeded"] == 0 and doc["RunFailed"] == 1
    assert doc["Collection"] == "titan_v2" and doc["FilesPending"] == 0
    assert doc["EmbeddingCostUSD"] == 0.0011


def test_prometheus_textfile_keeps_last_success(tmp_path: Path) -> None:
    from dbembed.cli.logging_setup import install

    prom = tmp_path / "textfile" / "dbembed.prom"
    install(_settings(metrics_file=prom), stream=io.StringIO())
    events = logging.getLogger("dbembed.events")
    events.info("run", extra={"event": _run_event(files_failed=0, status="ok")})
    first = _parse_prom(prom.read_text())
    assert first["dbembed_last_run_exit_code"] == 0
    assert first["dbembed_last_run_files_processed"] == 7
    assert first["dbembed_last_run_duration_seconds"] == 12.5
    success = first["dbembed_last_success_timestamp_seconds"]
    assert abs(success - time.time()) < 60  # full precision, not 1.79e+09
    assert success == first["dbembed_last_run_timestamp_seconds"]

    events.info("run", extra={"event": _run_event()})  # a partial failure afterwards
    second = _parse_prom(prom.read_text())
    assert second["dbembed_last_run_exit_code"] == 1
    assert second["dbembed_last_run_files_failed"] == 2
    assert second["dbembed_last_success_timestamp_seconds"] == success  # unchanged: alarm on its age
    assert [p.name for p in prom.parent.iterdir()] == ["dbembed.prom"]  # no temp files left


def _parse_prom(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind == "gauge"
            typed.add(name)
        elif line and not line.startswith("#"):
            m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*) (-?[0-9.e+]+)", line)
            assert m, f"bad exposition line: {line!r}"
            assert m.group(1) in typed
            values[m.group(1)] = float(m.group(2))
    return values
