"""Connection strings for Aurora / RDS PostgreSQL: Secrets Manager and IAM authentication.

Why this exists: in production the password must not sit in a URL or an env var.
Two AWS-native ways are supported, alone or together:

* ``db_secret_id``: a Secrets Manager secret (ARN or name) with the JSON RDS writes
  (``username``, ``password``, and for secrets made by "Credentials for RDS database"
  also ``host``, ``port``, ``dbname``, ``engine``).  RDS-*managed* master secrets hold
  only ``username``/``password``; the host then comes from ``database_url``.
* ``db_iam_auth``: the password is a signed token from ``rds.generate_db_auth_token``.
  A token is valid for 15 minutes, so a fresh one is made for *every* connection
  attempt (signing is local and cheap) and nothing long-lived is ever cached.

Values merge in this order: ``database_url`` (may omit the password) first, then the
secret fills in whatever the URL left out.  TLS: IAM auth requires it, so the default
sslmode is ``require`` with IAM (``verify-full`` once a CA bundle is configured).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from dbembed.errors import ConfigError, DatabaseUnavailable

if TYPE_CHECKING:
    from dbembed.config import StoreSettings

log = logging.getLogger(__name__)

SECRET_TTL_S = 300.0  # re-read the secret after this long, so a rotated password is picked up
_RDS_HOST_REGION = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d)\.rds\.amazonaws\.com(?:\.cn)?$")

_secret_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()
_clients: dict[tuple[str | None, str | None, str], Any] = {}


def _client(service: str, settings: StoreSettings, region: str | None = None) -> Any:
    """A cached boto3 client (creating sessions is slow; clients are thread-safe)."""
    key = (settings.aws_profile, region or settings.aws_region, service)
    with _cache_lock:
        client = _clients.get(key)
        if client is None:
            try:
                import boto3
            except ImportError as exc:
                raise ConfigError(
                    "AWS database authentication needs boto3: pip install 'dbembed[aws]'"
                ) from exc
            session = boto3.Session(profile_name=settings.aws_profile, region_name=key[1])
            client = session.client(service)
            _clients[key] = client
        return client


def clear_caches() -> None:
    """Forget cached secrets and clients (tests; or after credentials changed)."""
    with _cache_lock:
        _secret_cache.clear()
        _clients.clear()


def load_secret(settings: StoreSettings, *, refresh: bool = False) -> dict[str, Any]:
    """The secret's JSON as a dict, cached for ``SECRET_TTL_S`` seconds."""
    secret_id = settings.db_secret_id
    if not secret_id:
        return {}
    now = time.monotonic()
    with _cache_lock:
        hit = _secret_cache.get(secret_id)
    if hit and not refresh and now - hit[0] < SECRET_TTL_S:
        return hit[1]
    region = settings.aws_region or _region_from_arn(secret_id)
    try:
        resp = _client("secretsmanager", settings, region).get_secret_value(SecretId=secret_id)
    except ConfigError:
        raise
    except Exception as exc:  # botocore ClientError / NoCredentialsError / endpoint errors
        raise DatabaseUnavailable(f"cannot read database secret {secret_id!r}: {_aws_error(exc)}") from exc
    text = resp.get("SecretString")
    if not text:
        raise DatabaseUnavailable(
            f"database secret {secret_id!r} has no SecretString (binary secrets unsupported)"
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatabaseUnavailable(
            f"database secret {secret_id!r} is not JSON; expected the RDS format "
            '{"username": ..., "password": ..., "host": ..., "port": ..., "dbname": ...}'
        ) from exc
    if not isinstance(data, dict):
        raise DatabaseUnavailable(f"database secret {secret_id!r} is not a JSON object")
    with _cache_lock:
        _secret_cache[secret_id] = (now, data)
    return data


def iam_token(host: str, port: int, user: str, settings: StoreSettings) -> str:
    """A fresh IAM auth token (valid 15 minutes) for one connection."""
    region = settings.aws_region or region_from_host(host)
    try:
        client = _client("rds", settings, region)
        return str(client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region))
    except ConfigError:
        raise
    except Exception as exc:
        raise DatabaseUnavailable(
            f"cannot create an IAM database token for {user}@{host}: {_aws_error(exc)}"
        ) from exc


