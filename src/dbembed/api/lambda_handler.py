"""AWS Lambda entry point: the same FastAPI app behind API Gateway (HTTP API v2 or REST v1).

Handler: ``dbembed.api.lambda_handler.handler``.  Settings come from ``DBEMBED_*``
environment variables (e.g. ``DBEMBED_DB_SECRET_ID``, ``DBEMBED_MODEL=bedrock:...``).
The app and its connection pool are built on the first invocation and reused while
the execution environment stays warm.  See docs/api.md.
"""

from __future__ import annotations

from typing import Any

_handler: Any = None


def make_handler(settings: Any = None) -> Any:
    """A Mangum adapter around ``create_app(settings)`` (settings default: the environment)."""
    from mangum import Mangum

    from dbembed.api.app import create_app

    # lifespan off: Lambda freezes between invocations; the pool is opened lazily instead.
    return Mangum(create_app(settings), lifespan="off", api_gateway_base_path="/")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _handler
    if _handler is None:
        _handler = make_handler()
    return _handler(event, context)  # type: ignore[no-any-return]
