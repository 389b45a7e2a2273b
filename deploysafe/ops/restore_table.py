"""``deploysafe restore-table``: bring back one table (or its lost rows) from a snapshot or a moment.

1. The source: an existing snapshot (``--from``), or a temporary point-in-time branch (``--at``,
   Neon) that is deleted afterwards whatever happens.
2. ``pg_dump --data-only --table`` of that one table over a *direct* connection (a ``-pooler``
   host is PgBouncer in transaction mode; pg_dump needs a session). Its COPY rows stream straight
   into a temporary table of one production session: memory stays bounded, production's own
   tables are not touched.
3. The difference by primary key, computed by PostgreSQL: rows only in the source, only in
   production, present in both but different (counts plus a few sample keys).
4. In ONE transaction (with a lock timeout, so it never waits forever): by default a new table
   ``<name>_restored_<UTC timestamp>`` holding the source's rows (with its primary key), or with
   ``--into production`` the rows missing from production are inserted; a table that no longer
   exists is first re-created from ``pg_dump --schema-only`` of the source. Rows present in both
   are never overwritten; serial/identity sequences are moved forward past the restored ids.
   A connection lost while committing leaves the outcome unknown: exit 4 with the check to make
   (re-running is safe). A temporary branch that cannot be deleted after a finished restore is
   exit 4 with the command that deletes it.

Names are always quoted with ``psycopg.sql.Identifier`` (and pg_dump's pattern quoting), so
tables with quotes, spaces or any Unicode work; nothing user-given is interpolated into SQL.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pglast
import psycopg
from psycopg import sql

from deploysafe import pg
from deploysafe.console import console
from deploysafe.errors import DeploysafeError, PartialChange, PreconditionError, ProviderError, UsageError
from deploysafe.ops import utcnow
from deploysafe.pg import direct_url  # used here for the source and production copies
from deploysafe.providers.base import SnapshotKind
from deploysafe.snapshots.manage import ensure_headroom, production_lock, restore_name

if TYPE_CHECKING:
    import psycopg

    from deploysafe.config import LoadedConfig
    from deploysafe.journal import Journal
    from deploysafe.providers.base import Provider

STAGE = "deploysafe_restore_stage"
SAMPLE = 5
LOCK_TIMEOUT = "5s"
LOCK_WAIT_TIMEOUT = "60s"  # pg_dump's wait for its shared lock on the source table (a snapshot nobody locks, as a rule)
DUMP_TIMEOUT = 6 * 3600


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): valid SQL type text as PostgreSQL prints it


@dataclass
class Diff:
    production_exists: bool
    source_rows: int
    only_source: int = 0
    only_production: int = 0
    differing: int = 0
    by_key: bool = True  # False: no primary key, only counts
    samples: dict[str, list[str]] = field(default_factory=dict)
    missing_columns: list[str] = field(default_factory=list)  # in the source, not in production


@dataclass
class RestoreResult:
    source: str
    table: str
    target: str  # the table written (or that would be)
    mode: str  # "copy" | "into-production"
    diff: Diff
    dry_run: bool
    applied: bool = False
    inserted: int = 0
    recreated: bool = False
    temp_branch: str | None = None
    temp_deleted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dump_pattern(schema: str, table: str) -> str:
    """pg_dump ``--table`` pattern matching exactly this table: double-quoted, quotes doubled (no wildcards)."""
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))


def restored_name(table: str, now: datetime) -> str:
    """``<table>_restored_<YYYYMMDDHHMMSS>``, the table part cut so the whole fits 63 bytes."""
    suffix = "_restored_" + now.strftime("%Y%m%d%H%M%S")
    room = 63 - len(suffix.encode())
    head = table.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return head + suffix


# --- catalog -------------------------------------------------------------------------------------


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[Column] | None:
    """Insertable columns in order (generated and dropped ones skipped), or None when the table is absent."""
    exists = conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, table),
    ).fetchone()
    if exists is None:
        return None
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (exists[0],),
    ).fetchall()
    return [Column(r[0], r[1]) for r in rows]


def _primary_key(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE i.indisprimary AND n.nspname = %s AND c.relname = %s ORDER BY k.ord",
        (schema, table),
    ).fetchall()
    return [r[0] for r in rows]


# --- pg_dump -------------------------------------------------------------------------------------


def _dump_command(source_url: str, schema: str, table: str, *extra: str) -> list[str]:
    with pg.connect(source_url) as conn:
        major = pg.server_major(conn)
    tool = pg.find_tool("pg_dump", major)
    return [tool, "--no-owner", "--no-privileges", "--strict-names", f"--table={dump_pattern(schema, table)}",
            f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT}", "--format=plain", *extra, pg.dbname_arg(source_url)]


def _dump_failed(what: str, stderr: bytes) -> ProviderError:
    return ProviderError(f"pg_dump ({what}) failed: {stderr.decode(errors='replace').strip()[-400:]}",
                         hint="check that the pg_dump version is at least the server's and the role can read the table")


def stream_rows(source_url: str, schema: str, table: str, cur: psycopg.Cursor[Any], stage: str) -> None:
    """Pipe the COPY block of ``pg_dump --data-only`` into ``COPY <stage> FROM STDIN`` (bounded memory)."""
    args = _dump_command(source_url, schema, table, "--data-only")
    with subprocess.Popen(args, env=pg.libpq_env(source_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        in_copy = False
        try:
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(stage))) as copy:
                for line in proc.stdout:
                    if not in_copy:
                        # pg_dump writes exactly one "COPY <table> (<cols>) FROM stdin;" for one table
                        in_copy = line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;")
                        continue
                    if line.rstrip(b"\r\n") == b"\\.":
                        in_copy = False
                        continue
                    copy.write(line)
        except BaseException:
            proc.kill()  # the real error is the one to report, not the dump's broken pipe
            raise
        err = proc.stderr.read()
        if proc.wait(timeout=DUMP_TIMEOUT) != 0:
            raise _dump_failed("data", err)


def definition_sql(source_url: str, schema: str, table: str) -> list[str]:
    """The table's DDL from ``pg_dump --schema-only`` as single statements (session SETs and psql meta lines dropped)."""
    args = _dump_command(source_url, schema, table, "--schema-only")
    done = subprocess.run(args, env=pg.libpq_env(source_url), capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=DUMP_TIMEOUT, check=False)
    if done.returncode != 0:
        raise _dump_failed("definition", done.stderr)
    text = "\n".join(ln for ln in done.stdout.decode("utf-8").splitlines() if not ln.startswith("\\"))
    keep = []
    for stmt in pglast.split(text):
        head = stmt.lstrip().upper()
        if head.startswith("SET ") or head.startswith("SELECT PG_CATALOG.SET_CONFIG"):
            continue
        keep.append(stmt)
    return keep


