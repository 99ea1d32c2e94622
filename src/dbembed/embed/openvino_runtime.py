"""Torch-free OpenVINO provider for exported sentence-transformers models.

Runs an OpenVINO IR (exported once by ``dbembed.embed.backends.ensure_export``) with the
OpenVINO runtime, the model's own ``tokenizer.json`` through ``tokenizers`` and the
pooling of the model's ``1_Pooling/config.json`` in numpy.  Importing it costs a fraction
of a second, where torch + sentence-transformers cost about 7 s per process, so a run with
little to embed is not dominated by imports.  Vectors match sentence-transformers'
``backend="openvino"`` (same IR, same tokenization, same pooling).

Thread safety: ``_embed_batch`` holds a lock around the compiled model's infer request;
the tokenizer for chunking is a separate ``tokenizers.Tokenizer`` instance.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dbembed.embed.backends import cache_root
from dbembed.embed.base import EmbeddingProvider, InputType, Tokenizer
from dbembed.embed.local import cpu_threads
from dbembed.embed.tokenize import FileTokenizer
from dbembed.errors import ConfigError

POOLING_MODES = ("mean", "cls", "max")


def pooling_mode(model_dir: Path) -> str | None:
    """The pooling a model's sentence-transformers config asks for, if this module supports it."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
    except (OSError, ValueError):
        return None
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k not in ("Normalize",) for k in kinds[2:]):
        return None
    pooling_dir = next(m.get("path", "") for m in modules if m.get("type", "").endswith("Pooling"))
    try:
        cfg = json.loads((model_dir / pooling_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    modes = [
        m
        for m in POOLING_MODES
        if cfg.get(f"pooling_mode_{m}_tokens" if m != "cls" else "pooling_mode_cls_token")
    ]
    others = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
    if len(modes) != 1 or len(others) != 1:
        return None
    return modes[0]


def supported(model_dir: Path) -> bool:
    """True when this runtime can run ``model_dir`` (tokenizer.json + a plain pooling stack)."""
    return (model_dir / "tokenizer.json").is_file() and pooling_mode(model_dir) is not None


class OpenVINOProvider(EmbeddingProvider):
    """An exported model on the OpenVINO CPU runtime, in fp32 or bf16 inference precision."""

    def __init__(
        self,
        export_dir: Path,
        *,
        model_id: str,
        precision: str = "fp32",
        batch_size: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        threads: int | None = None,
    ) -> None:
        super().__init__()
        import openvino as ov
        from tokenizers import Tokenizer as HFTok

        mode = pooling_mode(export_dir)
        if mode is None:
            raise ConfigError(f"the OpenVINO runtime cannot pool the model in {export_dir}")
        self.pooling = mode
        self.model_id = model_id
        self.runtime = f"openvino {precision}"
        xml = export_dir / "openvino" / "openvino_model.xml"
        if not xml.is_file():
            raise ConfigError(f"no OpenVINO model at {xml}")
        max_seq = 256
        with contextlib.suppress(OSError, ValueError, KeyError):
            max_seq = int(
                json.loads((export_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
            )
        tok: Any = HFTok.from_file(str(export_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=max_seq)
        pad_id = tok.token_to_id("[PAD]") or 0
        tok.enable_padding(pad_id=pad_id, pad_token=tok.id_to_token(pad_id) or "[PAD]")
        self._tok = tok
        specials = len(tok.encode("", add_special_tokens=True).ids)
        self.max_tokens = max_seq - specials
        self._chunk_tokenizer = FileTokenizer(export_dir / "tokenizer.json")
        self._chunk_tokenizer.chars_bound_tokens = _is_wordpiece(export_dir)  # type: ignore[attr-defined]
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads or not os.environ.get("OMP_NUM_THREADS"):
            config["INFERENCE_NUM_THREADS"] = threads or cpu_threads()
        else:
            config["INFERENCE_NUM_THREADS"] = int(os.environ["OMP_NUM_THREADS"])
        core = ov.Core()
        try:
            # OpenVINO's model cache: the compiled blob loads in about half the compile time.
            compiled = core.compile_model(
                str(xml), "CPU", {**config, "CACHE_DIR": str(cache_root() / "openvino-compiled")}
            )
        except Exception:  # noqa: BLE001 - an unusable cache only costs the compile
            compiled = core.compile_model(str(xml), "CPU", config)
        self._inputs = {i.get_any_name() for i in compiled.inputs}
        outs = [o for o in compiled.outputs if "last_hidden_state" in o.get_names()] or list(compiled.outputs)
        self._output = outs[0]
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()
        self.dimensions = int(self._output.get_partial_shape()[2].get_length())
        self.query_prefix, self.document_prefix = query_prefix, document_prefix
        self.batch_size = batch_size or 64
        if document_prefix:
            self.max_tokens -= self._chunk_tokenizer.count(document_prefix)

    def tokenizer(self) -> Tokenizer:
        return self._chunk_tokenizer

    def _embed_batch(self, texts: list[str], input_type: InputType) -> np.ndarray:
        self.usage.add(texts=len(texts), chars=sum(len(t) for t in texts), requests=1)
        prefix = self.query_prefix if input_type == "query" else self.document_prefix
        if prefix:
            texts = [prefix + t for t in texts]
        encs = self._tok.encode_batch(texts)
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.asarray([e.type_ids for e in encs], dtype=np.int64)
        with self._lock:
            out = self._request.infer(feeds)
            hidden = np.array(
                out[self._output], dtype=np.float32
            )  # (batch, tokens, dims), copied before unlock
        return _pool(hidden, mask, self.pooling)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "runtime": self.runtime}


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls":
        return hidden[:, 0]
    m = mask[:, :, None].astype(np.float32)
    if mode == "max":
        return np.where(m > 0, hidden, -1e9).max(axis=1)
    return (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)


def _is_wordpiece(model_dir: Path) -> bool:
    try:
        return json.loads((model_dir / "tokenizer.json").read_text())["model"]["type"] == "WordPiece"
    except (OSError, ValueError, KeyError, TypeError):
        return False
