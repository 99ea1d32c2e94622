"""Token-aware chunking with the embedding model's own tokenizer.

A chunk must never exceed what the model embeds without truncation, so windows
are measured in the model's tokens (``Tokenizer.token_spans`` gives each
token's character span), not in characters or words.  Windows end at a
sentence end or a space near the window's end when there is one, consecutive
windows share ``overlap`` tokens of context, and chunks are always cut between
whole code points (never inside a character, a surrogate pair or before a
combining mark), which matters for Japanese and other scripts without spaces.

Most rows are short, so the common case must not pay for tokenization: a
tokenizer that declares ``chars_bound_tokens = True`` (WordPiece: every token
covers at least one character) guarantees that a text of at most
``max_tokens`` characters has at most ``max_tokens`` tokens.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from typing import TYPE_CHECKING

from dbembed.embed.base import Tokenizer

if TYPE_CHECKING:
    from dbembed.config import TextSettings

_SURROGATE = re.compile("[\ud800-\udfff]")
# Hangul syllables decompose (NFD, done by uncased BERT normalizers) into 2-3 jamo: more tokens than chars.
_EXPANDS = re.compile("[\uac00-\ud7af]")
_IDEOGRAPH = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_SENTENCE_END = frozenset(".!?;:")
_CJK_SENTENCE_END = frozenset("。！？；…」』）")
_JOINERS = frozenset("\u200c\u200d")


def _fix_surrogates(text: str) -> str:
    """Pair valid surrogate halves into code points, replace lone ones with U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Me", "Mc") or "\ufe00" <= ch <= "\ufe0f" or ch in _JOINERS


def safe_char_cut(text: str, pos: int) -> bool:
    """Whether cutting ``text`` at ``pos`` keeps every visible character whole."""
    if pos <= 0 or pos >= len(text):
        return True
    return not _is_mark(text[pos]) and text[pos - 1] not in _JOINERS


