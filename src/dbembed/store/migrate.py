"""Numbered SQL migrations, applied once each and recorded in ``dbembed.schema_migrations``.

Files live in ``dbembed/store/migrations/NNNN_name.sql``.  Every process that opens
the store calls ``migrate``; a transaction-scoped advisory lock makes concurrent
workers (AWS Batch array jobs) apply each migration exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from dbembed.errors import DatabaseUnavailable
from dbembed.store.connection import MIN_PGVECTOR, parse_version

if TYPE_CHECKING:
    import psycopg

SCHEMA = "dbembed"
_LOCK_KEY = 0x64_62_65_6D  # "dbem"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found: list[Migration] = []
    folder = resources.files("dbembed.store") / "migrations"
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


def ensure_pgvector(conn: psycopg.Connection) -> str:
    """Create the vector extension if needed; explain plainly when it is missing or too old."""
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if row is None:
        raise DatabaseUnavailable(
            "the pgvector extension is not installed on this PostgreSQL server. Install pgvector "
            "(on RDS/Aurora it is built in) and run: CREATE EXTENSION vector;"
        )
    if row[1] is None:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception as exc:  # noqa: BLE001 - any failure here has the same remedy
            raise DatabaseUnavailable(
                f"pgvector is available but not enabled in this database, and enabling it failed ({exc}). "
                "Ask a database owner to run: CREATE EXTENSION vector;"
            ) from exc
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        installed = str(version[0]) if version else str(row[0])
    else:
        installed = str(row[1])
    if parse_version(installed) < MIN_PGVECTOR:
        raise DatabaseUnavailable(
            f"pgvector {installed} is too old; dbembed needs >= "
            f"{'.'.join(map(str, MIN_PGVECTOR))}. Run: ALTER EXTENSION vector UPDATE;"
        )
    return installed


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[int] = []
    ensure_pgvector(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r[0] for r in conn.execute(f"SELECT version FROM {SCHEMA}.schema_migrations")}
        for mig in available_migrations():
            if mig.version in done:
                continue
            conn.execute(mig.sql)  # type: ignore[arg-type]
            conn.execute(
                f"INSERT INTO {SCHEMA}.schema_migrations (version, name) VALUES (%s, %s)",
                (mig.version, mig.name),
            )
            applied_now.append(mig.version)
    if conn.autocommit:
        # Data steps of migrations that need Python (resumable, batched, outside the lock above).
        from dbembed.store.lexical import backfill_pending

        backfill_pending(conn)
    return applied_now


def current_version(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT to_regclass('dbembed.schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    got = conn.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_migrations").fetchone()
    return int(got[0]) if got else 0
