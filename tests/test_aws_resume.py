"""Waiting out a database that is resuming (Aurora Serverless v2 auto-pause).

A loopback TCP proxy in front of the embedded server (which listens on a unix socket
only) first refuses connections (bound, not listening: ECONNREFUSED), then answers
every startup with PostgreSQL's real ``FATAL 57P03 the database system is starting up``
packet, then forwards to the server.  The connection code must wait through both.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


def _error_packet(sqlstate: str, message: str) -> bytes:
    body = b"".join(
        [b"SFATAL\0", b"VFATAL\0", b"C" + sqlstate.encode() + b"\0", b"M" + message.encode() + b"\0", b"\0"]
    )
    return b"E" + struct.pack("!I", len(body) + 4) + body


class FlakyProxy:
    """127.0.0.1:port -> unix socket, refusing for ``refuse_s`` then 'starting up' until ``ready_s``."""

    def __init__(
        self,
        unix_path: str,
        refuse_s: float,
        ready_s: float,
        sqlstate: str = "57P03",
        message: str = "the database system is starting up",
    ) -> None:
        self.unix_path = unix_path
        self.sqlstate, self.message = sqlstate, message
        self.refuse_s = refuse_s
        self.ready_s = ready_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))  # bound but not listening: connects are refused
        self.port = self.sock.getsockname()[1]
        self.t0 = time.monotonic()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        if self.closed.wait(self.refuse_s):
            return
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        while not self.closed.is_set():
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            ready = time.monotonic() - self.t0 >= self.ready_s
            target = self._forward if ready else self._starting_up
            threading.Thread(target=target, args=(client,), daemon=True).start()

    def _starting_up(self, client: socket.socket) -> None:
        try:
            while True:
                length, code = struct.unpack("!II", _recv_exact(client, 8))
                _recv_exact(client, length - 8)
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    client.sendall(b"N")
                    continue
                client.sendall(_error_packet(self.sqlstate, self.message))
                break
        except (ConnectionError, OSError):
            pass
        finally:
            client.close()

    def _forward(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.unix_path)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        t.start()
        pump(client, upstream)
        t.join(5)
        client.close()
        upstream.close()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}?sslmode=disable&gssencmode=disable"

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        self.thread.join(2)


@pytest.fixture()
def unix_socket(pg_server: object) -> str:
    from psycopg.conninfo import conninfo_to_dict

    host = conninfo_to_dict(pg_server.get_uri())["host"]  # type: ignore[attr-defined]
    sockets = [p for p in Path(host).glob(".s.PGSQL.*") if not p.name.endswith(".lock")]
    assert sockets, f"no PostgreSQL socket in {host}"
    return str(sockets[0])


@pytest.fixture()
def make_proxy(unix_socket: str) -> Iterator[object]:
    proxies: list[FlakyProxy] = []

    def make(refuse_s: float, ready_s: float, **answer: str) -> FlakyProxy:
        proxy = FlakyProxy(unix_socket, refuse_s, ready_s, **answer)
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        p.close()


def _settings(tmp_path: Path, **kw: object):  # noqa: ANN202
    from dbembed.config import load_settings

    return load_settings(data_dir=tmp_path, **kw)


def test_waits_while_refused_then_starting_up(make_proxy, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    from dbembed.store.connection import connect

    proxy = make_proxy(refuse_s=1.0, ready_s=4.0)
    settings = _settings(tmp_path, database_url=proxy.url(), db_resume_wait_s=30)
    caplog.set_level(logging.WARNING, logger="dbembed.store.wait_for_server")
    start = time.monotonic()
    conn = connect(settings, register_vector=False)
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        conn.close()
    assert time.monotonic() - start >= 4.0
    waits = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    assert len(waits) >= 3, waits
    assert any("refused" in w.lower() for w in waits), waits
    assert any("starting up" in w for w in waits), waits
    assert all("waiting" in w for w in waits)


def test_gives_up_after_db_resume_wait_s(make_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    from dbembed.errors import DatabaseUnavailable
    from dbembed.store.connection import connect

    proxy = make_proxy(refuse_s=600, ready_s=600)
    settings = _settings(tmp_path, database_url=proxy.url(), db_resume_wait_s=2.5)
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="(?i)refused"):
        connect(settings, register_vector=False)
    elapsed = time.monotonic() - start
    assert 2.5 <= elapsed < 6, elapsed


def test_permanent_error_fails_at_once(make_proxy, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    from dbembed.errors import DatabaseUnavailable
    from dbembed.store.connection import connect

    proxy = make_proxy(refuse_s=0, ready_s=0)
    time.sleep(0.1)  # let it start listening
    settings = _settings(tmp_path, database_url=proxy.url("no_such_db"), db_resume_wait_s=60)
    caplog.set_level(logging.WARNING, logger="dbembed.store.wait_for_server")
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        connect(settings, register_vector=False)
    assert time.monotonic() - start < 2
    assert not [r for r in caplog.records if "not ready" in r.getMessage()]


def test_iam_token_regenerated_on_every_attempt(
    make_proxy,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trust auth on the test server ignores the password, so the token's use is observed
    by counting how often one is made: once per connection attempt."""
    from dbembed.store import aws_auth
    from dbembed.store.connection import connect

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    aws_auth.clear_caches()
    made: list[str] = []
    real = aws_auth.iam_token

    def counting(host: str, port: int, user: str, settings: object) -> str:
        token = real(host, port, user, settings)  # type: ignore[arg-type]
        made.append(token)
        return token

    monkeypatch.setattr(aws_auth, "iam_token", counting)
    proxy = make_proxy(refuse_s=1.5, ready_s=1.5)
    settings = _settings(
        tmp_path,
        database_url=proxy.url(),
        db_iam_auth=True,
        db_sslmode="disable",  # the test server has no TLS; production keeps require/verify-full
        aws_region="us-east-1",
        db_resume_wait_s=30,
    )
    conn = connect(settings, register_vector=False)
    conn.close()
    assert len(made) >= 2  # at least one refused attempt and the successful one
    assert all(f"127.0.0.1:{proxy.port}/?Action=connect&DBUser=postgres" in t for t in made)
    aws_auth.clear_caches()


