"""Every error the API answers is JSON: ``{"error": "<one line>", "request_id": "<id>"}``.

* ``RequestId`` (pure ASGI middleware) gives every request an id (the caller's
  ``X-Request-ID`` when it is a short token, else a new one), returns it in the
  ``X-Request-ID`` response header, and is the last line of defence: an exception that
  nothing else handled becomes a logged JSON 500 naming the request id, never
  Starlette's plain-text ``Internal Server Error``.  A lost or saturated database
  (``psycopg.OperationalError``, ``psycopg_pool.PoolTimeout``) is a 503.
* ``install_handlers`` maps ``DbembedError`` subclasses by their ``http_status``
  (``dbembed.errors``), request validation to 422 and ``HTTPException`` to its status.  Every
  bad request parameter, whoever finds it (FastAPI or the service), is one shape: 422,
  ``query parameter k: ...`` / ``path parameter chat_id: ...`` / ``JSON field theme: ...`` or
  ``request body: ...``, never a Python internal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dbembed.errors import DatabaseUnavailable, DbembedError, InvalidInput, InvalidParameter, echo, renamed

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("dbembed.api")

REQUEST_ID_HEADER = "X-Request-ID"
_GOOD_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or "-")


def error_response(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": message, "request_id": request_id(request)}, status_code=status, headers=headers
    )


def _unexpected(exc: BaseException) -> tuple[int, str]:
    """Status and public message for an exception no handler knew (details go to the log)."""
    try:
        import psycopg
        from psycopg_pool import PoolTimeout

        if isinstance(exc, PoolTimeout | psycopg.OperationalError):
            return DatabaseUnavailable.http_status, "the database is unavailable or saturated; retry later"
    except ImportError:  # pragma: no cover - both ship with the api extra
        pass
    return 500, "internal error; the server log has the details under this request id"


class RequestId:
    """Request ids, and a JSON 500 (logged with the id) for any unhandled exception."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.lower().encode())
        rid = given.decode() if given and _GOOD_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            status, public = _unexpected(exc)
            log.error(
                "request %s %s failed with %s (request id %s)",
                scope.get("method"), scope.get("path"), type(exc).__name__, rid, exc_info=exc,
            )  # fmt: skip
            if started:  # the status line is out: nothing better than dropping the connection
                raise
            body = json.dumps({"error": public, "request_id": rid}).encode()
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"x-request-id", rid.encode())]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})


def bad_query_parameter(query_string: bytes) -> str | None:
    """Why the raw query string is not UTF-8 once percent-decoded, naming the parameter; else None.

    Starlette would decode such bytes with U+FFFD silently (a search for "caf\ufffd"); they are
    refused instead, like a body that is not UTF-8."""
    for part in query_string.split(b"&"):
        name, _, value = part.partition(b"=")
        for data in (name, value):
            try:
                unquote_to_bytes(data.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = echo(unquote_to_bytes(name).decode("utf-8", "replace"))
                return (
                    f"query parameter {shown} is not valid UTF-8 "
                    f"(byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
                )
    return None


class Utf8Query:
    """Answers 422 (JSON, naming the parameter) for a query string that is not UTF-8."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = bad_query_parameter(scope.get("query_string") or b"") if scope["type"] == "http" else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        rid = str(scope.get("state", {}).get("request_id") or "-")
        body = json.dumps({"error": problem, "request_id": rid}).encode()
        await send({"type": "http.response.start", "status": 422, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


_WHERE = {"body": "JSON field", "query": "query parameter", "path": "path parameter", "header": "header"}


def _validation_message(exc: RequestValidationError) -> str:
    """Each fault as ``JSON field turn_no: message (got VALUE)`` (or query/path parameter, header);
    values are cut to 80 characters."""
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":
            parts.append(f"request body is not valid JSON ({(err.get('ctx') or {}).get('error', 'invalid')})")
            continue
        loc = [str(p) for p in err.get("loc", ())]
        if loc == ["body"]:  # the body as a whole: absent, not JSON, or JSON but not an object
            parts.append(_whole_body(err))
            continue
        kind = _WHERE.get(loc[0], "") if loc else ""
        name = ".".join(loc[1:] if kind else loc)
        where = f"{kind} {name}".strip() if name else ("request body" if kind == "JSON field" else "request")
        # Header values are not repeated back: they may be credentials.
        got = "" if err.get("type") == "missing" or kind == "header" else f" (got {echo(err.get('input'))})"
        parts.append(f"{where}: {err.get('msg', 'invalid')}{got}")
    return "; ".join(parts)


# A service parameter whose HTTP name differs (the rest are spelled alike).
HTTP_NAMES = {"query": "q", "descending": "desc"}


def as_request_parameter(request: Request, exc: InvalidInput) -> InvalidInput:
    """A bad value of a parameter this request gave, said as FastAPI's own validation says it:
    ``InvalidParameter`` (422) ``query parameter k: must be between 1 and 100 (got 101)`` (or
    ``path parameter``; a route names JSON fields itself with ``named_as``).  Others unchanged."""
    if exc.field is None:
        return exc
    if exc.field.startswith("JSON field "):
        return renamed(exc, {exc.field: exc.field}, InvalidParameter)
    name = HTTP_NAMES.get(exc.field, exc.field)
    for where, given in (("query parameter", request.query_params), ("path parameter", request.path_params)):
        if name in given:
            return renamed(exc, {exc.field: f"{where} {name}"}, InvalidParameter)
    return exc


def _whole_body(err: Any) -> str:
    """What is wrong with the request body as a whole, in HTTP terms."""
    given = err.get("input")
    if err.get("type") == "missing" or given in (b"", None):
        return "request body: required (a JSON object)"
    if isinstance(given, bytes):  # FastAPI parses a body as JSON only when its Content-Type says so
        return "request body: must be a JSON object sent with Content-Type: application/json"
    kind = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return f"request body: must be a JSON object (got {kind.get(type(given), 'another JSON value')})"


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(DbembedError)
    async def _dbembed_error(request: Request, exc: DbembedError) -> JSONResponse:
        if isinstance(exc, InvalidInput):
            exc = as_request_parameter(request, exc)
        status = exc.http_status
        if status >= 500:
            log.error("request %s %s: %s (request id %s)", request.method, request.url.path, exc,
                      request_id(request))  # fmt: skip
        return error_response(request, status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        message = _body_error(exc.__cause__) if exc.__cause__ is not None else None
        # A body that could not be parsed is refused like any other invalid request (422).
        status = 422 if message else exc.status_code
        return error_response(request, status, message or str(detail), dict(exc.headers or {}))


def _body_error(cause: BaseException) -> str | None:
    """Name what was wrong with a body FastAPI could not parse ("error parsing the body")."""
    if isinstance(cause, RecursionError):
        return "request body: JSON nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return f"request body is not UTF-8 (byte 0x{cause.object[cause.start]:02x} at offset {cause.start})"
    if isinstance(cause, ValueError):
        text = str(cause).splitlines()[0] if str(cause) else ""
        if "integer string conversion" in text:  # Python's int_max_str_digits guard, said in JSON terms
            return f"request body: a JSON number has too many digits (at most {sys.get_int_max_str_digits():,})"
        return f"request body is not valid JSON ({text[:200] or 'invalid'})"
    return None
