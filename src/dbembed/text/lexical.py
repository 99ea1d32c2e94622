"""Lexical tokens: what the full-text side of hybrid search matches, for any language.

One function, :func:`lexical_tokens`, turns a chunk (write side) or a query (query side)
into the same tokens, so PostgreSQL only stores and matches them (a ``tsvector`` under
no text-search configuration at all: lexemes are taken verbatim, nothing is stemmed or
dropped, so no language is favoured and no extension is needed on the embedded server,
RDS or Aurora).

Rules, applied after :func:`dbembed.text.hygiene.clean_text` (NFKC, so full-width
``ＡＢＣ１２３`` and half-width ``ｶﾀｶﾅ`` match their usual forms) and case folding:

- **Scripts written without spaces** (Han, Hiragana, Katakana, Hangul, and Thai, Lao,
  Khmer, Myanmar): each run is cut into overlapping character **bigrams** (``東京都庁`` ->
  ``東京 京都 都庁``), as pg_bigm and Lucene's ``CJKBigramFilter`` do; a run of one
  character is kept as a unigram.  A phrase then matches wherever all its bigrams occur,
  without a dictionary or a morphological analyser.
- **Other scripts**: words of letters and digits.  Identifiers and codes joined by
  ``- _ . / : # @ +`` (``INV-2024-0042``, ``user_id``, ``v1.2.3``) give their parts *and*
  the whole code (like Elasticsearch's ``word_delimiter`` with ``preserve_original``), so
  a search for ``0042`` and a search for ``inv-2024-0042`` both find the row.
- Tokens longer than :data:`MAX_TOKEN_CHARS` (base64 blobs, hashes of no use to a
  person) are dropped; positions are capped at PostgreSQL's 16383.

:func:`tsvector_binary` encodes tokens in PostgreSQL's binary ``tsvector`` format for
binary COPY; :func:`tsquery_text` builds the query side.
"""

from __future__ import annotations

import re
import struct

from dbembed.text.hygiene import clean_text

# Scripts without spaces between words: bigrammed.  Kana includes the prolonged sound mark
# (U+30FC) and iteration marks; Han includes the extension blocks and compatibility ideographs.
_UNSPACED = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u1100-\u11ff"  # Hangul Jamo
    "\u3005\u3006\u3007"  # 々 〆 〇
    "\u3041-\u309f"  # Hiragana
    "\u30a0-\u30ff"  # Katakana (incl. ー)
    "\u3131-\u318e"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B..G
)
_JOINERS = "-_./:#@+"
# Combining marks are not ``\w`` for ``re`` but belong to their word (Indic vowel signs and
# viramas, Hebrew and Arabic points, accents NFKC could not compose).
_MARKS = "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u0900-\u0dff\u1ab0-\u1aff"
_WORD_CHAR = rf"(?:[^\W_{_UNSPACED}]|[{_MARKS}])"
_JOINED = rf"[{re.escape(_JOINERS)}]+"
# A run of unspaced script, or a word (letters/digits of other scripts) with joined parts.  The
# plain form (no combining marks in the text, the common case) is about twice as fast.
_TOKEN_PLAIN = re.compile(
    rf"(?P<cjk>[{_UNSPACED}]+)|(?P<word>[^\W_{_UNSPACED}]+(?:{_JOINED}[^\W_{_UNSPACED}]+)*)"
)
_TOKEN_MARKS = re.compile(rf"(?P<cjk>[{_UNSPACED}]+)|(?P<word>{_WORD_CHAR}+(?:{_JOINED}{_WORD_CHAR}+)*)")
_HAS_MARKS = re.compile(rf"[{_MARKS}]")
_HAS_JOINER = re.compile(_JOINED)
_PART = re.compile(rf"{_WORD_CHAR}+")

MAX_TOKEN_CHARS = 64
MAX_POSITION = 16383  # PostgreSQL's tsvector positions are 14 bits
MAX_POSITIONS_PER_TOKEN = 256  # PostgreSQL keeps at most 256 positions of one lexeme


def lexical_tokens(text: str) -> list[str]:
    """Tokens of ``text`` in order (duplicates kept: their positions count), per the module rules.

    >>> lexical_tokens("東京都庁のINV-2024-0042")
    ['東京', '京都', '都庁', '庁の', 'inv-2024-0042', 'inv', '2024', '0042']
    """
    text = clean_text(text).casefold()
    if not text:
        return []
    out: list[str] = []
    token = _TOKEN_PLAIN if text.isascii() or not _HAS_MARKS.search(text) else _TOKEN_MARKS
    for run, word in token.findall(text):
        if run:
            if len(run) == 1:
                out.append(run)
            else:
                out.extend(run[i : i + 2] for i in range(len(run) - 1))
            continue
        if _HAS_JOINER.search(word):
            if len(word) <= MAX_TOKEN_CHARS:
                out.append(word)
            out.extend(p for p in _PART.findall(word) if len(p) <= MAX_TOKEN_CHARS)
        elif len(word) <= MAX_TOKEN_CHARS:
            out.append(word)
    return out


def query_tokens(text: str) -> list[str]:
    """Distinct tokens of a query, in first-seen order."""
    return list(dict.fromkeys(lexical_tokens(text)))


def tsvector_binary(tokens: list[str]) -> bytes:
    """PostgreSQL's binary ``tsvector`` (``tsvectorsend``): int32 count, then per lexeme in
    sorted order: UTF-8 bytes, NUL, uint16 position count, uint16 positions (1-based)."""
    positions = _positions(tokens)
    # tsvector orders lexemes by bytes, a shorter prefix first; UTF-8 keeps code point order, so
    # Python's str order is the same.
    parts = [len(positions).to_bytes(4, "big")]
    for tok in sorted(positions):
        pos = positions[tok]
        if len(pos) == 1:
            parts.append(tok.encode("utf-8") + _ONE + pos[0].to_bytes(2, "big"))
        else:
            parts.append(tok.encode("utf-8") + b"\x00" + struct.pack(f">H{len(pos)}H", len(pos), *pos))
    return b"".join(parts)


_ONE = b"\x00\x00\x01"  # NUL, then one position


def tsquery_text(tokens: list[str], op: str = "|") -> str:
    """A ``tsquery`` in its text form matching the tokens verbatim, joined by ``|`` (any) or ``&`` (all).

    Quoted lexemes are taken as they are (no parser, no dictionary); quotes and backslashes
    are doubled as the ``tsquery`` input syntax requires.
    """
    if op not in ("|", "&"):
        raise ValueError("op must be '|' or '&'")
    quoted = ["'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in tokens]
    return f" {op} ".join(quoted)


def _positions(tokens: list[str]) -> dict[str, list[int]]:
    positions: dict[str, list[int]] = {}
    for i, tok in enumerate(tokens[:MAX_POSITION], 1):
        lst = positions.get(tok)
        if lst is None:
            positions[tok] = [i]
        elif len(lst) < MAX_POSITIONS_PER_TOKEN:
            lst.append(i)
    return positions


def tsvector_text(tokens: list[str]) -> str:
    """The same ``tsvector`` as :func:`tsvector_binary` in its text form (for ``%s::tsvector``)."""
    return " ".join(
        "'" + t.replace("\\", "\\\\").replace("'", "''") + "':" + ",".join(map(str, pos))
        for t, pos in _positions(tokens).items()
    )
