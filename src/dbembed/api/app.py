"""The FastAPI application: ``create_app(settings)``, used by ``dbembed serve`` and Lambda.

Cross-cutting concerns live here: the request size limit (413 before the body is
read), per-route metrics, request ids, and (``dbembed.api.errors``) one mapping from
errors to HTTP statuses with a JSON ``{"error": "...", "request_id": "..."}`` body, so
every surface reports bad input the same way and nothing answers plain text.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dbembed.api import routes_chat, routes_files
from dbembed.api.errors import RequestId, Utf8Query, install_handlers
from dbembed.api.state import AppState
from dbembed.config import Settings, load_settings
from dbembed.errors import RequestTooLarge
from dbembed.service import Dbembed


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
        if length is not None and not (length.isdigit() and len(length) < 20):
            await _reply(send, scope, 400, "invalid Content-Length header")
            return
        if length is not None and int(length) > self.max_bytes:
            await _too_large(send, scope, self.max_bytes)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise RequestTooLarge(f"request body too large (at most {self.max_bytes} bytes)")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge:
            if not started:
                await _too_large(send, scope, self.max_bytes)


async def _too_large(send: Send, scope: Scope, max_bytes: int) -> None:
    await _reply(send, scope, RequestTooLarge.http_status, f"request body too large (at most {max_bytes} bytes)")


async def _reply(send: Send, scope: Scope, status: int, message: str) -> None:
    rid = scope.get("state", {}).get("request_id", "-")
    body = json.dumps({"error": message, "request_id": rid}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None, *, service: Dbembed | None = None) -> FastAPI:
    """Build the app over ``service`` (default: a pooled ``Dbembed(settings)``; settings default: the
    environment and ``dbembed.toml``); nothing is connected or loaded until a request needs it."""
    if service is not None:
        settings = service.settings
    settings = settings or load_settings()
    st = AppState(settings, service)

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

    install_handlers(app)

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
            st.service.ping()
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
    app.add_middleware(Utf8Query)
    app.add_middleware(RequestId)  # outermost: every answer, 413s included, carries the id
    return app
