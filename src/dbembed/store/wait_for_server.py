"""Connect, waiting for a database server that is starting up or resuming (Aurora Serverless v2).

Why: an Aurora Serverless v2 cluster with a minimum of 0 ACU pauses after being idle;
the first connections after that are refused, time out, or get "the database system
is starting up" (SQLSTATE 57P03) / "resuming after being auto-paused" for up to about
two minutes.  A nightly batch job must wait that out instead of failing.  Errors that
waiting cannot fix (wrong password, unknown database, no pg_hba entry, bad TLS
certificate) fail at once, so a misconfiguration never costs ``db_resume_wait_s``.  Which is
which is decided by SQLSTATE (``is_transient``), so it holds whatever language the server
answers in.

Every attempt re-resolves the credentials (``aws_auth.refresh_conninfo``): an IAM token
is made fresh for each connection, and a password rejected right after a Secrets
Manager rotation gets one retry with the re-read secret (any refusal by the server, since the
SQLSTATE of a failed connection is not available to tell a password from another refusal).
"""

from __future__ import annotations

import functools
import logging
import random
import re
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import PGconn, Ping

from dbembed.errors import mask_url
from dbembed.store import aws_auth

if TYPE_CHECKING:
    from dbembed.config import StoreSettings

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 15.0

# Errors whose SQLSTATE says "not now, later": the connection_exception class (08), and
# cannot_connect_now (starting up, shutting down, in recovery), admin/crash shutdown and
# too_many_connections.  Everything else the server answers (invalid password 28P01, unknown
# database 3D000, insufficient privilege, ...) does not get better by waiting.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08"})
TRANSIENT_SQLSTATES = frozenset(
    str(cls.sqlstate)
    for cls in (
        pg_errors.CannotConnectNow,
        pg_errors.AdminShutdown,
        pg_errors.CrashShutdown,
        pg_errors.TooManyConnections,
    )
)
# Failures libpq finds on the client side before any server answer, in libpq's own (untranslated)
# words: TLS settings that no amount of waiting fixes.  Server messages are never matched.
CLIENT_CONFIG_ERRORS = ("certificate verify failed", "server does not support ssl", "invalid sslmode")


def server_answer(info: str) -> Ping:
    """Ask libpq how the server at ``info`` answers a connection (``PQping``): ``REJECT`` is the
    SQLSTATE 57P03 cannot_connect_now; ``OK`` any other answer (it is up, and refused us for
    another reason, or let us in); ``NO_RESPONSE`` no answer at all (refused, timed out,
    unreachable); ``NO_ATTEMPT`` an unusable conninfo.

    Called through ctypes, which lets other threads run during the attempt (psycopg's own
    ``PGconn.ping`` holds the GIL for up to ``connect_timeout``); psycopg's when no libpq is found.
    """
    ping = _ctypes_ping()
    return Ping(ping(info.encode()) if ping is not None else PGconn.ping(info.encode()))


@functools.cache
def _libpq() -> Any:
    """The libpq psycopg uses (the one bundled with psycopg-binary, else the system's) through
    ctypes, with the signatures used here; None when there is none."""
    import ctypes
    import ctypes.util
    import importlib.util

    spec = importlib.util.find_spec("psycopg_binary")
    bundled = []
    if spec is not None and spec.origin:
        bundled = sorted(Path(spec.origin).parent.parent.glob("psycopg_binary.libs/libpq*.so*"))
    for path in [*map(str, bundled), ctypes.util.find_library("pq")]:
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
            signatures = {
                "PQping": ([ctypes.c_char_p], ctypes.c_int),
                "PQconnectStart": ([ctypes.c_char_p], ctypes.c_void_p),
                "PQsetErrorVerbosity": ([ctypes.c_void_p, ctypes.c_int], ctypes.c_int),
                "PQstatus": ([ctypes.c_void_p], ctypes.c_int),
                "PQconnectPoll": ([ctypes.c_void_p], ctypes.c_int),
                "PQsocket": ([ctypes.c_void_p], ctypes.c_int),
                "PQerrorMessage": ([ctypes.c_void_p], ctypes.c_char_p),
                "PQfinish": ([ctypes.c_void_p], None),
            }
            for name, (args, result) in signatures.items():
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = args, result
        except (OSError, AttributeError):
            continue
        return lib
    return None


def _ctypes_ping() -> Callable[[bytes], int] | None:
    lib = _libpq()
    return None if lib is None else lib.PQping  # type: ignore[no-any-return]


# libpq's constants (libpq-fe.h): PQERRORS_VERBOSE, CONNECTION_BAD, PostgresPollingStatusType.
_ERRORS_VERBOSE, _CONNECTION_BAD = 2, 1
_POLL_FAILED, _POLL_READING, _POLL_WRITING, _POLL_OK = 0, 1, 2, 3
# A verbose libpq error reads "<severity>:  <SQLSTATE>: <message>"; the severity may be translated,
# the SQLSTATE never is.
_VERBOSE_SQLSTATE = re.compile(rb":  ([0-9A-Z]{5}): ")


