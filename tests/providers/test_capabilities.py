"""Optional provider capabilities: each provider offers exactly its own, checked through ``capabilities()``;
the local provider's database copies against a real PostgreSQL server."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from deploysafe import pg
from deploysafe.config import RetentionConfig
from deploysafe.providers.base import Provider, SnapshotKind
from deploysafe.providers.local import LocalProvider
from deploysafe.providers.neon.provider import NeonProvider
from deploysafe.testing import FakeProvider


def _neon() -> NeonProvider:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"capabilities() must not call the API ({request.method} {request.url})")

    return NeonProvider(project_id="p", api_key="napi_x", production_branch="production", database="neondb",
                        role="neondb_owner", transport=httpx.MockTransport(refuse),
                        retention=RetentionConfig.model_validate({}))


def test_neon_offers_schedules_and_project_facts_and_locks_on_production_itself() -> None:
    neon = _neon()
    caps = neon.capabilities()
    assert isinstance(neon, Provider)
    assert caps.backup_schedules is neon and caps.project_facts is neon and caps.database_copies is None
    url = "postgresql://u:p@ep-x-1.c-2.us-east-2.aws.neon.tech/neondb"
    assert neon.lock_url(url) == url
    neon.close()


def test_local_offers_database_copies_only_and_locks_on_the_maintenance_database() -> None:
    local = LocalProvider("postgresql://u@127.0.0.1:5432/prod")  # no connection needed
    caps = local.capabilities()
    assert isinstance(local, Provider)
    assert caps.database_copies is local and caps.backup_schedules is None and caps.project_facts is None
    assert local.lock_url("postgresql://u@127.0.0.1:5432/prod") == "postgresql://u@127.0.0.1:5432/postgres"


def test_the_fake_offers_none() -> None:
    caps = FakeProvider().capabilities()
    assert (caps.backup_schedules, caps.project_facts, caps.database_copies) == (None, None, None)


def _drop(url: str, *names: str) -> None:
    with psycopg.connect(pg.maintenance_url(url), autocommit=True) as c:
        for n in names:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(n)))


def test_local_clone_copies_a_snapshot_and_leaves_it_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    local = LocalProvider(pg_url, strategy="template")
    copies = local.capabilities().database_copies
    assert copies is not None
    src = local.create_snapshot("backup-2026-12-01", SnapshotKind.DAILY)
    try:
        copy = copies.clone(src, "drill-20261201", SnapshotKind.DRILL)
        assert copy.ours and copy.kind is SnapshotKind.DRILL and copy.source == local.production_db
        with psycopg.connect(local.connection_url("drill-20261201"), autocommit=True) as c:
            assert c.execute("SELECT count(*) FROM t").fetchone() == (2,)
            c.execute("DELETE FROM t")
        with psycopg.connect(local.connection_url(src.name)) as c:
            assert c.execute("SELECT count(*) FROM t").fetchone() == (2,)
    finally:
        _drop(pg_url, src.id, "drill-20261201")


def test_local_take_name_disconnects_renames_and_unmark_makes_it_not_a_snapshot(pg_url: str) -> None:
    local = LocalProvider(pg_url, strategy="template")
    copies = local.capabilities().database_copies
    assert copies is not None
    snap = local.create_snapshot("pre-deploy-x", SnapshotKind.PRE_DEPLOY)
    new_name = f"{local.production_db}_promoted"
    held = psycopg.connect(local.connection_url(snap.name), autocommit=True)  # the app, connected to the snapshot
    try:
        url = copies.take_name(snap.name, new_name)
        assert url == pg.with_dbname(pg_url, new_name)
        assert held.closed or held.broken or _disconnected(held)
        listed = {s.id: s for s in local.list_snapshots()}
        assert snap.id not in listed and listed[new_name].ours  # renamed, still marked
        copies.unmark(new_name)
        assert not {s.id: s for s in local.list_snapshots()}[new_name].ours
    finally:
        held.close()
        _drop(pg_url, snap.id, new_name)


def _disconnected(conn: psycopg.Connection[object]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


PACKAGE = Path(__file__).resolve().parents[2] / "deploysafe"
AROUND = {
    "a type: ignore": re.compile(r"type:\s*ignore"),
    "getattr/hasattr on an adapter": re.compile(r"\b(getattr|hasattr)\((self\.)?(provider|platform)\b"),
    "isinstance on an adapter": re.compile(r"\bisinstance\((self\.)?(provider|platform)\b"),
    "behaviour picked by an adapter's name": re.compile(r"\b(provider|platform)\.name\s*(==|!=|in\b|not in\b)"),
    "an adapter's private attribute": re.compile(r"\b(provider|platform)\._[a-z]"),
    "a concrete adapter imported outside its package": re.compile(
        r"from deploysafe\.(providers\.(local|neon)|platforms\.(dotenv|command|vercel|render|railway|fly|heroku))\b"),
}


def test_no_code_reaches_around_the_adapter_interfaces() -> None:
    """Capabilities are asked for through ``capabilities()`` / ``release_rollback()``; adapters are built by the
    registries. Concrete adapter modules may import each other inside their own package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for what, pattern in AROUND.items():
                own_package = what.startswith("a concrete") and rel.split("/")[0] in ("providers", "platforms")
                if pattern.search(line) and not own_package:
                    found.append(f"{rel}:{n}: {what}: {line.strip()}")
    assert found == []
