"""The migrate workflow: apply the committed migrations with the app's own migrate command.

Drizzle's migrator (drizzle-orm ``readMigrationFiles`` and the dialect's ``migrate``; also
what ``drizzle-kit migrate`` runs) reads ``<out>/meta/_journal.json``, and for each entry
the file ``<tag>.sql``: its hash is the sha256 (hex) of the file's content, its
``created_at`` the entry's ``when``. It applies, in one transaction, every entry whose
``when`` is later than the newest ``created_at`` in ``"drizzle"."__drizzle_migrations"``
(``migrations.schema``/``migrations.table`` in drizzle.config), and records each one.

So the outcome is checkable: after the command, the table must hold exactly the journal's
entries with the journal's hashes. Before it, deploysafe refuses what the migrator would
silently get wrong: an applied migration whose file was edited since (its hash differs),
and a pending one older than the newest applied (the migrator skips it forever).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from deploysafe.config import LoadedConfig
from deploysafe.drizzle import layout as drizzle_layout
from deploysafe.drizzle.app import read_app
from deploysafe.errors import PreconditionError, StepError
from deploysafe.redact import redact, register_secret, url_password

DEFAULT_TABLE = "__drizzle_migrations"
DEFAULT_SCHEMA = "drizzle"


@dataclass(frozen=True)
class Entry:
    tag: str
    when: int
    hash: str


@dataclass(frozen=True)
class State:
    journal: list[Entry]
    applied: dict[int, str]  # created_at -> hash, as the migrations table holds them

    @property
    def pending(self) -> list[Entry]:
        return [e for e in self.journal if e.when not in self.applied]

    def mismatches(self) -> list[str]:
        """What differs between the journal and the table, one phrase each (empty: they agree)."""
        out = [f"{e.tag} is not recorded as applied" for e in self.pending]
        out += [f"{e.tag} was applied with a different content (hash) than the file has now"
                for e in self.journal if e.when in self.applied and self.applied[e.when] != e.hash]
        known = {e.when for e in self.journal}
        out += [f"the table records a migration (created_at {w}) that the journal does not list"
                for w in self.applied if w not in known]
        return out


def table_name(loaded: LoadedConfig) -> tuple[str, str]:
    """(schema, table) of the migrations table: [app] keys, else drizzle.config ``migrations``, else drizzle's defaults."""
    app_cfg = loaded.config.app
    app = read_app(loaded.app_dir)
    schema = app_cfg.migrations_schema or app.migrations_schema or DEFAULT_SCHEMA
    table = app_cfg.migrations_table or app.migrations_table or DEFAULT_TABLE
    return schema, table


def read_journal(folder: Path) -> list[Entry]:
    """The journal's entries with each file's sha256, as drizzle's migrator computes them."""
    path = folder / "meta" / "_journal.json"
    if drizzle_layout.layout(folder) == "folders":
        raise PreconditionError(
            f"{folder} holds drizzle-kit 1.0's migrations (one folder each); the migrate workflow reads "
            "drizzle-kit 0.x's meta/_journal.json only",
            hint='deploy this app with [app] workflow = "push", or keep drizzle-kit 0.x for the migrate workflow',
        )
    if not path.is_file():
        raise PreconditionError(
            f"no migrations journal at {path}",
            hint="generate and commit the migrations (e.g. drizzle-kit generate), or set [app] migrations_dir",
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["entries"]
        out = []
        for e in entries:
            sql = folder / f"{e['tag']}.sql"
            if not sql.is_file():
                raise PreconditionError(f"{path} lists {e['tag']}, but {sql} does not exist",
                                        hint="commit the migration file, or regenerate the migrations")
            out.append(Entry(str(e["tag"]), int(e["when"]), hashlib.sha256(sql.read_bytes()).hexdigest()))
    except (ValueError, KeyError, TypeError) as e:
        raise PreconditionError(f"cannot read {path}: {e}", hint="restore the journal drizzle-kit generate wrote") from None
    return out


def applied(database_url: str, schema: str, table: str) -> dict[int, str]:
    """created_at -> hash of every row in the migrations table (empty when it does not exist yet)."""
    import psycopg
    from psycopg import sql

    register_secret(url_password(database_url))
    try:
        with psycopg.connect(database_url, connect_timeout=15, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
            if not exists or exists[0] is None:
                return {}
            rows = conn.execute(sql.SQL("SELECT created_at, hash FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table))).fetchall()
    except psycopg.Error as e:
        raise StepError(f"cannot read the migrations table {schema}.{table}: {redact(str(e)).strip()}",
                        hint="check that the role may read it") from None
    return {int(w): str(h) for w, h in rows if w is not None}


def state(loaded: LoadedConfig, database_url: str, folder: Path) -> State:
    schema, table = table_name(loaded)
    return State(read_journal(folder), applied(database_url, schema, table))


def refuse_unappliable(before: State, where: str) -> None:
    """Stop before the migrate command when drizzle's migrator would silently do the wrong thing."""
    edited = [e.tag for e in before.journal if e.when in before.applied and before.applied[e.when] != e.hash]
    if edited:
        raise PreconditionError(
            f"{', '.join(edited)}: applied to {where} already, but the file was edited since (its sha256 differs "
            "from the one recorded); drizzle's migrator would not apply the change",
            hint="restore the file as it was applied and put the change in a new migration (drizzle-kit generate)",
        )
    newest = max(before.applied, default=None)
    skipped = [e.tag for e in before.pending if newest is not None and e.when <= newest]
    if skipped:
        raise PreconditionError(
            f"{', '.join(skipped)}: pending, but older than the newest applied migration; drizzle's migrator "
            "skips it and would report success",
            hint="regenerate it after the newest one (delete it and run drizzle-kit generate again), then commit",
        )
