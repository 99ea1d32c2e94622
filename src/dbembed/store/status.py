"""What one collection holds and what happened to it: file counts by status, leased work, failures,
recent runs and rejections (``dbembed status``, ``Dbembed.status``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dbembed.store.rejections import summary as rejection_summary
from dbembed.store.runs import recent_runs

if TYPE_CHECKING:
    import psycopg

    from dbembed.store.collections import Collection

FILE_STATUSES = ("indexed", "failed", "queued", "leased", "pending", "missing")


@dataclass(frozen=True)
class Lease:
    """A file a worker holds now: ``owner`` (host:pid) until ``expires`` (renewed by its heartbeat)."""

    file: str
    owner: str | None
    expires: datetime | None


@dataclass(frozen=True)
class Failure:
    """A file whose last attempt failed, with the reason and when (UTC)."""

    file: str
    error: str | None
    at: datetime | None


@dataclass(frozen=True)
class RunRecord:
    """One ``dbembed run``: counters, seconds, provider usage (``{model: {texts, tokens, requests,
    retries, throttles, cost_usd}}``) and, for local models, the runtime (``openvino fp32``).
    ``status``: running, ok, partial, failed, interrupted, or abandoned (its worker stopped beating)."""

    id: int
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    files_ok: int
    files_failed: int
    files_skipped: int
    files_pending: int
    files_missing: int
    rows: int
    chunks: int
    texts_embedded: int
    texts_reused: int
    seconds: float | None
    usage: dict[str, Any] | None
    error: str | None
    runtime: str | None = None
    files_still_failed: int = 0  # failed in an earlier run, unchanged since, so not retried

    @classmethod
    def from_row(cls, row: Any) -> RunRecord:
        """From a ``recent_runs`` item (a mapping or a dataclass of the same fields)."""
        is_record = dataclasses.is_dataclass(row) and not isinstance(row, type)
        data = dataclasses.asdict(row) if is_record else dict(row)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class CollectionStatus:
    """One collection: model, dimensions and vector type; ``files`` by status (every status in
    ``FILE_STATUSES``, zeros included); rows and chunks of its indexed files; up to 50 leased
    files; the newest failures; recent runs; and ``rejections`` below the file level (totals and,
    per file, its rejected tables/rows/chunks with reasons; see ``store.rejections.summary``)."""

    name: str
    model: str
    dimensions: int
    vector_type: str
    files: dict[str, int]
    rows: int
    chunks: int
    leased: list[Lease] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    rejections: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Status:
    """``dbembed status``: one ``CollectionStatus`` per collection (only ``settings.collection``
    when set)."""

    collections: list[CollectionStatus]

    def as_dict(self) -> dict[str, Any]:
        return {"collections": [c.as_dict() for c in self.collections]}


def collection_status(
    conn: psycopg.Connection, coll: Collection, *, runs: int, failures: int, abandoned_after_s: float
) -> CollectionStatus:
    """The status of ``coll``: ``runs`` newest runs, ``failures`` newest failed files (and as many
    files with rejections).  A running run without a heartbeat for ``abandoned_after_s`` shows as
    ``abandoned``."""
    counts: dict[str, int] = dict(
        conn.execute(
            "SELECT status, count(*) FROM dbembed.sources WHERE collection_id = %s GROUP BY status", (coll.id,)
        ).fetchall()
    )
    totals = conn.execute(
        "SELECT coalesce(sum(rows), 0), coalesce(sum(chunks), 0) FROM dbembed.sources"
        " WHERE collection_id = %s AND status = 'indexed'",
        (coll.id,),
    ).fetchone()
    leased = conn.execute(
        "SELECT path, lease_owner, lease_expires FROM dbembed.sources WHERE collection_id = %s"
        " AND status = 'leased' ORDER BY path LIMIT 50",
        (coll.id,),
    ).fetchall()
    failed = conn.execute(
        "SELECT path, error, processed_at FROM dbembed.sources WHERE collection_id = %s"
        " AND status = 'failed' ORDER BY processed_at DESC NULLS LAST LIMIT %s",
        (coll.id, failures),
    ).fetchall()
    return CollectionStatus(
        name=coll.name,
        model=coll.model,
        dimensions=coll.dimensions,
        vector_type=coll.vector_type,
        files={st: int(counts.get(st, 0)) for st in FILE_STATUSES},
        rows=int(totals[0]) if totals else 0,
        chunks=int(totals[1]) if totals else 0,
        leased=[Lease(p, o, e) for p, o, e in leased],
        failures=[Failure(p, e, t) for p, e, t in failed],
        runs=[RunRecord.from_row(r) for r in recent_runs(conn, coll.id, runs, abandoned_after_s)],
        rejections=rejection_summary(conn, coll.id, limit=failures),
    )
