"""Settings precedence as documented: flags > ``DBEMBED_*`` env > TOML file > defaults (no database)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbembed.config import (
    DEFAULT_MODEL,
    FLAT,
    SECTIONS,
    SHARED,
    Settings,
    TableOverride,
    env_values,
    load_settings,
)
from dbembed.config.sections import ApiSettings, ChatSettings, EmbedSettings, StoreSettings
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
    with pytest.raises(ConfigError, match="c.toml: document_format: must be one of table-columns, columns, values"):
        load_settings(cfg)
    monkeypatch.setenv("DBEMBED_DOCUMENT_FORMAT", "Values ")
    assert load_settings().document_format == "values"  # case and stray spaces do not matter
    monkeypatch.setenv("DBEMBED_DOCUMENT_FORMAT", "table+columns")
    with pytest.raises(ConfigError, match="DBEMBED_DOCUMENT_FORMAT: must be one of"):
        load_settings()


# --- sections ---------------------------------------------------------------------------------

# One valid non-default value per flat name: (TOML/kwarg value, env-var text, expected value).
SAMPLES: dict[type, tuple[object, str, object]] = {
    int: (7, "7", 7),
    float: (2.5, "2.5", 2.5),
    bool: (True, "true", True),
    str: ("abc", "abc", "abc"),
    Path: ("/tmp/x", "/tmp/x", Path("/tmp/x")),
    list: (["*.a", "*.b"], '["*.a", "*.b"]', ["*.a", "*.b"]),
}
SPECIAL: dict[str, tuple[object, str, object]] = {
    "vector_type": ("vector", "vector", "vector"),
    "search_mode": ("lexical", "lexical", "lexical"),
    "backend": ("openvino", "openvino", "openvino"),
    "precision": ("bf16", "bf16", "bf16"),
    "log_format": ("json", "json", "json"),
    "document_format": ("columns", "Columns ", "columns"),
    "chat_tables": ({"turns": "my_turns"}, '{"turns": "my_turns"}', {"turns": "my_turns"}),
    "tables": ({"t": {"skip": True}}, '{"t": {"skip": true}}', {"t": TableOverride(skip=True)}),
}


def sample(flat: str) -> tuple[object, str, object]:
    if flat in SPECIAL:
        return SPECIAL[flat]
    section, field = FLAT[flat][0]
    annotation = SECTIONS[section].model_fields[field].annotation
    for kind, value in SAMPLES.items():
        if getattr(annotation, "__origin__", None) is kind:
            return value
    for kind, value in SAMPLES.items():
        if kind is annotation or kind in getattr(annotation, "__args__", ()):
            return value
    raise AssertionError(f"no sample for {flat}: {annotation}")


def in_sections(s: Settings, flat: str) -> list[object]:
    return [getattr(getattr(s, section), field) for section, field in FLAT[flat]]


def test_every_old_flat_setting_still_has_its_name() -> None:
    """The 66 documented flat names, each mapped onto at least one section."""
    documented = {
        "database_url", "data_dir", "collection", "vector_type", "hnsw_m", "hnsw_ef_construction",
        "hnsw_ef_search", "search_mode", "db_secret_id", "db_iam_auth", "db_sslmode", "db_sslrootcert",
        "db_connect_timeout_s", "db_resume_wait_s", "aws_region", "aws_profile", "rds_data_endpoint_url",
        "include", "exclude", "settle_s", "verify", "force", "s3_endpoint_url", "s3_cache_bytes",
        "s3_metadata", "include_views", "busy_timeout_ms", "page_size", "snapshot_dir", "tables",
        "document_format", "chunk_overlap", "max_chunk_tokens", "model", "dimensions", "batch_size", "device", "backend",
        "precision", "concurrency", "max_retries", "request_timeout_s", "retry_backoff_s",
        "retry_backoff_max_s", "bedrock_endpoint_url", "openai_base_url", "openai_api_key_env",
        "query_prefix", "document_prefix", "workers", "embed_cache", "lease_s", "synchronous_commit",
        "sidecar", "keep_missing", "allow_empty_root", "log_format", "log_level", "emf", "metrics_namespace", "metrics_file",
        "host", "port", "max_k", "max_page_size", "max_request_bytes", "max_text_chars", "chat_tables",
        "chat_sync_batch", "chat_summarizer", "chat_summarizer_base_url", "chat_summarizer_api_key_env",
        "chat_summary_max_chars", "api_db_pool_size",
    }
    assert set(FLAT) == documented
    assert set(SECTIONS) == {"store", "sources", "text", "embed", "run", "api", "chat"}
    assert FLAT["chat_tables"] == (("chat", "tables"),) and FLAT["api_db_pool_size"] == (("api", "db_pool_size"),)
    assert FLAT["aws_region"] == (("store", "aws_region"), ("sources", "aws_region"), ("embed", "aws_region"))
    assert set(SHARED) == {"aws_region", "aws_profile", "max_retries", "request_timeout_s", "data_dir",
                           "max_k", "max_page_size", "max_text_chars"}


@pytest.mark.parametrize("flat", sorted(FLAT))
def test_flat_toml_key_lands_in_its_sections(flat: str, tmp_path: Path) -> None:
    import tomllib

    value, _, expected = sample(flat)
    text = f"[dbembed]\n{flat} = {_toml(value)}\n"
    assert tomllib.loads(text)["dbembed"][flat] is not None
    s = load_settings(write(tmp_path / "c.toml", text))
    assert in_sections(s, flat) == [expected] * len(FLAT[flat])
    assert getattr(s, flat) == expected  # the old flat attribute still reads


@pytest.mark.parametrize("flat", sorted(FLAT))
def test_flat_env_var_lands_in_its_sections(flat: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, env, expected = sample(flat)
    monkeypatch.setenv(f"DBEMBED_{flat.upper()}", env)
    assert in_sections(load_settings(), flat) == [expected] * len(FLAT[flat])
    assert in_sections(Settings(), flat) == [expected] * len(FLAT[flat])  # direct construction too
    assert env_values() == {flat: env if flat not in ("include", "exclude", "tables", "chat_tables")
                            else json_value(env)}


@pytest.mark.parametrize("flat", sorted(FLAT))
def test_flat_flag_and_attribute_assignment(flat: str) -> None:
    value, _, expected = sample(flat)
    assert in_sections(load_settings(**{flat: value}), flat) == [expected] * len(FLAT[flat])
    s = Settings()
    setattr(s, flat, value)
    assert in_sections(s, flat) == [expected] * len(FLAT[flat])
    copied = Settings().model_copy(update={flat: value})
    assert in_sections(copied, flat) == [expected] * len(FLAT[flat])


def json_value(text: str) -> object:
    import json

    return json.loads(text)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


SECTIONED = """
workers = 2
aws_region = "eu-west-1"

