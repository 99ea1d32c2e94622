"""The sections of :class:`dbembed.config.Settings`: one pydantic model per layer.

Each layer receives only its own section (``settings.store``, ``.sources``, ``.text``,
``.embed``, ``.run``, ``.api``, ``.chat``).  Field names are the flat TOML keys / env-var
names, except that a section's own prefix is dropped (``chat_tables`` -> ``chat.tables``,
``api_db_pool_size`` -> ``api.db_pool_size``).  A few settings are needed by several layers
and appear in each of their sections (see ``SHARED`` in ``dbembed.config``): AWS region and
profile, request timeout, retries and the API's request limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

DEFAULT_MODEL = "local:all-MiniLM-L6-v2"
# Local models' inference runtimes (docs/performance.md); dbembed.embed.backends uses these.
BACKENDS = ("auto", "torch", "openvino", "onnx")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
# Upper bounds of values that size processes, threads, connections or retries: a typo such as
# --workers 100000 is refused instead of starting that many processes.
MAX_PARALLEL = 256
MAX_RETRIES = 100
MAX_SECONDS = 366 * 24 * 3600  # timeouts, waits, leases: at most a year (PostgreSQL intervals, sleeps)
# How a row's text columns become its document (dbembed.text.document): table + column labels,
# column labels only, or the values alone.
DOCUMENT_FORMATS = ("table-columns", "columns", "values")


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    # The message names no setting: the caller names it as the user gave it (flag, env var, file key).
    if value not in allowed:
        quoted = [f"'{a}'" for a in allowed]
        raise ValueError(f"must be {', '.join(quoted[:-1])} or {quoted[-1]}")
    return value


class TableOverride(BaseModel):
    """Per-table extraction rules from the config file (``[tables."Name"]``)."""

    skip: bool = False
    include_columns: list[str] | None = None
    exclude_columns: list[str] = Field(default_factory=list)
    # str.format-style template over column names, e.g. "{Title} by {Artist}".
    template: str | None = None


class Section(BaseModel):
    """Base of every section: unknown keys are errors, assignments are validated."""

    # allow_inf_nan=False: inf/nan seconds or sizes are refused here, not as an overflow deep in a run
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class _DataDir(Section):
    data_dir: Path | None = None  # default: platformdirs user data dir

    def resolved_data_dir(self) -> Path:
        """``data_dir``, else the platform's user data directory for dbembed (not created)."""
        if self.data_dir is not None:
            return Path(self.data_dir).expanduser()
        import platformdirs

        return Path(platformdirs.user_data_dir("dbembed"))


class StoreSettings(_DataDir):
    """PostgreSQL: where the index lives, how to connect (incl. AWS/Aurora), index shape."""

    # Empty means: the embedded PostgreSQL server under data_dir/pgdata.
    database_url: str | None = None
    collection: str | None = None  # default: derived from the model id
    vector_type: str = "halfvec"  # "halfvec" or "vector"
    hnsw_m: Annotated[int, Field(ge=2, le=100)] = 16
    hnsw_ef_construction: Annotated[int, Field(ge=4, le=1000)] = 64
    hnsw_ef_search: Annotated[int, Field(ge=1, le=1000)] = 100
    # Default search mode: "hybrid" (vector + lexical fused by RRF), "vector" or "lexical".
    search_mode: str = "hybrid"
    db_secret_id: str | None = None  # Secrets Manager ARN or name with RDS credentials
    db_iam_auth: bool = False
    db_sslmode: str | None = None
    db_sslrootcert: Path | None = None
    db_connect_timeout_s: Annotated[float, Field(gt=0, le=MAX_SECONDS)] = 10.0
    # How long to retry a refused/starting server (Aurora resuming from auto-pause takes up to ~2 min).
    # None = 180 s for AWS targets (RDS/Aurora host, Secrets Manager, IAM auth), 10 s elsewhere.
    db_resume_wait_s: Annotated[float | None, Field(ge=0, le=MAX_SECONDS)] = None
    aws_region: str | None = None
    aws_profile: str | None = None
    # RDS Data API endpoint (a VPC endpoint, or a local stand-in); default: the region's.
    # The Data API itself is selected by database_url = "rds-data://<cluster-arn>/<db>?secret_arn=..."
    rds_data_endpoint_url: str | None = None
    request_timeout_s: Annotated[float, Field(gt=0, le=MAX_SECONDS)] = 60.0  # one RDS Data API call (at least 60 s)

    @field_validator("search_mode")
    @classmethod
    def _check_search_mode(cls, v: str) -> str:
        return _one_of(v, ("hybrid", "vector", "lexical"))

    @field_validator("vector_type")
    @classmethod
    def _check_vector_type(cls, v: str) -> str:
        return _one_of(v, ("halfvec", "vector"))

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: str | None) -> str | None:
        scheme = v.split("://", 1)[0].lower() if v and "://" in v else None
        if scheme is not None and scheme not in ("postgresql", "postgres", "rds-data"):
            raise ValueError(
                f"scheme {scheme!r} is not PostgreSQL: use postgresql://USER@HOST:PORT/DB, a libpq string"
                " (host=... dbname=...) or rds-data://CLUSTER-ARN/DB?secret_arn=..."
            )
        return v

    def resume_wait_s(self, conninfo: str = "") -> float:
        """Seconds to keep retrying a refused or starting server (Aurora auto-pause resume)."""
        if self.db_resume_wait_s is not None:
            return max(0.0, float(self.db_resume_wait_s))
        aws = bool(self.db_secret_id or self.db_iam_auth) or ".rds.amazonaws.com" in (conninfo or "")
        aws = aws or (conninfo or self.database_url or "").startswith("rds-data://")
        return 180.0 if aws else 10.0


