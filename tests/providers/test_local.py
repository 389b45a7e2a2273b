"""Local provider against a real PostgreSQL server: both strategies, row-for-row verification."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from deploysafe.errors import PointInTimeError, ProviderError
from deploysafe.providers.base import SnapshotKind
from deploysafe.providers.local import MAX_IDENT, LocalProvider, db_name_for


def seed(url: str, rows: int = 50) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL, name text)")
        c.execute("COMMENT ON COLUMN users.email IS 'login'")
        c.execute(
            "INSERT INTO users (email, name) SELECT 'u' || g || '@x', 'name ' || g FROM generate_series(1, %s) g",
            (rows,),
        )
        return c.execute("SELECT * FROM users ORDER BY id").fetchall()


def rows_of(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT * FROM users ORDER BY id").fetchall()


@pytest.mark.parametrize("strategy", ["dump", "template"])
def test_create_list_connect_delete_row_for_row(pg_url: str, strategy: str) -> None:
    expected = seed(pg_url)
    prov = LocalProvider(pg_url, strategy=strategy, retention={"pre-deploy": 7 * 86400})
    name = f"pre-deploy-20261125T100000Z-abc1234-{strategy}"
    snap = prov.create_snapshot(name, SnapshotKind.PRE_DEPLOY, git_sha="abc1234")
    try:
        assert snap.name == name and snap.ours and snap.kind is SnapshotKind.PRE_DEPLOY
        assert snap.git_sha == "abc1234" and snap.expires_at is not None and snap.size_bytes
        listed = {s.name: s for s in prov.list_snapshots()}
        assert listed[name].ours
        assert listed[prov.production_db].is_production and not listed[prov.production_db].ours
        url = prov.connection_url(name)
        assert rows_of(url) == expected
        with psycopg.connect(url) as c:  # comments survive the copy
            assert c.execute("SELECT col_description('users'::regclass, 2)").fetchone() == ("login",)
        # the snapshot is independent of production
        with psycopg.connect(pg_url, autocommit=True) as c:
            c.execute("DELETE FROM users WHERE id <= 10")
        assert rows_of(url) == expected
        assert prov.identify(url) == name
        assert prov.identify(pg_url) == prov.production_db
    finally:
        prov.delete(name)
    assert name not in {s.name for s in prov.list_snapshots()}
    prov.delete(name)  # deleting what is gone succeeds


def test_template_refuses_clearly_while_sessions_are_connected(pg_url: str) -> None:
    seed(pg_url, 3)
    prov = LocalProvider(pg_url, strategy="template")
    with psycopg.connect(pg_url):
        with pytest.raises(ProviderError, match=r'strategy "template" cannot copy .* other\s+session'):
            prov.create_snapshot("pre-deploy-busy", SnapshotKind.PRE_DEPLOY)
    assert "pre-deploy-busy" not in {s.name for s in prov.list_snapshots()}


def test_dump_works_while_the_app_is_connected(pg_url: str) -> None:
    expected = seed(pg_url, 5)
    prov = LocalProvider(pg_url, strategy="dump")
    with psycopg.connect(pg_url) as app:
        app.execute("SELECT 1")
        prov.create_snapshot("manual-online", SnapshotKind.MANUAL)
    try:
        assert rows_of(prov.connection_url("manual-online")) == expected
    finally:
        prov.delete("manual-online")


def test_point_in_time_is_refused_with_the_reason(pg_url: str) -> None:
    from datetime import UTC, datetime

    prov = LocalProvider(pg_url)
    with pytest.raises(PointInTimeError, match="cannot make point-in-time"):
        prov.create_snapshot("restore-x", SnapshotKind.RESTORE, at=datetime.now(UTC))


def test_refuses_to_delete_production_or_foreign_databases(pg_url: str, make_db: Callable[..., str]) -> None:
    prov = LocalProvider(pg_url)
    with pytest.raises(ProviderError, match="production"):
        prov.delete(prov.production_db)
    other = make_db("foreign")
    from deploysafe.pg import dbname_of

    with pytest.raises(ProviderError, match="did not create"):
        prov.delete(dbname_of(other))


def test_long_and_hostile_names_fit_63_bytes_without_collisions(pg_url: str) -> None:
    base = "pre-deploy-" + "é" * 40
    a, b = db_name_for(base + "-a"), db_name_for(base + "-b")
    assert a != b and len(a.encode()) <= MAX_IDENT and len(b.encode()) <= MAX_IDENT
    seed(pg_url, 2)
    prov = LocalProvider(pg_url)
    hostile = "manual x'; DROP DATABASE postgres; -- $(touch /tmp/pwned) \"q\" " + "ü" * 30
    prov.create_snapshot(hostile, SnapshotKind.MANUAL)
    try:
        assert prov.get(hostile).name == hostile
        assert len(rows_of(prov.connection_url(hostile))) == 2
    finally:
        prov.delete(hostile)


def test_rename_keeps_metadata(pg_url: str) -> None:
    seed(pg_url, 1)
    prov = LocalProvider(pg_url)
    prov.create_snapshot("manual-a", SnapshotKind.MANUAL, git_sha="f00")
    prov.rename("manual-a", "manual-b")
    try:
        snap = prov.get("manual-b")
        assert snap.git_sha == "f00" and snap.kind is SnapshotKind.MANUAL
    finally:
        prov.delete("manual-b")


def test_unreachable_server_is_a_clear_provider_error() -> None:
    prov = LocalProvider("postgresql://u:topsecret@127.0.0.1:1/db")
    with pytest.raises(ProviderError) as ei:
        prov.production()
    assert "topsecret" not in str(ei.value) and "cannot connect" in str(ei.value)


# --- a copy stopped half-way; a copy behind a table lock -----------------------------------


def _hold_table_lock(url: str) -> psycopg.Connection[object]:
    """A session holding ACCESS EXCLUSIVE on users: pg_dump's shared lock waits behind it."""
    conn: psycopg.Connection[object] = psycopg.connect(url)
    conn.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
    return conn


