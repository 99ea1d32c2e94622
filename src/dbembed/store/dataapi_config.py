"""Where the RDS Data API transport points: the ``rds-data://`` URL, and the boto3 client.

``database_url = "rds-data://<cluster-arn>/<database>?secret_arn=<secret-arn>[&region=<r>]"``
selects the Data API for the serving paths (see ``store/dataapi.py``, docs/aws.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from dbembed.errors import ConfigError, DatabaseUnavailable, UsageError

if TYPE_CHECKING:
    from dbembed.config import StoreSettings

SCHEME = "rds-data://"


@dataclass(frozen=True)
class Target:
    """Where a Data API URL points: the cluster, database, secret, region."""

    resource_arn: str
    database: str
    secret_arn: str
    region: str | None


def is_data_api_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(SCHEME)


def parse_url(url: str, settings: StoreSettings | None = None) -> Target:
    """``rds-data://<cluster-arn>/<database>?secret_arn=<arn>[&region=<r>]``.

    The secret may instead come from ``db_secret_id``; the region defaults to the ARN's.
    """
    rest = url[len(SCHEME) :]
    rest, _, query = rest.partition("?")
    arn, _, database = rest.rpartition("/")
    arn, database = unquote(arn), unquote(database)
    qs = {k: v[-1] for k, v in parse_qs(query).items()}
    secret = qs.get("secret_arn") or (settings.db_secret_id if settings else None)
    if not arn.startswith("arn:") or ":cluster:" not in arn or not database:
        raise ConfigError(
            "an RDS Data API database_url must look like "
            "rds-data://arn:aws:rds:REGION:ACCOUNT:cluster:NAME/DATABASE?secret_arn=SECRET-ARN"
        )
    if not secret:
        raise ConfigError(
            "the RDS Data API needs a Secrets Manager secret: add ?secret_arn=... to database_url"
        )
    region = qs.get("region") or (settings.aws_region if settings else None) or arn.split(":")[3] or None
    return Target(arn, database, secret, region)


def require_direct(settings: StoreSettings, what: str = "indexing") -> None:
    """Raise UsageError (exit 2) when ``database_url`` is a Data API URL."""
    if is_data_api_url(settings.database_url):
        raise UsageError(
            f"{what} needs a direct PostgreSQL connection (binary COPY, leases, long transactions); "
            "the RDS Data API URL (rds-data://...) serves only the chat/search API. Use a postgresql:// "
            "URL for it, with db_secret_id (Secrets Manager) or db_iam_auth for the credentials (docs/aws.md)"
        )


_clients: dict[tuple[str | None, str | None, str | None], Any] = {}
_clients_lock = threading.Lock()


def client(settings: StoreSettings, region: str | None) -> Any:
    """A cached boto3 ``rds-data`` client (thread-safe once built)."""
    key = (region, settings.aws_profile, settings.rds_data_endpoint_url)
    with _clients_lock:
        if key not in _clients:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:  # pragma: no cover
                raise DatabaseUnavailable("the RDS Data API needs boto3: pip install 'dbembed[aws]'") from exc
            session = boto3.Session(profile_name=settings.aws_profile, region_name=region)
            cfg = Config(
                retries={"mode": "standard", "max_attempts": 4},
                connect_timeout=max(1, int(settings.db_connect_timeout_s)),
                read_timeout=max(60, int(settings.request_timeout_s)),
            )
            _clients[key] = session.client(
                "rds-data", endpoint_url=settings.rds_data_endpoint_url, config=cfg
            )
        return _clients[key]