# --- the diff ------------------------------------------------------------------------------------


def _stage(conn: psycopg.Connection[Any], source_url: str, schema: str, table: str, cols: list[Column]) -> None:
    defs = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in cols)
    try:
        conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(sql.Identifier(STAGE), defs))
    except Exception as e:
        raise PreconditionError(
            f"production cannot hold the source's columns: {pg.first_line(e)}",
            hint="a column type (e.g. an enum) no longer exists in production; re-create it first",
        ) from None
    with conn.cursor() as cur:
        stream_rows(source_url, schema, table, cur, STAGE)


def _keys_equal(pk: list[str], a: str, b: str) -> Any:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(a, k), sql.Identifier(b, k)) for k in pk
    )


def _key_text(pk: list[str], alias: str) -> Any:
    return sql.SQL("concat_ws(', ', {})").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(alias, k)) for k in pk)
    )


def _diff(conn: psycopg.Connection[Any], target: Any, pk: list[str], src_cols: list[Column],
          prod_cols: list[Column] | None) -> Diff:
    stage = sql.Identifier(STAGE)
    total_row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(stage)).fetchone()
    total = int(total_row[0]) if total_row else 0
    if prod_cols is None:
        return Diff(production_exists=False, source_rows=total, only_source=total, by_key=bool(pk))
    prod_names = {c.name for c in prod_cols}
    diff = Diff(production_exists=True, source_rows=total,
                missing_columns=[c.name for c in src_cols if c.name not in prod_names])
    if not pk or any(k not in prod_names for k in pk):
        diff.by_key = False
        return diff
    common = [c.name for c in src_cols if c.name in prod_names]
    s_row = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier("s", c)) for c in common)
    p_row = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier("p", c)) for c in common)
    queries = {
        "only_source": sql.SQL("FROM {} s WHERE NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
            stage, target, _keys_equal(pk, "p", "s")),
        "only_production": sql.SQL("FROM {} p WHERE NOT EXISTS (SELECT 1 FROM {} s WHERE {})").format(
            target, stage, _keys_equal(pk, "p", "s")),
        "differing": sql.SQL("FROM {} s JOIN {} p ON {} WHERE ROW({}) IS DISTINCT FROM ROW({})").format(
            stage, target, _keys_equal(pk, "p", "s"), s_row, p_row),
    }
    for name, body in queries.items():
        alias = "p" if name == "only_production" else "s"
        row = conn.execute(sql.SQL("SELECT count(*) ") + body).fetchone()
        setattr(diff, name, int(row[0]) if row else 0)
        keys = conn.execute(
            sql.SQL("SELECT {} ").format(_key_text(pk, alias)) + body
            + sql.SQL(" ORDER BY 1 LIMIT {}").format(sql.Literal(SAMPLE))
        ).fetchall()
        diff.samples[name] = [str(k[0]) for k in keys]
    return diff


