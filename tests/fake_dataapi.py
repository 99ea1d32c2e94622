"""A local stand-in for the RDS Data API (rest-json over HTTP) that runs on a real PostgreSQL.

boto3's ``rds-data`` client is pointed at it (``rds_data_endpoint_url``), so the tests
exercise the real request serialisation, SigV4 signing, botocore's error parsing
(``x-amzn-ErrorType``) and response parsing.  It behaves the way the Data API is
documented (and reported) to behave:

* ``POST /Execute``, ``/BatchExecute``, ``/BeginTransaction``, ``/CommitTransaction``,
  ``/RollbackTransaction`` with the service model's JSON shapes;
* ``:name`` parameters typed by their ``Field`` member, text bound as ``varchar``
  (so ``INSERT`` of a string into a jsonb column fails as on Aurora, which is why the store
  casts), ``typeHint`` DATE/TIME/TIMESTAMP/DECIMAL/UUID/JSON honoured, arrays refused;
* one statement per call ("Multi-statements aren't supported");
* results as ``records`` of ``Field`` unions with ``columnMetadata`` (timestamptz as
  UTC text, numeric as text, json as text);
* limits: 1 MiB per response, 64 KB per row, 4 MiB per request (``DatabaseErrorException``);
* transactions held on their own connection, expired after ``tx_timeout_s`` without a call;
* faults: ``resuming_calls`` -> the first N calls get ``DatabaseResumingException``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import psycopg

RESPONSE_LIMIT = 1024 * 1024
ROW_LIMIT = 64 * 1024
REQUEST_LIMIT = 4 * 1024 * 1024
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")
_HINT_TYPES = {"DATE": "date", "TIME": "time", "TIMESTAMP": "timestamp", "DECIMAL": "numeric",
               "UUID": "uuid", "JSON": "json"}  # fmt: skip


class DataApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _sql_with_params(sql: str, params: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """``:name`` -> typed psycopg placeholders, skipping quoted text and comments."""
    values: dict[str, Any] = {}
    types: dict[str, str | None] = {}
    for p in params:
        name, field, hint = p.get("name", ""), p.get("value", {}), p.get("typeHint")
        if "arrayValue" in field:
            raise DataApiError("BadRequestException", "Array parameters are not supported.")
        if field.get("isNull"):
            values[name], types[name] = None, None
        elif "stringValue" in field:
            values[name] = field["stringValue"]
            types[name] = _HINT_TYPES.get(hint or "", "varchar")
        elif "longValue" in field:
            values[name], types[name] = int(field["longValue"]), "int8"
        elif "doubleValue" in field:
            values[name], types[name] = float(field["doubleValue"]), "float8"
        elif "booleanValue" in field:
            values[name], types[name] = bool(field["booleanValue"]), "bool"
        elif "blobValue" in field:
            values[name], types[name] = base64.b64decode(field["blobValue"]), "bytea"
        else:
            raise DataApiError("BadRequestException", f"parameter {name} has no value")
    out, i = [], 0
    pattern = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\$\$.*?\$\$|%|" + _PARAM.pattern, re.S)
    for m in pattern.finditer(sql):
        out.append(sql[i : m.start()])
        i = m.end()
        tok = m.group(0)
        if tok == "%":
            out.append("%%")
        elif tok.startswith(":") and m.group(1) in values:
            name = m.group(1)
            t = types[name]
            out.append(f"(%({name})s::{t})" if t else f"%({name})s")
        else:
            out.append(tok)
    out.append(sql[i:])
    return "".join(out), values


def _field(value: Any) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return {"stringValue": value.strftime("%Y-%m-%d %H:%M:%S.%f")}
    if isinstance(value, date | dtime | Decimal):
        return {"stringValue": str(value)}
    if isinstance(value, bytes | memoryview):
        return {"blobValue": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list):
        items = [v for v in value if v is not None]
        if items and all(isinstance(v, bool) for v in items):
            return {"arrayValue": {"booleanValues": value}}
        if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return {"arrayValue": {"longValues": value}}
        if items and all(isinstance(v, float) for v in items):
            return {"arrayValue": {"doubleValues": value}}
        return {"arrayValue": {"stringValues": [None if v is None else str(v) for v in value]}}
    return {"stringValue": str(value)}


class FakeDataApi:
    """``with FakeDataApi(database_url) as api: ... api.url ...``"""

    def __init__(self, database_url: str, *, resuming_calls: int = 0, tx_timeout_s: float = 180.0) -> None:
        self.database_url = database_url
        self.resuming_calls = resuming_calls
        self.tx_timeout_s = tx_timeout_s
        self.calls: Counter[str] = Counter()
        self.statements: list[str] = []
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection] = []
        self._tx: dict[str, tuple[psycopg.Connection, threading.Lock, list[float]]] = {}
        self._typnames: dict[int, str] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeDataApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns = self._idle + [c for c, _, _ in self._tx.values()]
            self._idle, self._tx = [], {}
        for c in conns:
            c.close()

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.database_url, autocommit=True)
        conn.execute("SET TIME ZONE 'UTC'")
        for oid in ("json", "jsonb"):  # return JSON as text, like the Data API
            conn.adapters.register_loader(oid, psycopg.types.string.TextLoader)
        return conn

    def _checkout(self) -> psycopg.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _checkin(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            self._idle.append(conn)

    def _typname(self, conn: psycopg.Connection, oid: int) -> str:
        if oid not in self._typnames:
            row = conn.execute("SELECT typname FROM pg_type WHERE oid = %s", (oid,)).fetchone()
            self._typnames[oid] = str(row[0]) if row else "unknown"
        return self._typnames[oid]

    # -- operations --------------------------------------------------------------------
    def _resuming(self) -> None:
        with self._lock:
            if self.resuming_calls > 0:
                self.resuming_calls -= 1
                raise DataApiError(
                    "DatabaseResumingException",
                    "The Aurora DB instance db-FAKE is resuming after being auto-paused. "
                    "Please wait a few seconds and try again.",
                )

    def _transaction(self, tx_id: str) -> tuple[psycopg.Connection, threading.Lock, list[float]]:
        with self._lock:
            entry = self._tx.get(tx_id)
            if entry is not None and time.monotonic() - entry[2][0] > self.tx_timeout_s:
                del self._tx[tx_id]
                entry[0].close()
                entry = None
        if entry is None:
            raise DataApiError("TransactionNotFoundException", f"Transaction {tx_id} is not found", 404)
        entry[2][0] = time.monotonic()
        return entry

    def begin(self, body: dict[str, Any]) -> dict[str, Any]:
        self._resuming()
        conn = self._checkout()
        conn.execute("BEGIN")
        tx_id = base64.b64encode(secrets.token_bytes(96)).decode()
        with self._lock:
            self._tx[tx_id] = (conn, threading.Lock(), [time.monotonic()])
        return {"transactionId": tx_id}

    def end(self, body: dict[str, Any], commit: bool) -> dict[str, Any]:
        tx_id = body.get("transactionId", "")
        conn, _, _ = self._transaction(tx_id)
        with self._lock:
            self._tx.pop(tx_id, None)
        try:
            if commit:
                conn.commit()
            else:
                conn.rollback()
        except psycopg.Error as exc:
            conn.close()
            raise _db_error(exc) from exc
        self._checkin(conn)
        return {"transactionStatus": "Transaction Committed" if commit else "Rollback Complete"}

    def execute(self, body: dict[str, Any], batch: bool = False) -> dict[str, Any]:
        self._resuming()
        sql = body.get("sql", "")
        self.statements.append(sql)
        if _count_statements(sql) > 1:
            raise DataApiError("DatabaseErrorException", "Multistatements aren't supported.")
        tx_id = body.get("transactionId")
        if tx_id:
            conn, lock, _ = self._transaction(tx_id)
            if not lock.acquire(blocking=False):
                raise DataApiError("DatabaseErrorException", "Transaction is still running a query")
        else:
            conn, lock = self._checkout(), threading.Lock()
            lock.acquire()
        try:
            if batch:
                return self._batch(conn, sql, body.get("parameterSets") or [], tx_id)
            return self._one(conn, sql, body.get("parameters") or [], body, in_tx=bool(tx_id))
        finally:
            lock.release()
            if not tx_id:
                self._checkin(conn)

    def _one(
        self, conn: psycopg.Connection, sql: str, params: list[Any], body: dict[str, Any], in_tx: bool
    ) -> dict[str, Any]:
        query, values = _sql_with_params(sql, params)
        try:
            cur = conn.execute(query.encode(), values or None) if values else conn.execute(sql.encode())
            rows = cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            if in_tx:
                self._abort(body.get("transactionId", ""))
            raise _db_error(exc) from exc
        out: dict[str, Any] = {"numberOfRecordsUpdated": 0 if cur.description else max(cur.rowcount, 0)}
        if cur.description:
            records = [[_field(v) for v in r] for r in rows]
            for rec in records:
                if len(json.dumps(rec)) > ROW_LIMIT:
                    raise DataApiError("DatabaseErrorException", "Packet for query is too large.")
            out["records"] = records
            if body.get("includeResultMetadata"):
                out["columnMetadata"] = [
                    {"name": d.name, "label": d.name, "typeName": self._typname(conn, d.type_code), "type": 0}
                    for d in cur.description
                ]
        if len(json.dumps(out)) > RESPONSE_LIMIT:
            raise DataApiError(
                "DatabaseErrorException", "Database returned more than the allowed response size limit"
            )
        return out

    def _abort(self, tx_id: str) -> None:
        """An error ends the transaction on the Data API (a later call gets TransactionNotFound)."""
        with self._lock:
            entry = self._tx.pop(tx_id, None)
        if entry is not None:
            entry[0].rollback()
            self._checkin(entry[0])

    def _batch(
        self, conn: psycopg.Connection, sql: str, sets: list[Any], tx_id: str | None
    ) -> dict[str, Any]:
        results = []
        try:
            with _nullctx() if tx_id else conn.transaction():
                for params in sets:
                    query, values = _sql_with_params(sql, params)
                    conn.execute(query.encode(), values or None)
                    results.append({"generatedFields": []})
        except psycopg.Error as exc:
            if tx_id:
                self._abort(tx_id)
            raise _db_error(exc) from exc
        return {"updateResults": results}

    # -- HTTP --------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self
        routes = {
            "/Execute": lambda b: server.execute(b),
            "/BatchExecute": lambda b: server.execute(b, batch=True),
            "/BeginTransaction": server.begin,
            "/CommitTransaction": lambda b: server.end(b, True),
            "/RollbackTransaction": lambda b: server.end(b, False),
        }

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stall)

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any], etype: str | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "00000000-fake")
                if etype:
                    self.send_header("x-amzn-ErrorType", etype)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urlsplit(self.path).path
                with server._lock:
                    server.calls[path] += 1
                try:
                    if len(raw) > REQUEST_LIMIT:
                        raise DataApiError("BadRequestException", "Request size exceeds the 4 MiB limit")
                    if path not in routes:
                        raise DataApiError("NotFoundException", f"unknown operation {path}", 404)
                    body = json.loads(raw or b"{}")
                    if not str(body.get("resourceArn", "")).startswith("arn:aws:rds:"):
                        raise DataApiError("BadRequestException", "Invalid resourceArn")
                    if not str(body.get("secretArn", "")).startswith("arn:aws:secretsmanager:") and path in (
                        "/Execute", "/BatchExecute", "/BeginTransaction"
                    ):  # fmt: skip
                        raise DataApiError("BadRequestException", "Invalid secretArn")
                    self._send(200, routes[path](body))
                except DataApiError as exc:
                    self._send(exc.status, {"message": exc.message}, exc.code)

        return Handler


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _db_error(exc: psycopg.Error) -> DataApiError:
    diag = exc.diag
    text = f"ERROR: {diag.message_primary or str(exc).splitlines()[0]}"
    if diag.message_detail:
        text += f"\n  Detail: {diag.message_detail}"
    return DataApiError("DatabaseErrorException", f"{text}; SQLState: {exc.sqlstate or 'XX000'}")


def _count_statements(sql: str) -> int:
    body = re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\$(\w*)\$.*?\$\1\$", "", sql, flags=re.S)
    return len([s for s in body.split(";") if s.strip()])
