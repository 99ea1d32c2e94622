"""The same app as an AWS Lambda handler (Mangum), driven by synthetic API Gateway HTTP API v2 events."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from dbembed.chat import open_store
from dbembed.store.api_keys import create_key


def _event(method: str, path: str, token: str, body: Any = None, query: str = "") -> dict[str, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
            "host": "abc123.execute-api.eu-west-1.amazonaws.com",
        },  # fmt: skip
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "test",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Nov/2026:05:00:00 +0000",
            "timeEpoch": 1795000000000,
        },  # fmt: skip
        "body": base64.b64encode(raw).decode() if raw else None,
        "isBase64Encoded": bool(raw),
    }


def test_lambda_handler_serves_the_api(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import dbembed.api.lambda_handler as lh

    monkeypatch.setenv("DBEMBED_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DBEMBED_DATA_DIR", str(settings.data_dir))
    monkeypatch.setattr(lh, "_handler", None)
    with open_store(settings) as store:
        _, token = create_key(store.conn, "t1", "carol")
    out = lh.handler(_event("POST", "/v1/chats/3/turns", token, {"user_input": "hello from lambda"}), None)
    assert out["statusCode"] == 201, out
    assert json.loads(out["body"])["turn_no"] == 0
    out = lh.handler(_event("GET", "/v1/chats/3/turns", token, query="limit=5"), None)
    assert out["statusCode"] == 200
    assert [t["user_input"] for t in json.loads(out["body"])["items"]] == ["hello from lambda"]
    out = lh.handler(_event("GET", "/v1/chats", "dbe_bad", query=""), None)
    assert out["statusCode"] == 401 and "invalid" in json.loads(out["body"])["error"]
    assert lh.handler(_event("GET", "/healthz", token), None)["statusCode"] == 200
    lh._handler.app.state.dbembed.close()  # release the pool before the test database is dropped
