"""One deploy, rollback or prune at a time per production database, across machines.

Two locks, taken in this order and held for the whole run:
1. a local file lock (``<state dir>/deploy.lock``, ``flock``) for runs on this machine;
2. a PostgreSQL session advisory lock on the production server, keyed by the production
   database's name. The holder's host, pid, run id and command travel in the session's
   ``application_name``, so a second run can say who holds it and since when
   (``pg_stat_activity.backend_start``).

A crashed holder needs no clean-up: the kernel drops its ``flock`` and PostgreSQL drops an
advisory lock when the session ends. A holder whose machine vanished (no FIN, no RST) is
noticed by the server's TCP keepalives, which the lock session sets itself:
``tcp_keepalives_idle=20``, ``interval=5``, ``count=4``, so the server ends the session, and
the lock with it, within :data:`KEEPALIVE_BOUND` seconds (20 + 5 x 4 = 40 s) of the last packet,
not the server default of two hours. The session always goes to the server directly: a Neon
``-pooler`` host is replaced by its direct host (a transaction-mode pooler would leak a
session lock or hand it to two clients).

While it holds the lock, the holder runs ``SELECT 1`` on the lock session every
:data:`HEARTBEAT` seconds, so ``pg_stat_activity.state_change`` says when it was last alive.
``deploysafe unlock`` (and ``rollback --break-lock``) judge a holder **dead** when either its
recorded host is this machine, its recorded pid no longer exists and its session missed two
heartbeats, or its session has been silent (no heartbeat) for more than :data:`STALE_AFTER`
seconds (a session running a statement is alive); only then, after showing the
holder and asking, is its backend ended with ``pg_terminate_backend``. A live holder is never
broken (exit 5), and a session that is not a deploysafe lock holder is never touched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from deploysafe import pg
from deploysafe.errors import LockHeld, PreconditionError, ProviderError
from deploysafe.pg import direct_url

KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 20, 5, 4
KEEPALIVE_BOUND = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT  # seconds until the server gives up
HEARTBEAT = 5.0  # seconds between the holder's SELECT 1 on the lock session
STALE_AFTER = 30.0  # a holder silent this long is dead (six missed heartbeats)
APP_PREFIX = "deploysafe-lock"


def lock_key(production_db: str) -> int:
    """A stable signed 64-bit advisory-lock key for a production database."""
    digest = hashlib.sha256(f"deploysafe:{production_db}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _holder(run_id: str, command: str) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run_id": run_id,
        "command": command,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _describe(h: dict[str, Any]) -> str:
    return (
        f"{h.get('command', '?')} run {h.get('run_id', '?')} (host {h.get('host', '?')}, pid {h.get('pid', '?')}) "
        f"since {h.get('since', '?')}"
    )


def _open_lock_file(path: Path) -> int | None:
    """The lock file, read-write; read-only when the state dir is (flock works on either); None when neither."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        pass
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


@contextmanager
def _file_lock(state_dir: Path, holder: dict[str, Any]) -> Iterator[None]:
    path = state_dir / "deploy.lock"
    fd = _open_lock_file(path)
    if fd is None:
        # a full or read-only state dir never blocks a rollback: the advisory lock on the
        # production server still keeps runs apart, across machines and on this one
        from deploysafe.console import console

        console.warn(f"cannot open {path}; relying on the production server's lock alone")
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                other = json.loads(Path(path).read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                other = {}
            raise LockHeld(
                f"another deploysafe run holds the lock: {_describe(other)}",
                hint="wait for it to finish; a crashed run releases the lock by itself",
                holder=other,
            ) from None
        try:  # who holds it, for the next run's message; best effort on a full disk
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _session_options(url: str) -> str:
    """libpq ``options`` with the server-side keepalives added to any the URL already carries (Neon's endpoint=)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = str(conninfo_to_dict(url).get("options") or "")
    except psycopg.ProgrammingError:
        given = ""
    ours = (f"-c tcp_keepalives_idle={KEEPALIVE_IDLE} -c tcp_keepalives_interval={KEEPALIVE_INTERVAL} "
            f"-c tcp_keepalives_count={KEEPALIVE_COUNT}")
    return f"{given} {ours}".strip()


def open_session(url: str, holder: dict[str, Any]) -> psycopg.Connection[Any]:
    """The lock session: direct (never pooled), named after its holder, with keepalives on both ends."""
    app_name = f"{APP_PREFIX} {holder['command']} {holder['run_id']} {holder['host']} {holder['pid']}"[:63]
    direct = direct_url(url)
    return pg.connect(
        direct,
        application_name=app_name,
        options=_session_options(direct),
        keepalives=1,
        keepalives_idle=KEEPALIVE_IDLE,
        keepalives_interval=KEEPALIVE_INTERVAL,
        keepalives_count=KEEPALIVE_COUNT,
    )


class _Heartbeat:
    """``SELECT 1`` on the lock session every HEARTBEAT seconds, so others can tell the holder lives."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="deploysafe-lock-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT):
            try:
                self.conn.execute("SELECT 1")
            except psycopg.Error:
                return  # the session is gone; the run finds out at its next database call

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=HEARTBEAT + 5)


_HOLDER_SQL = (
    "SELECT a.pid, a.application_name, a.backend_start, a.state, "
    "extract(epoch FROM clock_timestamp() - coalesce(a.state_change, a.backend_start)) "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1"
)


