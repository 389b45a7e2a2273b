"""Local provider: any PostgreSQL reachable by URL; a snapshot is a database on the same server.

Strategies:
- ``dump`` (default): ``pg_dump -Fc | pg_restore`` into a new database. Online and consistent
  (pg_dump reads one snapshot), works while the app is connected.
- ``template``: ``CREATE DATABASE … TEMPLATE production``. A file-level copy, much faster, but
  PostgreSQL refuses it while any other session is connected to production.

Snapshot metadata is a JSON ``COMMENT ON DATABASE``, so any machine sees the same list.
Point-in-time snapshots are impossible here (PostgreSQL keeps no history without WAL
archiving); asking for one raises PointInTimeError.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from deploysafe import pg
from deploysafe.errors import PointInTimeError, PreconditionError, ProviderError
from deploysafe.providers import record
from deploysafe.providers.base import (
    ANNOTATION_KEY,
    COPYING,
    INCOMPLETE,
    Capabilities,
    ProductionInfo,
    RestorePlan,
    Snapshot,
    SnapshotKind,
    parse_time,
    utcnow,
)

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig

MAX_IDENT = 63  # PostgreSQL's NAMEDATALEN - 1, in bytes
DUMP_TIMEOUT = 6 * 3600
# pg_dump takes a shared lock on every table first; behind a long exclusive lock (a migration, VACUUM FULL)
# it fails after this instead of waiting hours while the deploy lock is held. pg_restore writes into a new
# database nobody else uses; its sessions get the same bound as a lock_timeout all the same.
LOCK_WAIT_TIMEOUT = "60s"


def db_name_for(name: str) -> str:
    """Database name for a snapshot name: itself when it fits 63 bytes, else a prefix plus a hash (no collisions)."""
    raw = name.encode("utf-8")
    if len(raw) <= MAX_IDENT:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:10]
    prefix = raw[: MAX_IDENT - 11].decode("utf-8", errors="ignore")
    return f"{prefix}-{digest}"


def _session_key(pid: int | None, started: datetime | None) -> str:
    """A server session, named so a reused pid never passes for it: pid plus its start time ("*" when the
    server hides the start time of another role's session)."""
    return f"{pid}@{started.isoformat() if started else '*'}"


def _state(meta: dict[str, Any], sessions: set[str]) -> str:
    """ready, or for a copy not marked finished: copying while its copier's session lives, else incomplete.
    A session whose start time is hidden counts as the copier when its pid matches: when in doubt, keep."""
    if meta.get("state") != COPYING:
        return "ready"
    copier = str(meta.get("copier"))
    alive = copier in sessions or copier.split("@", 1)[0] + "@*" in sessions
    return COPYING if alive else INCOMPLETE


class LocalProvider:
    name = "local"

    def __init__(
        self,
        database_url: str,
        *,
        strategy: str = "dump",
        retention: dict[str, float] | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.url = database_url
        self.strategy = strategy
        self.now = now  # the wall clock that stamps created_at/expires_at (injected by tests)
        self.production_db = pg.dbname_of(database_url)
        self.retention = retention or {}
        if not self.production_db:
            raise PreconditionError(
                "provider.database_url has no database name", hint="write it as postgresql://user@host:5432/dbname"
            )

    @classmethod
    def from_config(cls, loaded: LoadedConfig, *, now: Callable[[], datetime] = utcnow, **_: Any) -> LocalProvider:
        p = loaded.config.provider
        assert p.database_url is not None  # validated by the config model
        r = loaded.config.retention
        retention = {"pre-deploy": r.pre_deploy, "daily": r.daily, "weekly": r.weekly, "restore": r.restore, "drill": r.drill}
        if r.manual is not None:
            retention["manual"] = r.manual
        return cls(p.database_url, strategy=p.strategy, retention=retention, now=now)

    # --- connections -----------------------------------------------------------------------

    def _admin(self) -> psycopg.Connection[Any]:
        try:
            return pg.connect(pg.maintenance_url(self.url))
        except ProviderError:
            return pg.connect(pg.with_dbname(self.url, "template1"))

    def production(self) -> ProductionInfo:
        with pg.connect(self.url):
            pass
        return ProductionInfo(id=self.production_db, name=self.production_db, url=self.url)

    # --- listing -----------------------------------------------------------------------------

    def list_snapshots(self) -> list[Snapshot]:
        with self._admin() as conn:
            rows = conn.execute(
                "SELECT d.datname, shobj_description(d.oid, 'pg_database'), pg_database_size(d.oid) "
                "FROM pg_database d WHERE NOT d.datistemplate AND d.datallowconn ORDER BY d.datname"
            ).fetchall()
            sessions = {_session_key(pid, started) for pid, started in
                        conn.execute("SELECT pid, backend_start FROM pg_stat_activity").fetchall()}
        return [self._to_snapshot(db, comment, size, sessions) for db, comment, size in rows]

    def _to_snapshot(self, db: str, comment: str | None, size: int | None, sessions: set[str]) -> Snapshot:
        meta: dict[str, Any] = {}
        if comment:
            try:
                parsed = json.loads(comment)
                meta = parsed if isinstance(parsed, dict) else {}
            except json.JSONDecodeError:
                meta = {}
        # Only snapshots of *this* production are ours: several apps may share one server.
        ours = ANNOTATION_KEY in meta and meta.get("source") == self.production_db
        kind = None
        if ours:
            try:
                kind = SnapshotKind(meta[ANNOTATION_KEY])
            except ValueError:
                ours = False
        created = parse_time(meta.get("created_at")) or datetime.fromtimestamp(0, UTC)
        return Snapshot(
            id=db,
            name=meta.get("name", db) if ours else db,
            kind=kind,
            ours=ours,
            created_at=created,
            source=meta.get("source"),
            git_sha=meta.get("git_sha"),
            size_bytes=size,
            is_production=db == self.production_db,
            expires_at=parse_time(meta.get("expires_at")),
            state=_state(meta, sessions) if ours else "ready",
        )

    def get(self, name: str) -> Snapshot:
        for s in self.list_snapshots():
            if s.name == name or s.id == name:
                return s
        raise ProviderError(f"no snapshot named {name!r}", hint="see `deploysafe snapshot list`")

    # --- create --------------------------------------------------------------------------------

    def create_snapshot(
        self,
        name: str,
        kind: SnapshotKind,
        *,
        at: datetime | None = None,
        git_sha: str | None = None,
        serve: bool = False,
    ) -> Snapshot:
        if at is not None:
            raise PointInTimeError(
                "the local provider cannot make point-in-time snapshots: plain PostgreSQL keeps no history to branch from",
                hint="restore from an existing snapshot (`deploysafe snapshot list`), or use provider type \"neon\"",
            )
        target = db_name_for(name)
        if target == self.production_db:
            raise ProviderError(f"snapshot name {name!r} is the production database's name", hint="choose another --name")
        now = self.now()
        meta: dict[str, Any] = {
            ANNOTATION_KEY: kind.value,
            "name": name,
            "created_at": now.isoformat(timespec="milliseconds"),
            "source": self.production_db,
            "git_sha": git_sha,
        }
        keep = self.retention.get(kind.value)
        if keep:
            meta["expires_at"] = (now + timedelta(seconds=keep)).isoformat(timespec="seconds")
        with self._admin() as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone()
            if exists:
                raise ProviderError(
                    f"a database named {target!r} already exists", hint="choose another --name, or delete the old snapshot"
                )
            # Marked as ours before the copy starts, with this session as the copier: a copy killed half-way
            # (SIGKILL, a lost runner) is then listed as incomplete, never served, and deleted by prune.
            pid, started = conn.execute(
                "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ).fetchone() or (None, None)
            copying = {**meta, "state": COPYING, "copier": _session_key(pid, started)}
            if self.strategy == "template":
                self._create_from_template(conn, target)
                self._comment(conn, target, copying)
            else:
                self._create_from_dump(conn, target, copying)
            self._comment(conn, target, meta)
        return self.get(name)

    @staticmethod
    def _comment(conn: psycopg.Connection[Any], target: str, meta: dict[str, Any]) -> None:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(target), sql.Literal(json.dumps(meta))))

    def _create_from_template(self, conn: psycopg.Connection[Any], target: str) -> None:
        # PostgreSQL 15+ copies a template through the WAL by default; FILE_COPY is several times faster for
        # a whole database (one checkpoint, then a file copy), which is what a snapshot is.
        strategy = sql.SQL(" STRATEGY FILE_COPY") if pg.server_major(conn) >= 15 else sql.SQL("")
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                    sql.Identifier(target), sql.Identifier(self.production_db), strategy
                )
            )
        except psycopg.errors.ObjectInUse:
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.production_db,)
            ).fetchone()
            raise ProviderError(
                f"strategy \"template\" cannot copy {self.production_db!r}: {others[0] if others else 'some'} other "
                "session(s) are connected to it, and PostgreSQL copies a template only when nobody is",
                hint='use strategy = "dump" (online), or stop the app before snapshotting',
            ) from None
        except psycopg.Error as e:
            raise ProviderError(f"CREATE DATABASE failed: {pg.first_line(e)}") from None

    def _create_from_dump(self, conn: psycopg.Connection[Any], target: str, copying: dict[str, Any]) -> None:
        major = pg.server_major(conn)
        pg_dump = pg.find_tool("pg_dump", major)
        pg_restore = pg.find_tool("pg_restore", major)
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(target)))
        except psycopg.Error as e:
            raise ProviderError(f"CREATE DATABASE failed: {pg.first_line(e)}", hint="the role needs CREATEDB") from None
        target_url = pg.with_dbname(self.url, target)
        ok = False
        try:
            self._comment(conn, target, copying)
            self._copy(pg_dump, pg_restore, target_url)
            ok = True
        finally:
            if not ok:  # never leave a half-restored database that looks like a snapshot
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(target)))

    def _copy(self, pg_dump: str, pg_restore: str, target_url: str) -> None:
        env = pg.libpq_env(self.url)
        with tempfile.TemporaryDirectory(prefix="deploysafe-dump-") as tmp:
            # Directory format lets both sides work in parallel (-j); one consistent snapshot on the source.
            out = Path(tmp) / "dump"
            dump = subprocess.run(
                [pg_dump, "-Fd", "-j", "2", f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT}", "-f", str(out),
                 pg.dbname_arg(self.url)],
                env=env, capture_output=True, text=True, timeout=DUMP_TIMEOUT, stdin=subprocess.DEVNULL, check=False,
            )
            if dump.returncode != 0:
                raise ProviderError(
                    f"pg_dump failed: {dump.stderr.strip()[-400:]}",
                    hint=f"if it waited on a lock: a session held a table lock for over {LOCK_WAIT_TIMEOUT} "
                         "(a long migration or VACUUM FULL?); run again once it is done",
                )
            restore = subprocess.run(
                [pg_restore, "-j", "2", "--exit-on-error", pg.dbname_arg(target_url), str(out)],
                env={**pg.libpq_env(target_url), "PGOPTIONS": f"-c lock_timeout={LOCK_WAIT_TIMEOUT}"}, capture_output=True, text=True, timeout=DUMP_TIMEOUT,
                stdin=subprocess.DEVNULL, check=False,
            )
            if restore.returncode != 0:
                raise ProviderError(f"pg_restore failed: {restore.stderr.strip()[-400:]}")

    # --- serve / connect -----------------------------------------------------------------------

    def ensure_serving(self, name: str) -> None:
        with pg.connect(self.connection_url(name)):
            pass

    def connection_url(self, name: str, *, like: str | None = None) -> str:
        snap = self.get(name)
        if snap.state in (COPYING, INCOMPLETE):
            raise ProviderError(
                f"snapshot {name!r} is {'still being copied' if snap.state == COPYING else 'incomplete: its copy was stopped'};"
                " it cannot be served or restored from",
                hint="choose another snapshot (`deploysafe snapshot list`); `deploysafe prune` deletes incomplete copies",
            )
        return pg.with_dbname(self.url, snap.id)

    def hold(self, name: str) -> None:
        """Nothing expires on its own here: prune alone deletes."""

    def plan_restore(self, snapshot: str | None = None, *, at: datetime | None = None) -> RestorePlan:
        return RestorePlan.unsupported(self.name)

    def restore_in_place(self, plan: RestorePlan, preserve_as: str) -> None:
        refused = RestorePlan.unsupported(self.name)
        raise ProviderError(refused.reason, hint=refused.fix)

    def identify(self, url: str) -> str | None:
        try:
            if pg.server_of(url) != pg.server_of(self.url):
                return None
            db = pg.dbname_of(url)
        except ValueError:
            return None
        for s in self.list_snapshots():
            if s.id == db:
                return s.name
        return None

    # --- delete / rename -------------------------------------------------------------------------

    def delete(self, name: str) -> None:
        snaps = [s for s in self.list_snapshots() if s.name == name or s.id == name]
        if not snaps:
            return  # already gone
        snap = snaps[0]
        if snap.is_production:
            raise ProviderError(f"refusing to delete {name!r}: it is the production database")
        if not snap.ours:
            raise ProviderError(f"refusing to delete {name!r}: deploysafe did not create it")
        with self._admin() as conn:
            try:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(snap.id)))
            except psycopg.errors.ObjectInUse:
                raise ProviderError(
                    f"snapshot {name!r} is in use by other sessions; not deleted",
                    hint="repoint or stop what is connected to it first",
                ) from None

    def rename(self, name: str, new_name: str) -> None:
        snap = self.get(name)
        target = db_name_for(new_name)
        with self._admin() as conn:
            try:
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(snap.id), sql.Identifier(target)))
            except psycopg.Error as e:
                raise ProviderError(f"cannot rename {name!r}: {pg.first_line(e)}", hint="disconnect its sessions first") from None
            if snap.ours:
                comment = conn.execute(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (target,)
                ).fetchone()
                meta = json.loads(comment[0]) if comment and comment[0] else {}
                meta["name"] = new_name
                conn.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(target), sql.Literal(json.dumps(meta)))
                )

    # --- where the app points (see record.py) ----------------------------------------------------

    def record_app_target(self, name: str) -> None:
        record.write(self.url, name, now=self.now())

    def recorded_app_target(self) -> str | None:
        return record.read(self.url)

    # --- plan facts ------------------------------------------------------------------------------

    def branch_allowance(self) -> int | None:
        return None

    def history_window(self) -> float | None:
        return None

    def capabilities(self) -> Capabilities:
        return Capabilities(database_copies=self)

    def lock_url(self, production_url: str) -> str:
        # the maintenance database, so a template copy of production is not blocked by our own session
        return pg.maintenance_url(production_url)

    # --- database copies (drill, restore-table, promote) ------------------------------------------

    def clone(self, source: Snapshot, name: str, kind: SnapshotKind) -> Snapshot:
        """Copy one snapshot database into a new one marked as ours (kind ``kind``).

        Drills and restores work on the copy so the snapshot itself is never touched. The copy is
        ``CREATE DATABASE … TEMPLATE snapshot``: snapshots have no sessions, so the fast file-level
        copy applies; if one does, the error says so.
        """
        target = db_name_for(name)
        # "source" is production (a database counts as ours only when it copies this production);
        # "copied_from" names the snapshot it was made from.
        meta = {ANNOTATION_KEY: kind.value, "name": name, "created_at": self.now().isoformat(timespec="milliseconds"),
                "source": self.production_db, "copied_from": source.id}
        with pg.connect(pg.maintenance_url(self.url)) as conn:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(target),
                                                                              sql.Identifier(source.id)))
            except psycopg.errors.ObjectInUse:
                raise ProviderError(
                    f"cannot copy snapshot {source.name!r}: other sessions are connected to it",
                    hint="disconnect them (nothing should use a snapshot directly) and retry",
                ) from None
            except psycopg.Error as e:
                raise ProviderError(f"cannot copy snapshot {source.name!r}: {pg.first_line(e)}") from None
            self._comment(conn, target, meta)
        return self.get(name)

    def take_name(self, snapshot: str, new_name: str) -> str:
        # A PostgreSQL database cannot be renamed while anyone is connected to it.
        snap = self.get(snapshot)
        with self._admin() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                         "AND pid <> pg_backend_pid()", (snap.id,))
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(snap.id),
                                                                         sql.Identifier(new_name)))
        return pg.with_dbname(self.url, new_name)

    def unmark(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(name)))

    def close(self) -> None:
        return None
