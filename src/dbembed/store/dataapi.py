"""The RDS Data API transport: a psycopg-like connection over boto3's ``rds-data`` client.

Selected by ``database_url = "rds-data://<cluster-arn>/<database>?secret_arn=<secret-arn>"``
(document 003's Lambda path: no VPC, no connection set-up per invocation).  The store's
functions take a ``DataApiConnection`` where they take a psycopg connection: it offers
what they call (``execute`` -> cursor with ``fetchone``/``fetchall``/``rowcount``/
``description``, ``cursor().executemany``, nested ``transaction()``), so the SQL is the
same on both transports and every difference lives here and in ``dataapi_sql``.

Aurora realities handled here:

* ``DatabaseResumingException`` (an auto-paused Serverless v2 instance is waking up):
  retried with backoff for up to ``db_resume_wait_s`` (default 180 s), like the psycopg
  path's ``store.wait_for_server``; then ``DatabaseUnavailable`` (exit 3 / HTTP 503).
* one statement per call ("Multi-statements aren't supported"): a parameterless script
  (a migration) is split and run statement by statement in one transaction.
* 4 MiB per request: ``executemany`` becomes ``BatchExecuteStatement`` calls split so
  that each request stays under ``MAX_REQUEST_BYTES``.
* 1 MiB per response: a SELECT whose result is too large is re-run in pages
  (``LIMIT``/``OFFSET`` over the query, inside one transaction).  64 KB per row is a
  hard limit: such a row gets a clear error (``psycopg.errors.ProgramLimitExceeded``).
* a transaction expires after three minutes without a call (TransactionNotFound):
  reported as ``psycopg.OperationalError``; statement time-outs as ``QueryCanceled``.
* database errors keep their SQLSTATE: ``DatabaseErrorException`` ... ``SQLState: 23505``
  is raised as ``psycopg.errors.UniqueViolation``, so callers handle both transports alike.

Indexing never runs here (it needs binary COPY): see ``require_direct``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from dbembed.errors import DatabaseUnavailable, ResponseTooLarge
from dbembed.store import dataapi_sql as wire
from dbembed.store.dataapi_config import SCHEME, Target, client, is_data_api_url, parse_url, require_direct

if TYPE_CHECKING:
    from dbembed.config import StoreSettings

log = logging.getLogger(__name__)

__all__ = ["DataApiConnection", "DataApiCursor", "Target", "connect_data_api", "is_data_api_url", "parse_url",
           "require_direct"]  # fmt: skip
MAX_REQUEST_BYTES = 3 * 1024 * 1024  # documented limit 4 MiB per request, headers and JSON included
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 15.0
_SQLSTATE = re.compile(r"SQLState:\s*([0-9A-Z]{5})")
_TOO_LARGE = ("exceeded size limit", "response size", "packet for query is too large")
_FATAL_CODES = {
    "AccessDeniedException", "ForbiddenException", "SecretsErrorException", "InvalidSecretException",
    "HttpEndpointNotEnabledException", "DatabaseNotFoundException", "DatabaseUnavailableException",
    "InvalidResourceStateException", "DatabaseResumingException", "UnrecognizedClientException",
    "InvalidSignatureException", "ExpiredTokenException",
}  # fmt: skip


def connect_data_api(settings: StoreSettings, *, sleep: Callable[[float], None] = time.sleep) -> DataApiConnection:
    """A Data API "connection" (no network traffic until the first statement)."""
    assert settings.database_url is not None
    target = parse_url(settings.database_url, settings)
    return DataApiConnection(client(settings, target.region), target, settings.resume_wait_s(SCHEME), sleep)


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) or type(exc).__name__


def _message(exc: BaseException) -> str:
    resp = getattr(exc, "response", {})
    return str(resp.get("Error", {}).get("Message") or resp.get("message") or exc)


def map_error(exc: BaseException, target: Target) -> BaseException:
    """The exception the psycopg path would raise for this Data API failure."""
    import psycopg

    code, msg = _error_code(exc), _message(exc)
    if code in ("DatabaseErrorException", "BadRequestException"):
        if any(p in msg.lower() for p in _TOO_LARGE):
            return ResponseTooLarge(msg)
        if "multi-statement" in msg.lower() or "multiple statements" in msg.lower():
            return psycopg.ProgrammingError(msg)
        m = _SQLSTATE.search(msg)
        text = _SQLSTATE.sub("", msg).rstrip("; \n") or msg
        if m:
            cls = psycopg.errors.lookup(m.group(1))
            return cls(text)
        return psycopg.DatabaseError(text)
    if code == "StatementTimeoutException":
        return psycopg.errors.QueryCanceled(f"the Data API statement timed out: {msg}")
    if code == "TransactionNotFoundException":
        return psycopg.OperationalError(
            f"Data API transaction lost ({msg}): it expired (three minutes without a call) or the Data API "
            "ended it after an error in a previous call; retry the whole transaction"
        )
    if code in _FATAL_CODES or "EndpointConnectionError" in code or "Credentials" in code:
        return DatabaseUnavailable(
            f"RDS Data API on {target.resource_arn} ({target.database}): {code}: {msg}"
        )
    return psycopg.OperationalError(f"RDS Data API {code}: {msg}")


class DataApiCursor:
    """Results of one statement, with the psycopg cursor methods the store uses."""

    def __init__(self, conn: DataApiConnection) -> None:
        self._conn = conn
        self._rows: list[tuple[Any, ...]] = []
        self._pos = 0
        self.description: list[wire.Column] | None = None
        self.rowcount = -1

    def execute(self, query: Any, params: Any = None, **_: Any) -> DataApiCursor:
        self._set(*self._conn._run(query, params))
        return self

    def executemany(self, query: Any, params_seq: Sequence[Any], **_: Any) -> None:
        self._set(None, [], self._conn._run_many(query, params_seq))

    def _set(self, cols: list[wire.Column] | None, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.description, self._rows, self._pos, self.rowcount = cols, rows, 0, rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        out = self._rows[self._pos : self._pos + size]
        self._pos += len(out)
        return out

    def fetchall(self) -> list[tuple[Any, ...]]:
        out = self._rows[self._pos :]
        self._pos = len(self._rows)
        return out

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        self._rows = []

    def __enter__(self) -> DataApiCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DataApiConnection:
    """A psycopg-like, autocommit "connection" whose statements are Data API calls.

    Not thread-safe (like a psycopg connection): use one per thread/request; the
    underlying boto3 client is shared and thread-safe.
    """

    is_data_api = True
    autocommit = True

    def __init__(
        self, client: Any, target: Target, resume_wait_s: float, sleep: Callable[[float], None]
    ) -> None:
        import psycopg

        self._client = client
        self.target = target
        self._resume_wait_s = resume_wait_s
        self._sleep = sleep
        self._tx: str | None = None
        self._savepoints = 0
        self.closed = False
        self.calls = 0  # Data API requests made (for tests and benchmarks)
        self.info = SimpleNamespace(host=target.resource_arn, port=0, dbname=target.database)
        # psycopg.sql.Composable.as_string(conn) treats us as an adaptation context.
        self.adapters = psycopg.adapters
        self.connection = None

    # -- calls -------------------------------------------------------------------------
    def _base(self) -> dict[str, Any]:
        return {"resourceArn": self.target.resource_arn, "secretArn": self.target.secret_arn}

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        """One Data API call; waits out a resuming (auto-paused) cluster."""
        from botocore.exceptions import BotoCoreError, ClientError

        start, delay, attempt = time.monotonic(), FIRST_DELAY_S, 0
        while True:
            attempt += 1
            self.calls += 1
            try:
                return getattr(self._client, op)(**self._base(), **kwargs)  # type: ignore[no-any-return]
            except ClientError as exc:
                if _error_code(exc) != "DatabaseResumingException":
                    raise map_error(exc, self.target) from exc
                remaining = self._resume_wait_s - (time.monotonic() - start)
                if remaining <= 0:
                    raise DatabaseUnavailable(
                        f"RDS Data API on {self.target.resource_arn}: the database is still resuming after "
                        f"{time.monotonic() - start:.0f}s ({attempt} attempts): {_message(exc)}"
                    ) from exc
                wait = min(delay * random.uniform(0.8, 1.2), MAX_DELAY_S, remaining)
                log.warning(
                    "Aurora is resuming from auto-pause; retrying in %.1fs (attempt %d)", wait, attempt
                )
                self._sleep(wait)
                delay = min(delay * 2, MAX_DELAY_S)
            except BotoCoreError as exc:
                raise DatabaseUnavailable(f"RDS Data API on {self.target.resource_arn}: {exc}") from exc

    def _statement(self, sql: str, params: list[dict[str, Any]]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"database": self.target.database, "sql": sql, "includeResultMetadata": True}
        if params:
            kwargs["parameters"] = params
        if self._tx:
            kwargs["transactionId"] = self._tx
        if re.match(r"\s*(CREATE|ALTER|DROP|GRANT|REVOKE)\b", sql, re.I):
            kwargs["continueAfterTimeout"] = True  # documented advice for DDL
        return self._call("execute_statement", **kwargs)

    def _run(self, query: Any, params: Any) -> tuple[list[wire.Column] | None, list[tuple[Any, ...]], int]:
        import psycopg

        self._check_open()
        text = _as_text(query, self)
        try:
            sql, wparams = wire.translate(text, params)
        except wire.UnsupportedValue as exc:
            raise psycopg.ProgrammingError(str(exc)) from exc
        if not wparams:
            parts = wire.split_statements(sql)
            if len(parts) > 1:  # a script (migration): one call per statement, atomically
                with self.transaction():
                    for part in parts:
                        self._statement(part, [])
                return None, [], -1
        try:
            resp = self._statement(sql, wparams)
        except ResponseTooLarge as exc:
            return self._paged(sql, wparams, str(exc))
        cols, rows = wire.decode_records(resp)
        if resp.get("columnMetadata"):
            return cols, rows, len(rows)
        return None, [], int(resp.get("numberOfRecordsUpdated", -1))

    def _paged(
        self, sql: str, params: list[dict[str, Any]], why: str
    ) -> tuple[list[wire.Column] | None, list[tuple[Any, ...]], int]:
        """Re-run a too-large SELECT in pages (one transaction, so the pages agree)."""
        import psycopg

        if not re.match(r"\s*(SELECT|WITH|VALUES|TABLE)\b", sql, re.I):
            raise psycopg.errors.ProgramLimitExceeded(f"RDS Data API response limit: {why}")
        rows: list[tuple[Any, ...]] = []
        cols: list[wire.Column] = []
        size = 256
        with self.transaction():
            while True:
                paged = f"SELECT * FROM ({sql}) AS dbembed_page LIMIT {size} OFFSET {len(rows)}"
                try:
                    resp = self._statement(paged, params)
                except ResponseTooLarge as exc:
                    if size == 1:
                        raise psycopg.errors.ProgramLimitExceeded(
                            f"RDS Data API: one result row is larger than the Data API returns "
                            f"(64 KB per row, 1 MiB per response): {exc}"
                        ) from exc
                    size = max(1, size // 4)
                    continue
                cols, page = wire.decode_records(resp)
                rows.extend(page)
                if len(page) < size:
                    return cols, rows, len(rows)

    def _run_many(self, query: Any, params_seq: Sequence[Any]) -> int:
        """``executemany`` as BatchExecuteStatement calls (runs of one SQL shape, < 4 MiB each)."""
        import psycopg

        self._check_open()
        text = _as_text(query, self)
        batches: list[tuple[str, list[list[dict[str, Any]]]]] = []
        size = 0
        for params in params_seq:
            try:
                sql, wparams = wire.translate(text, params)
            except wire.UnsupportedValue as exc:
                raise psycopg.ProgrammingError(str(exc)) from exc
            n = len(json.dumps(wparams, default=_blob_len)) + 8
            if not batches or batches[-1][0] != sql or size + n > MAX_REQUEST_BYTES - len(sql) - 4096:
                batches.append((sql, []))
                size = 0
            batches[-1][1].append(wparams)
            size += n
        with self.transaction() if len(batches) > 1 else contextlib.nullcontext():
            for sql, sets in batches:
                kwargs: dict[str, Any] = {"database": self.target.database, "sql": sql, "parameterSets": sets}
                if self._tx:
                    kwargs["transactionId"] = self._tx
                self._call("batch_execute_statement", **kwargs)
        return sum(len(s) for _, s in batches)

    # -- psycopg surface ---------------------------------------------------------------
    def execute(
        self, query: Any, params: Any = None, *, prepare: Any = None, binary: Any = None
    ) -> DataApiCursor:
        return DataApiCursor(self).execute(query, params)

    def cursor(self, name: str | None = None, **_: Any) -> DataApiCursor:
        if name:
            import psycopg

            raise psycopg.NotSupportedError("server-side cursors are not available over the RDS Data API")
        return DataApiCursor(self)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[DataApiConnection]:
        """A transaction (BeginTransaction ... Commit/Rollback); nested ones are savepoints."""
        self._check_open()
        if self._tx is not None:
            self._savepoints += 1
            name = f"dbembed_sp{self._savepoints}"
            self._statement(f"SAVEPOINT {name}", [])
            try:
                yield self
            except BaseException:
                with contextlib.suppress(Exception):
                    self._statement(f"ROLLBACK TO SAVEPOINT {name}", [])
                raise
            else:
                self._statement(f"RELEASE SAVEPOINT {name}", [])
            finally:
                self._savepoints -= 1
            return
        self._tx = str(self._call("begin_transaction", database=self.target.database)["transactionId"])
        try:
            yield self
        except BaseException:
            tx, self._tx = self._tx, None
            with contextlib.suppress(Exception):
                self._call("rollback_transaction", transactionId=tx)
            raise
        tx, self._tx = self._tx, None
        self._call("commit_transaction", transactionId=tx)

    def commit(self) -> None:
        """Autocommit: nothing pending outside ``transaction()``."""

    def rollback(self) -> None:
        """Autocommit: nothing pending outside ``transaction()``."""

    def close(self) -> None:
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            import psycopg

            raise psycopg.OperationalError("the Data API connection is closed")

    def __enter__(self) -> DataApiConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_text(query: Any, conn: DataApiConnection) -> str | bytes:
    if isinstance(query, str | bytes):
        return query
    return query.as_string(conn)  # type: ignore[no-any-return]  # psycopg.sql.Composable


def _blob_len(value: Any) -> str:
    return "x" * (len(value) * 4 // 3 + 4)  # base64 size of a blob in the request
