"""Exception hierarchy and the process exit codes the CLI maps them to.

Exit codes (documented in README):
  0  everything succeeded
  1  the run finished but some files failed (partial failure; AWS Batch can alert on it)
  2  bad usage or configuration (unknown flag, invalid config file, bad argument)
  3  fatal: the database is unreachable or unusable, or another unrecoverable error
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_FATAL = 3


class DbembedError(Exception):
    """Base class: every error dbembed raises on purpose carries a one-line, user-facing message.

    ``exit_code`` is what the CLI exits with; ``http_status`` what the HTTP API answers
    (with a JSON body ``{"error": message, "request_id": ...}``).
    """

    exit_code = EXIT_FATAL
    http_status = 500


class ConfigError(DbembedError):
    exit_code = EXIT_USAGE
    http_status = 500


class UsageError(DbembedError):
    exit_code = EXIT_USAGE
    http_status = 400


class InvalidInput(UsageError):
    """A parameter is malformed or out of range: an id, a text, a cursor (HTTP 400)."""

    http_status = 400


class AccessDenied(UsageError):
    """The caller may not act for that user or tenant (HTTP 403)."""

    http_status = 403


class DatabaseUnavailable(DbembedError):
    """The store could not be reached or lacks what dbembed needs (e.g. pgvector)."""

    exit_code = EXIT_FATAL
    http_status = 503


class CollectionMismatch(DbembedError):
    """A collection exists with another model/dimension: vector spaces must never mix."""

    exit_code = EXIT_USAGE
    http_status = 409


class SourceError(DbembedError):
    """One source file cannot be read (not SQLite, corrupt, encrypted, vanished, no permission).

    Recorded against that file with status ``failed``; the run goes on.
    """

    http_status = 500


class TableReadError(SourceError):
    """One table (or view) of a file cannot be read: an unknown collation or virtual-table module,
    a corrupt page in that table's b-tree, a view that errors.  The table is skipped and recorded
    as a rejection; the file's other tables are indexed."""

    def __init__(self, message: str, table: str) -> None:
        super().__init__(message)
        self.table = table


class EmbeddingError(DbembedError):
    """An embedding provider failed for good (after retries) or rejected an input."""

    http_status = 502


class InputRejected(EmbeddingError):
    """The provider rejected one text (e.g. Bedrock ValidationException); only that chunk fails."""

    http_status = 422


class NotFound(DbembedError):
    exit_code = EXIT_USAGE
    http_status = 404


def mask_url(url: str) -> str:
    """Hide the password in a PostgreSQL URL or conninfo string for messages and logs."""
    import re

    masked = re.sub(r"(://[^:/@]+:)([^@]*)(@)", r"\1****\3", url)
    masked = re.sub(r"(password\s*=\s*)(\S+)", r"\1****", masked, flags=re.IGNORECASE)
    return masked
