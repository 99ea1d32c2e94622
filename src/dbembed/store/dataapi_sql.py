"""Translating psycopg-style queries and values to the RDS Data API's wire shapes, and back.

The store's SQL is written once, with psycopg placeholders (``%s`` / ``%(name)s``).  The
Data API takes ``:name`` placeholders and a list of typed ``SqlParameter`` values
(``Field`` unions: ``stringValue``, ``longValue``, ...; ``typeHint`` for DECIMAL, DATE,
TIME, UUID, JSON).  ``translate`` rewrites one query and its values; ``decode_records``
turns ``records`` + ``columnMetadata`` back into the Python values psycopg returns
(``int``, ``Decimal`` for numeric, tz-aware ``datetime`` for timestamptz, parsed JSON ...).

Values the Data API has no field for travel as text and are cast in SQL:
vectors (numpy arrays, pgvector ``Vector``/``HalfVector``/``SparseVector``) as
``CAST(:q AS vector)``; datetimes as ISO 8601 text ``CAST(:t AS timestamptz)`` (exact to
the microsecond and explicit about the offset, whatever the session time zone); Python
lists (PostgreSQL arrays; "Array parameters are not supported") as array literals cast
to ``bigint[]`` / ``text[]`` / ``float8[]``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import numpy as np

from dbembed.errors import UnsupportedValue

_PLACEHOLDER = re.compile(rb"%%|%\((?P<name>[^)]+)\)[sbt]|%[sbt]")
_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Column:
    """One result column, psycopg-``description``-like (``name``, ``type_name``)."""

    name: str
    type_name: str


def _vector_text(value: Any) -> tuple[str, str] | None:
    """(text, SQL type) for vector-like values, else None."""
    if isinstance(value, np.ndarray):
        return "[" + ",".join(repr(float(v)) for v in value.ravel()) + "]", "vector"
    from pgvector import HalfVector, SparseVector, Vector

    for cls, kind in ((Vector, "vector"), (HalfVector, "halfvec"), (SparseVector, "sparsevec")):
        if isinstance(value, cls):
            return str(value.to_text()), kind
    return None


def _array_literal(values: list[Any]) -> tuple[str, str]:
    """A PostgreSQL array literal and its type for a flat list of one scalar kind."""
    items = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in items) and items:
        kind, text = "boolean[]", [("t" if v else "f") if v is not None else "NULL" for v in values]
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        kind, text = "bigint[]", [str(v) if v is not None else "NULL" for v in values]
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        kind, text = "float8[]", [repr(float(v)) if v is not None else "NULL" for v in values]
    elif all(isinstance(v, str) for v in items):
        esc = ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items]
        it = iter(esc)
        kind, text = "text[]", [next(it) if v is not None else "NULL" for v in values]
    else:
        raise UnsupportedValue(
            "only flat lists of numbers, booleans or strings can be sent over the Data API"
        )
    return "{" + ",".join(text) + "}", kind


def encode(name: str, value: Any) -> tuple[str, dict[str, Any]]:
    """(placeholder SQL, SqlParameter) for one value bound to ``:name``."""
    ph = ":" + name
    param: dict[str, Any] = {"name": name}
    if value is None:
        param["value"] = {"isNull": True}
        return ph, param
    if isinstance(value, bool):
        param["value"] = {"booleanValue": value}
    elif isinstance(value, int):
        if -(2**63) <= value < 2**63:
            param["value"] = {"longValue": value}
        else:
            param |= {"value": {"stringValue": str(value)}, "typeHint": "DECIMAL"}
    elif isinstance(value, float | np.floating):
        if math.isfinite(float(value)):
            param["value"] = {"doubleValue": float(value)}
        else:  # JSON has no NaN/Infinity: PostgreSQL parses 'NaN', 'Infinity'
            param["value"] = {
                "stringValue": repr(float(value)).replace("inf", "Infinity").replace("nan", "NaN")
            }
            ph = f"CAST({ph} AS float8)"
    elif isinstance(value, np.integer):
        param["value"] = {"longValue": int(value)}
    elif isinstance(value, str):
        param["value"] = {"stringValue": value}
    elif isinstance(value, Decimal):
        param |= {"value": {"stringValue": str(value)}, "typeHint": "DECIMAL"}
    elif isinstance(value, datetime):
        param["value"] = {"stringValue": value.isoformat()}
        ph = f"CAST({ph} AS {'timestamptz' if value.tzinfo is not None else 'timestamp'})"
    elif isinstance(value, date):
        param |= {"value": {"stringValue": value.isoformat()}, "typeHint": "DATE"}
    elif isinstance(value, time):
        param["value"] = {"stringValue": value.isoformat()}
        ph = f"CAST({ph} AS {'timetz' if value.tzinfo is not None else 'time'})"
    elif isinstance(value, uuid.UUID):
        param |= {"value": {"stringValue": str(value)}, "typeHint": "UUID"}
    elif isinstance(value, bytes | bytearray | memoryview):
        param["value"] = {"blobValue": bytes(value)}
    elif (vec := _vector_text(value)) is not None:
        param["value"] = {"stringValue": vec[0]}
        ph = f"CAST({ph} AS {vec[1]})"
    elif type(value).__name__ in ("Json", "Jsonb") and hasattr(value, "obj"):
        dumps = getattr(value, "dumps", None) or json.dumps
        param |= {"value": {"stringValue": dumps(value.obj)}, "typeHint": "JSON"}
        ph = f"CAST({ph} AS {type(value).__name__.lower()})"
    elif isinstance(value, list | tuple):
        text, kind = _array_literal(list(value))
        param["value"] = {"stringValue": text}
        ph = f"CAST({ph} AS {kind})"
    else:
        raise UnsupportedValue(f"cannot send a {type(value).__name__} value over the RDS Data API")
    return ph, param


def translate(query: str | bytes, params: Any) -> tuple[str, list[dict[str, Any]]]:
    """Rewrite psycopg placeholders to ``:name`` ones and encode the values.

    Positional ``%s`` become ``:p1``, ``:p2`` ...; ``%(name)s`` become ``:name`` (a name
    the Data API would not take is renamed).  ``%%`` becomes ``%``.  A query without
    parameters is sent unchanged, like psycopg does.
    """
    raw = query.encode() if isinstance(query, str) else bytes(query)
    if params is None:
        return raw.decode(), []
    named = isinstance(params, dict)
    seq = None if named else list(params)
    out: list[bytes] = []
    sent: dict[str, tuple[str, dict[str, Any]]] = {}
    pos = 0
    last = 0
    for m in _PLACEHOLDER.finditer(raw):
        out.append(raw[last : m.start()])
        last = m.end()
        token = m.group(0)
        if token == b"%%":
            out.append(b"%")
            continue
        key = m.group("name")
        if key is not None:
            if not named:
                raise UnsupportedValue("named placeholders need a mapping of parameters")
            name = key.decode()
            if name not in params:
                raise UnsupportedValue(f"query parameter {name!r} was not given")
            wire = name if _NAME_OK.match(name) else f"n{len(sent) + 1}"
            if name not in sent:
                sent[name] = encode(wire, params[name])
            out.append(sent[name][0].encode())
        else:
            if named or seq is None:
                raise UnsupportedValue("positional placeholders need a sequence of parameters")
            if pos >= len(seq):
                raise UnsupportedValue("the query has more placeholders than parameters")
            pos += 1
            ph, p = encode(f"p{pos}", seq[pos - 1])
            sent[f"p{pos}"] = (ph, p)
            out.append(ph.encode())
    out.append(raw[last:])
    if seq is not None and pos != len(seq):
        raise UnsupportedValue(f"the query has {pos} placeholders but {len(seq)} parameters were given")
    return b"".join(out).decode(), [p for _, p in sent.values()]


# --- results ----------------------------------------------------------------------------
def _parse_ts(text: str, *, aware: bool) -> datetime:
    value = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    if aware and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the Data API returns timestamptz in UTC
    return value


def _from_string(text: str, type_name: str) -> Any:
    t = type_name.lower().lstrip("_")
    if t == "timestamptz":
        return _parse_ts(text, aware=True)
    if t == "timestamp":
        return _parse_ts(text, aware=False)
    if t == "date":
        return date.fromisoformat(text)
    if t in ("numeric", "decimal"):
        return Decimal(text)
    if t in ("json", "jsonb"):
        return json.loads(text)
    if t == "uuid":
        return uuid.UUID(text)
    if t in ("float4", "float8") and text in ("NaN", "Infinity", "-Infinity"):
        return float(text.replace("Infinity", "inf"))
    if t == "vector":
        return np.array(json.loads(text), dtype=np.float32)
    if t == "halfvec":
        from pgvector import HalfVector

        return HalfVector.from_text(text)
    return text


def decode_field(field: dict[str, Any], type_name: str = "") -> Any:
    """One ``Field`` union (as boto3 parses it) to the value psycopg would return."""
    if not field or field.get("isNull"):
        return None
    if "stringValue" in field:
        return _from_string(field["stringValue"], type_name)
    if "longValue" in field:
        return int(field["longValue"])
    if "doubleValue" in field:
        return float(field["doubleValue"])
    if "booleanValue" in field:
        return bool(field["booleanValue"])
    if "blobValue" in field:
        blob = field["blobValue"]
        return bytes(blob) if not isinstance(blob, str) else base64.b64decode(blob)
    if "arrayValue" in field:
        return _decode_array(field["arrayValue"], type_name)
    return None


def _decode_array(av: dict[str, Any], type_name: str) -> list[Any]:
    if "arrayValues" in av:
        return [_decode_array(a, type_name) for a in av["arrayValues"]]
    for key in ("longValues", "doubleValues", "booleanValues"):
        if key in av:
            return list(av[key])
    if "stringValues" in av:
        return [_from_string(s, type_name) if s is not None else None for s in av["stringValues"]]
    return []


def decode_records(response: dict[str, Any]) -> tuple[list[Column], list[tuple[Any, ...]]]:
    """``records`` + ``columnMetadata`` of an ExecuteStatement response as (columns, rows)."""
    meta = response.get("columnMetadata") or []
    cols = [Column(m.get("label") or m.get("name") or "?column?", m.get("typeName") or "") for m in meta]
    types = [c.type_name for c in cols]
    rows = []
    for rec in response.get("records") or []:
        if types:
            rows.append(tuple(decode_field(f, types[i] if i < len(types) else "") for i, f in enumerate(rec)))
        else:
            rows.append(tuple(decode_field(f) for f in rec))
    return cols, rows


# --- statements -------------------------------------------------------------------------
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def split_statements(text: str) -> list[str]:
    """Split a script into statements at top-level semicolons.

    Respects '...' (incl. E'..\\''), "..." identifiers, $tag$ bodies, -- and /* */ comments.
    The Data API runs one statement per call ("Multi-statements aren't supported").
    """
    out: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif ch == "/" and text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif ch in ("'", '"'):
            backslash = ch == "'" and i > 0 and text[i - 1] in "eE"
            i += 1
            while i < n:
                if backslash and text[i] == "\\":
                    i += 2
                    continue
                if text[i] == ch:
                    if i + 1 < n and text[i + 1] == ch:
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif (
            ch == "$"
            and (m := _DOLLAR.match(text, i))
            and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"))
        ):
            end = text.find(m.group(0), m.end())
            i = n if end < 0 else end + len(m.group(0))
        elif ch == ";":
            stmt = text[start:i].strip()
            if stmt and _has_code(stmt):
                out.append(stmt)
            start = i = i + 1
        else:
            i += 1
    tail = text[start:].strip()
    if tail and _has_code(tail):
        out.append(tail)
    return out


def _has_code(text: str) -> bool:
    """False for a fragment that is only comments/whitespace."""
    stripped = re.sub(r"--[^\n]*", "", text)
    stripped = re.sub(r"/\*.*?\*/", "", stripped, flags=re.S)
    return bool(stripped.strip())
