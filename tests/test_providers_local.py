"""Local providers: the bundled MiniLM (session fixture ``minilm``) and the distilled static model."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from dbembed.config import load_settings
from dbembed.embed.local import _known_prefixes, cpu_threads
from dbembed.embed.registry import get_provider
from dbembed.embed.static import StaticModelProvider, _canonical_signs, static_model_dir

DOCS = [
    "Album | Title: Let There Be Rock | Artist: AC/DC",
    "Customer | Name: Leonie Köhler | City: Stuttgart | Country: Germany",
    "Invoice | Total: 13.86 | Billing city: Oslo",
    "Track | Name: Smoke on the Water | Genre: Rock | Composer: Deep Purple",
    "Employee | Title: Sales Support Agent | Hired: 2003",
    "Recipe | Dish: chocolate cake | Ingredients: cocoa, flour, sugar, eggs",
]


@pytest.fixture(scope="module")
def static_settings(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return load_settings(data_dir=tmp_path_factory.mktemp("static-data"))


@pytest.fixture(scope="module")
def static_model(static_settings):  # noqa: ANN001, ANN201
    os.environ["HF_HUB_OFFLINE"] = "1"  # distillation must not need the network
    return get_provider(static_settings, "local:minilm-static")


def test_static_model_is_distilled_offline_and_cached(static_model, static_settings) -> None:  # noqa: ANN001
    assert isinstance(static_model, StaticModelProvider)
    path = static_model_dir(static_settings)
    assert path == static_settings.resolved_data_dir() / "models" / "minilm-static"
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".minilm-static-")]  # no temp dir left
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    t0 = time.monotonic()
    again = StaticModelProvider(static_settings)
    assert time.monotonic() - t0 < 5  # loaded from the cache, not distilled again
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.embed_documents(DOCS), static_model.embed_documents(DOCS))


def test_static_model_shape_and_neighbours(static_model) -> None:  # noqa: ANN001
    assert static_model.model_id == "local:minilm-static"
    assert 200 <= static_model.dimensions <= 384 and static_model.max_tokens == 254
    vecs = static_model.embed_documents(DOCS)
    assert vecs.shape == (len(DOCS), static_model.dimensions) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    for query, want in [
        ("rock album by AC/DC", 0),
        ("German customer from Stuttgart", 1),
        ("baking a chocolate dessert", 5),
        ("Deep Purple song", 3),
    ]:
        assert int(np.argmax(vecs @ static_model.embed_query(query))) == want, query
    text = "Let There Be Rock"
    assert [text[a:b] for a, b in static_model.tokenizer().token_spans(text)] == [
        "Let",
        "There",
        "Be",
        "Rock",
    ]


def test_canonical_signs_remove_pca_sign_ambiguity() -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((50, 8)).astype(np.float16)
    flip = np.array([1, -1, 1, -1, -1, 1, 1, -1], dtype=np.float16)
    np.testing.assert_array_equal(_canonical_signs(emb), _canonical_signs(emb * flip))


def test_minilm_limits_device_and_prefix(minilm) -> None:  # noqa: ANN001
    assert minilm.model_id == "local:all-MiniLM-L6-v2" and minilm.dimensions == 384
    assert minilm.max_tokens == 254  # 256 positions minus [CLS] and [SEP]
    assert minilm.device in ("cpu", "cuda", "mps")
    assert 1 <= cpu_threads() <= (os.cpu_count() or 1)
    old = minilm.query_prefix
    try:
        minilm.query_prefix = "query: "
        np.testing.assert_allclose(
            minilm.embed_query("rock albums"), minilm.embed_documents(["query: rock albums"])[0], atol=1e-5
        )
    finally:
        minilm.query_prefix = old
    assert not np.allclose(
        minilm.embed_query("rock albums"), minilm.embed_documents(["query: rock albums"])[0]
    )


def test_prefixes_from_model_settings_and_names(tmp_path: Path) -> None:
    d = tmp_path / "my-model"
    d.mkdir()
    (d / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: ", "document": "passage: "}})
    )
    assert _known_prefixes(d) == ("query: ", "passage: ")
    assert _known_prefixes(tmp_path / "intfloat" / "multilingual-e5-small") == ("query: ", "passage: ")
    snapshot = tmp_path / "models--intfloat--multilingual-e5-base" / "snapshots" / "0a1b2c"
    assert _known_prefixes(snapshot) == ("query: ", "passage: ")
    assert _known_prefixes(tmp_path / "nomic-embed-text-v1.5")[1] == "search_document: "
    assert _known_prefixes(tmp_path / "all-MiniLM-L12-v2") == ("", "")
    assert _known_prefixes(tmp_path / "gte5-thing") == ("", "")
