"""Text hygiene: the one boundary every piece of text crosses before it is embedded or stored.

File rows, chat turns and search queries all go through :func:`clean_text`, so the
write side and the query side see the same characters:

- NUL (U+0000) and other control characters (C0/C1, except tab, newline and carriage
  return) are removed: PostgreSQL ``text`` cannot hold NUL, and controls carry no meaning.
- Lone UTF-16 surrogates (U+D800..U+DFFF, e.g. from ``surrogateescape``-decoded bytes or a
  JSON ``"\\ud800"``) are replaced by U+FFFD: they cannot be encoded as UTF-8.
- Invisible format characters that only break matching (zero-width space, word joiner,
  BOM / zero-width no-break space, soft hyphen, Mongolian vowel separator, invisible
  operators) are removed.  ZWJ/ZWNJ are kept: emoji sequences and Persian/Indic text need them.
- Unicode is normalised to **NFKC**.  Japanese users type full-width and half-width forms
  interchangeably (``ＡＢＣ１２３`` / ``ABC123``, ``ｶﾀｶﾅ`` / ``カタカナ``); NFKC folds them to one
  form, as Japanese search engines do (e.g. Elasticsearch's ``icu_normalizer``), so a query
  typed either way matches a row written either way.  NFKC is idempotent.

:func:`is_blank` says whether a text has any visible character at all; a value with none
(only spaces, zero-width characters, fillers) is treated like NULL: no chunk is made of it.
"""

from __future__ import annotations

import re
import unicodedata

# Removed everywhere: C0/C1 controls except \t \n \r, DEL, and format characters that are
# invisible and only break matching.  Surrogates are handled separately (replaced, not removed).
_REMOVE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
    "\u00ad\u180e\u200b\u2060-\u2064\ufeff]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Letters/symbols that render as nothing (Hangul fillers, Braille blank); they alone do not make
# a value visible.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
REPLACEMENT = "\ufffd"


def clean_text(text: str) -> str:
    """``text`` with NUL/controls and invisible format characters removed, lone surrogates
    replaced by U+FFFD, and NFKC applied.  Never raises; may return ``''``."""
    if not text:
        return ""
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(REPLACEMENT, text)
    text = _REMOVE.sub("", text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text


def is_blank(text: str) -> bool:
    """True when ``text`` has no visible character (only whitespace, controls, format
    characters or fillers): such a value is empty for indexing purposes."""
    for ch in text:
        if ch in _BLANK_LETTERS:
            continue
        cat = unicodedata.category(ch)
        if cat[0] not in ("Z", "C"):
            return False
    return True


def clean_or_none(text: str | None) -> str | None:
    """:func:`clean_text`, and ``None`` for ``None`` or a text with no visible character."""
    if text is None:
        return None
    cleaned = clean_text(text)
    return None if is_blank(cleaned) else cleaned