[embed]
batch_size = 16
aws_region = "us-east-1"     # Bedrock elsewhere than the database

[chat]
tables = {turns = "my_turns"}
sync_batch = 10

[tables.audit_log]
skip = true
"""


def test_sectioned_toml(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path / "c.toml", SECTIONED))
    assert s.embed.batch_size == 16 and s.run.workers == 2
    assert s.embed.aws_region == "us-east-1" and s.store.aws_region == s.sources.aws_region == "eu-west-1"
    assert s.chat.tables == {"turns": "my_turns"} and s.chat_tables == {"turns": "my_turns"}
    assert s.chat.sync_batch == 10 and s.sources.tables["audit_log"].skip is True
    assert isinstance(s.embed, EmbedSettings) and isinstance(s.store, StoreSettings)


def test_sectioned_keys_follow_the_same_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "c.toml", SECTIONED)
    monkeypatch.setenv("DBEMBED_BATCH_SIZE", "32")
    monkeypatch.setenv("DBEMBED_AWS_REGION", "ap-south-1")  # env beats even a sectioned file key
    s = load_settings(path)
    assert s.embed.batch_size == 32 and s.embed.aws_region == s.store.aws_region == "ap-south-1"
    s = load_settings(path, batch_size=4, embed={"aws_region": "sa-east-1"})
    assert s.embed.batch_size == 4 and s.embed.aws_region == "sa-east-1" and s.store.aws_region == "ap-south-1"
    assert s.run.workers == 2 and s.chat.sync_batch == 10  # file values under all of it


def test_sectioned_unknown_and_invalid_keys_are_named(tmp_path: Path) -> None:
    for text, name in [
        ("[embed]\nbach_size = 3\n", "embed.bach_size"),
        ("[embed]\nchunk_overlap = 3\n", "embed.chunk_overlap"),  # a real key, but of [text]
        ("[stor]\nhnsw_m = 3\n", "stor"),
        ("embed = 3\n", "embed"),
        ("[store]\nvector_type = \"float8\"\n", "vector_type"),
        ("[run]\nworkers = \"many\"\n", "workers"),
    ]:
        path = write(tmp_path / "bad.toml", text)
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert name in str(info.value) and str(path) in str(info.value), (text, str(info.value))


def test_constructors_and_copies_keep_sections_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBEMBED_BATCH_SIZE", "8")
    a = Settings(embed=EmbedSettings(model="local:x"), api={"port": 9000}, workers=3)
    assert a.embed.model == "local:x" and a.embed.batch_size == 8  # env fills what the section left unset
    assert a.api.port == 9000 and a.port == 9000 and a.run.workers == 3
    b = a.model_copy(update={"collection": "other", "chat": ChatSettings(sync_batch=1)})
    b.workers = 5
    b.api.port = 1
    assert a.run.workers == 3 and a.api.port == 9000 and a.collection is None  # the original is untouched
    assert b.store.collection == "other" and b.chat.sync_batch == 1
    # A full dump round-trips (worker processes rebuild their settings this way), and a flat key
    # written after the dump still wins.
    data = a.model_dump(mode="json")
    data["collection"] = "mine"
    c = Settings(**data)
    assert c.store.collection == "mine" and c.embed == a.embed and c.api == a.api
    with pytest.raises(ConfigError, match="nonsense"):
        Settings(nonsense=1)
    with pytest.raises(ValueError, match="vector_type"):
        a.vector_type = "float8"
    assert isinstance(a.api, ApiSettings)


def test_config_does_not_import_the_embed_layer() -> None:
    import subprocess
    import sys

    code = "import sys, dbembed.config; print(sorted(m for m in sys.modules if m.startswith('dbembed.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "dbembed.embed" not in out and "dbembed.config.sections" in out


def test_configuration_doc_lists_every_key_in_its_section() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    for section, model in SECTIONS.items():
        body = doc.split(f"## `[{section}]`", 1)[1].split("\n## ", 1)[0]
        for field in model.model_fields:
            assert f"`{field}`" in body, (section, field)
    for flat, targets in SHARED.items():
        for section, _ in targets:
            assert f"`{flat}`" in doc.split(f"## `[{section}]`", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [("workers", -3), ("workers", 0), ("batch_size", 0), ("settle_s", -5), ("dimensions", -5),
     ("api_db_pool_size", 0), ("page_size", 0), ("hnsw_ef_search", 0), ("lease_s", 0),
     ("workers", 100_000), ("concurrency", 10**40), ("api_db_pool_size", 257), ("max_retries", 101),
     ("batch_size", 10**6), ("page_size", 10**7), ("lease_s", float("inf")), ("lease_s", 1e300),
     ("settle_s", float("nan")), ("settle_s", 1e300), ("request_timeout_s", float("inf"))],
)
def test_out_of_range_numbers_are_refused_naming_the_key(name: str, value: float, monkeypatch) -> None:  # noqa: ANN001
    """Flags/keywords and env vars alike: a ConfigError naming the setting, no pydantic help links."""
    from dbembed.config import load_settings
    from dbembed.errors import ConfigError

    with pytest.raises(ConfigError) as flag_error:
        load_settings(**{name: value})
    monkeypatch.setenv(f"DBEMBED_{name.upper()}", str(value))
    with pytest.raises(ConfigError) as env_error:
        load_settings()
    for err, named in ((flag_error, f"argument {name}: "), (env_error, f"DBEMBED_{name.upper()}: ")):
        text = str(err.value)
        assert named in text and "errors.pydantic.dev" not in text, text


def test_bad_values_are_named_as_the_user_gave_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value is named by its source: the flag, the env var, or the file and the key as written
    (flat or sectioned), never by the internal section path; the value is echoed, cut to 80 chars."""
    flags = {"workers": "--workers", "settle_s": "--settle"}
    with pytest.raises(ConfigError) as info:
        load_settings(flag_names=flags, workers=0)
    assert str(info.value) == "invalid setting --workers: input should be greater than or equal to 1 (got 0)"
    assert "run.workers" not in str(info.value)
    with pytest.raises(ConfigError, match=r"^invalid setting argument workers: .*\(got 0\)$"):
        load_settings(workers=0)  # the Python API names the keyword argument
    monkeypatch.setenv("DBEMBED_WORKERS", "0")
    with pytest.raises(ConfigError, match=r"^invalid setting DBEMBED_WORKERS: .*\(got '0'\)$"):
        load_settings()
    assert load_settings(flag_names=flags, workers=2).workers == 2  # a good flag hides the bad env var
    monkeypatch.delenv("DBEMBED_WORKERS")
    sectioned = write(tmp_path / "dbembed.toml", '[run]\nworkers = 0\n[tables."My T"]\nskip = "maybe"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(sectioned)
    text = str(info.value)
    assert f"{sectioned}: [run] workers: input should be greater than or equal to 1 (got 0)" in text, text
    assert f'{sectioned}: tables."My T".skip: input should be a valid boolean' in text, text
    flat = write(tmp_path / "flat.toml", "workers = -2\nsettle_s = -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(flat, flag_names=flags, settle_s=-5.0)  # the flag, not the file, set settle_s
    assert f"{flat}: workers: " in str(info.value) and "--settle: " in str(info.value), str(info.value)
    assert f"{flat}: settle_s" not in str(info.value)
    long = "x" * 500
    with pytest.raises(ConfigError) as info:
        load_settings(flag_names={"search_mode": "--mode"}, search_mode=long)
    assert "--mode: must be 'hybrid', 'vector' or 'lexical' (got 'xxx" in str(info.value)
    assert long not in str(info.value) and len(str(info.value)) < 160


def test_unknown_keys_and_bad_env_json_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "dbembed.toml", "wrkers = 2\n")
    with pytest.raises(ConfigError, match=r"dbembed.toml: unknown setting 'wrkers' \(did you mean 'workers'\?\)"):
        load_settings(path)
    monkeypatch.setenv("DBEMBED_INCLUDE", "*.db")  # lists are JSON in env vars
    with pytest.raises(ConfigError, match="^invalid setting DBEMBED_INCLUDE: not valid JSON"):
        load_settings()


def test_cli_names_the_flag_env_var_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dbembed.cli.main import app

    def stderr(*args: str) -> str:
        res = CliRunner().invoke(app, list(args))
        assert res.exit_code == 2, res.output
        return res.stderr

    assert "error: invalid setting --workers: input should be greater than or equal to 1 (got 0)" in stderr(
        "run", str(tmp_path), "--workers", "0"
    )
    assert "--settle: " in stderr("run", str(tmp_path), "--settle", "-1")
    assert "--views" not in stderr("run", str(tmp_path), "--settle", "-1")
    monkeypatch.setenv("DBEMBED_HNSW_M", "1")
    assert "invalid setting DBEMBED_HNSW_M: " in stderr("status")
    monkeypatch.delenv("DBEMBED_HNSW_M")
    cfg = write(tmp_path / "my.toml", '[store]\nvector_type = "float8"\n')
    assert f"invalid setting {cfg}: [store] vector_type: must be 'halfvec' or 'vector' (got 'float8')" in stderr(
        "files", "--config", str(cfg)
    )


def test_a_huge_workers_flag_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """--workers 100000 (a typo) must not try to start 100000 processes: exit 2 naming the flag and the bound."""
    import subprocess
    import sys

    tree = tmp_path / "tree"
    tree.mkdir()
    dbembed = Path(sys.executable).with_name("dbembed")
    p = subprocess.run(
        [str(dbembed), "run", str(tree), "--workers", "100000", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "--workers" in p.stderr and "less than or equal to 256" in p.stderr, p.stderr
    assert not (tmp_path / "d").exists()  # refused before the embedded database was created


def test_a_database_url_of_another_database_is_refused_naming_the_flag_without_its_password() -> None:
    from typer.testing import CliRunner

    from dbembed.cli.main import app

    res = CliRunner().invoke(app, ["status", "--database-url", "mysql://bob:s3cret@db.example/app"])
    assert res.exit_code == 2, res.output
    assert "invalid setting --database-url: scheme 'mysql' is not PostgreSQL" in res.stderr, res.stderr
    assert "s3cret" not in res.stderr and "bob:****@" in res.stderr
    for url, shown in (("mysql://bob:s3c@ret@db.example/app", "mysql://bob:****@db.example/app"),
                       ("bob:s3cret@db.example/app", "****@db.example/app")):  # libpq cannot parse it
        res = CliRunner().invoke(app, ["status", "--database-url", url])
        assert res.exit_code == 2 and shown in res.stderr and "s3c" not in res.stderr, res.stderr
    from dbembed.config import load_settings

    for ok in ("postgresql://u@h/db", "postgres://h/db", "host=h dbname=db", "rds-data://arn:x/db?secret_arn=y"):
        assert load_settings(database_url=ok).store.database_url == ok


def test_a_misspelled_environment_variable_is_reported_once(monkeypatch, caplog) -> None:  # noqa: ANN001
    """pydantic-settings ignores DBEMBED_WORKRS: the user is told, with the variable they meant."""
    import logging

    from dbembed import config
    from dbembed.config import load_settings

    monkeypatch.setattr(config, "_warned_env", set())
    monkeypatch.setenv("DBEMBED_WORKRS", "2")
    monkeypatch.setenv("DBEMBED_CACHE_DIR", "/tmp/x")  # read elsewhere: not a typo
    with caplog.at_level(logging.WARNING, logger="dbembed.config"):
        assert load_settings().run.workers == 1
        load_settings()
    warned = [r.getMessage() for r in caplog.records if "DBEMBED_WORKRS" in r.getMessage()]
    assert warned == ["environment variable DBEMBED_WORKRS is not a dbembed setting and is ignored"
                      " (did you mean DBEMBED_WORKERS?)"]  # fmt: skip
    assert not [r for r in caplog.records if "CACHE_DIR" in r.getMessage()]


def test_mask_url_hides_every_form_of_password() -> None:
    from dbembed.errors import mask_url

    assert mask_url("postgresql://bob:s3c@r/et@db.example:5432/app") == "postgresql://bob:****@db.example:5432/app"
    assert mask_url("bob:s3cret@db.example/app") == "****@db.example/app"
    assert mask_url("host=h password=s3cret dbname=x") == "host=h password=**** dbname=x"
    assert mask_url("postgresql://db.example/app") == "postgresql://db.example/app"
