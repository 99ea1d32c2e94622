"""API keys (table ``dbembed.api_keys``): created and revoked by ``dbembed keys``, checked on
every API request.

A token is ``dbe_<id>_<secret>``: ``id`` (12 hex characters) is public and names the
key in listings and logs; ``secret`` is 32 random bytes (base64url).  Only the sha256
of the whole token is stored, so a database leak does not leak usable keys, and the
comparison is constant-time.  Each key belongs to one tenant and either to one user
(a user key acts only for that user) or to no user (a tenant service key, e.g. the
chatbot backend, names the user it acts for per request; it can reach only users of
its own tenant).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dbembed.errors import NotFound, echo
from dbembed.text.inputs import clean_input, normalize_id

if TYPE_CHECKING:
    import psycopg

PREFIX = "dbe_"
_TOKEN = re.compile(r"^dbe_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    user_id: str | None
    name: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_key(
    conn: psycopg.Connection, tenant_id: str, user_id: str | None = None, name: str = ""
) -> tuple[ApiKey, str]:
    """Create a key; returns it and the token, which is shown once and never stored.

    Tenant and user ids are stored in their canonical form (``text.inputs.normalize_id``),
    the form every chat row is written under.  Raises ``InvalidInput`` for a bad id or name.
    """
    tenant_id = normalize_id(tenant_id, "tenant id")
    if user_id is not None:
        user_id = normalize_id(user_id, "user id")
    name = clean_input(name, "key name", 200)
    key_id = secrets.token_hex(6)
    token = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = conn.execute(
        """INSERT INTO dbembed.api_keys (id, tenant_id, user_id, name, secret_sha256)
           VALUES (%s, %s, %s, %s, %s)
           RETURNING id, tenant_id, user_id, name, created_at, revoked_at, last_used_at""",
        (key_id, tenant_id, user_id, name, _digest(token)),
    ).fetchone()
    assert row is not None
    return ApiKey(*row), token


def list_keys(conn: psycopg.Connection, tenant_id: str | None = None) -> list[ApiKey]:
    if tenant_id is not None:
        tenant_id = normalize_id(tenant_id, "tenant id")
    rows = conn.execute(
        """SELECT id, tenant_id, user_id, name, created_at, revoked_at, last_used_at FROM dbembed.api_keys
            WHERE %(t)s::text IS NULL OR tenant_id = %(t)s::text ORDER BY created_at, id""",
        {"t": tenant_id},
    ).fetchall()
    return [ApiKey(*r) for r in rows]


def revoke_key(conn: psycopg.Connection, key_id: str) -> ApiKey:
    if not re.fullmatch(r"[0-9a-f]{12}", key_id):
        raise NotFound(f"no API key with id {echo(key_id)}")
    row = conn.execute(
        """UPDATE dbembed.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s
           RETURNING id, tenant_id, user_id, name, created_at, revoked_at, last_used_at""",
        (key_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no API key with id {echo(key_id)}")
    return ApiKey(*row)


def verify_token(conn: psycopg.Connection, token: str) -> ApiKey | None:
    """The live key this token belongs to, or None (malformed, unknown, wrong secret, revoked)."""
    m = _TOKEN.match(token or "")
    if m is None:
        return None
    row = conn.execute(
        """SELECT id, tenant_id, user_id, name, created_at, revoked_at, last_used_at, secret_sha256
             FROM dbembed.api_keys WHERE id = %s""",
        (m.group(1),),
    ).fetchone()
    if row is None or not hmac.compare_digest(row[7], _digest(token)) or row[5] is not None:
        return None
    conn.execute(
        """UPDATE dbembed.api_keys SET last_used_at = now()
            WHERE id = %s AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')""",
        (row[0],),
    )
    return ApiKey(*row[:7])