def _connect_error(url: str) -> BaseException:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return exc
    raise AssertionError("the connection succeeded")


def test_localized_starting_up_is_waited_out(make_proxy, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    """A server answering in Japanese: no English words to match, only SQLSTATE 57P03."""
    from dbembed.store.connection import connect

    proxy = make_proxy(refuse_s=0, ready_s=3.0, message="データベースシステムは起動処理中です")
    settings = _settings(tmp_path, database_url=proxy.url(), db_resume_wait_s=30)
    caplog.set_level(logging.WARNING, logger="dbembed.store.wait_for_server")
    start = time.monotonic()
    conn = connect(settings, register_vector=False)
    conn.close()
    assert time.monotonic() - start >= 3.0
    assert [r for r in caplog.records if "not ready" in r.getMessage()]


@pytest.mark.parametrize(
    ("sqlstate", "message", "transient"),
    [
        ("57P03", "データベースシステムは起動処理中です", True),  # cannot_connect_now, localized
        ("57P03", "Das Datenbanksystem startet", True),
        ("53300", "Es gibt schon zu viele Clients", True),  # too_many_connections, localized
        ("57P01", "Verbindung wegen Anweisung des Administrators beendet", True),  # admin_shutdown
        # Permanent refusals, even when their text reads like a transient one.
        ("28P01", "the database system is starting up (password authentication failed)", False),
        ("3D000", "connection refused: database is resuming after being auto-paused", False),
        ("28000", "kein pg_hba.conf-Eintrag für Host", False),
    ],
)
def test_connect_failures_classified_by_sqlstate(
    make_proxy,  # noqa: ANN001
    sqlstate: str,
    message: str,
    transient: bool,
) -> None:
    from dbembed.store.wait_for_server import is_transient

    proxy = make_proxy(refuse_s=0, ready_s=600, sqlstate=sqlstate, message=message)
    time.sleep(0.1)
    exc = _connect_error(proxy.url())
    assert is_transient(exc, proxy.url()) is transient


def test_no_server_answer_is_transient_by_type(make_proxy) -> None:  # noqa: ANN001
    """A refused connection has no SQLSTATE at all: waiting may help."""
    import psycopg

    from dbembed.store.wait_for_server import is_transient

    proxy = make_proxy(refuse_s=600, ready_s=600)
    exc = _connect_error(proxy.url())
    assert is_transient(exc, proxy.url())
    assert is_transient(psycopg.errors.ConnectionTimeout("timeout expired"))
    assert not is_transient(ValueError("connection refused"))  # not a database error at all


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        ("AdminShutdown", True),  # 57P01, e.g. a failover
        ("CrashShutdown", True),  # 57P02
        ("CannotConnectNow", True),  # 57P03
        ("TooManyConnections", True),  # 53300
        ("ConnectionFailure", True),  # class 08
        ("InvalidPassword", False),  # 28P01
        ("InvalidCatalogName", False),  # 3D000: unknown database
        ("InsufficientPrivilege", False),  # 42501
    ],
)
def test_errors_with_sqlstate_classified_by_class(error: str, transient: bool) -> None:
    """Errors on an open connection (and the Data API's) carry their SQLSTATE; the text is ignored."""
    import psycopg

    from dbembed.store.wait_for_server import is_transient

    cls = getattr(psycopg.errors, error)
    assert is_transient(cls("die Datenbank ist nicht bereit"), "host=unused") is transient


def test_unknown_host_fails_at_once(tmp_path: Path) -> None:
    """A host name DNS says does not exist never starts answering: no waiting, the name in the error."""
    from dbembed.errors import DatabaseUnavailable
    from dbembed.store.connection import connect
    from dbembed.store.wait_for_server import unresolvable_host

    url = "postgresql://u:p@no-such-host.invalid:5432/db"
    assert unresolvable_host("host=no-such-host.invalid dbname=db") == "no-such-host.invalid"
    assert unresolvable_host("host=localhost dbname=db") is None
    assert unresolvable_host("host=/tmp dbname=db") is None  # a Unix socket directory
    assert unresolvable_host("host=no-such-host.invalid hostaddr=127.0.0.1") is None  # no lookup
    assert unresolvable_host("host=no-such-host.invalid,localhost") is None  # one host resolves
    settings = _settings(tmp_path, database_url=url, db_resume_wait_s=60)
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        connect(settings, register_vector=False)
    assert time.monotonic() - start < 5
