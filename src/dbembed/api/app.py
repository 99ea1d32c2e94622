"""The FastAPI application: ``create_app(settings)``, used by ``dbembed serve`` and Lambda.

Cross-cutting concerns live here: the request size limit (413 before the body is
read), per-route metrics, and one mapping from dbembed errors to HTTP statuses with a
plain ``{"error": "..."}`` body, so every surface reports bad input the same way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dbembed.api import routes_chat, routes_files
from dbembed.api.state import AppState
from dbembed.chat import AccessDenied, Conflict, InvalidInput
from dbembed.errors import (
    CollectionMismatch,
    ConfigError,
    DatabaseUnavailable,
    DbembedError,
    EmbeddingError,
    NotFound,
    UsageError,
)

if TYPE_CHECKING:
    from dbembed.config import Settings

STATUS = [  # first match wins: subclasses before their bases
    (AccessDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (CollectionMismatch, 409),
    (InvalidInput, 400),
    (ConfigError, 500),
    (UsageError, 400),
    (DatabaseUnavailable, 503),
    (EmbeddingError, 502),
]


class BodySizeLimit:
    """Reject bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _too_large(send, self.max_bytes)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.max_bytes)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, max_bytes: int) -> None:
    body = b'{"error":"request body too large (at most %d bytes)"}' % max_bytes
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing is connected or loaded until the first request needs it."""
    from dbembed.config import load_settings

    settings = settings or load_settings()
    st = AppState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        st.close()

    app = FastAPI(
        title="dbembed",
        version="0.1.0",
        description="Semantic search over SQLite files, chat history and per-user chat memory. See docs/api.md.",
        lifespan=lifespan,
    )
    app.state.dbembed = st
    app.include_router(routes_files.router)
    app.include_router(routes_chat.router)

    @app.exception_handler(DbembedError)
    async def _dbembed_error(request: Request, exc: DbembedError) -> JSONResponse:
        status = next((code for cls, code in STATUS if isinstance(exc, cls)), 500)
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", None) or "unmatched"
            st.metrics.observe(request.method, route, status, time.perf_counter() - started)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        """200 when the database answers; 503 otherwise (for load balancers and Lambda checks)."""
        try:
            with st.connection() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            return JSONResponse({"status": "unavailable", "error": str(exc).splitlines()[0]}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus text format."""
        return PlainTextResponse(st.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def index() -> HTMLResponse:
        page = (resources.files("dbembed.api") / "static" / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'self'; "
                                           "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'"})  # fmt: skip

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)  # type: ignore[arg-type]
    return app
