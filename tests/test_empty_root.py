"""A root where nothing matches (an unmounted volume, a wrong --include) must not wipe the index:
what was indexed under it is kept, with a note, unless the user says the root is really empty."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import make_db, tickets_for
from tests.test_cli_e2e import cli_env, invoke  # noqa: F401 - the fixture is used by name


def _run(root: Path, url: str, *extra: str) -> dict:
    res = invoke("run", str(root), "--database-url", url, "--settle", "0", "--no-sidecar", "--json", *extra)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def _chunks(url: str) -> dict[str, tuple[str, int]]:
    page = json.loads(invoke("files", "--json", "--all", "--database-url", url).stdout)
    return {f["path"]: (f["status"], f["chunks"]) for f in page["items"]}


def test_an_empty_root_keeps_what_was_indexed_until_told_otherwise(cli_env: Path, database_url: str) -> None:  # noqa: F811
    root = cli_env / "volume"
    make_db(root / "a.db", tickets_for(1, 6))
    make_db(root / "b.db", tickets_for(2, 6))
    first = _run(root, database_url)
    assert first["files_ok"] == 2
    before = _chunks(database_url)
    assert all(status == "indexed" and n > 0 for status, n in before.values())

    parked = cli_env / "parked"  # the volume is unmounted: the folder is there, empty
    parked.mkdir()
    for p in root.iterdir():
        p.rename(parked / p.name)
    plan = json.loads(invoke("run", str(root), "--database-url", database_url, "--settle", "0", "--dry-run",
                             "--json").stdout)  # fmt: skip
    assert plan["files_deleted"] == 0
    again = _run(root, database_url)
    assert again["files_missing"] == 0
    assert any("no file matched, but 2 file(s)" in n and "--allow-empty-root" in n for n in again["notes"]), again
    assert _chunks(database_url) == before  # nothing stored before is lost

    # a wrong include is refused outright, naming the flag
    bad = invoke("run", str(root), "--database-url", database_url, "--include", "")
    assert bad.exit_code == 2 and "--include" in bad.stderr and "empty pattern" in bad.stderr, bad.stderr

    # the user says the root really is empty: its files go like any vanished file
    gone = _run(root, database_url, "--allow-empty-root")
    assert gone["files_missing"] == 2
    assert all(n == 0 for _, n in _chunks(database_url).values())


def test_one_empty_root_beside_a_live_one_keeps_only_its_own(cli_env: Path, database_url: str) -> None:  # noqa: F811
    live, dead = cli_env / "live", cli_env / "dead"
    make_db(live / "a.db", tickets_for(3, 4))
    make_db(dead / "b.db", tickets_for(4, 4))
    make_db(live / "c.db", tickets_for(5, 4))
    invoke("run", str(live), str(dead), "--database-url", database_url, "--settle", "0", "--no-sidecar")
    (dead / "b.db").unlink()
    (live / "c.db").unlink()
    res = invoke("run", str(live), str(dead), "--database-url", database_url, "--settle", "0", "--no-sidecar",
                 "--json")  # fmt: skip
    summary = json.loads(res.stdout)
    assert summary["files_missing"] == 1  # c.db under the live root is gone; b.db's empty root is kept
    chunks = _chunks(database_url)
    assert chunks[str((dead / "b.db").resolve())][1] > 0
    assert chunks[str((live / "c.db").resolve())] == ("missing", 0)
