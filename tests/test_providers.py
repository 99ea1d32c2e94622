"""Remote providers (Bedrock, OpenAI-compatible) against a local wire-format server.

The real boto3 / httpx clients talk HTTP to ``tests/fake_servers.py``; nothing is
monkeypatched except environment variables (fake AWS credentials, the API key).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dbembed.config import load_settings
from dbembed.embed.bedrock import BedrockProvider
from dbembed.embed.openai import OpenAIProvider
from dbembed.embed.registry import get_provider
from dbembed.embed.tokenize import EstimatingTokenizer, FileTokenizer
from dbembed.errors import ConfigError, EmbeddingError, InputRejected
from tests.fake_servers import FakeEmbeddingServer, Faults, fake_vector, unit

SECRET = "fakeSecretKey/DoNotLog+0123456789abcdefghij"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V1 = "amazon.titan-embed-text-v1"
COHERE = "cohere.embed-multilingual-v3"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials through the standard chain; no real profile or metadata service."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def make_settings(tmp_path: Path, url: str, **over: Any):  # noqa: ANN201
    values: dict[str, Any] = dict(
        data_dir=tmp_path / "data",
        aws_region="us-east-1",
        bedrock_endpoint_url=url,
        openai_base_url=url + "/v1",
        concurrency=4,
        max_retries=8,
        request_timeout_s=5.0,  # generous: the machine may be busy; timeout tests lower it
        retry_backoff_s=0.01,
        retry_backoff_max_s=0.05,
    )
    values.update(over)
    return load_settings(**values)


def corpus(n: int) -> list[str]:
    words = ["album", "rock", "jazz", "track", "artist", "invoice", "customer", "東京", "音楽", "café"]
    return [
        f"row {i}: " + " ".join(words[(i * 7 + j) % len(words)] for j in range(i % 13 + 1)) for i in range(n)
    ]


def expected(texts: list[str], dims: int, salt: str) -> np.ndarray:
    return np.stack([unit(fake_vector(t, dims, salt)) for t in texts])


# -- Bedrock ---------------------------------------------------------------------------
def test_titan_v2_wire_format_dimensions_usage_and_cost(tmp_path: Path) -> None:
    texts = corpus(20)
    with FakeEmbeddingServer() as srv:
        p = BedrockProvider(TITAN_V2, make_settings(tmp_path, srv.url, dimensions=512))
        vecs = p.embed_documents(texts)
        q = p.embed_query("find rock albums")
    assert (p.model_id, p.dimensions, p.max_tokens, p.max_chars, p.batch_size) == (
        f"bedrock:{TITAN_V2}",
        512,
        8192,
        50_000,
        1,
    )
    np.testing.assert_allclose(vecs, expected(texts, 512, TITAN_V2), atol=1e-6)
    np.testing.assert_allclose(q, unit(fake_vector("find rock albums", 512, TITAN_V2)), atol=1e-6)
    assert srv.stats.bodies[0] == {
        "inputText": srv.stats.bodies[0]["inputText"],
        "dimensions": 512,
        "normalize": True,
    }
    tokens = sum(len(t.split()) for t in texts) + 3
    assert p.usage.texts == 21 and p.usage.requests == 21 == srv.stats.requests and p.usage.tokens == tokens
    assert p.usage.cost_usd == pytest.approx(tokens / 1000 * 0.00002)
    assert p.estimate_cost(1_000_000) == pytest.approx(0.02)
    assert "AWS4-HMAC-SHA256 Credential=AKIAFAKEFAKEFAKE1234/" in srv.stats.headers[0]["Authorization"]


def test_titan_v1_sends_only_input_text(tmp_path: Path) -> None:
    with FakeEmbeddingServer() as srv:
        p = get_provider(make_settings(tmp_path, srv.url), f"bedrock:{TITAN_V1}")
        vecs = p.embed_documents(["hello world", "second text"])
    assert p.dimensions == 1536 and p.price_per_1k_tokens == 0.0001
    assert all(set(b) == {"inputText"} for b in srv.stats.bodies)
    np.testing.assert_allclose(vecs, expected(["hello world", "second text"], 1536, TITAN_V1), atol=1e-6)


def test_cohere_batches_of_96_and_input_types(tmp_path: Path) -> None:
    texts = corpus(200)
    with FakeEmbeddingServer() as srv:
        p = BedrockProvider(COHERE, make_settings(tmp_path, srv.url))
        vecs = p.embed_documents(texts)
        q = p.embed_query("音楽 の アルバム")
    assert (p.dimensions, p.max_tokens, p.max_chars, p.batch_size) == (1024, 512, 2048, 96)
    assert sorted(srv.stats.batch_sizes) == [1, 8, 96, 96]
    np.testing.assert_allclose(vecs, expected(texts, 1024, f"{COHERE}|search_document"), atol=1e-6)
    np.testing.assert_allclose(
        q, unit(fake_vector("音楽 の アルバム", 1024, f"{COHERE}|search_query")), atol=1e-6
    )
    assert all(b["truncate"] == "END" for b in srv.stats.bodies)
    # Cohere returns no token count: the estimate is used (and is conservative).
    assert p.usage.tokens == sum(p.count_tokens(t) for t in [*texts, "音楽 の アルバム"])


def test_flaky_bedrock_gives_the_same_vectors_as_a_healthy_one(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)  # botocore's debug logs include request headers
    texts = corpus(80)
    faults = Faults(
        throttle_rate=0.15, quota_rate=0.05, error_rate=0.1, timeout_rate=0.04, timeout_sleep_s=2.5
    )
    results = {}
    for name in ("healthy", "flaky"):
        with FakeEmbeddingServer(faults if name == "flaky" else None) as srv:
            for model in (TITAN_V2, COHERE):
                p = BedrockProvider(
                    model,
                    make_settings(tmp_path, srv.url, batch_size=16, concurrency=6, request_timeout_s=1.0),
                )
                results[name, model] = (p.embed_documents(texts), p.usage.as_dict())
                p.close()
            stats = srv.stats
    for model in (TITAN_V2, COHERE):
        good, good_usage = results["healthy", model]
        bad, bad_usage = results["flaky", model]
        np.testing.assert_array_equal(good, bad)
        assert bad_usage["texts"] == good_usage["texts"] == len(texts)  # each text accounted exactly once
        assert bad_usage["retries"] > 0 and bad_usage["requests"] > good_usage["requests"]
    assert stats.throttled > 0 and stats.errors > 0 and stats.slow > 0
    assert sum(results["flaky", m][1]["throttles"] for m in (TITAN_V2, COHERE)) == stats.throttled
    assert SECRET not in caplog.text
    assert all(SECRET not in str(h) for h in stats.headers)


def test_rejected_text_fails_alone_after_bisection(tmp_path: Path) -> None:
    texts = corpus(90)
    texts[37] = texts[37] + " <<BAD>>"
    with FakeEmbeddingServer(Faults(reject_marker="<<BAD>>")) as srv:
        p = BedrockProvider(COHERE, make_settings(tmp_path, srv.url))
        vecs, failures = p.embed_documents_partial(texts)
        with pytest.raises(InputRejected, match="text rejected"):
            p.embed_documents(texts[30:40])
    assert list(failures) == [37] and failures[37].startswith("ValidationException: Malformed input request")
    good = [i for i in range(90) if i != 37]
    np.testing.assert_allclose(
        vecs[good], expected([texts[i] for i in good], 1024, f"{COHERE}|search_document"), atol=1e-6
    )
    assert not vecs[37].any()
    assert p.usage.failures >= 1


def test_timeouts_halve_the_batch(tmp_path: Path) -> None:
    texts = corpus(96)
    with FakeEmbeddingServer(Faults(slow_over_texts=24, timeout_sleep_s=2.5)) as srv:
        p = BedrockProvider(COHERE, make_settings(tmp_path, srv.url, request_timeout_s=1.0))
        vecs = p.embed_documents(texts)
        sizes = list(srv.stats.batch_sizes)
        p.embed_documents(texts)  # later batches start at the smaller size
        later = srv.stats.batch_sizes[len(sizes) :]
    np.testing.assert_allclose(vecs, expected(texts, 1024, f"{COHERE}|search_document"), atol=1e-6)
    assert sizes[0] == 96 and {48, 24} <= set(sizes)
    assert max(later) <= 24 and p.usage.retries >= 3


def test_persistent_outage_raises_embedding_error_in_bounded_time(tmp_path: Path) -> None:
    with FakeEmbeddingServer(Faults(fail_all=503)) as srv:
        p = BedrockProvider(COHERE, make_settings(tmp_path, srv.url, max_retries=3))
        t0 = time.monotonic()
        with pytest.raises(EmbeddingError, match="gave up after 4 attempts.*ServiceUnavailable"):
            p.embed_documents(corpus(300))
        assert time.monotonic() - t0 < 5
    assert p.usage.failures == 300


def test_access_denied_is_fatal_without_retries(tmp_path: Path) -> None:
    with FakeEmbeddingServer(Faults(fail_all=403)) as srv:
        p = BedrockProvider(TITAN_V2, make_settings(tmp_path, srv.url, concurrency=1))
        with pytest.raises(EmbeddingError, match="AccessDenied"):
            p.embed_documents(["x"])
    assert srv.stats.requests == 1 and p.usage.retries == 0


def test_throttling_lowers_the_in_flight_limit(tmp_path: Path) -> None:
    texts = corpus(80)
    with FakeEmbeddingServer(Faults(max_in_flight=2, latency_s=0.02)) as srv:
        p = BedrockProvider(TITAN_V2, make_settings(tmp_path, srv.url, concurrency=8))
        vecs = p.embed_documents(texts)
    np.testing.assert_allclose(vecs, expected(texts, 1024, TITAN_V2), atol=1e-6)
    assert p.usage.throttles > 0 and p.usage.throttles == srv.stats.throttled
    assert p._limiter.lowest <= 4  # halved at least once from 8


def test_bedrock_configuration_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make_settings(tmp_path, "http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="256, 512, 1024"):
        BedrockProvider(TITAN_V2, make_settings(tmp_path, "http://127.0.0.1:9", dimensions=300))
    with pytest.raises(ConfigError, match="1024 dimensions"):
        BedrockProvider(COHERE, make_settings(tmp_path, "http://127.0.0.1:9", dimensions=512))
    with pytest.raises(ConfigError, match="unsupported Bedrock"):
        get_provider(s, "bedrock:meta.llama3")
    with pytest.raises(ConfigError, match="region"):
        BedrockProvider(TITAN_V2, make_settings(tmp_path, "http://127.0.0.1:9", aws_region=None))


# -- OpenAI-compatible -------------------------------------------------------------------
def test_openai_batching_usage_and_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_OPENAI_KEY", "sk-test-key")
    texts = corpus(600)
    with FakeEmbeddingServer(api_key="sk-test-key") as srv:
        s = make_settings(tmp_path, srv.url, openai_api_key_env="MY_OPENAI_KEY", dimensions=256)
        p = get_provider(s, "openai:text-embedding-3-small")
        vecs = p.embed_documents(texts)
    assert isinstance(p, OpenAIProvider) and p.dimensions == 256 and p.price_per_1k_tokens == 0.00002
    assert sorted(srv.stats.batch_sizes) == [88, 256, 256]
    assert all(b["dimensions"] == 256 and b["model"] == "text-embedding-3-small" for b in srv.stats.bodies)
    np.testing.assert_allclose(vecs, expected(texts, 256, "openai|text-embedding-3-small"), atol=1e-6)
    tokens = sum(len(t.split()) for t in texts)
    assert p.usage.tokens == tokens and p.usage.cost_usd == pytest.approx(tokens / 1000 * 0.00002)


def test_openai_wrong_key_is_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with FakeEmbeddingServer(api_key="sk-right") as srv:
        p = OpenAIProvider("text-embedding-3-large", make_settings(tmp_path, srv.url))
        with pytest.raises(EmbeddingError, match="401"):
            p.embed_documents(["x"])
    assert p.dimensions == 3072 and srv.stats.requests == 1


def test_openai_respects_retry_after(tmp_path: Path) -> None:
    with FakeEmbeddingServer(Faults(throttle_rate=1.0, retry_after_s=1)) as srv:
        p = OpenAIProvider("text-embedding-ada-002", make_settings(tmp_path, srv.url, concurrency=1))
        t0 = time.monotonic()

        def heal() -> None:
            time.sleep(0.2)
            srv.faults.throttle_rate = 0.0

        threading.Thread(target=heal).start()
        vec = p.embed_query("hello")
        elapsed = time.monotonic() - t0
    np.testing.assert_allclose(
        vec, unit(fake_vector("hello", 1536, "openai|text-embedding-ada-002")), atol=1e-6
    )
    assert elapsed >= 0.95  # backoff alone is <= 0.05 s: the wait came from Retry-After
    assert p.usage.throttles == 1 and p.usage.retries == 1


def test_openai_unknown_model_probes_dimensions_and_flaky_equals_healthy(tmp_path: Path) -> None:
    texts = corpus(400)
    out = []
    for faults in (None, Faults(throttle_rate=0.2, error_rate=0.1, timeout_rate=0.05, timeout_sleep_s=2.5)):
        with FakeEmbeddingServer(faults, unknown_dims=48) as srv:
            p = OpenAIProvider(
                "bge-m3", make_settings(tmp_path, srv.url, batch_size=32, request_timeout_s=1.0)
            )
            assert p.dimensions == 48 and p.price_per_1k_tokens is None and p.estimate_cost(1000) is None
            out.append(p.embed_documents(texts))
            assert p.usage.texts == len(texts)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_allclose(out[0], expected(texts, 48, "openai|bge-m3"), atol=1e-6)


def test_openai_rejected_input_reported_alone(tmp_path: Path) -> None:
    texts = corpus(50)
    texts[3] += " <<BAD>>"
    texts[41] += " <<BAD>>"
    with FakeEmbeddingServer(Faults(reject_marker="<<BAD>>")) as srv:
        p = OpenAIProvider("text-embedding-3-small", make_settings(tmp_path, srv.url))
        vecs, failures = p.embed_documents_partial(texts)
    assert sorted(failures) == [3, 41] and all("HTTP 400" in r for r in failures.values())
    good = [i for i in range(50) if i not in failures]
    np.testing.assert_allclose(
        vecs[good], expected([texts[i] for i in good], 1536, "openai|text-embedding-3-small"), atol=1e-6
    )


def test_openai_unreachable_unknown_model_needs_dimensions(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="--dimensions"):
        OpenAIProvider("mystery", make_settings(tmp_path, "http://127.0.0.1:9", max_retries=0))
    p = OpenAIProvider("mystery", make_settings(tmp_path, "http://127.0.0.1:9", dimensions=99))
    assert p.dimensions == 99


# -- tokenizer estimate ----------------------------------------------------------------
def test_estimating_tokenizer_is_conservative_and_has_real_spans() -> None:
    from dbembed.embed.local import bundled_model_path

    real = FileTokenizer(bundled_model_path() / "tokenizer.json")
    est = EstimatingTokenizer()
    samples = [
        *corpus(50),
        "Invoice 2024-00017 | Customer: Leonie Köhler | Total: 13.86 EUR",
        "The quick brown fox jumps over the lazy dog; unbelievably, internationalization works.",
        "東京都渋谷区の音楽ストアで購入したアルバム",
    ]
    for text in samples:
        spans = est.token_spans(text)
        assert est.count(text) == len(spans) >= real.count(text)
        assert all(0 <= a < b <= len(text) for a, b in spans) and spans == sorted(spans)
        assert "".join(text[a:b] for a, b in spans) == "".join(text.split())
