"""dbembed.discover on real folder trees with real SQLite files."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import dbembed.discover as disc
from dbembed.config import SourcesSettings
from dbembed.discover import FoundFile, discover, file_hash, materialize
from dbembed.errors import UsageError


def sqlite_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.commit()
    conn.close()
    return path


def names(found: list[FoundFile], root: Path) -> list[str]:
    return sorted(os.path.relpath(f.path, root) for f in found)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    sqlite_file(root / "a.db")
    sqlite_file(root / "sub" / "b.sqlite")
    sqlite_file(root / "sub" / "deeper" / "c.sqlite3")
    sqlite_file(root / "sub" / "deeper" / "notes.txt")  # an SQLite file with a name we do not match
    (root / "a.db-wal").write_bytes(b"x" * 32)
    (root / "a.db-shm").write_bytes(b"x" * 32)
    (root / "sub" / "b.sqlite-journal").write_bytes(b"x" * 32)
    (root / "empty.db").write_bytes(b"")
    (root / "text.db").write_text("just some text, not a database\n" * 4)
    return root


def test_nested_matching_and_headers(tree: Path) -> None:
    found = list(discover([tree], SourcesSettings()))
    assert names(found, tree) == ["a.db", "empty.db", "sub/b.sqlite", "sub/deeper/c.sqlite3", "text.db"]
    by_name = {Path(f.path).name: f for f in found}
    assert by_name["a.db"].header_ok and by_name["a.db"].reason is None
    assert by_name["a.db"].size == (tree / "a.db").stat().st_size
    assert by_name["a.db"].mtime == pytest.approx((tree / "a.db").stat().st_mtime)
    assert by_name["empty.db"].reason == "empty file (0 bytes)" and not by_name["empty.db"].header_ok
    assert by_name["text.db"].reason == "not an SQLite database (bad header)"
    assert all(os.path.isabs(f.path) and f.root == str(tree) for f in found)


def test_side_files_never_yielded(tree: Path) -> None:
    found = list(discover([tree], SourcesSettings(include=["*"])))
    assert not [f for f in found if f.path.endswith(("-wal", "-shm", "-journal"))]
    assert "sub/deeper/notes.txt" in names(found, tree)


def test_include_and_exclude_globs(tree: Path) -> None:
    only_sub = list(discover([tree], SourcesSettings(include=["sub/*.sqlite*"])))
    assert names(only_sub, tree) == ["sub/b.sqlite", "sub/deeper/c.sqlite3"]
    no_deeper = list(discover([tree], SourcesSettings(exclude=["deeper", "text.*"])))
    assert names(no_deeper, tree) == ["a.db", "empty.db", "sub/b.sqlite"]
    by_path = list(discover([tree], SourcesSettings(exclude=["sub/deeper"])))
    assert "sub/deeper/c.sqlite3" not in names(by_path, tree)
    upper = sqlite_file(tree / "UPPER.DB")
    assert str(upper) in {f.path for f in discover([tree], SourcesSettings())}


def test_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = sqlite_file(tmp_path / "outside" / "secret.db")
    real = sqlite_file(root / "data" / "real.db")
    (root / "link_out.db").parent.mkdir(parents=True, exist_ok=True)
    (root / "link_out.db").symlink_to(outside)
    (root / "dir_out").symlink_to(outside.parent, target_is_directory=True)
    (root / "alias.db").symlink_to(real)  # same file twice
    (root / "a_dir_alias").symlink_to(root / "data", target_is_directory=True)  # same folder twice
    (root / "data" / "loop").symlink_to(root, target_is_directory=True)  # a cycle
    only_link = sqlite_file(tmp_path / "root" / "hidden" / "target.sqlite")
    (root / "hidden" / "x").mkdir()
    (root / "linked.db").symlink_to(only_link)
    found = list(discover([root], SourcesSettings()))
    assert names(found, root) == ["data/real.db", "hidden/target.sqlite"]  # real paths win over links
    assert not any("secret" in f.path for f in found)


def test_symlink_only_path_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    target = sqlite_file(root / "store" / "blob.bin")  # not matched by name itself
    (root / "nice.db").symlink_to(target)
    found = list(discover([root], SourcesSettings()))
    assert names(found, root) == ["nice.db"] and found[0].header_ok


def test_single_file_root_and_missing_root(tree: Path) -> None:
    found = list(discover([tree / "sub" / "deeper" / "notes.txt"], SourcesSettings()))
    assert len(found) == 1 and found[0].header_ok
    with pytest.raises(UsageError, match="nope"):
        discover([tree, tree / "nope"], SourcesSettings())  # fails before walking anything


def test_s3_roots_dispatch(monkeypatch: pytest.MonkeyPatch, tree: Path) -> None:
    calls = []

    def fake_discover(root: str, settings: SourcesSettings) -> Iterator[FoundFile]:
        calls.append(root)
        yield FoundFile("s3://bucket/x.db", root, 10, 1.0, True, etag="abc")

    monkeypatch.setattr(disc.s3, "discover_s3", fake_discover)
    found = list(discover(["s3://bucket/prefix/", tree / "a.db"], SourcesSettings()))
    assert calls == ["s3://bucket/prefix/"] and [f.path for f in found][0] == "s3://bucket/x.db"
    assert found[1].path == str(tree / "a.db")


def test_materialize_local_and_file_hash(tree: Path) -> None:
    (found,) = list(discover([tree / "a.db"], SourcesSettings()))
    with materialize(found, SourcesSettings()) as path:
        assert path == tree / "a.db"
    data = (tree / "a.db").read_bytes()
    assert file_hash(tree / "a.db") == hashlib.blake2b(data, digest_size=32).hexdigest()
    before = file_hash(tree / "a.db")
    with open(tree / "a.db", "ab") as fh:
        fh.write(b"\0")
    assert file_hash(tree / "a.db") != before


def test_unreadable_file_is_reported_not_raised(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbembed.read import header

    def denied(path: object, n: int = 256) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(header, "read_prefix", denied)
    found = list(discover([tree / "a.db"], SourcesSettings()))
    assert [(f.header_ok, f.reason) for f in found] == [(False, "permission denied")]