# --- applying ------------------------------------------------------------------------------------


def _bump_sequences(conn: psycopg.Connection[Any], target: Any, target_text: str, cols: list[str]) -> None:
    """Move serial/identity sequences past the restored ids (forward only), so later inserts don't collide."""
    for col in cols:
        row = conn.execute("SELECT pg_get_serial_sequence(%s, %s)", (target_text, col)).fetchone()
        if not row or not row[0]:
            continue
        conn.execute(
            sql.SQL(
                "SELECT setval(%s::regclass, m) FROM (SELECT max({})::bigint AS m FROM {}) x "
                "WHERE m IS NOT NULL AND m > COALESCE(pg_sequence_last_value(%s::regclass), 0)"
            ).format(sql.Identifier(col), target),
            (row[0], row[0]),
        )


def _insert_missing(conn: psycopg.Connection[Any], target: Any, pk: list[str], cols: list[str], *, all_rows: bool) -> int:
    names = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    picked = sql.SQL(", ").join(sql.Identifier("s", c) for c in cols)
    query = sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} s").format(
        target, names, picked, sql.Identifier(STAGE))
    if not all_rows:
        query += sql.SQL(" WHERE NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(target, _keys_equal(pk, "p", "s"))
    cur = conn.execute(query)
    return max(cur.rowcount, 0)


@contextmanager
def _temporary_source(loaded: LoadedConfig, provider: Provider, at: datetime, journal: Journal) -> Iterator[str]:
    name = restore_name(at)
    with journal.step("restore-table-branch", branch=name, at=at.isoformat()):
        ensure_headroom(loaded, provider, None, journal=journal)
        provider.create_snapshot(name, SnapshotKind.RESTORE, at=at, serve=True)
    finished = False
    try:
        yield name
        finished = True
    finally:
        try:
            with journal.step("restore-table-cleanup", branch=name):
                provider.delete(name)
        except DeploysafeError as e:
            left = f"Delete the temporary branch: deploysafe snapshot delete {name}"
            if finished:  # the restore is done; what is left is the branch: say so, not "failed, nothing changed"
                raise PartialChange(f"restore-table finished, but the temporary branch {name!r} could not be deleted: "
                                    f"{e.message}", manual_steps=[left]) from None
            console.warn(f"the temporary branch {name!r} could not be deleted ({e.message}). {left}")


def restore_table(
    loaded: LoadedConfig,
    provider: Provider,
    journal: Journal,
    *,
    table: str,
    schema: str = "public",
    from_snapshot: str | None = None,
    at: datetime | None = None,
    into_production: bool = False,
    as_name: str | None = None,
    dry_run: bool = False,
    confirm: Callable[[RestoreResult], bool] = lambda _r: True,
    show: Callable[[RestoreResult], None] = lambda _r: None,
    now: datetime | None = None,
) -> RestoreResult:
    """Plan (and unless ``dry_run`` and ``confirm`` says yes, carry out) a single-table restore."""
    if (from_snapshot is None) == (at is None):
        raise UsageError("give exactly one of --from SNAPSHOT or --at TIMESTAMP")
    if into_production and as_name:
        raise UsageError("--into production and --as exclude each other", hint="--as writes a new table; choose one")
    if not table:
        raise UsageError("--table must name a table")
    now = now or utcnow()
    target_name = table if into_production else (as_name or restored_name(table, now))
    if at is not None:
        with _temporary_source(loaded, provider, at, journal) as temp:
            result = _restore_from(loaded, provider, journal, temp, table, schema, target_name, into_production,
                                   dry_run, confirm, show)
            result.temp_branch = temp
        result.temp_deleted = True
        return result
    assert from_snapshot is not None
    provider.get(from_snapshot)  # a clear error when it does not exist
    return _restore_from(loaded, provider, journal, from_snapshot, table, schema, target_name, into_production,
                         dry_run, confirm, show)


def _restore_from(
    loaded: LoadedConfig, provider: Provider, journal: Journal, source: str, table: str, schema: str,
    target_name: str, into_production: bool, dry_run: bool,
    confirm: Callable[[RestoreResult], bool], show: Callable[[RestoreResult], None],
) -> RestoreResult:
    provider.ensure_serving(source)
    source_url = direct_url(provider.connection_url(source))
    prod_url = direct_url(provider.production().url)
    with pg.connect(source_url) as sconn:
        src_cols = _columns(sconn, schema, table)
        pk = _primary_key(sconn, schema, table)
    if src_cols is None:
        raise PreconditionError(f"table {schema}.{table} does not exist in {source!r}",
                                hint="check the name (it is case-sensitive) and the snapshot")
    mode = "into-production" if into_production else "copy"
    target = sql.Identifier(schema, target_name)

    def attempt(apply: bool) -> RestoreResult:
        with pg.connect(prod_url, autocommit=False) as conn:
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            prod_cols = _columns(conn, schema, table)
            _stage(conn, source_url, schema, table, src_cols)
            diff = _diff(conn, sql.Identifier(schema, table), pk, src_cols, prod_cols)
            result = RestoreResult(source, table, target_name, mode, diff, dry_run=dry_run and not apply)
            if apply:
                _apply(conn, result, target, schema, pk, src_cols, prod_cols, source_url)
                _commit(conn, schema, table, target_name, into_production)
                result.applied = True
            else:
                conn.rollback()
            return result

    with journal.step("restore-table-plan", source=source, table=table, target=target_name, mode=mode) as step:
        plan = attempt(apply=False)
        step.details.update(only_source=plan.diff.only_source, only_production=plan.diff.only_production,
                            differing=plan.diff.differing)
    show(plan)
    if dry_run or not confirm(plan):
        journal.event("result", outcome="dry run" if dry_run else "declined", table=table, target=target_name)
        return plan

    # Writing into production: hold the deploy lock so a deploy's migration never runs at the same time.
    with production_lock(loaded, provider, journal, "restore-table"), \
            journal.step("restore-table-apply", source=source, table=table, target=target_name, mode=mode) as step:
        done = attempt(apply=True)
        step.details.update(inserted=done.inserted, recreated=done.recreated)
    journal.event("result", outcome="restored", table=table, target=target_name, inserted=done.inserted)
    return done


def _commit(conn: psycopg.Connection[Any], schema: str, table: str, target_name: str, into_production: bool) -> None:
    """COMMIT the one restore transaction. A connection lost while committing leaves its outcome unknown:
    that is a person's to check (exit 4), never "nothing was changed"."""
    try:
        conn.commit()
    except psycopg.OperationalError as e:
        if into_production:
            check = (f"Run the same restore-table command with --dry-run: 'only in the source: 0' means the rows of "
                     f"{schema}.{table} are back; otherwise run it again (rows in both copies are never overwritten)")
        else:
            check = (f"Check whether table {schema}.{target_name} exists: if it does, the restore finished; "
                     "if not, run the same restore-table command again")
        raise PartialChange(
            f"restore-table: the connection was lost while committing ({pg.first_line(e)}); "
            f"whether {schema}.{target_name} was written is unknown",
            manual_steps=[check],
        ) from None


def _apply(conn: psycopg.Connection[Any], result: RestoreResult, target: Any, schema: str, pk: list[str],
           src_cols: list[Column], prod_cols: list[Column] | None, source_url: str) -> None:
    target_text = target.as_string(conn)
    if result.mode == "copy":
        if _columns(conn, schema, result.target) is not None:
            raise PreconditionError(f"table {schema}.{result.target} already exists; nothing was changed",
                                    hint="choose another name with --as")
        conn.execute(sql.SQL("CREATE TABLE {} AS TABLE {}").format(target, sql.Identifier(STAGE)))
        if pk:
            conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                target, sql.SQL(", ").join(sql.Identifier(k) for k in pk)))
        result.inserted = result.diff.source_rows
        return
    # --into production
    if prod_cols is None:
        for stmt in definition_sql(source_url, schema, result.table):
            conn.execute(stmt)  # pg_dump's own DDL for this table, statement by statement
        result.recreated = True
        cols = [c.name for c in src_cols]
        result.inserted = _insert_missing(conn, target, pk, cols, all_rows=True)
    else:
        if not result.diff.by_key:
            raise PreconditionError(
                f"{schema}.{result.table} has no primary key in both copies, so missing rows cannot be told apart",
                hint="restore into a new table (drop --into production) and copy the rows you need by hand",
            )
        prod_names = {c.name for c in prod_cols}
        cols = [c.name for c in src_cols if c.name in prod_names]
        result.inserted = _insert_missing(conn, target, pk, cols, all_rows=False)
    _bump_sequences(conn, target, target_text, cols)