class SourcesSettings(_DataDir):
    """Finding source files (local or S3) and reading SQLite safely."""

    include: list[str] = Field(default_factory=lambda: ["*.db", "*.sqlite", "*.sqlite3"])
    exclude: list[str] = Field(default_factory=list)

    @field_validator("include", "exclude")
    @classmethod
    def _check_patterns(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("an empty pattern matches no file; give a glob such as '*.db'")
        return v
    settle_s: Annotated[float, Field(ge=0, le=MAX_SECONDS)] = 60.0
    verify: bool = False  # confirm unchanged size/mtime with a content hash
    s3_endpoint_url: str | None = None  # S3-compatible endpoint (MinIO, moto); default: AWS
    s3_cache_bytes: int = 20 * 1024**3  # local cache of downloaded S3 objects (LRU), in bytes
    s3_metadata: bool = False  # also write each file's metadata JSON next to its S3 object
    aws_region: str | None = None
    aws_profile: str | None = None
    max_retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = 8  # S3 client attempts (at least 3)
    include_views: bool = False
    busy_timeout_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 5000  # at most an hour
    page_size: Annotated[int, Field(ge=1, le=1_000_000)] = 2000
    snapshot_dir: Path | None = None  # private snapshots of WAL/changing files (default: temp)
    tables: dict[str, TableOverride] = Field(default_factory=dict)


class TextSettings(Section):
    """Rows -> documents -> token-aware chunks."""

    document_format: str = "table-columns"  # one of DOCUMENT_FORMATS; a table's template wins
    chunk_overlap: Annotated[int, Field(ge=0)] = 32  # tokens shared by consecutive chunks of one row
    max_chunk_tokens: Annotated[int | None, Field(ge=1)] = None  # default: the model's own limit

    @field_validator("document_format")
    @classmethod
    def _check_document_format(cls, v: str) -> str:
        v = v.strip().lower()
        if v not in DOCUMENT_FORMATS:
            raise ValueError(f"must be one of {', '.join(DOCUMENT_FORMATS)}")
        return v


class EmbedSettings(_DataDir):
    """The embedding provider: which model, where it runs, how it is called."""

    model: str = DEFAULT_MODEL
    dimensions: Annotated[int | None, Field(ge=1)] = None  # for models that can shorten (Titan v2, OpenAI v3)
    batch_size: Annotated[int | None, Field(ge=1, le=100_000)] = None  # default: the provider's own
    device: str | None = None  # "cpu", "cuda", ... (default: auto)
    # Local models: inference runtime (docs/performance.md).  auto = fastest here whose vectors
    # keep cosine >= 0.999 to torch fp32 (measured once per machine and model, cached).
    backend: str = "auto"  # auto | torch | openvino | onnx (any case)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (any case); int8 is refused (dbembed.embed.backends)
    concurrency: Annotated[int, Field(ge=1, le=MAX_PARALLEL)] = 4  # in-flight requests for remote providers
    max_retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = 8
    request_timeout_s: Annotated[float, Field(gt=0, le=MAX_SECONDS)] = 60.0
    retry_backoff_s: Annotated[float, Field(ge=0, le=MAX_SECONDS)] = 0.5  # first retry delay for remote providers (doubles, with jitter)
    retry_backoff_max_s: Annotated[float, Field(ge=0, le=MAX_SECONDS)] = 30.0  # cap on one retry delay (a server's Retry-After may ask for more)
    aws_region: str | None = None
    aws_profile: str | None = None
    bedrock_endpoint_url: str | None = None
    openai_base_url: str | None = None
    openai_api_key_env: str = "OPENAI_API_KEY"
    query_prefix: str | None = None
    document_prefix: str | None = None

    @field_validator("backend", "precision")
    @classmethod
    def _check_runtime(cls, v: str, info: ValidationInfo) -> str:
        allowed = BACKENDS if info.field_name == "backend" else PRECISIONS
        value = v.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value


class RunSettings(Section):
    """Indexing runs: workers, leases, commits, and what a run reports (logs, metrics)."""

    workers: Annotated[int, Field(ge=1, le=MAX_PARALLEL)] = 1  # processes on this machine
    force: bool = False  # re-read every file (unchanged rows are still not re-embedded)
    # Off: every chunk is embedded, even repeated texts (a benchmark baseline).
    embed_cache: bool = True
    lease_s: Annotated[float, Field(gt=0, le=MAX_SECONDS)] = 60.0
    # Off: indexing commits do not wait for the WAL flush (each file stays atomic; a database crash can
    # only undo the last moments of work, which the next run redoes).  On: every file is durable at once.
    synchronous_commit: bool = False
    sidecar: bool = True
    keep_missing: bool = False  # keep chunks of vanished files (status "missing") instead of deleting
    # A root where nothing matches (an unmounted volume, a wrong --include) keeps what was indexed under
    # it; on: such a root's files are treated as vanished like any other.
    allow_empty_root: bool = False
    log_format: str = "text"  # "text" (human) or "json" (one object per line, for CloudWatch Logs)
    log_level: str | None = None  # default: INFO for json logs, WARNING for text
    emf: bool = False  # print CloudWatch Embedded Metric Format lines for each run
    metrics_namespace: str = "dbembed"  # CloudWatch namespace of the EMF metrics
    metrics_file: Path | None = None  # Prometheus textfile (node_exporter textfile collector)

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, v: str) -> str:
        return _one_of(v, ("text", "json"))