@dataclass(frozen=True)
class Holder:
    """The session holding the production lock, as the server sees it."""

    backend_pid: int
    info: dict[str, Any]  # command, run_id, host, pid, since (from application_name); {} when not deploysafe's
    state: str | None
    silent_s: float  # seconds since its last statement (its heartbeat)

    @property
    def is_deploysafe(self) -> bool:
        return bool(self.info.get("run_id"))

    def describe(self) -> str:
        return _describe(self.info) + f", last heard from {self.silent_s:.0f}s ago"


def _read_holder(conn: psycopg.Connection[Any], key: int) -> Holder | None:
    row = conn.execute(_HOLDER_SQL, (key,)).fetchone()
    if not row:
        return None
    info: dict[str, Any] = {}
    parts = (row[1] or "").split(" ")
    if len(parts) >= 5 and parts[0] == APP_PREFIX:
        info = {"command": parts[1], "run_id": parts[2], "host": parts[3], "pid": parts[4]}
    info["since"] = row[2].astimezone(UTC).isoformat(timespec="seconds") if row[2] else "?"
    return Holder(int(row[0]), info, row[3], float(row[4] or 0.0))


def holder_alive(h: Holder, *, stale_after: float = STALE_AFTER, host: str | None = None) -> tuple[bool, str]:
    """Is the holder alive? (see the module docstring) and why we think so."""
    here = host or socket.gethostname()
    if h.state == "active":
        return True, "its session is running a statement now"
    if h.info.get("host") == here:
        try:
            os.kill(int(h.info.get("pid", "0")), 0)
        except ProcessLookupError:
            # and silent past two heartbeats: a same-named host in another pid namespace still beats
            if h.silent_s > 2 * HEARTBEAT:
                return False, f"its process {h.info.get('pid')} on this machine ({here}) no longer exists"
        except (PermissionError, ValueError):
            pass
        else:
            return True, f"its process {h.info.get('pid')} on this machine is running"
    if h.silent_s <= stale_after:
        return True, f"its session was heard from {h.silent_s:.0f}s ago (a holder beats every {HEARTBEAT:g}s)"
    return False, f"its session has been silent for {h.silent_s:.0f}s (more than {stale_after:g}s)"


def break_lock(lock_url: str, production_db: str, *, confirm: Callable[[Holder, str], bool],
               stale_after: float = STALE_AFTER) -> Holder | None:
    """End the session of a dead holder of the production lock; None when nobody holds it.

    Refuses (LockHeld, exit 5) while the holder is alive, and (PreconditionError) when the session is not a
    deploysafe lock holder or the user does not confirm.
    """
    key = lock_key(production_db)
    with pg.connect(direct_url(lock_url)) as conn:
        h = _read_holder(conn, key)
        if h is None:
            return None
        if not h.is_deploysafe:
            raise PreconditionError(
                f"the production lock is held by a session that is not deploysafe's (backend {h.backend_pid})",
                hint="find it in pg_stat_activity; deploysafe ends only its own lock holders",
            )
        alive, why = holder_alive(h, stale_after=stale_after)
        if alive:
            raise LockHeld(f"refusing to break the lock: the holder is alive ({why}): {h.describe()}",
                           hint="wait for it to finish, or stop it on its machine", holder=h.info)
        if not confirm(h, why):
            raise PreconditionError("lock not broken: not confirmed", hint="pass --yes to break it without asking")
        again = _read_holder(conn, key)  # the same holder still, and still silent: end it
        if again is None:
            return h
        if again.backend_pid != h.backend_pid or holder_alive(again, stale_after=stale_after)[0]:
            raise LockHeld(f"the lock changed hands while asking: {again.describe()}", hint="run unlock again",
                           holder=again.info)
        conn.execute("SELECT pg_terminate_backend(%s)", (h.backend_pid,))
        for _ in range(50):  # the backend exits, and releases the lock, within moments
            if _read_holder(conn, key) is None:
                return h
            conn.execute("SELECT pg_sleep(0.1)")
        raise ProviderError(f"backend {h.backend_pid} was told to end but still holds the lock",
                            hint="check the server's log; a superuser can end it with pg_terminate_backend")


@contextmanager
def _pg_lock(url: str, key: int, holder: dict[str, Any]) -> Iterator[None]:
    conn = open_session(url, holder)
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not got or not got[0]:
            other = _read_holder(conn, key)
            info = other.info if other else {}
            raise LockHeld(
                f"another deploysafe run holds the production lock: {other.describe() if other else _describe(info)}",
                hint="wait for it to finish; if its machine died, the server releases the lock within "
                     f"{KEEPALIVE_BOUND}s, or run `deploysafe unlock`",
                holder=info,
            )
        with _Heartbeat(conn):
            yield
    finally:
        conn.close()  # ends the session: PostgreSQL releases the advisory lock


@contextmanager
def deploy_lock(state_dir: Path, lock_url: str, production_db: str, *, run_id: str, command: str) -> Iterator[dict[str, Any]]:
    """Hold both locks for the body; raise LockHeld naming the holder when another run has them."""
    holder = _holder(run_id, command)
    with _file_lock(state_dir, holder):
        try:
            with _pg_lock(lock_url, lock_key(production_db), holder):
                yield holder
        except ProviderError as e:
            raise ProviderError(f"cannot take the production lock: {e.message}", hint=e.hint) from None