def split_chars(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_chars`` characters at safe character boundaries."""
    pieces = []
    start = 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        cut = end
        while cut > start + 1 and not safe_char_cut(text, cut):
            cut -= 1
        pieces.append(text[start:cut])
        start = cut
    return [p for p in (p.strip() for p in pieces) if p]


class Chunker:
    """Split documents into chunks of at most ``max_tokens`` tokens (and ``max_chars`` characters)."""

    def __init__(
        self, tokenizer: Tokenizer, max_tokens: int, overlap: int = 32, max_chars: int | None = None
    ) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if overlap < 0:
            raise ValueError("overlap must not be negative")
        if max_chars is not None and max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        self.tokenizer = tokenizer
        self.max_tokens = int(max_tokens)
        self.overlap = min(int(overlap), self.max_tokens // 2)  # more would stall the window
        self.max_chars = max_chars
        self._chars_bound = bool(getattr(tokenizer, "chars_bound_tokens", False))

    def _fits_chars(self, text: str) -> bool:
        return self.max_chars is None or len(text) <= self.max_chars

    def chunk(self, text: str) -> list[str]:
        if not text or text.isspace():
            return []
        if _SURROGATE.search(text):
            text = _fix_surrogates(text)
        text = text.strip()
        if (
            self._chars_bound
            and len(text) <= self.max_tokens
            and self._fits_chars(text)
            and not _EXPANDS.search(text)
        ):
            return [text]  # fast path: cannot exceed max_tokens, no tokenization needed
        spans = self.tokenizer.token_spans(text)
        if len(spans) <= self.max_tokens and self._fits_chars(text):
            return [text]
        if not spans:  # nothing the tokenizer counts (control characters...): only the char limit applies
            return split_chars(text, self.max_chars or len(text))
        return self._windows(text, spans)

    # -- windows ------------------------------------------------------------------------------------
    def _boundary(self, text: str, spans: list[tuple[int, int]], k: int) -> bool:
        """Can a chunk end before token ``k`` / start at token ``k``?"""
        if k <= 0 or k >= len(spans):
            return True
        return spans[k - 1][1] <= spans[k][0] and safe_char_cut(text, spans[k][0])

    def _mid_word(self, text: str, spans: list[tuple[int, int]], k: int) -> bool:
        """Whether the cut before token ``k`` splits a word (re-tokenizing it may then count differently)."""
        if k <= 0 or k >= len(spans) or spans[k - 1][1] < spans[k][0]:
            return False
        a, b = text[spans[k][0] - 1], text[spans[k][0]]
        return a.isalnum() and b.isalnum() and not (_IDEOGRAPH.match(a) or _IDEOGRAPH.match(b))

    def _best_cut(self, text: str, spans: list[tuple[int, int]], i: int, j: int) -> int:
        """Where to end the window [i, j): a sentence end near the end, else a space, else j."""
        width = j - i
        sentence_lo = j - max(1, width // 3)
        space_lo = j - max(1, width // 2)
        space = fallback = None
        for k in range(j, i, -1):
            if not self._boundary(text, spans, k):
                continue
            if fallback is None:
                fallback = k
            gap = text[spans[k - 1][1] : spans[k][0]]
            last = text[spans[k - 1][1] - 1] if spans[k - 1][1] > 0 else ""
            if k >= sentence_lo and (
                "\n" in gap or last in _CJK_SENTENCE_END or (last in _SENTENCE_END and gap.isspace() and gap)
            ):
                return k
            if space is None and k >= space_lo and any(ch.isspace() for ch in gap):
                space = k
            if k < sentence_lo and (space is not None or k < space_lo):
                break
        return space or fallback or j

    def _snap_start(self, text: str, spans: list[tuple[int, int]], start: int, limit: int) -> int:
        """Move a window start forward (not past ``limit``) to a word start, else to a safe boundary."""
        first_safe = None
        for k in range(start, limit + 1):
            if not self._boundary(text, spans, k):
                continue
            if first_safe is None:
                first_safe = k
            if k >= len(spans) or not self._mid_word(text, spans, k):
                return k
        return first_safe if first_safe is not None else limit

    def _windows(self, text: str, spans: list[tuple[int, int]]) -> list[str]:
        n = len(spans)
        ends = [e for _, e in spans]
        out: list[str] = []
        i = 0
        while i < n:
            start_char = spans[i][0]
            j = min(i + self.max_tokens, n)
            if self.max_chars is not None:
                j = min(j, bisect.bisect_right(ends, start_char + self.max_chars, i, j))
            if j <= i:  # one token longer than max_chars: fall back to characters
                out.extend(split_chars(text[start_char : spans[i][1]], self.max_chars or 1))
                i += 1
                continue
            k = self._best_cut(text, spans, i, j) if j < n else n
            check = self._mid_word(text, spans, i) or self._mid_word(text, spans, k)
            while True:
                piece = text[start_char : spans[k - 1][1]].strip()
                if not check or k <= i + 1:
                    break
                count = self.tokenizer.count(piece)
                if count <= self.max_tokens:
                    break
                k = max(i + 1, k - (count - self.max_tokens))
                while k > i + 1 and not self._boundary(text, spans, k):
                    k -= 1
            if piece:
                out.append(piece)
            if k >= n:
                break
            nxt = max(k - self.overlap, i + 1)
            i = self._snap_start(text, spans, nxt, k)
        return out


def make_chunker(
    text: TextSettings, tokenizer: Tokenizer, model_max_tokens: int, max_chars: int | None
) -> Chunker:
    """The chunker a run uses for a model: windows of ``text.max_chunk_tokens`` tokens, never more than
    ``model_max_tokens`` (what one input may hold; local models already exclude [CLS]/[SEP]), sharing
    ``text.chunk_overlap`` tokens.  ``tokenizer`` must be the chunker's own: it runs on the reader
    thread, never on the model's (docs/ARCHITECTURE.md "Threads")."""
    limit = min(text.max_chunk_tokens or model_max_tokens, model_max_tokens)
    return Chunker(tokenizer, limit, overlap=text.chunk_overlap, max_chars=max_chars)
