"""A local HTTP server speaking the Bedrock InvokeModel and OpenAI /v1/embeddings wire formats.

The real boto3 and httpx clients are pointed at it, so the tests exercise request
signing, serialisation, botocore's error parsing (``x-amzn-ErrorType``), timeouts and
connection handling exactly as in production.  Faults are injected on purpose:
throttling (429 / ThrottlingException / ServiceQuotaExceededException), 500s, slow
responses that outlive the client timeout, a request rate limit, and validation errors
for marked texts.  Embeddings are a deterministic function of (model, input type, text),
so a flaky run must produce exactly the vectors a healthy run does.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

BEDROCK_ERROR_NS = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


def fake_vector(text: str, dims: int, salt: str = "") -> np.ndarray:
    """The server's embedding of ``text``: seeded by a hash, so identical everywhere."""
    seed = int.from_bytes(hashlib.sha256(f"{salt}\x00{text}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dims).astype(np.float32)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def spoil(vec: list[float], text: str, faults: Faults) -> list[Any]:
    """``vec`` broken as ``faults.bad_vectors`` asks for ``text`` (unchanged otherwise)."""
    for marker, kind in faults.bad_vectors.items():
        if marker in text:
            if kind == "nan":
                return [float("nan")] + vec[1:]
            if kind == "null":
                return [None] * len(vec)
            if kind == "zeros":
                return [0.0] * len(vec)
            if kind == "short":
                return vec[:-1]
            if kind == "inf":
                return [1e300] + vec[1:]
    return vec


def fake_tokens(text: str) -> int:
    return max(1, len(text.split()))


@dataclass
class Faults:
    """What to inject; rates are per request, drawn from a seeded RNG."""

    throttle_rate: float = 0.0  # 429 ThrottlingException / OpenAI 429
    quota_rate: float = 0.0  # Bedrock ServiceQuotaExceededException (HTTP 400)
    error_rate: float = 0.0  # 500 InternalServerException
    timeout_rate: float = 0.0  # sleep `timeout_sleep_s` before answering
    timeout_sleep_s: float = 1.5
    slow_over_texts: int | None = None  # requests with more texts than this are slow (timeout)
    reject_marker: str | None = None  # a text containing it -> 400 ValidationException
    fail_all: int | None = None  # every request fails with this HTTP status
    max_in_flight: int | None = None  # more concurrent requests than this -> throttled
    rate_limit_rps: float | None = None  # token bucket; over it -> throttled
    retry_after_s: float | None = None  # OpenAI 429 Retry-After header value
    latency_s: float = 0.0  # service time of a healthy request
    # A text containing a key gets a broken vector: "nan" (JSON NaN), "null" (nulls), "zeros", "short"
    # (one dimension missing), "inf" (a huge number that overflows float32).
    bad_vectors: dict[str, str] = field(default_factory=dict)
    seed: int = 1234


@dataclass
class Stats:
    requests: int = 0
    ok: int = 0
    throttled: int = 0
    errors: int = 0
    slow: int = 0
    rejected: int = 0
    max_in_flight_seen: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    texts: Counter[str] = field(default_factory=Counter)  # texts answered successfully


class FakeEmbeddingServer:
    """``with FakeEmbeddingServer(Faults(...)) as srv:`` -> ``srv.url`` on 127.0.0.1, random port."""

    OPENAI_DIMS = {
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
        "text-embedding-ada-002": 1536,
    }

    def __init__(
        self, faults: Faults | None = None, api_key: str | None = None, unknown_dims: int = 64
    ) -> None:
        self.faults = faults or Faults()
        self.api_key = api_key
        self.unknown_dims = unknown_dims
        self.stats = Stats()
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._in_flight = 0
        self._bucket = float(self.faults.rate_limit_rps or 0)
        self._bucket_t = time.monotonic()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeEmbeddingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- fault decisions ---------------------------------------------------------------
    def _admit(self) -> str:
        """Decide this request's fate: ok, throttle, quota, error, slow."""
        f = self.faults
        with self._lock:
            self.stats.requests += 1
            self._in_flight += 1
            self.stats.max_in_flight_seen = max(self.stats.max_in_flight_seen, self._in_flight)
            if f.fail_all is not None:
                return "fail"
            if f.max_in_flight is not None and self._in_flight > f.max_in_flight:
                return "throttle"
            if f.rate_limit_rps is not None:
                now = time.monotonic()
                self._bucket = min(f.rate_limit_rps, self._bucket + (now - self._bucket_t) * f.rate_limit_rps)
                self._bucket_t = now
                if self._bucket < 1.0:
                    return "throttle"
                self._bucket -= 1.0
            r = self._rng.random()
            for kind, rate in (
                ("throttle", f.throttle_rate),
                ("quota", f.quota_rate),
                ("error", f.error_rate),
            ):
                if r < rate:
                    return kind
                r -= rate
            if r < f.timeout_rate:
                return "slow"
            return "ok"

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    # -- embeddings ----------------------------------------------------------------------
    def bedrock_embed(self, model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        """Return (status, payload, error type) for one InvokeModel body."""
        if "cohere.embed" in model:
            texts = body.get("texts")
            if not isinstance(texts, list) or not 0 < len(texts) <= 96:
                return (
                    400,
                    {"message": "Malformed input request: texts must have 1-96 items"},
                    "ValidationException",
                )
            if body.get("input_type") not in (
                "search_document",
                "search_query",
                "classification",
                "clustering",
            ):
                return 400, {"message": "Malformed input request: input_type"}, "ValidationException"
            for t in texts:
                if len(t) > 2048 or (self.faults.reject_marker and self.faults.reject_marker in t):
                    return (
                        400,
                        {"message": f"Malformed input request: text rejected ({t[:20]!r})"},
                        "ValidationException",
                    )
            embs = [
                spoil(fake_vector(t, 1024, f"{model}|{body['input_type']}").tolist(), t, self.faults)
                for t in texts
            ]
            self._count(texts)
            return (
                200,
                {"embeddings": embs, "id": "fake", "response_type": "embeddings_floats", "texts": texts},
                None,
            )
        if "titan-embed-text" in model:
            text = body.get("inputText")
            if not isinstance(text, str) or not text or len(text) > 50_000:
                return 400, {"message": "Malformed input request: inputText"}, "ValidationException"
            if self.faults.reject_marker and self.faults.reject_marker in text:
                return 400, {"message": "Malformed input request: text rejected"}, "ValidationException"
            if "v2" in model:
                dims = body.get("dimensions", 1024)
                if dims not in (256, 512, 1024) or set(body) - {
                    "inputText",
                    "dimensions",
                    "normalize",
                    "embeddingTypes",
                }:
                    return 400, {"message": "Malformed input request: dimensions"}, "ValidationException"
                vec = fake_vector(text, dims, model)
                if body.get("normalize", True):
                    vec = unit(vec)
            else:
                if set(body) != {"inputText"}:
                    return 400, {"message": "Malformed input request: extraneous key"}, "ValidationException"
                vec = fake_vector(text, 1536, model)
            self._count([text])
            values = spoil(vec.tolist(), text, self.faults)
            payload: dict[str, Any] = {"embedding": values, "inputTextTokenCount": fake_tokens(text)}
            if "v2" in model:
                payload["embeddingsByType"] = {"float": values}
            return 200, payload, None
        return (
            404,
            {"message": f"Could not resolve the foundation model from {model}"},
            "ResourceNotFoundException",
        )

    def openai_embed(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        model = body.get("model")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or len(inputs) > 2048:
            return 400, {"error": {"message": "'input' is invalid", "type": "invalid_request_error"}}
        for t in inputs:
            if self.faults.reject_marker and self.faults.reject_marker in t:
                return 400, {"error": {"message": "This input was rejected", "type": "invalid_request_error"}}
        dims = body.get("dimensions") or self.OPENAI_DIMS.get(str(model), self.unknown_dims)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": spoil(fake_vector(t, dims, f"openai|{model}").tolist(), t, self.faults),
            }
            for i, t in enumerate(inputs)
        ]
        data.reverse()  # servers may answer out of order; clients must use "index"
        tokens = sum(fake_tokens(t) for t in inputs)
        self._count(inputs)
        return 200, {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _count(self, texts: list[str]) -> None:
        with self._lock:
            self.stats.texts.update(texts)
            self.stats.ok += 1

    # -- HTTP ----------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("x-amzn-RequestId", "00000000-fake")
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) first

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = urlsplit(self.path).path
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with server._lock:
                    server.stats.bodies.append(body)
                    server.stats.headers.append(dict(self.headers.items()))
                m = re.fullmatch(r"/model/([^/]+)/invoke", path)
                if m:
                    self._bedrock(unquote(m.group(1)), body)
                elif path.endswith("/embeddings"):
                    self._openai(body)
                else:
                    self._send(404, {"message": "not found"})

            def _fault(self, kind: str, n_texts: int) -> bool:
                """Sleep or not; return True if the request must fail with `kind`."""
                f = server.faults
                slow = kind == "slow" or (f.slow_over_texts is not None and n_texts > f.slow_over_texts)
                with server._lock:
                    server.stats.batch_sizes.append(n_texts)
                if slow:
                    with server._lock:
                        server.stats.slow += 1
                    time.sleep(f.timeout_sleep_s)
                    return False
                if f.latency_s:
                    time.sleep(f.latency_s)
                if kind in ("throttle", "quota", "error", "fail"):
                    with server._lock:
                        if kind in ("throttle", "quota"):
                            server.stats.throttled += 1
                        else:
                            server.stats.errors += 1
                    return True
                return False

            def _bedrock(self, model: str, body: dict[str, Any]) -> None:
                kind = server._admit()
                try:
                    n = len(body.get("texts") or [1])
                    if self._fault(kind, n):
                        status, etype, msg = {
                            "throttle": (429, "ThrottlingException", "Too many requests, please wait."),
                            "quota": (400, "ServiceQuotaExceededException", "Quota exceeded for model."),
                            "error": (500, "InternalServerException", "Internal server error."),
                        }.get(
                            kind, (server.faults.fail_all or 500, _etype(server.faults.fail_all), "Failing.")
                        )
                        self._send(status, {"message": msg}, {"x-amzn-ErrorType": etype + BEDROCK_ERROR_NS})
                        return
                    status, payload, etype = server.bedrock_embed(model, body)
                    if etype == "ValidationException":
                        with server._lock:
                            server.stats.rejected += 1
                    headers = {"x-amzn-ErrorType": etype + BEDROCK_ERROR_NS} if etype else {}
                    if status == 200:
                        headers["X-Amzn-Bedrock-Input-Token-Count"] = str(
                            payload.get("inputTextTokenCount", 0)
                        )
                    self._send(status, payload, headers)
                finally:
                    server._done()

            def _openai(self, body: dict[str, Any]) -> None:
                kind = server._admit()
                try:
                    if (
                        server.api_key is not None
                        and self.headers.get("Authorization") != f"Bearer {server.api_key}"
                    ):
                        self._send(401, {"error": {"message": "Incorrect API key provided", "type": "auth"}})
                        return
                    n = len(body.get("input") or [1])
                    if self._fault(kind, n):
                        status = {"throttle": 429, "quota": 429, "error": 500}.get(
                            kind, server.faults.fail_all or 500
                        )
                        headers = {}
                        if status == 429 and server.faults.retry_after_s is not None:
                            headers["Retry-After"] = f"{server.faults.retry_after_s:g}"
                        self._send(status, {"error": {"message": f"fault {kind}", "type": "fault"}}, headers)
                        return
                    status, payload = server.openai_embed(body)
                    if status == 400:
                        with server._lock:
                            server.stats.rejected += 1
                    self._send(status, payload)
                finally:
                    server._done()

        return Handler


def _etype(status: int | None) -> str:
    return {
        403: "AccessDeniedException",
        404: "ResourceNotFoundException",
        429: "ThrottlingException",
        503: "ServiceUnavailableException",
    }.get(status or 500, "InternalServerException")
