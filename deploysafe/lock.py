"""One deploy, rollback or prune at a time per production database, across machines.

Two locks, taken in this order and held for the whole run:
1. a local file lock (``<state dir>/deploy.lock``, ``flock``) for runs on this machine;
2. a PostgreSQL session advisory lock on the production server, keyed by the production
   database's name. The holder's host, pid, run id and command travel in the session's
   ``application_name``, so a second run can say who holds it and since when
   (``pg_stat_activity.backend_start``).

A crashed holder needs no clean-up: the kernel drops its ``flock`` and PostgreSQL drops an
advisory lock when the session ends (TCP keepalives make a vanished client's session end
within about a minute).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploysafe import pg
from deploysafe.errors import LockHeld, ProviderError

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
        # a full or read-only state dir never blocks a rollback (issue 15): the advisory lock on the
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


@contextmanager
def _pg_lock(url: str, key: int, holder: dict[str, Any]) -> Iterator[None]:
    app_name = f"{APP_PREFIX} {holder['command']} {holder['run_id']} {holder['host']} {holder['pid']}"[:63]
    conn = pg.connect(
        url,
        application_name=app_name,
        keepalives=1,
        keepalives_idle=20,
        keepalives_interval=5,
        keepalives_count=4,
    )
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not got or not got[0]:
            row = conn.execute(
                "SELECT a.application_name, a.backend_start, a.client_addr FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1",
                (key,),
            ).fetchone()
            other: dict[str, Any] = {}
            if row:
                parts = (row[0] or "").split(" ")
                if len(parts) >= 5 and parts[0] == APP_PREFIX:
                    other = {"command": parts[1], "run_id": parts[2], "host": parts[3], "pid": parts[4]}
                other["since"] = row[1].astimezone(UTC).isoformat(timespec="seconds") if row[1] else "?"
            raise LockHeld(
                f"another deploysafe run holds the production lock: {_describe(other)}",
                hint="wait for it to finish; if its machine died, the lock is released when its database session ends",
                holder=other,
            )
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


def lock_target(provider_name: str, production_url: str) -> str:
    """Where the advisory lock lives: the maintenance database on a plain server (so a template copy of
    production is not blocked by our own session), production itself on Neon (a branch is its own server)."""
    return pg.maintenance_url(production_url) if provider_name == "local" else production_url
