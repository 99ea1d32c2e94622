"""Settings precedence as documented: flags > ``DBEMBED_*`` env > TOML file > defaults (no database)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbembed.config import DEFAULT_MODEL, Settings, TableOverride, load_settings
from dbembed.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DBEMBED_* variable of the caller and no ./dbembed.toml; cwd is an empty temp dir."""
    for name in list(os.environ):
        if name.startswith("DBEMBED_"):
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


CONFIG = """
database_url = "postgresql://file@db.example.com/dbembed"
model = "local:from-file"
settle_s = 5
workers = 3
include = ["*.sqlite"]
include_views = true

[tables."Order Details"]
include_columns = ["ProductName", "Notes"]
template = "{ProductName}: {Notes}"

[tables.audit_log]
skip = true
"""


def test_defaults_without_any_source() -> None:
    s = load_settings()
    assert s.database_url is None and s.model == DEFAULT_MODEL
    assert s.settle_s == 60.0 and s.workers == 1 and s.include_views is False
    assert s.include == ["*.db", "*.sqlite", "*.sqlite3"] and s.tables == {}
    assert s.sidecar is True and s.verify is False


def test_file_beats_defaults_and_tables_are_parsed(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path / "c.toml", CONFIG))
    assert s.database_url == "postgresql://file@db.example.com/dbembed"
    assert s.model == "local:from-file" and s.settle_s == 5.0 and s.workers == 3
    assert s.include == ["*.sqlite"] and s.include_views is True
    od = s.tables["Order Details"]
    assert isinstance(od, TableOverride)
    assert od.include_columns == ["ProductName", "Notes"] and od.template == "{ProductName}: {Notes}"
    assert od.skip is False
    assert s.tables["audit_log"].skip is True and s.tables["audit_log"].include_columns is None
    assert s.chunk_overlap == 32  # untouched by the file: the default


def test_env_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBEMBED_SETTLE_S", "7.5")
    monkeypatch.setenv("DBEMBED_DATABASE_URL", "postgresql://env@db/x")
    monkeypatch.setenv("DBEMBED_INCLUDE_VIEWS", "false")
    monkeypatch.setenv("DBEMBED_INCLUDE", '["*.db"]')
    s = load_settings(write(tmp_path / "c.toml", CONFIG))
    assert s.settle_s == 7.5 and s.database_url == "postgresql://env@db/x"
    assert s.include_views is False and s.include == ["*.db"]
    assert s.workers == 3 and s.model == "local:from-file"  # not in the env: the file's value
    assert "Order Details" in s.tables


def test_flags_beat_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBEMBED_SETTLE_S", "7.5")
    monkeypatch.setenv("DBEMBED_WORKERS", "9")
    s = load_settings(write(tmp_path / "c.toml", CONFIG), settle_s=0.0, workers=2, include_views=False)
    assert s.settle_s == 0.0 and s.workers == 2 and s.include_views is False
    assert s.database_url == "postgresql://file@db.example.com/dbembed"


def test_none_flag_never_hides_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBEMBED_WORKERS", "4")
    s = load_settings(write(tmp_path / "c.toml", CONFIG), workers=None, settle_s=None, model=None)
    assert s.workers == 4 and s.settle_s == 5.0 and s.model == "local:from-file"


def test_env_beats_defaults_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBEMBED_MODEL", "openai:text-embedding-3-small")
    monkeypatch.setenv("DBEMBED_VERIFY", "1")
    s = load_settings()
    assert s.model == "openai:text-embedding-3-small" and s.verify is True


def test_dbembed_config_env_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = write(tmp_path / "chosen.toml", 'model = "local:chosen"\nsettle_s = 11\n')
    write(Path.cwd() / "dbembed.toml", 'model = "local:cwd"\n')
    monkeypatch.setenv("DBEMBED_CONFIG", str(chosen))
    s = load_settings()
    assert s.model == "local:chosen" and s.settle_s == 11.0
    # --config beats $DBEMBED_CONFIG
    other = write(tmp_path / "other.toml", 'model = "local:other"\n')
    assert load_settings(other).model == "local:other"


def test_dbembed_toml_in_cwd_is_the_fallback() -> None:
    write(Path.cwd() / "dbembed.toml", 'model = "local:cwd"\nsidecar = false\n')
    s = load_settings()
    assert s.model == "local:cwd" and s.sidecar is False


def test_dbembed_section_shares_the_file_with_other_tools(tmp_path: Path) -> None:
    text = "settle_s = 3\n\n[dbembed]\nworkers = 6\n\n[other_tool]\nx = 1\n"
    s = load_settings(write(tmp_path / "shared.toml", text))
    assert s.workers == 6 and s.settle_s == 3.0
    with pytest.raises(ConfigError, match="wrkers"):  # inside [dbembed] a typo is still an error
        load_settings(write(tmp_path / "typo.toml", "[dbembed]\nwrkers = 6\n"))


def test_unknown_key_names_the_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path / "typo.toml", 'databse_url = "postgresql://x@y/z"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "databse_url" in str(info.value) and str(path) in str(info.value)
    assert info.value.exit_code == 2


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.toml", "settle_s = [1,\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value) and "TOML" in str(info.value)


def test_bad_value_names_the_setting_and_file(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", 'vector_type = "float8"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "vector_type" in str(info.value) and str(path) in str(info.value)


def test_bad_env_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBEMBED_WORKERS", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "workers" in str(info.value).lower()


def test_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    monkeypatch.setenv("DBEMBED_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="gone.toml"):
        load_settings()


def test_loading_has_no_side_effects(tmp_path: Path) -> None:
    data = tmp_path / "never-created"
    s = load_settings(data_dir=data)
    assert s.resolved_data_dir() == data and not data.exists()
    assert isinstance(s, Settings)


def test_document_format_from_file_env_and_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().document_format == "table-columns"
    cfg = write(tmp_path / "c.toml", 'document_format = "columns"\n')
    assert load_settings(cfg).document_format == "columns"
    monkeypatch.setenv("DBEMBED_DOCUMENT_FORMAT", "values")
    assert load_settings(cfg).document_format == "values"  # env beats the file
    assert load_settings(cfg, document_format="table-columns").document_format == "table-columns"


def test_unknown_document_format_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path / "c.toml", 'document_format = "labels"\n')
    with pytest.raises(ConfigError, match="document_format must be one of table-columns, columns, values"):
        load_settings(cfg)
    monkeypatch.setenv("DBEMBED_DOCUMENT_FORMAT", "Values ")
    assert load_settings().document_format == "values"  # case and stray spaces do not matter
    monkeypatch.setenv("DBEMBED_DOCUMENT_FORMAT", "table+columns")
    with pytest.raises(ConfigError, match="document_format"):
        load_settings()
