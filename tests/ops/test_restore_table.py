"""restore-table against real PostgreSQL: a dropped table and 10 deleted rows come back row for row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from deploysafe.errors import PointInTimeError, PreconditionError, UsageError
from deploysafe.journal import Journal
from deploysafe.ops.restore_table import direct_url, dump_pattern, restore_table, restored_name
from deploysafe.providers.base import SnapshotKind
from support.ops_helpers import rows

NOW = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def other_tables(url: str) -> list[tuple[object, ...]]:
    return rows(url, "SELECT * FROM orders ORDER BY id")


def add_orders(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE orders (id int PRIMARY KEY, total numeric)")
        c.execute("INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 5) g")


def test_ten_deleted_rows_come_back_row_for_row(local_setup: Callable[..., object], tmp_path: object) -> None:
    loaded, prov = local_setup()  # type: ignore[misc]
    url = prov.url
    add_orders(url)
    before = rows(url)
    prov.create_snapshot("backup-2026-11-25", SnapshotKind.DAILY)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DELETE FROM users WHERE id BETWEEN 5 AND 14")
        c.execute("UPDATE users SET name = 'changed' WHERE id = 20")
        c.execute("INSERT INTO users (email, name) VALUES ('new@x', 'new')")
    orders = other_tables(url)
    journal = Journal(loaded.state_dir, "restore-table")
    shown = []
    plan = restore_table(loaded, prov, journal, table="users", from_snapshot="backup-2026-11-25", into_production=True,
                         dry_run=True, show=shown.append, now=NOW)
    assert not plan.applied and shown
    assert (plan.diff.only_source, plan.diff.only_production, plan.diff.differing) == (10, 1, 1)
    assert plan.diff.samples["only_source"] == ["10", "11", "12", "13", "14"]  # ordered as text, first five
    assert plan.diff.samples["differing"] == ["20"]
    assert len(rows(url)) == 30 - 10 + 1  # dry run changed nothing

    done = restore_table(loaded, prov, journal, table="users", from_snapshot="backup-2026-11-25", into_production=True,
                         now=NOW)
    assert done.applied and done.inserted == 10
    after = rows(url)
    by_id = {r[0]: r for r in after}
    for r in before:  # every deleted row is back exactly; the changed row is NOT overwritten
        assert by_id[r[0]] == (r if r[0] != 20 else (20, r[1], "changed"))
    assert len(after) == 31
    assert other_tables(url) == orders  # production otherwise untouched
    with psycopg.connect(url, autocommit=True) as c:  # the sequence moved past restored ids: inserts still work
        c.execute("INSERT INTO users (email) VALUES ('later@x')")


def test_dropped_table_is_recreated_with_its_rows_and_definition(local_setup: Callable[..., object]) -> None:
    loaded, prov = local_setup()  # type: ignore[misc]
    url = prov.url
    add_orders(url)
    before = rows(url)
    prov.create_snapshot("manual-1", SnapshotKind.MANUAL)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP TABLE users")
    orders = other_tables(url)
    journal = Journal(loaded.state_dir, "restore-table")
    done = restore_table(loaded, prov, journal, table="users", from_snapshot="manual-1", into_production=True, now=NOW)
    assert done.recreated and done.inserted == 30 and not done.diff.production_exists
    assert rows(url) == before and other_tables(url) == orders
    with psycopg.connect(url, autocommit=True) as c:
        pk = c.execute("SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass AND indisprimary").fetchone()
        assert pk == (1,)
        c.execute("INSERT INTO users (email) VALUES ('next@x')")  # serial default and sequence are back
        assert c.execute("SELECT max(id) FROM users").fetchone() == (31,)


def test_default_restores_into_a_new_table_and_never_overwrites(local_setup: Callable[..., object]) -> None:
    loaded, prov = local_setup()  # type: ignore[misc]
    url = prov.url
    before = rows(url)
    prov.create_snapshot("manual-2", SnapshotKind.MANUAL)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DELETE FROM users WHERE id > 25")
    prod_before = rows(url)
    journal = Journal(loaded.state_dir, "restore-table")
    done = restore_table(loaded, prov, journal, table="users", from_snapshot="manual-2", now=NOW)
    assert done.target == "users_restored_20261125100000" == restored_name("users", NOW)
    assert rows(url, 'SELECT * FROM users_restored_20261125100000 ORDER BY id') == before
    assert rows(url) == prod_before
    with pytest.raises(PreconditionError, match="already exists"):
        restore_table(loaded, prov, journal, table="users", from_snapshot="manual-2", now=NOW)
    # bad use is refused before anything changes
    with pytest.raises(UsageError):
        restore_table(loaded, prov, journal, table="users")
    with pytest.raises(UsageError):
        restore_table(loaded, prov, journal, table="users", from_snapshot="x", into_production=True, as_name="y")
    with pytest.raises(PointInTimeError):  # local provider has no history
        restore_table(loaded, prov, journal, table="users", at=NOW)
    with pytest.raises(PreconditionError, match="does not exist"):
        restore_table(loaded, prov, journal, table="nope", from_snapshot="manual-2")
    assert rows(url) == prod_before


def test_awkward_table_names_work(local_setup: Callable[..., object]) -> None:
    loaded, prov = local_setup(seed=False)  # type: ignore[misc]
    url = prov.url
    name = 'Ünïcode "quoted" table; DROP'
    with psycopg.connect(url, autocommit=True) as c:
        # identity (GENERATED ALWAYS) key and a generated column: restored ids are kept, the generated value recomputed
        c.execute(psycopg.sql.SQL('CREATE TABLE {} ("Key id" int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text, '
                                  "up text GENERATED ALWAYS AS (upper(v)) STORED)").format(psycopg.sql.Identifier(name)))
        c.execute(psycopg.sql.SQL("INSERT INTO {} (v) SELECT 'v\t' || g || E'\\n' FROM generate_series(1, 12) g").format(psycopg.sql.Identifier(name)))
    query = psycopg.sql.SQL("SELECT * FROM {} ORDER BY 1").format(psycopg.sql.Identifier(name)).as_string(None)
    before = rows(url, query)
    prov.create_snapshot("manual-3", SnapshotKind.MANUAL)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(psycopg.sql.SQL('DELETE FROM {} WHERE "Key id" <= 10').format(psycopg.sql.Identifier(name)))
    journal = Journal(loaded.state_dir, "restore-table")
    done = restore_table(loaded, prov, journal, table=name, from_snapshot="manual-3", into_production=True, now=NOW)
    assert done.inserted == 10
    assert rows(url, query) == before
    with psycopg.connect(url, autocommit=True) as c:  # the identity sequence still hands out fresh ids
        c.execute(psycopg.sql.SQL("INSERT INTO {} (v) VALUES ('next')").format(psycopg.sql.Identifier(name)))
        c.execute(psycopg.sql.SQL('DELETE FROM {} WHERE v = %s').format(psycopg.sql.Identifier(name)), ("next",))
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(psycopg.sql.SQL("DROP TABLE {}").format(psycopg.sql.Identifier(name)))
    done = restore_table(loaded, prov, journal, table=name, from_snapshot="manual-3", into_production=True, now=NOW)
    assert done.recreated and rows(url, query) == before


def test_direct_url_strips_pooler_and_pattern_quotes() -> None:
    assert direct_url("postgresql://u:p@ep-cool-1-pooler.us-east-2.aws.neon.tech/db?sslmode=require") == (
        "postgresql://u:p@ep-cool-1.us-east-2.aws.neon.tech/db?sslmode=require")
    assert direct_url("postgresql://u@localhost:5432/db") == "postgresql://u@localhost:5432/db"
    assert dump_pattern("public", 'a"b') == '"public"."a""b"'


def test_restore_refuses_while_a_deploy_holds_the_lock(local_setup: Callable[..., object]) -> None:
    from deploysafe import pg
    from deploysafe.errors import LockHeld
    from deploysafe.lock import lock_key

    loaded, prov = local_setup()  # type: ignore[misc]
    prov.create_snapshot("manual-5", SnapshotKind.MANUAL)
    with psycopg.connect(prov.url, autocommit=True) as c:
        c.execute("DELETE FROM users WHERE id <= 10")
    # another run (a deploy) holds the advisory lock on the production server
    with psycopg.connect(pg.maintenance_url(prov.url), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key(prov.production_db),))
        journal = Journal(loaded.state_dir, "restore-table")
        with pytest.raises(LockHeld):
            restore_table(loaded, prov, journal, table="users", from_snapshot="manual-5", into_production=True, now=NOW)
    assert len(rows(prov.url)) == 20  # nothing restored while the deploy held the lock


def test_a_connection_lost_at_commit_is_exit_4_with_the_check_never_nothing_changed(
    local_setup: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the restore's session just before COMMIT (as a failover or a restart would)."""
    from deploysafe.errors import PartialChange
    from deploysafe.ops import restore_table as module

    loaded, prov = local_setup()  # type: ignore[misc]
    url = prov.url
    prov.create_snapshot("manual-lost", SnapshotKind.MANUAL)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DELETE FROM users WHERE id BETWEEN 5 AND 14")
    real = module._bump_sequences

    def then_lose_the_session(conn: Any, *args: Any) -> None:
        real(conn, *args)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))

    monkeypatch.setattr(module, "_bump_sequences", then_lose_the_session)
    journal = Journal(loaded.state_dir, "restore-table")
    with pytest.raises(PartialChange) as exc:
        restore_table(loaded, prov, journal, table="users", from_snapshot="manual-lost", into_production=True, now=NOW)
    assert exc.value.exit_code == 4
    assert "whether public.users was written is unknown" in str(exc.value)
    assert "--dry-run" in exc.value.manual_steps[0]
    monkeypatch.undo()  # the check the steps name, then the re-run: safe, the rows come back once
    again = restore_table(loaded, prov, journal, table="users", from_snapshot="manual-lost", into_production=True,
                          now=NOW)
    assert again.applied and again.inserted == 10
