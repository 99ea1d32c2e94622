"""S3 as a source, against moto's server mode (real boto3 over HTTP on loopback):
listing with globs and pagination, ranged header checks, the bounded download cache
(ETag-keyed, LRU, never evicting a file in use), and metadata sidecars."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("moto.server")

BUCKET = "sqlite-load-test"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _sqlite_bytes(tmp: Path, name: str, rows: int = 3, pad: int = 0) -> bytes:
    path = tmp / name
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)")
    conn.executemany(
        "INSERT INTO orders (note) VALUES (?)", [(f"order {i} {'x' * pad}",) for i in range(rows)]
    )
    conn.commit()
    conn.close()
    return path.read_bytes()


@pytest.fixture()
def s3env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    import boto3

    from dbembed.config import load_settings
    from dbembed.discover import s3 as s3mod

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3mod._clients.clear()
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    settings = load_settings(s3_endpoint_url=moto_endpoint, data_dir=tmp_path / "data", settle_s=0.0)
    yield client, settings
    s3mod._clients.clear()


def _populate(client, tmp: Path) -> dict[str, bytes]:  # noqa: ANN001
    objects = {
        "runs/a.db": _sqlite_bytes(tmp, "a.db"),
        "runs/sub/b.SQLITE": _sqlite_bytes(tmp, "b.sqlite", rows=5),
        "runs/a.db-wal": b"wal bytes",
        "runs/a.db-journal": b"journal",
        "runs/notes.txt": b"hello",
        "runs/fake.db": b"this is not sqlite at all, just text",
        "runs/empty.db": b"",
        "runs/archive/old.db": _sqlite_bytes(tmp, "old.db"),
        "runs/a.db.embedding_metadata.json": b"{}",
        "runsx/sibling.db": _sqlite_bytes(tmp, "sibling.db"),
        "other/x.db": _sqlite_bytes(tmp, "x.db"),
    }
    for key, body in objects.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    return objects


def test_discover_applies_globs_and_checks_headers(s3env, tmp_path: Path) -> None:  # noqa: ANN001
    from dbembed.discover import discover

    client, settings = s3env
    objects = _populate(client, tmp_path)
    settings = settings.model_copy(update={"exclude": ["archive"]})
    found = {f.path: f for f in discover(["s3://sqlite-load-test/runs"], settings.sources)}
    assert sorted(found) == [
        "s3://sqlite-load-test/runs/a.db",
        "s3://sqlite-load-test/runs/empty.db",
        "s3://sqlite-load-test/runs/fake.db",
        "s3://sqlite-load-test/runs/sub/b.SQLITE",  # globs are case-insensitive, like local ones
    ]
    a = found["s3://sqlite-load-test/runs/a.db"]
    assert a.header_ok and a.reason is None
    assert a.root == "s3://sqlite-load-test/runs/"
    assert a.size == len(objects["runs/a.db"])
    assert a.etag == hashlib.md5(objects["runs/a.db"]).hexdigest()
    head = client.head_object(Bucket=BUCKET, Key="runs/a.db")
    assert a.mtime == head["LastModified"].timestamp()
    assert not found["s3://sqlite-load-test/runs/fake.db"].header_ok
    assert "bad header" in (found["s3://sqlite-load-test/runs/fake.db"].reason or "")
    assert "empty" in (found["s3://sqlite-load-test/runs/empty.db"].reason or "")

    slash = settings.model_copy(update={"exclude": ["sub/*"], "include": ["*.db"]})
    paths = {f.path for f in discover(["s3://sqlite-load-test/runs/"], slash.sources)}
    assert "s3://sqlite-load-test/runs/archive/old.db" in paths
    assert not any("/sub/" in p for p in paths)


def test_pagination_single_object_root_and_missing_bucket(
    s3env,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dbembed.discover import s3 as s3mod
    from dbembed.errors import UsageError

    client, settings = s3env
    body = _sqlite_bytes(tmp_path, "p.db")
    for i in range(7):
        client.put_object(Bucket=BUCKET, Key=f"paged/f{i}.db", Body=body)
    monkeypatch.setattr(s3mod, "LIST_PAGE_SIZE", 2)
    calls: list[str] = []
    s3mod.s3_client(settings.sources).meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **kw: calls.append("list")
    )
    found = list(s3mod.discover_s3("s3://sqlite-load-test/paged/", settings.sources))
    assert [f.path.rsplit("/", 1)[1] for f in found] == [f"f{i}.db" for i in range(7)]
    assert len(calls) == 4  # 2+2+2+1 keys

    single = list(s3mod.discover_s3("s3://sqlite-load-test/paged/f3.db", settings.sources))
    assert [(f.path, f.header_ok) for f in single] == [("s3://sqlite-load-test/paged/f3.db", True)]

    with pytest.raises(UsageError, match="NoSuchBucket"):
        list(s3mod.discover_s3("s3://no-such-bucket-here/x/", settings.sources))


def test_fetch_downloads_once_and_reads_as_sqlite(s3env, tmp_path: Path) -> None:  # noqa: ANN001
    from dbembed.discover import discover, materialize
    from dbembed.discover import s3 as s3mod

    client, settings = s3env
    _populate(client, tmp_path)
    a = next(f for f in discover(["s3://sqlite-load-test/runs/"], settings.sources) if f.path.endswith("/a.db"))
    gets: list[str] = []
    s3mod.s3_client(settings.sources).meta.events.register(
        "before-call.s3.GetObject", lambda **kw: gets.append("get")
    )
    with materialize(a, settings.sources) as local:
        assert local.parent == settings.resolved_data_dir() / "s3-cache"
        rows = (
            sqlite3.connect(f"file:{local}?mode=ro", uri=True)
            .execute("SELECT count(*) FROM orders")
            .fetchone()
        )
        assert rows == (3,)
    assert gets == ["get"]
    with materialize(a, settings.sources) as again:
        assert again == local
    assert gets == ["get"], "second fetch must be a cache hit"
    assert not [p for p in local.parent.iterdir() if p.name.startswith(".part-")]


def test_object_changed_after_listing_is_a_source_error(s3env, tmp_path: Path) -> None:  # noqa: ANN001
    from dbembed.discover import s3 as s3mod
    from dbembed.errors import SourceError

    client, settings = s3env
    client.put_object(Bucket=BUCKET, Key="chg/c.db", Body=_sqlite_bytes(tmp_path, "c1.db"))
    (found,) = list(s3mod.discover_s3("s3://sqlite-load-test/chg/", settings.sources))
    client.put_object(Bucket=BUCKET, Key="chg/c.db", Body=_sqlite_bytes(tmp_path, "c2.db", rows=9))
    with pytest.raises(SourceError, match="changed since it was listed"), s3mod.fetch(found, settings.sources):
        pass
    cache = s3mod.cache_dir(settings.sources)
    assert not any(cache.iterdir()), "no partial download may remain"


def test_corrupt_transfer_is_detected() -> None:
    from dbembed.discover.local import FoundFile
    from dbembed.discover.s3 import _verify
    from dbembed.errors import SourceError

    etag = hashlib.md5(b"right").hexdigest()
    found = FoundFile("s3://b/k.db", "s3://b/", 5, 0.0, True, None, etag)
    _verify(found, {"ETag": f'"{etag}"', "ContentLength": 5}, 5, etag)  # fine
    with pytest.raises(SourceError, match="does not match its ETag"):
        _verify(found, {"ETag": f'"{etag}"', "ContentLength": 5}, 5, hashlib.md5(b"wrong").hexdigest())
    with pytest.raises(SourceError, match="short download"):
        _verify(found, {"ETag": f'"{etag}"', "ContentLength": 5}, 3, etag)
    # Multipart and SSE-KMS ETags are not MD5s: no false alarm.
    multi = FoundFile("s3://b/k.db", "s3://b/", 5, 0.0, True, None, "abc-3")
    _verify(multi, {"ETag": '"abc-3"', "ContentLength": 5}, 5, "whatever")
    kms = FoundFile("s3://b/k.db", "s3://b/", 5, 0.0, True, None, etag)
    _verify(kms, {"ETag": f'"{etag}"', "ContentLength": 5, "ServerSideEncryption": "aws:kms"}, 5, "x")


def test_cache_is_lru_bounded_and_never_evicts_files_in_use(s3env, tmp_path: Path) -> None:  # noqa: ANN001
    import fcntl

    from dbembed.discover import s3 as s3mod

    client, settings = s3env
    body = _sqlite_bytes(tmp_path, "big.db", rows=200, pad=100)  # ~ 30 KB
    for name in ("one", "two", "three"):
        client.put_object(Bucket=BUCKET, Key=f"lru/{name}.db", Body=body)
    files = {f.path.rsplit("/", 1)[1]: f for f in s3mod.discover_s3("s3://sqlite-load-test/lru/", settings.sources)}
    small = settings.model_copy(update={"s3_cache_bytes": int(len(body) * 2.5)})  # room for two
    local: dict[str, Path] = {}
    for name in ("one.db", "two.db"):
        with s3mod.fetch(files[name], small.sources) as p:
            local[name] = p
        os.utime(p, (1_000_000 + len(local), 1_000_000 + len(local)))  # deterministic LRU order
    with s3mod.fetch(files["one.db"], small.sources):  # a hit refreshes "one" ...
        pass
    with s3mod.fetch(files["three.db"], small.sources) as p3:  # ... so "two" is the one evicted
        assert p3.exists()
    assert local["one.db"].exists() and p3.exists() and not local["two.db"].exists()

    tiny = settings.model_copy(update={"s3_cache_bytes": 10})  # smaller than any file
    with s3mod.fetch(files["two.db"], tiny.sources) as p2:
        assert p2.exists(), "a file being read is never evicted, even over the limit"
        assert (
            sqlite3.connect(f"file:{p2}?mode=ro", uri=True).execute("SELECT count(*) FROM orders").fetchone()
        )
    assert not p2.exists()  # evicted once released

    assert not p3.exists()  # everything else went too: the limit is tiny

    # Another worker process reading p3 holds a shared flock on it: eviction skips it.
    with s3mod.fetch(files["three.db"], settings.sources) as p3:  # default limit: stays cached
        pass
    fd = os.open(p3, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        s3mod.evict(tiny.sources)
        assert p3.exists()
    finally:
        os.close(fd)
    s3mod.evict(tiny.sources)
    assert not any(s3mod.cache_dir(settings.sources).iterdir())


def test_put_sidecar_next_to_object(s3env, tmp_path: Path) -> None:  # noqa: ANN001
    from dbembed.discover import s3 as s3mod

    client, settings = s3env
    client.put_object(Bucket=BUCKET, Key="side/s.db", Body=_sqlite_bytes(tmp_path, "s.db"))
    (found,) = list(s3mod.discover_s3("s3://sqlite-load-test/side/", settings.sources))
    payload = {"file_path": found.path, "status": "processed", "chunk_count": 3, "embedding_model": "m"}
    uri = s3mod.put_sidecar(found, payload, settings.sources)
    assert uri == "s3://sqlite-load-test/side/s.db.embedding_metadata.json"
    obj = client.get_object(Bucket=BUCKET, Key="side/s.db.embedding_metadata.json")
    assert obj["ContentType"] == "application/json"
    assert json.loads(obj["Body"].read()) == payload
    everything = settings.model_copy(update={"include": ["*"]})
    assert [f.path for f in s3mod.discover_s3("s3://sqlite-load-test/side/", everything.sources)] == [found.path]