class ApiSettings(Section):
    """The HTTP API server and its request limits."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    max_k: Annotated[int, Field(ge=1, le=10_000)] = 100
    max_page_size: Annotated[int, Field(ge=1, le=10_000)] = 200
    max_request_bytes: Annotated[int, Field(ge=1)] = 1_000_000  # larger request bodies get HTTP 413
    max_text_chars: Annotated[int, Field(ge=1)] = 100_000  # longest user input / bot response / query accepted
    db_pool_size: Annotated[int, Field(ge=1, le=MAX_PARALLEL)] = 4  # PostgreSQL connections held by one API process


class ChatSettings(Section):
    """Chat memory: mapped tables, sync batches, the optional summarizer, input limits."""

    tables: dict[str, str] = Field(default_factory=dict)  # map onto existing doc-003 tables (docs/chat.md)
    sync_batch: Annotated[int, Field(ge=1, le=100_000)] = 256  # turns per committed sync batch
    summarizer: str | None = None  # None: memory = turn text; "openai:MODEL" or "bedrock:MODEL-ID"
    summarizer_base_url: str | None = None  # OpenAI-compatible base URL (default: openai_base_url)
    summarizer_api_key_env: str = "OPENAI_API_KEY"  # env var holding the summarizer's API key
    summary_max_chars: Annotated[int, Field(ge=1)] = 20_000  # transcript characters sent to the summarizer per chat
    max_k: Annotated[int, Field(ge=1, le=10_000)] = 100
    max_page_size: Annotated[int, Field(ge=1, le=10_000)] = 200
    max_text_chars: Annotated[int, Field(ge=1)] = 100_000  # longest user input / bot response / query accepted