def test_a_copy_killed_half_way_is_listed_incomplete_never_served_and_pruned(pg_url: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import UTC, datetime

    from deploysafe.config import RetentionConfig
    from deploysafe.snapshots.retention import plan_prune

    seed(pg_url)
    prov = LocalProvider(pg_url, strategy="dump")
    good = prov.create_snapshot("pre-deploy-20261125T090000Z-good000", SnapshotKind.PRE_DEPLOY)
    name = "pre-deploy-20261125T100000Z-killed0"
    lock = _hold_table_lock(pg_url)
    code = ("import sys; from deploysafe.providers.local import LocalProvider; from deploysafe.providers.base import"
            " SnapshotKind; LocalProvider(sys.argv[1], strategy='dump').create_snapshot(sys.argv[2], SnapshotKind.PRE_DEPLOY)")
    proc = subprocess.Popen([sys.executable, "-c", code, pg_url, name], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not any(s.name == name for s in prov.list_snapshots()):  # marked before the copy starts
            assert time.monotonic() < deadline and proc.poll() is None, "the copy never appeared"
            time.sleep(0.1)
        assert {s.name: s for s in prov.list_snapshots()}[name].state == "copying"
        os.killpg(proc.pid, signal.SIGKILL)  # deploysafe and its pg_dump, as a lost runner would
        proc.wait(10)
    finally:
        lock.close()
    deadline = time.monotonic() + 30
    while (snap := {s.name: s for s in prov.list_snapshots()}[name]).state != "incomplete":
        assert time.monotonic() < deadline, f"the killed copy still reads {snap.state!r}"
        time.sleep(0.1)
    assert snap.ours and snap.kind is SnapshotKind.PRE_DEPLOY
    with pytest.raises(ProviderError, match="incomplete"):
        prov.connection_url(name)  # never served, never restored from
    plan = plan_prune(prov.list_snapshots(), now=datetime.now(UTC), retention=RetentionConfig(pre_deploy="30d"),
                      in_use=None, production=prov.production_db)
    deleted = {s.name: why for s, why in plan.delete}
    assert deleted == {name: "an incomplete copy (stopped half-way): never usable"}
    assert any(s.name == good.name and "newest" in why for s, why in plan.keep)  # the killed copy is not "newest"
    prov.delete(name)
    assert name not in {s.name for s in prov.list_snapshots()}


def test_pg_dump_behind_a_table_lock_gives_up_after_its_lock_wait_timeout(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploysafe.providers import local

    seed(pg_url)
    monkeypatch.setattr(local, "LOCK_WAIT_TIMEOUT", "1s")
    prov = LocalProvider(pg_url, strategy="dump")
    lock = _hold_table_lock(pg_url)
    try:
        with pytest.raises(ProviderError, match="pg_dump failed") as exc:
            prov.create_snapshot("pre-deploy-20261125T110000Z-locked0", SnapshotKind.PRE_DEPLOY)
    finally:
        lock.close()
    assert "lock" in str(exc.value)
    assert "pre-deploy-20261125T110000Z-locked0" not in {s.name for s in prov.list_snapshots()}  # nothing half-made


def test_a_copy_whose_copier_session_is_hidden_or_alive_is_kept_as_copying() -> None:
    from datetime import UTC, datetime

    from deploysafe.providers.local import _session_key, _state

    started = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    meta = {"state": "copying", "copier": _session_key(4242, started)}
    assert _state(meta, {_session_key(4242, started)}) == "copying"
    assert _state(meta, {_session_key(4242, None)}) == "copying"  # another role's session: start time hidden
    assert _state(meta, {_session_key(4242, datetime(2026, 11, 25, 11, 0, tzinfo=UTC))}) == "incomplete"  # pid reused
    assert _state(meta, set()) == "incomplete"
    assert _state({"name": "x"}, set()) == "ready"  # snapshots made before copies were marked
