"""Tokenizers for sizing chunks when the model's own tokenizer is not at hand.

Remote models (Bedrock, OpenAI-compatible servers) do not ship a tokenizer we can
run offline, yet the chunker must never produce a chunk the service rejects or
silently truncates.  ``EstimatingTokenizer`` therefore *over*-counts on purpose:
ASCII words cost one token per 3 characters (real BPE/SentencePiece vocabularies
average about 4 for English), digits one per 2, every CJK/kana/hangul character
one token, other non-ASCII letters one per 2 characters, and each punctuation or
symbol character one token.  Its spans are real character offsets, so the chunker
can cut on them exactly as it does with a Hugging Face tokenizer.

``FileTokenizer`` adapts a ``tokenizers`` ``tokenizer.json`` (fast, no torch
import) for local models that only need token counts and spans.

Thread safety: both classes are immutable after construction (``FileTokenizer`` sets
truncation/padding once, in ``__init__``, and afterwards only calls ``encode``, which takes
the Rust tokenizer by shared reference), so one instance may be used from several threads.
What must never cross threads is a Hugging Face ``PreTrainedTokenizerFast`` that
``SentenceTransformer.encode`` uses: transformers 5.x changes its truncation/padding state
on every call, and a concurrent call then raises ``RuntimeError: Already borrowed``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# CJK ideographs, kana, hangul, fullwidth forms: roughly one token per character.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_PIECES = re.compile(
    rf"(?P<ascii>[A-Za-z]+)|(?P<digits>[0-9]+)|(?P<cjk>[{_CJK}])|(?P<word>[^\W\d_{_CJK}A-Za-z]+)|(?P<other>\S)"
)


class EstimatingTokenizer:
    """A conservative, dependency-free token estimate (see the module docstring for the rates)."""

    def __init__(
        self, ascii_chars_per_token: int = 3, digits_per_token: int = 2, word_chars_per_token: int = 2
    ):
        self._step = {
            "ascii": ascii_chars_per_token,
            "digits": digits_per_token,
            "word": word_chars_per_token,
        }

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for m in _PIECES.finditer(text):
            start, end = m.span()
            step = self._step.get(m.lastgroup or "other", 1)  # cjk/other match one character
            spans.extend((i, min(i + step, end)) for i in range(start, end, step))
        return spans

    def count(self, text: str) -> int:
        return len(self.token_spans(text))


class FileTokenizer:
    """``tokenizers.Tokenizer`` from a ``tokenizer.json``, without special tokens or truncation."""

    def __init__(self, path: str | Path | None = None, *, json_text: str | None = None) -> None:
        from tokenizers import Tokenizer

        if json_text is not None:
            tok: Any = Tokenizer.from_str(json_text)
        elif path is not None:
            tok = Tokenizer.from_file(str(path))
        else:
            raise ValueError("FileTokenizer needs a tokenizer.json path or its JSON text")
        tok.no_truncation()
        tok.no_padding()
        self._tok = tok
        # WordPiece tokens each cover >= 1 character, so the chunker may skip tokenizing
        # texts no longer than max_tokens characters (see dbembed.text.chunk).
        self.chars_bound_tokens: bool = type(tok.model).__name__ == "WordPiece"

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in self._tok.encode(text, add_special_tokens=False).offsets]

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def num_special_tokens(self) -> int:
        """Special tokens the tokenizer's post-processor adds to one input ([CLS] and [SEP]: 2)."""
        post = self._tok.post_processor
        return int(post.num_special_tokens_to_add(False)) if post is not None else 0
