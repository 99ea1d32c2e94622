"""Production observability: JSON logs, CloudWatch Embedded Metric Format, Prometheus textfile.

Why: on AWS Batch/ECS every line of stderr ends up in CloudWatch Logs.  One JSON object
per line makes those lines queryable with Logs Insights and usable by metric filters;
an EMF line per run turns the run summary into CloudWatch metrics with no API call
and no extra IAM permission; on a plain VM the Prometheus textfile collector of
node_exporter reads ``metrics_file``.

The pipeline logs structured events to the ``dbembed.events`` logger as
``log.info("file", extra={"event": {...}})`` and ``log.info("run", extra={"event": {...}})``;
everything here is a logging handler or formatter, so the pipeline never imports it.
``install(settings)`` wires it all up and is safe to call more than once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbembed.config import Settings

EVENTS_LOGGER = "dbembed.events"
_MARK = "_dbembed_monitoring"  # attribute on handlers we installed (so install() can replace them)

# metric name -> (unit, keys in the "run" event (RunSummary.as_dict()) that may carry it;
# the first present wins; "a.b" reads a nested dict such as the provider usage).
RUN_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "FilesProcessed": ("Count", ("files_ok", "files_processed")),
    "FilesFailed": ("Count", ("files_failed",)),
    "FilesSkipped": ("Count", ("files_skipped",)),
    "FilesStillFailed": ("Count", ("files_still_failed",)),
    "FilesPending": ("Count", ("files_pending",)),
    "Chunks": ("Count", ("chunks",)),
    "TextsEmbedded": ("Count", ("texts_embedded",)),
    "TextsReused": ("Count", ("texts_reused",)),
    "Tokens": ("Count", ("usage.tokens", "tokens")),
    "Throttles": ("Count", ("usage.throttles", "throttles")),
    "EmbeddingCostUSD": ("None", ("usage.cost_usd",)),
    "RunDuration": ("Seconds", ("seconds", "duration_s")),
}
_STD_ATTRS = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


def _utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message, ``event`` (if any), extras.

    Nested ``event`` keeps the pipeline's field names intact, e.g. ``$.event.status`` in a
    metric filter or ``filter event.status = "failed"`` in Logs Insights.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_") and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False, separators=(",", ":"))


def _lookup(event: dict[str, Any], key: str) -> Any:
    value: Any = event
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _number(event: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = _lookup(event, key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        if isinstance(value, list | tuple | set | dict):  # e.g. a list of failed files
            return float(len(value))
    return None


def run_metrics(event: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """The metrics a ``run`` event carries: name -> (value, unit).  Absent fields are left out."""
    out: dict[str, tuple[float, str]] = {}
    for name, (unit, keys) in RUN_METRICS.items():
        value = _number(event, keys)
        if value is not None:
            out[name] = (value, unit)
    code = event.get("exit_code")
    if isinstance(code, int) and not isinstance(code, bool):
        out["RunSucceeded"] = (1.0 if code == 0 else 0.0, "Count")
        out["RunFailed"] = (0.0 if code == 0 else 1.0, "Count")
    return out


def emf_document(event: dict[str, Any], namespace: str, collection: str | None = None) -> dict[str, Any]:
    """A CloudWatch Embedded Metric Format document for one run event.

    Two dimension sets: none (fleet-wide alarms need no dimension value) and Collection.
    """
    metrics = run_metrics(event)
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [[], ["Collection"]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                }
            ],
        },
        "Collection": str(event.get("collection") or collection or "default"),
    }
    for name, (value, _) in metrics.items():
        doc[name] = value
    for key in ("run_id", "exit_code"):
        if key in event:
            doc[key] = event[key]
    return doc


def _event_of(record: logging.LogRecord) -> dict[str, Any] | None:
    event = getattr(record, "event", None)
    return event if isinstance(event, dict) else None


class EmfHandler(logging.Handler):
    """Writes one EMF JSON line to ``stream`` for every ``run`` event."""

    def __init__(self, namespace: str, collection: str | None = None, stream: IO[str] | None = None) -> None:
        super().__init__(logging.INFO)
        self.namespace = namespace
        self.collection = collection
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        event = _event_of(record)
        if record.getMessage() != "run" or event is None:
            return
        try:
            line = json.dumps(emf_document(event, self.namespace, self.collection), default=str)
            stream = self.stream or sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - metrics must never break a run
            self.handleError(record)


def prometheus_text(event: dict[str, Any], previous_success: float | None = None) -> str:
    """Prometheus exposition text for the last run (gauges; node_exporter textfile format)."""
    now = time.time()
    metrics = run_metrics(event)
    ok = event.get("exit_code") == 0
    last_success = now if ok else previous_success
    lines: list[str] = []

    def gauge(name: str, value: float, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name} {int(value)}" if value.is_integer() else f"{name} {value!r}")

    gauge("dbembed_last_run_timestamp_seconds", now, "When the last dbembed run finished (unix time).")
    if "exit_code" in event:
        gauge("dbembed_last_run_exit_code", float(event["exit_code"]), "Exit code of the last run (0 ok).")
    if last_success is not None:
        gauge(
            "dbembed_last_success_timestamp_seconds",
            last_success,
            "When the last fully successful run ended.",
        )
    for name, (value, unit) in metrics.items():
        if name in ("RunSucceeded", "RunFailed"):
            continue
        snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
        snake = snake.removeprefix("run_")  # RunDuration -> dbembed_last_run_duration_seconds
        suffix = "_seconds" if unit == "Seconds" else ""
        gauge(f"dbembed_last_run_{snake}{suffix}", value, f"{name} in the last run.")
    return "\n".join(lines) + "\n"


def _previous_success(path: Path) -> float | None:
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("dbembed_last_success_timestamp_seconds "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def write_textfile(path: Path, text: str) -> None:
    """Atomic write (temp + rename): node_exporter must never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dbembed-", suffix=".prom.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PrometheusFileHandler(logging.Handler):
    """Rewrites the textfile after every ``run`` event, keeping the last-success time across runs."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.INFO)
        self.path = Path(path)

    def emit(self, record: logging.LogRecord) -> None:
        event = _event_of(record)
        if record.getMessage() != "run" or event is None:
            return
        try:
            write_textfile(self.path, prometheus_text(event, _previous_success(self.path)))
        except Exception:  # noqa: BLE001
            self.handleError(record)


def _remove_ours(logger: logging.Logger) -> None:
    for h in list(logger.handlers):
        if getattr(h, _MARK, False):
            logger.removeHandler(h)
            h.close()


def _mark(handler: logging.Handler) -> logging.Handler:
    setattr(handler, _MARK, True)
    return handler


def setup_logging(fmt: str = "text", level: str | int | None = None, stream: IO[str] | None = None) -> None:
    """Route all logging to one stderr handler, as JSON lines or human text.

    Replaces existing console handlers (e.g. the CLI's ``basicConfig``) so each line is
    written once.  With JSON, ``dbembed.events`` is kept at INFO: the events are the point.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    if level is None:
        level = os.environ.get("DBEMBED_LOG_LEVEL") or ("INFO" if fmt == "json" else "WARNING")
    root = logging.getLogger()
    for h in list(root.handlers):
        # Ours from an earlier call, and console handlers (the CLI's basicConfig); others
        # (file handlers, test capture) stay.
        console = type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.stdout)
        if getattr(h, _MARK, False) or console:
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler.addFilter(_LevelOrEvents(numeric, events_too=fmt == "json"))
    root.addHandler(_mark(handler))
    root.setLevel(numeric)
    events = logging.getLogger(EVENTS_LOGGER)
    if events.getEffectiveLevel() > logging.INFO:
        events.setLevel(logging.INFO)  # handlers decide what to show; EMF/textfile need the events


class _LevelOrEvents(logging.Filter):
    """Pass records at ``level`` or above, and (JSON logs) every ``dbembed.events`` record."""

    def __init__(self, level: int, events_too: bool) -> None:
        super().__init__()
        self.level = level
        self.events_too = events_too

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        return self.events_too and record.name == EVENTS_LOGGER


def install(settings: Settings, stream: IO[str] | None = None) -> None:
    """Apply the monitoring settings: log format/level, EMF lines, Prometheus textfile."""
    setup_logging(settings.run.log_format, settings.run.log_level, stream=stream)
    events = logging.getLogger(EVENTS_LOGGER)
    _remove_ours(events)
    if settings.run.emf:
        emf = EmfHandler(settings.run.metrics_namespace, settings.store.collection, stream=stream)
        events.addHandler(_mark(emf))
    if settings.run.metrics_file:
        events.addHandler(_mark(PrometheusFileHandler(Path(settings.run.metrics_file))))
