"""Every exception type dbembed defines, with the exit code and HTTP status each one maps to.

Each class carries ``exit_code`` (what the CLI exits with, ``dbembed.cli.common``) and
``http_status`` (what the HTTP API answers, ``dbembed.api.errors``); surfaces map from these
attributes and keep no table of their own.  Internal signals (a lost lease, a provider's failure
kinds, the Data API's size refusal) live here too, so that one file lists everything that can be
raised; their codes say what it would mean should one ever reach a surface.

Exit codes (documented in README):
  0    everything succeeded
  1    the run finished but some files failed (partial failure; AWS Batch can alert on it);
       also a question answered no
  2    bad usage or configuration (unknown flag, invalid config file, bad argument)
  3    fatal: the database is unreachable or unusable, or another unrecoverable error
  130  interrupted (Ctrl-C, SIGTERM)
  141  stdout was closed early (``dbembed files --all | head``)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_FATAL = 3
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141
ECHO_MAX_CHARS = 80  # a bad value quoted in an error message is cut to about this many characters


def echo(value: object, max_chars: int = ECHO_MAX_CHARS) -> str:
    """A value the user gave, as an error message quotes it: its ``repr`` (quoted, control
    characters escaped), cut to about ``max_chars`` characters with the full length named, so
    that a 5000-digit number or a pasted document leaves the message readable."""
    try:
        shown = repr(value)
    except ValueError:  # an int past Python's int_max_str_digits cannot even be printed
        return f"a number of {value.bit_length() * 0.30103:,.0f} digits" if isinstance(value, int) else "?"
    if len(shown) <= max_chars:
        return shown
    size = len(value) if isinstance(value, str | bytes) else len(str(value))
    cut = repr(value[: max_chars - 20]) if isinstance(value, str | bytes) else shown[: max_chars - 20]
    return f"{cut}... ({size:,} characters)"


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
    """A parameter is malformed or out of range: an id, a text, a cursor (HTTP 400).

    ``field``: the parameter at fault, by its Python name, when the message starts with it
    (see ``named_as``, which lets a surface name it as its callers know it)."""

    http_status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidParameter(InvalidInput):
    """An HTTP request parameter (query or path parameter, JSON field) is malformed or out of range:
    422, the status the HTTP API's own request validation answers, the message naming it as
    ``query parameter k: ...`` or ``JSON field theme: ...``."""

    http_status = 422


class InvalidText(InvalidInput):
    """A text is there but unusable: it has no visible character (a chat turn's user input, a
    search query), or its bytes are not UTF-8 (HTTP 422)."""

    http_status = 422


def in_range(what: str, value: object, low: int, high: int) -> int:
    """``value`` when it is an integer (not a bool) in ``low..high``, else ``InvalidInput`` about
    parameter ``what``: ``k: must be between 1 and 100 (got 0)``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what}: must be between {low} and {high} (got {echo(value)})", what)
    return value


def renamed(exc: InvalidInput, names: dict[str, str], cls: type[InvalidInput] | None = None) -> InvalidInput:
    """``exc`` naming its parameter as ``names`` maps it (``{"limit": "-n/--limit"}``), as ``cls``
    (default its own class); ``exc`` itself when it names no parameter of ``names``."""
    name = names.get(exc.field or "")
    message = str(exc)
    if name is None or exc.field is None or not message.startswith(exc.field):
        return exc
    return (cls or type(exc))(name + message[len(exc.field) :], field=name)


@contextlib.contextmanager
def named_as(**names: str) -> Iterator[None]:
    """Inside, an ``InvalidInput`` about parameter ``field`` is re-raised naming it as this surface's
    callers know it: ``named_as(query="q")`` on HTTP, ``named_as(user_input="--input")`` in the CLI."""
    try:
        yield
    except InvalidInput as exc:
        new = renamed(exc, names)
        if new is exc:
            raise
        raise new from None


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


class Conflict(UsageError):
    """What the caller asked to create already exists (e.g. a chat turn with that number)."""

    http_status = 409


class RequestTooLarge(UsageError):
    """An HTTP request body is over the server's limit."""

    http_status = 413


class LeaseLost(DbembedError):
    """Another worker took this file over (our lease expired); our changes are rolled back.

    The run records the file as ``lost`` (the other worker finishes it); never a failure."""

    http_status = 409


class RemoteFailure(EmbeddingError):
    """One failed request to a remote provider, by kind; ``reason`` is one user-facing line.

    ``dbembed.embed.remote`` turns these into retries, batch splits or one ``EmbeddingError``."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Throttled(RemoteFailure):
    """HTTP 429 / ThrottlingException: slow down and retry."""

    http_status = 503


class Transient(RemoteFailure):
    """5xx or a dropped connection: retry with backoff."""


class TimedOut(RemoteFailure):
    """No answer within ``request_timeout_s``: retry the batch as two halves."""

    http_status = 504


class Rejected(RemoteFailure):
    """The service refuses the input (HTTP 400/413/422): bisect to the text at fault."""

    http_status = 422


class Fatal(RemoteFailure):
    """Bad credentials, unknown model, no access: no retry helps."""


class ResponseTooLarge(DbembedError):
    """The RDS Data API refused to return a result (1 MiB per response, 64 KB per row);
    ``dbembed.store.dataapi`` re-runs the query in pages."""


class UnsupportedValue(DbembedError, TypeError):
    """A Python value with no RDS Data API encoding (raised as ``psycopg.ProgrammingError`` upstream)."""


class Interrupted(KeyboardInterrupt):
    """The process was told to stop by a signal (``signal_name``: ``SIGTERM``, ``SIGINT``...).

    A ``KeyboardInterrupt``, so everything that stops cleanly on Ctrl-C stops cleanly on it (files
    in flight roll back, leases go back, the run is recorded ``interrupted: SIGTERM``); exit 130."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def interrupted_by(exc: BaseException) -> str:
    """``interrupted: SIGTERM`` for an ``Interrupted``; a plain ``KeyboardInterrupt`` is Ctrl-C (SIGINT)."""
    if isinstance(exc, SystemExit):
        return f"interrupted: exit {exc.code}"
    return f"interrupted: {getattr(exc, 'signal_name', 'SIGINT')}"


def raise_interrupted(signum: int, frame: object) -> None:
    """A signal handler that raises ``Interrupted`` naming the signal (install it for SIGTERM)."""
    import signal

    raise Interrupted(signal.Signals(signum).name)


def mask_url(url: str) -> str:
    """Hide the password in a PostgreSQL URL or conninfo string for messages and logs."""
    import re

    if "://" in url:  # greedy to the last "@": a password may itself hold "@"
        masked = re.sub(r"(://[^:/@]+:).*@", r"\1****@", url)
    elif "=" not in url and "@" in url:  # user:password@host/db without a scheme
        masked = "****@" + url.rsplit("@", 1)[1]
    else:
        masked = url
    masked = re.sub(r"(password\s*=\s*)(\S+)", r"\1****", masked, flags=re.IGNORECASE)
    return masked
