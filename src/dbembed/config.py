"""One typed settings object for every surface (CLI, API, library).

Precedence, highest first: explicit overrides (CLI flags / keyword arguments),
``DBEMBED_*`` environment variables, the TOML file, then the defaults below.
The TOML file is ``--config PATH``, else ``$DBEMBED_CONFIG``, else
``./dbembed.toml`` when it exists.  Loading settings has no side effects: it
creates no directory and starts no server.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dbembed.errors import ConfigError

DEFAULT_MODEL = "local:all-MiniLM-L6-v2"
# How a row's text columns become its document (dbembed.text.document): table + column labels,
# column labels only, or the values alone.
DOCUMENT_FORMATS = ("table-columns", "columns", "values")


class TableOverride(BaseModel):
    """Per-table extraction rules from the config file (``[tables."Name"]``)."""

    skip: bool = False
    include_columns: list[str] | None = None
    exclude_columns: list[str] = Field(default_factory=list)
    # str.format-style template over column names, e.g. "{Title} by {Artist}".
    template: str | None = None


class Settings(BaseSettings):
    """Everything dbembed can be told.  Field names double as env vars (``DBEMBED_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="DBEMBED_", extra="ignore", validate_assignment=True)

    # --- store -----------------------------------------------------------------
    # Empty means: the embedded PostgreSQL server under data_dir/pgdata.
    database_url: str | None = None
    data_dir: Path | None = None  # default: platformdirs user data dir
    collection: str | None = None  # default: derived from the model id
    vector_type: str = "halfvec"  # "halfvec" or "vector"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 100
    # Default search mode: "hybrid" (vector + lexical fused by RRF), "vector" or "lexical".
    search_mode: str = "hybrid"

    # --- AWS / Aurora connection (issue 7) ---------------------------------------
    db_secret_id: str | None = None  # Secrets Manager ARN or name with RDS credentials
    db_iam_auth: bool = False
    db_sslmode: str | None = None
    db_sslrootcert: Path | None = None
    db_connect_timeout_s: float = 10.0
    # How long to retry a refused/starting server (Aurora resuming from auto-pause takes up to ~2 min).
    # None = 180 s for AWS targets (RDS/Aurora host, Secrets Manager, IAM auth), 10 s elsewhere.
    db_resume_wait_s: float | None = None
    aws_region: str | None = None
    aws_profile: str | None = None
    # RDS Data API endpoint (a VPC endpoint, or a local stand-in); default: the region's.
    # The Data API itself is selected by database_url = "rds-data://<cluster-arn>/<db>?secret_arn=..."
    rds_data_endpoint_url: str | None = None

    # --- discovery ---------------------------------------------------------------
    include: list[str] = Field(default_factory=lambda: ["*.db", "*.sqlite", "*.sqlite3"])
    exclude: list[str] = Field(default_factory=list)
    settle_s: float = 60.0
    verify: bool = False  # confirm unchanged size/mtime with a content hash
    force: bool = False  # re-read every file (unchanged rows are still not re-embedded)
    s3_endpoint_url: str | None = None  # S3-compatible endpoint (MinIO, moto); default: AWS
    s3_cache_bytes: int = 20 * 1024**3  # local cache of downloaded S3 objects (LRU), in bytes
    s3_metadata: bool = False  # also write each file's metadata JSON next to its S3 object

    # --- reading -----------------------------------------------------------------
    include_views: bool = False
    busy_timeout_ms: int = 5000
    page_size: int = 2000
    snapshot_dir: Path | None = (
        None  # where private snapshots of WAL/changing files go (default: system temp)
    )
    tables: dict[str, TableOverride] = Field(default_factory=dict)

    # --- text --------------------------------------------------------------------
    document_format: str = "table-columns"  # one of DOCUMENT_FORMATS; a table's template wins
    chunk_overlap: int = 32  # tokens shared by consecutive chunks of one row
    max_chunk_tokens: int | None = None  # default: the model's own limit

    # --- embedding ---------------------------------------------------------------
    model: str = DEFAULT_MODEL
    dimensions: int | None = None  # for models that can shorten (Titan v2, OpenAI v3)
    batch_size: int | None = None  # default: the provider's own
    device: str | None = None  # "cpu", "cuda", ... (default: auto)
    # Local models: inference runtime (docs/performance.md).  auto = fastest here whose vectors
    # keep cosine >= 0.999 to torch fp32 (measured once per machine and model, cached).
    backend: str = "auto"  # auto | torch | openvino | onnx
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 | int8 (int8: own collection)
    concurrency: int = 4  # in-flight requests for remote providers
    max_retries: int = 8
    request_timeout_s: float = 60.0
    retry_backoff_s: float = 0.5  # first retry delay for remote providers (doubles, with jitter)
    retry_backoff_max_s: float = 30.0  # cap on one retry delay (a server's Retry-After may ask for more)
    bedrock_endpoint_url: str | None = None
    openai_base_url: str | None = None
    openai_api_key_env: str = "OPENAI_API_KEY"
    query_prefix: str | None = None
    document_prefix: str | None = None

    # --- run ---------------------------------------------------------------------
    workers: int = 1
    embed_cache: bool = (
        True  # embed each distinct text once (off: every chunk is embedded; a benchmark baseline)
    )
    lease_s: float = 60.0
    # Off: indexing commits do not wait for the WAL flush (each file stays atomic; a database crash can
    # only undo the last moments of work, which the next run redoes).  On: every file is durable at once.
    synchronous_commit: bool = False
    sidecar: bool = True
    keep_missing: bool = False  # keep chunks of vanished files (status "missing") instead of deleting

    # --- monitoring (issue 7) ------------------------------------------------------
    log_format: str = "text"  # "text" (human) or "json" (one object per line, for CloudWatch Logs)
    log_level: str | None = None  # default: INFO for json logs, WARNING for text
    emf: bool = False  # print CloudWatch Embedded Metric Format lines for each run
    metrics_namespace: str = "dbembed"  # CloudWatch namespace of the EMF metrics
    metrics_file: Path | None = None  # Prometheus textfile (node_exporter textfile collector)

    # --- API / chat (issue 6) ----------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    max_k: int = 100
    max_page_size: int = 200
    max_request_bytes: int = 1_000_000  # larger request bodies get HTTP 413
    max_text_chars: int = 100_000  # longest user input / bot response / query accepted
    chat_tables: dict[str, str] = Field(
        default_factory=dict
    )  # map onto existing doc-003 tables (docs/chat.md)
    chat_sync_batch: int = 256  # turns per committed sync batch
    chat_summarizer: str | None = None  # None: memory = turn text; "openai:MODEL" or "bedrock:MODEL-ID"
    chat_summarizer_base_url: str | None = None  # OpenAI-compatible base URL (default: openai_base_url)
    chat_summarizer_api_key_env: str = "OPENAI_API_KEY"  # env var holding the summarizer's API key
    chat_summary_max_chars: int = 20_000  # transcript characters sent to the summarizer per chat
    api_db_pool_size: int = 4  # PostgreSQL connections held by one API process

    @field_validator("search_mode")
    @classmethod
    def _check_search_mode(cls, v: str) -> str:
        if v not in ("hybrid", "vector", "lexical"):
            raise ValueError("search_mode must be 'hybrid', 'vector' or 'lexical'")
        return v

    @field_validator("document_format")
    @classmethod
    def _check_document_format(cls, v: str) -> str:
        v = v.strip().lower()
        if v not in DOCUMENT_FORMATS:
            raise ValueError(f"document_format must be one of {', '.join(DOCUMENT_FORMATS)}")
        return v

    @field_validator("vector_type")
    @classmethod
    def _check_vector_type(cls, v: str) -> str:
        if v not in ("halfvec", "vector"):
            raise ValueError("vector_type must be 'halfvec' or 'vector'")
        return v

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, v: str) -> str:
        from dbembed.embed.backends import BACKENDS

        if v not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}")
        return v

    @field_validator("precision")
    @classmethod
    def _check_precision(cls, v: str) -> str:
        from dbembed.embed.backends import PRECISIONS

        if v not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        return v

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, v: str) -> str:
        if v not in ("text", "json"):
            raise ValueError("log_format must be 'text' or 'json'")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (flags) > env > TOML (passed in through init by load_settings, see below).
        return (init_settings, env_settings)

    # ------------------------------------------------------------------------------
    def resume_wait_s(self, conninfo: str = "") -> float:
        if self.db_resume_wait_s is not None:
            return max(0.0, float(self.db_resume_wait_s))
        aws = bool(self.db_secret_id or self.db_iam_auth) or ".rds.amazonaws.com" in (conninfo or "")
        aws = aws or (conninfo or self.database_url or "").startswith("rds-data://")
        return 180.0 if aws else 10.0

    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return Path(self.data_dir).expanduser()
        import platformdirs

        return Path(platformdirs.user_data_dir("dbembed"))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    # Allow an optional [dbembed] table so the file can be shared with other tools: then the
    # other top-level keys that are not settings belong to those tools and are left alone.
    if isinstance(data.get("dbembed"), dict):
        top = {k: v for k, v in data.items() if k != "dbembed" and k in Settings.model_fields}
        data = {**top, **data["dbembed"]}
    return data


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build settings: overrides (flags) > DBEMBED_* env > TOML file > defaults.

    ``None`` overrides are ignored so that an unset CLI flag never hides an env var.
    """
    path: Path | None = Path(config_file) if config_file else None
    if path is None and os.environ.get("DBEMBED_CONFIG"):
        path = Path(os.environ["DBEMBED_CONFIG"])
    if path is None and Path("dbembed.toml").is_file():
        path = Path("dbembed.toml")
    file_values = _read_toml(path) if path is not None else {}

    flags = {k: v for k, v in overrides.items() if v is not None}
    try:
        # Env beats file: build env+defaults first, then lay the file under the env values.
        env_only = Settings()
        env_set = {f for f in Settings.model_fields if f"DBEMBED_{f.upper()}" in os.environ}
        merged: dict[str, Any] = {}
        for key, value in file_values.items():
            if key not in Settings.model_fields:
                raise ConfigError(f"unknown setting {key!r} in {path}")
            merged[key] = value
        for key in env_set:
            merged[key] = getattr(env_only, key)
        merged.update(flags)
        return Settings(**merged)
    except ConfigError:
        raise
    except Exception as exc:  # pydantic ValidationError and friends
        where = f" (config file {path})" if path else ""
        raise ConfigError(f"invalid settings{where}: {exc}") from exc