def refusal_sqlstate(info: str, timeout_s: float = 10.0) -> str | None:
    """The SQLSTATE the server refuses a connection to ``info`` with (one diagnostic attempt, made
    only after a failed ``psycopg.connect``, which keeps it to itself): ``"53300"``, ``"57P03"``...;
    ``""`` when this attempt got in (the refusal has passed); None when no answer carried one
    (nothing listening, a timeout, a client-side failure, no libpq to ask).

    libpq's verbose error format puts the server's SQLSTATE into the message, language-independent."""
    lib = _libpq()
    if lib is None:
        return None
    conn = lib.PQconnectStart(info.encode())
    if not conn:
        return None
    try:
        lib.PQsetErrorVerbosity(conn, _ERRORS_VERBOSE)
        status = _POLL_FAILED if lib.PQstatus(conn) == _CONNECTION_BAD else _POLL_WRITING
        deadline = time.monotonic() + timeout_s
        while status in (_POLL_READING, _POLL_WRITING):
            remaining, fd = deadline - time.monotonic(), lib.PQsocket(conn)
            if remaining <= 0 or fd < 0:
                return None
            wanted = ([fd], []) if status == _POLL_READING else ([], [fd])
            ready = select.select(*wanted, [], remaining)
            if not (ready[0] or ready[1]):
                return None
            status = lib.PQconnectPoll(conn)
        if status == _POLL_OK:
            return ""
        found = _VERBOSE_SQLSTATE.findall(lib.PQerrorMessage(conn) or b"")
        return found[-1].decode() if found else None
    finally:
        lib.PQfinish(conn)


def _transient_sqlstate(state: str) -> bool:
    return state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in TRANSIENT_SQLSTATES


def is_transient(
    exc: BaseException,
    info: str | None = None,
    *,
    ping: Callable[[str], Ping] = server_answer,
    probe: Callable[[str], str | None] = refusal_sqlstate,
) -> bool:
    """True when waiting may help: the server is starting, resuming or unreachable for now.

    Classified by SQLSTATE, never by message text (servers answer in their own language):
    an error that carries one (psycopg's errors on an open connection, the Data API's) is
    transient when its class is 08 or it is one of ``TRANSIENT_SQLSTATES`` (too many clients
    53300, starting up 57P03, shutdowns).  A failed ``psycopg.connect`` carries none (libpq keeps
    the server's SQLSTATE to itself), so one diagnostic attempt asks for it
    (``refusal_sqlstate``); when no answer carried one, libpq's ``server_answer`` decides whether
    the server answered at all.  Without ``info`` any connection failure counts as transient.
    """
    state = getattr(exc, "sqlstate", None)
    if state:
        return _transient_sqlstate(state)
    if isinstance(exc, pg_errors.ConnectionTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if info is None:
        return True
    if unresolvable_host(info):
        return False
    state = probe(info)
    if state is not None:  # the server answered: its SQLSTATE decides ("" = it lets us in now)
        return state == "" or _transient_sqlstate(state)
    answer = ping(info)
    if answer is Ping.NO_RESPONSE:
        return not any(p in str(exc).lower() for p in CLIENT_CONFIG_ERRORS)
    return answer is Ping.REJECT


def unresolvable_host(info: str) -> str | None:
    """The host name in ``info`` that DNS says does not exist (``EAI_NONAME``), else None.

    A mistyped host never starts answering, so it must not cost ``db_resume_wait_s``; a paused
    Aurora cluster keeps its DNS name, and a temporary DNS failure (``EAI_AGAIN``) stays transient.
    Unix-socket directories and ``hostaddr`` (no lookup) are never unresolvable.
    """
    params = conninfo_to_dict(info)
    if params.get("hostaddr"):
        return None
    hosts = [h for h in str(params.get("host") or "").split(",") if h and not h.startswith("/")]
    missing = []
    for host in hosts:
        try:
            socket.getaddrinfo(host, None)
        except socket.gaierror as exc:
            if exc.errno not in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                return None
            missing.append(host)
        except (OSError, UnicodeError):
            return None
    return missing[0] if hosts and len(missing) == len(hosts) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect_with_retry(
    info: str,
    settings: StoreSettings,
    *,
    autocommit: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> psycopg.Connection:
    """``psycopg.connect`` that retries transient failures for up to ``settings.db_resume_wait_s``.

    Backoff doubles from 1 s to 15 s with +-20 % jitter (many array-job workers start
    together).  Each wait is logged at WARNING.  The last error is re-raised
    (``psycopg.OperationalError``) when the time is up or the error is permanent;
    ``store.connection.connect`` turns it into ``DatabaseUnavailable``.
    """
    if settings.db_iam_auth and "sslmode" not in kwargs:
        mode = aws_auth.default_sslmode(settings)
        if mode:
            kwargs["sslmode"] = mode
    budget = settings.resume_wait_s(info)
    start = time.monotonic()
    delay = FIRST_DELAY_S
    attempt = 0
    reload_secret = False
    secret_reloaded = False
    while True:
        attempt += 1
        current = aws_auth.refresh_conninfo(info, settings, reload_secret=reload_secret)
        reload_secret = False
        try:
            conn = psycopg.connect(current, autocommit=autocommit, **kwargs)
        except psycopg.OperationalError as exc:
            transient = is_transient(exc, make_conninfo(current, **kwargs))
            if not transient and settings.db_secret_id and not settings.db_iam_auth and not secret_reloaded:
                # The server refused us: the secret may have rotated since we cached it; re-read it once.
                log.warning("database refused the connection; re-reading secret %s", settings.db_secret_id)
                reload_secret = secret_reloaded = True
                continue
            if not transient:
                raise
            elapsed = time.monotonic() - start
            remaining = budget - elapsed
            if remaining <= 0:
                log.error(
                    "database at %s still unavailable after %.0fs (%d attempts): %s",
                    mask_url(info),
                    elapsed,
                    attempt,
                    _first_line(exc),
                )
                raise
            wait = min(delay * random.uniform(0.8, 1.2), MAX_DELAY_S, remaining)
            log.warning(
                "database at %s not ready (%s); waiting %.1fs and retrying (%.0fs of %.0fs used, attempt %d)",
                mask_url(info),
                _first_line(exc),
                wait,
                elapsed,
                budget,
                attempt,
            )
            sleep(wait)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if attempt > 1:
            log.warning("database at %s is available after %d attempts", mask_url(info), attempt)
        return conn
