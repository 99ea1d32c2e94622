"""Caller input at the text boundary: free text cleaned, exact values checked, ids normalised.

Every surface (CLI, HTTP API, API keys, library) passes what a person or client typed
through these, so the same input is accepted or refused the same way everywhere and an
identity has one canonical form.  Each raises ``dbembed.errors.InvalidInput`` naming the
field at fault (HTTP 400, exit code 2).
"""

from __future__ import annotations

import re

from dbembed.errors import InvalidInput, InvalidText
from dbembed.text.hygiene import clean_text, is_blank

MAX_ID_CHARS = 256


def check_text(value: str, what: str, max_chars: int, *, allow_empty: bool = True) -> str:
    """Reject what PostgreSQL text cannot hold (NUL) and what is unreasonably long.

    For values that must round-trip exactly (file paths, table names in filters).  Free
    text (chat turns, themes, queries) goes through :func:`clean_input` instead.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: must be a string", what)
    if "\x00" in value:
        raise InvalidInput(f"{what}: must not contain NUL characters", what)
    if len(value) > max_chars:
        raise InvalidInput(f"{what}: too long ({len(value)} characters, at most {max_chars})", what)
    if not allow_empty and not value.strip():
        raise InvalidText(f"{what}: must not be empty", what)
    return value


def clean_input(value: str, what: str, max_chars: int, *, allow_empty: bool = True) -> str:
    """Free text from a caller (chat turn, theme, search query) through the one hygiene
    boundary (``dbembed.text.hygiene.clean_text``: NUL and controls removed, lone
    surrogates replaced by U+FFFD, invisible format characters removed, NFKC), then the
    length limit.  A text with no visible character is ``''`` (refused when
    ``allow_empty`` is false).  Raises ``InvalidInput`` naming ``what``."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: must be a string", what)
    if len(value) > max_chars:  # before cleaning: a bound on the work done for hostile input
        raise InvalidInput(f"{what}: too long ({len(value)} characters, at most {max_chars})", what)
    cleaned = clean_text(value)
    if is_blank(cleaned):
        if not allow_empty:
            raise InvalidText(f"{what}: must not be empty (it has no visible character)", what)
        return ""
    if len(cleaned) > max_chars:  # NFKC can expand a text (e.g. U+FDFA is 18 characters)
        raise InvalidInput(
            f"{what}: too long after normalisation ({len(cleaned)} characters, at most {max_chars})", what
        )
    return cleaned


# Characters no identity may contain: C0/C1 controls (NUL included), DEL, and lone surrogates
# (bytes that were not UTF-8, decoded with surrogateescape, or a JSON "\udXXX" escape).
_BAD_ID_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def normalize_id(value: str, what: str = "user id") -> str:
    """The canonical form of a user or tenant id, the same on every surface (CLI, API,
    API keys, library): invisible format characters removed and NFKC applied (the
    hygiene boundary's rules), so ``José`` typed precomposed or decomposed, or
    ``ｊｏｓé`` full-width, is one identity.

    Refused with ``InvalidInput`` naming ``what`` (never silently changed): control
    characters and lone surrogates, i.e. text that was not valid UTF-8.  Replacing them
    would merge different ids (``caf\\xe9`` and ``caf\\xe8`` would both become ``caf\ufffd``).
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: must be a string", what)
    bad = _BAD_ID_CHARS.search(value)
    if bad is not None:
        ch = bad.group()
        kind = "not valid UTF-8 text" if "\ud800" <= ch <= "\udfff" else "contains a control character"
        raise InvalidInput(f"{what}: {kind} ({ascii(ch)} at position {bad.start()})", what)
    if len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"{what}: too long ({len(value)} characters, at most {MAX_ID_CHARS})", what)
    cleaned = clean_text(value)
    if is_blank(cleaned):
        raise InvalidInput(f"{what}: must not be empty", what)
    if len(cleaned) > MAX_ID_CHARS:
        raise InvalidInput(f"{what}: too long ({len(cleaned)} characters, at most {MAX_ID_CHARS})", what)
    return cleaned
