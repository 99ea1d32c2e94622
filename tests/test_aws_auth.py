"""Aurora/RDS connection settings: Secrets Manager through moto's server (real boto3 over
HTTP), IAM auth tokens signed locally, TLS defaults, and a real connection built from a
secret against the embedded PostgreSQL server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from dbembed.store import aws_auth

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    aws_auth.clear_caches()
    yield moto_endpoint
    aws_auth.clear_caches()


def _put_secret(name: str, value: dict[str, object], region: str = "us-east-1") -> str:
    import boto3

    client = boto3.client("secretsmanager", region_name=region)
    return str(client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"])


def _settings(**kw: object):  # noqa: ANN202
    from dbembed.config import load_settings

    return load_settings(**kw).store


def test_secret_by_name_and_arn_builds_conninfo(aws_env: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    from dbembed.store.aws_auth import aws_conninfo

    secret = {
        "engine": "postgres",
        "host": "db.cluster-abc.us-east-1.rds.amazonaws.com",
        "port": 5432,
        "username": "dbembed",
        "password": "p@ss w'rd",
        "dbname": "vectors",
    }
    arn = _put_secret("dbembed/aurora", secret)
    for secret_id in ("dbembed/aurora", arn):
        from dbembed.store import aws_auth

        aws_auth.clear_caches()
        params = conninfo_to_dict(aws_conninfo(_settings(db_secret_id=secret_id)))
        assert params["host"] == secret["host"]
        assert params["port"] == "5432"
        assert params["user"] == "dbembed"
        assert params["password"] == "p@ss w'rd"  # quoting survives the round trip
        assert params["dbname"] == "vectors"
        assert "sslmode" not in params  # no TLS default without IAM or a CA bundle


def test_managed_secret_needs_host_from_url(aws_env: str) -> None:
    """RDS-managed master secrets hold only username/password: host comes from the URL."""
    from psycopg.conninfo import conninfo_to_dict

    from dbembed.errors import ConfigError
    from dbembed.store.aws_auth import aws_conninfo

    _put_secret("rds!cluster-1234", {"username": "postgres", "password": "managed"})
    with pytest.raises(ConfigError, match="no database host"):
        aws_conninfo(_settings(db_secret_id="rds!cluster-1234"))
    params = conninfo_to_dict(
        aws_conninfo(
            _settings(
                db_secret_id="rds!cluster-1234",
                database_url="postgresql://db.example.internal:6543/app",
                db_sslrootcert=Path("/etc/ssl/rds.pem"),
            )
        )
    )
    assert (params["host"], params["port"], params["dbname"]) == ("db.example.internal", "6543", "app")
    assert (params["user"], params["password"]) == ("postgres", "managed")
    assert params["sslmode"] == "verify-full"  # a CA bundle means: verify the server
    assert params["sslrootcert"] == "/etc/ssl/rds.pem"


def test_missing_or_malformed_secret_is_clear(aws_env: str) -> None:
    from dbembed.errors import DatabaseUnavailable
    from dbembed.store.aws_auth import aws_conninfo

    with pytest.raises(DatabaseUnavailable, match="ResourceNotFoundException"):
        aws_conninfo(_settings(db_secret_id="does/not/exist"))
    _put_secret("not-json", {"x": 1})
    import boto3

    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId="not-json", SecretString="plain text"
    )
    with pytest.raises(DatabaseUnavailable, match="not JSON"):
        aws_conninfo(_settings(db_secret_id="not-json"))


def _token_query(token: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit("https://" + token)
    return parts.netloc, parse_qs(parts.query)


def test_iam_token_is_fresh_per_connection_and_signed_for_host(aws_env: str) -> None:
    import time

    from psycopg.conninfo import conninfo_to_dict

    from dbembed.store.aws_auth import aws_conninfo, refresh_conninfo

    host = "db.cluster-abc.ap-northeast-1.rds.amazonaws.com"
    settings = _settings(database_url=f"postgresql://iam_user@{host}:5432/vectors", db_iam_auth=True)
    params = conninfo_to_dict(aws_conninfo(settings))
    netloc, query = _token_query(params["password"])
    assert netloc == f"{host}:5432"
    assert query["Action"] == ["connect"]
    assert query["DBUser"] == ["iam_user"]
    assert query["X-Amz-Expires"] == ["900"]
    # Region comes from the host name when aws_region is unset; the service is rds-db.
    assert "/ap-northeast-1/rds-db/aws4_request" in query["X-Amz-Credential"][0]
    assert query["X-Amz-Credential"][0].startswith("AKIDTESTING/")
    assert params["sslmode"] == "require"  # IAM auth requires TLS
    assert (params["host"], params["user"], params["dbname"]) == (host, "iam_user", "vectors")

    time.sleep(1.1)  # SigV4 dates have one-second resolution
    again = conninfo_to_dict(refresh_conninfo(aws_conninfo(settings), settings))["password"]
    assert again != params["password"], "every new connection must get a new token"
    assert _token_query(again)[1]["X-Amz-Date"] != query["X-Amz-Date"]


def test_iam_with_secret_takes_host_and_user_but_not_password(aws_env: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    from dbembed.store.aws_auth import aws_conninfo

    _put_secret(
        "iam-secret",
        {"host": "h.cluster-x.eu-west-1.rds.amazonaws.com", "port": 5433, "username": "u", "password": "pw"},
        region="eu-west-1",
    )
    settings = _settings(db_secret_id="iam-secret", db_iam_auth=True, aws_region="eu-west-1")
    params = conninfo_to_dict(aws_conninfo(settings))
    assert params["password"] != "pw"
    netloc, query = _token_query(params["password"])
    assert netloc == "h.cluster-x.eu-west-1.rds.amazonaws.com:5433"
    assert query["DBUser"] == ["u"]
    assert "/eu-west-1/rds-db/" in query["X-Amz-Credential"][0]


def test_connect_through_secret_to_real_server(aws_env: str, pg_server: object, tmp_path: Path) -> None:
    """End to end: settings name only a secret; store.connection.connect opens a real session."""
    from psycopg.conninfo import conninfo_to_dict

    from dbembed.store.connection import connect

    real = conninfo_to_dict(pg_server.get_uri())  # type: ignore[attr-defined]
    sockets = [p for p in Path(real["host"]).glob(".s.PGSQL.*") if not p.name.endswith(".lock")]
    port = int(sockets[0].name.rsplit(".", 1)[1])
    _put_secret(
        "local-pg",
        {"host": real["host"], "port": port, "username": real["user"], "dbname": "postgres"},
    )
    settings = _settings(db_secret_id="local-pg", data_dir=tmp_path)
    conn = connect(settings, register_vector=False)
    try:
        assert conn.execute("SELECT current_user").fetchone()[0] == real["user"]
    finally:
        conn.close()


def test_rotated_secret_is_reread_on_demand(aws_env: str) -> None:
    """After a rotation the cached password is stale; resume.connect_with_retry asks for a
    re-read when the server rejects it (``reload_secret=True``)."""
    import boto3
    from psycopg.conninfo import conninfo_to_dict

    from dbembed.store.aws_auth import aws_conninfo, refresh_conninfo

    _put_secret("rotating", {"host": "h.example", "username": "u", "password": "old", "dbname": "d"})
    settings = _settings(db_secret_id="rotating")
    info = aws_conninfo(settings)
    assert conninfo_to_dict(info)["password"] == "old"
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId="rotating",
        SecretString=json.dumps({"host": "h.example", "username": "u", "password": "new", "dbname": "d"}),
    )
    assert conninfo_to_dict(refresh_conninfo(info, settings))["password"] == "old"  # cached (TTL)
    assert conninfo_to_dict(refresh_conninfo(info, settings, reload_secret=True))["password"] == "new"
    assert conninfo_to_dict(aws_conninfo(settings))["password"] == "new"