def region_from_host(host: str) -> str | None:
    """``x.cluster-abc.ap-northeast-1.rds.amazonaws.com`` -> ``ap-northeast-1``."""
    m = _RDS_HOST_REGION.search(host.lower())
    return m.group(1) if m else None


def _region_from_arn(secret_id: str) -> str | None:
    parts = secret_id.split(":")
    return parts[3] if secret_id.startswith("arn:") and len(parts) > 3 and parts[3] else None


def _aws_error(exc: Exception) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict) and "Error" in resp:
        err = resp["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def default_sslmode(settings: StoreSettings) -> str | None:
    """The sslmode to use when the user set none: TLS is mandatory with IAM auth."""
    if settings.db_sslmode:
        return settings.db_sslmode
    if settings.db_sslrootcert:
        return "verify-full"
    if settings.db_iam_auth:
        return "require"
    return None


def connection_params(base: str | None, settings: StoreSettings) -> dict[str, Any]:
    """Merge the URL (if any), the secret and settings into libpq keyword parameters.

    With IAM auth the password is a brand-new token; otherwise the secret's password
    fills in a URL that has none.
    """
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = dict(conninfo_to_dict(base)) if base else {}
    secret = load_secret(settings) if settings.db_secret_id else {}
    for ours, theirs in (("host", "host"), ("port", "port"), ("user", "username"), ("dbname", "dbname")):
        if not params.get(ours) and secret.get(theirs) not in (None, ""):
            params[ours] = str(secret[theirs])
    if not params.get("host"):
        raise ConfigError(
            "no database host: set database_url (e.g. postgresql://USER@HOST:5432/DB) or use a "
            "secret that contains 'host' (RDS-managed master secrets hold only username/password)"
        )
    if not params.get("user"):
        raise ConfigError("no database user: put it in database_url or in the secret ('username')")
    params.setdefault("dbname", "postgres")
    params.setdefault("port", "5432")
    if settings.db_iam_auth:
        params["password"] = iam_token(
            str(params["host"]), int(params["port"]), str(params["user"]), settings
        )
    elif not params.get("password") and secret.get("password"):
        params["password"] = str(secret["password"])
    sslmode = default_sslmode(settings)
    if sslmode and "sslmode" not in params:
        params["sslmode"] = sslmode
    if settings.db_sslrootcert and "sslrootcert" not in params:
        params["sslrootcert"] = str(settings.db_sslrootcert)
    return params


def aws_conninfo(settings: StoreSettings) -> str:
    """The libpq connection string for Secrets Manager and/or IAM authentication.

    Called for every new connection, so an IAM token in it is always fresh.
    """
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**connection_params(settings.database_url, settings))


def refresh_conninfo(info: str, settings: StoreSettings, *, reload_secret: bool = False) -> str:
    """Re-resolve ``info`` right before a connection attempt (see ``wait_for_server.connect_with_retry``).

    A retry loop can outlive a token, and ``store.connection.conninfo`` returns a plain
    ``database_url`` as is: this puts a fresh IAM token (or the secret's password) in.
    ``reload_secret`` re-reads the secret and replaces the password (after a rotation).
    Without ``db_iam_auth`` / ``db_secret_id`` the string is returned unchanged.
    """
    if not (settings.db_iam_auth or settings.db_secret_id):
        return info
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    if reload_secret and settings.db_secret_id:
        load_secret(settings, refresh=True)
        params: dict[str, Any] = dict(conninfo_to_dict(info))
        params.pop("password", None)
        info = make_conninfo("", **params)
    return make_conninfo(**connection_params(info, settings))
