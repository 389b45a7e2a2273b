"""Dead lock holders: the lock session's keepalives bound how long a vanished holder keeps the
lock; ``deploysafe unlock`` ends a dead holder's session and refuses a live one.

A machine that vanishes sends no FIN or RST. The test stands a TCP proxy between the holder and the
server that, once the holder is SIGKILLed, keeps the server side of the connection open and silent:
the server still sees the session and its lock, exactly as with a vanished machine (until keepalives,
which cannot be waited for in a test; their settings are asserted on the session instead).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from deploysafe import pg
from deploysafe.errors import LockHeld, PreconditionError
from deploysafe.lock import (
    APP_PREFIX,
    KEEPALIVE_BOUND,
    break_lock,
    direct_url,
    lock_key,
    open_session,
)
from support.cli import run_cli


class SilentProxy:
    """Forwards TCP to the server; when the client side closes, the server side stays open and silent."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.kept: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.kept += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return  # the holder is gone: leave the server's side open and silent (a vanished machine)
            try:
                dst.sendall(data)
            except OSError:
                return

    def url(self, real: str) -> str:
        host, port = pg.server_of(real)
        return real.replace(f"{host}:{port}", f"127.0.0.1:{self.port}")

    def close(self) -> None:
        self.sock.close()
        for s in self.kept:
            s.close()


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from deploysafe import pg
    from deploysafe.lock import deploy_lock
    url, db, state = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    with deploy_lock(state, pg.maintenance_url(url), db, run_id="holder-run", command="deploy"):
        print("held", flush=True)
        time.sleep(600)
""")


@pytest.fixture
def app(tmp_path: Path, pg_url: str) -> Path:
    (tmp_path / "deploysafe.toml").write_text("""[app]
dir = "."

[provider]
type = "local"
database_url = "${DATABASE_URL}"

[platform]
type = "command"
set_command = "true"
""")
    return tmp_path


def _holder(url: str, db: str, state: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, db, str(state)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read() if proc.stderr else ""
    return proc


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url}


def _lock_free(url: str) -> bool:
    db = pg.dbname_of(url)
    with psycopg.connect(pg.maintenance_url(url), autocommit=True) as c:
        got = c.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(db),)).fetchone()
    return bool(got and got[0])


@pytest.fixture
def proxy(pg_url: str) -> Iterator[SilentProxy]:
    p = SilentProxy(pg.server_of(pg_url))
    yield p
    p.close()


def test_lock_session_sets_server_keepalives_and_goes_direct(pg_url: str) -> None:
    holder = {"command": "deploy", "run_id": "r1", "host": "h", "pid": 1}
    with open_session(pg_url, holder) as conn:
        settings = {name: str((conn.execute(f"SHOW {name}").fetchone() or ("",))[0])
                    for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")}
        app_name = conn.execute("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()
    # the server gives up on a silent client after idle + interval x count
    idle, interval, count = (int(v.rstrip("s")) for v in settings.values())
    assert idle + interval * count == KEEPALIVE_BOUND <= 120 < 180, settings
    assert app_name is not None and app_name[0].startswith(APP_PREFIX)
    pooled = "postgresql://u:pw@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require"
    assert direct_url(pooled) == "postgresql://u:pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb?sslmode=require"
    assert direct_url(pg_url) == pg_url


def test_unlock_releases_a_dead_holder_and_refuses_a_live_one(app: Path, pg_url: str, proxy: SilentProxy) -> None:
    db = pg.dbname_of(pg_url)
    live = _holder(pg_url, db, app / "other-state")
    try:
        refused = run_cli("unlock", "--yes", cwd=app, env=_env(pg_url), timeout=120)
        assert refused.code == 5, refused.stderr
        assert "holder is alive" in refused.stderr and "holder-run" in refused.stderr
        assert not _lock_free(pg_url)
    finally:
        live.terminate()
        live.wait(timeout=30)
    assert _lock_free(pg_url)  # a clean exit releases it at once

    dead = _holder(proxy.url(pg_url), db, app / "other-state")
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=30)
    time.sleep(0.5)
    assert not _lock_free(pg_url), "the proxy should keep the dead holder's session (a vanished machine)"
    asked = run_cli("unlock", cwd=app, env=_env(pg_url), timeout=120)  # no terminal and no --yes: never breaks a lock silently
    assert asked.code in (2, 5) and not _lock_free(pg_url)
    time.sleep(11)  # two missed heartbeats: the process is gone from this machine and its session is silent
    released = run_cli("unlock", "--yes", cwd=app, env=_env(pg_url), timeout=120)
    assert released.code == 0, released.stderr
    assert "released the production lock" in released.stdout + released.stderr
    assert _lock_free(pg_url)


def test_a_holder_on_another_machine_is_judged_by_its_heartbeat(pg_url: str) -> None:
    db = pg.dbname_of(pg_url)
    target = pg.maintenance_url(pg_url)
    other = psycopg.connect(target, autocommit=True,
                            application_name=f"{APP_PREFIX} deploy run-x other-machine 4242")
    other.execute("SELECT pg_advisory_lock(%s)", (lock_key(db),))
    try:
        with pytest.raises(LockHeld, match="holder is alive"):
            break_lock(target, db, confirm=lambda h, why: True)  # silent for less than 30s
        time.sleep(1.5)
        with pytest.raises(PreconditionError, match="not confirmed"):
            break_lock(target, db, confirm=lambda h, why: False, stale_after=1.0)
        assert not _lock_free(pg_url)
        gone = break_lock(target, db, confirm=lambda h, why: "silent" in why, stale_after=1.0)
        assert gone is not None and gone.info["host"] == "other-machine"
        assert _lock_free(pg_url)
        with pytest.raises(psycopg.OperationalError):
            other.execute("SELECT 1")
    finally:
        other.close()


def test_a_lock_held_by_something_else_is_never_broken(pg_url: str) -> None:
    db = pg.dbname_of(pg_url)
    target = pg.maintenance_url(pg_url)
    with psycopg.connect(target, autocommit=True, application_name="psql") as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key(db),))
        time.sleep(1.2)
        with pytest.raises(PreconditionError, match="not deploysafe's"):
            break_lock(target, db, confirm=lambda h, why: True, stale_after=0.5)
        assert other.execute("SELECT 1").fetchone() == (1,)
