"""Turn one row into the text that gets embedded.

The document format (setting ``document_format``) decides the layout of a row's
text columns:

- ``table-columns``: ``Album | Title: Let There Be Rock | Artist: AC/DC``
- ``columns``: ``Title: Let There Be Rock | Artist: AC/DC``
- ``values``: ``Let There Be Rock | AC/DC``

Labels cost model time on every row; benchmarks/results/2026-11-30-vm-2cpu-formats.md
measures what each format buys in search quality.  A per-table template from the
config replaces the layout entirely, whatever the format.  Every value first crosses the text-hygiene
boundary (``dbembed.text.hygiene``: NUL/controls and invisible format characters
removed, lone surrogates replaced, NFKC); a value left with no visible character
counts as NULL.  Whitespace is then tidied only lightly (runs of spaces/tabs,
trailing spaces, runs of blank lines).
"""

from __future__ import annotations

import re
from string import Formatter
from typing import Any

from dbembed.config import DOCUMENT_FORMATS
from dbembed.errors import echo
from dbembed.read import Row, TableInfo
from dbembed.read.introspect import template_fields
from dbembed.text.hygiene import clean_text, is_blank

_HSPACE = re.compile(r"[ \t\f\v\u00a0]+")  # not U+3000: the ideographic space is part of Japanese text
_TRAILING = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")
SEPARATOR = " | "
DEFAULT_DOCUMENT_FORMAT = "table-columns"


def normalize_ws(text: str) -> str:
    """Collapse horizontal whitespace runs and blank-line runs; strip the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _HSPACE.sub(" ", text)
    text = _TRAILING.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def value_text(value: Any) -> str:
    """A column value as clean text; '' for NULL, for binary values that are not UTF-8 and for
    values with no visible character (whitespace, zero-width characters, NUL...)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return ""
    text = normalize_ws(clean_text(str(value)))
    return "" if is_blank(text) else text


def clean_values(values: dict[str, Any]) -> dict[str, Any]:
    """Row values for a template: text cleaned (blank -> None), numbers and the rest unchanged."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, str | bytes):
            v = value_text(v) or None
        out[k] = v
    return out


class _LenientFormatter(Formatter):
    """``str.format`` where a missing or NULL field is '' and a bad format spec falls back to str()."""

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, int):
            return args[key] if key < len(args) else ""
        value = kwargs.get(key)
        if value is None:  # SQLite names are case-insensitive; so are template fields
            value = kwargs.get(_casefold_key(kwargs, key))
        return "" if value is None else value

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        try:
            return super().get_field(field_name, args, kwargs)
        except (AttributeError, IndexError, KeyError, TypeError):
            return "", field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, bytes):
            value = value_text(value)
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


def _casefold_key(mapping: dict[str, Any], key: str) -> str:
    folded = key.casefold()
    for k in mapping:
        if k.casefold() == folded:
            return k
    return key


_FORMATTER = _LenientFormatter()


def render_template(template: str, values: dict[str, Any]) -> str:
    try:
        return _FORMATTER.vformat(template, (), values)
    except ValueError:  # unbalanced braces: treat the template as plain text
        return template


def row_document(table: TableInfo, row: Row, document_format: str = DEFAULT_DOCUMENT_FORMAT) -> str | None:
    """The text to embed for ``row``, or None when the row has no text at all.

    ``document_format`` is one of ``DOCUMENT_FORMATS`` (see the module docstring); a table's
    template wins over it.  Raises ``ValueError`` for an unknown format."""
    if table.template:
        fields = template_fields(table.template)
        if fields and not any(value_text(row.values.get(_casefold_key(row.values, f))) for f in fields):
            return None  # "{Title} by {Artist}" with no title and no artist is not a document
        text = normalize_ws(clean_text(render_template(table.template, clean_values(row.values))))
        return None if is_blank(text) else text
    if document_format not in DOCUMENT_FORMATS:
        raise ValueError(f"unknown document format {echo(document_format)} (one of {', '.join(DOCUMENT_FORMATS)})")
    labelled = document_format != "values"
    parts = []
    for col in table.text_columns:
        text = value_text(row.values.get(col))
        if text:
            parts.append(f"{clean_text(col)}: {text}" if labelled else text)
    if not parts:
        return None
    body = SEPARATOR.join(parts)
    return clean_text(table.name) + SEPARATOR + body if document_format == "table-columns" else body
