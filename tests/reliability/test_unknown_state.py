"""Fail closed when nobody can tell where the app points.

A ``command`` platform without ``get_command`` cannot say where DATABASE_URL points (like Fly
secrets or Vercel sensitive variables), and a fresh CI runner has no journal. The real CLI runs
against a real server: after a rollback the provider's record still names the snapshot the app
serves from, so prune keeps it on a runner without a state dir; with no record at all, prune keeps
every snapshot and deploy refuses (exit 3) unless ``--assume-production``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from deploysafe import pg
from deploysafe.providers.local import LocalProvider
from deploysafe.providers.record import RECORD_KEY
from support.cli import run_cli
from support.reliability_kit import app_env_line, install_tool, set_change

pytestmark = pytest.mark.e2e


def _config(root: Path) -> None:
    (root / "set.sh").write_text('printf %s "$DEPLOYSAFE_NEW_URL" > "$(dirname "$0")/target.url"\n')
    (root / "deploysafe.toml").write_text(f"""[app]
dir = "."
generate = "sh tool.sh generate"
push = "sh tool.sh push"
step_timeout = "30s"
migrations_dir = "drizzle"
{app_env_line()}

[provider]
type = "local"
database_url = "${{DATABASE_URL}}"

[platform]
type = "command"
set_command = "sh set.sh"

[retention]
pre_deploy = "1s"

[probes]
deadline = "6s"
interval = "100ms"
[[probes.sql]]
name = "users readable"
query = "select count(*) from users"
""")


@pytest.fixture
def app(tmp_path: Path, pg_url: str) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "app"
    root.mkdir()
    install_tool(root)
    _config(root)
    set_change(root, None)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE users (id int primary key, name text)")
        c.execute("INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 5) g")
    yield root, pg_url
    prov = LocalProvider(pg_url)
    for s in prov.list_snapshots():
        if s.ours:
            prov.delete(s.name)


def _env(url: str) -> dict[str, str]:
    import os

    return {**os.environ, "DATABASE_URL": url}


def _fresh_runner(root: Path) -> None:
    shutil.rmtree(root / ".deploysafe", ignore_errors=True)


def _prune(root: Path, url: str) -> dict[str, Any]:
    r = run_cli("prune", "--json", cwd=root, env=_env(url))
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout))


def test_unreadable_platform_and_no_state_dir_fail_closed(app: tuple[Path, str]) -> None:
    root, url = app
    prov = LocalProvider(url)
    for name in ("pre-deploy-old", "pre-deploy-new"):
        made = run_cli("snapshot", "create", "--kind", "pre-deploy", "--name", name, cwd=root, env=_env(url))
        assert made.code == 0, made.stderr
    rb = run_cli("rollback", "--yes", "--to", "pre-deploy-old", cwd=root, env=_env(url))  # the older, expired one
    assert rb.code == 0, rb.stderr
    assert (root / "target.url").read_text() == prov.connection_url("pre-deploy-old")

    # a fresh runner: no journal; the platform cannot be read; the provider's record still knows
    _fresh_runner(root)
    plan = _prune(root, url)
    assert "pre-deploy-old" not in [d["name"] for d in plan["deleted"]]
    assert "pre-deploy-old" in {s.name for s in prov.list_snapshots() if s.ours}
    assert prov.recorded_app_target() == "pre-deploy-old"
    refused = run_cli("deploy", "--assume-production", cwd=root, env=_env(url))  # the record says it is not production
    assert refused.code == 3 and "points at 'pre-deploy-old', not production" in refused.stderr

    # nothing recorded anywhere (an older deploysafe, or a record removed): keep everything, refuse to migrate
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(pg.dbname_of(url))))
    _fresh_runner(root)
    plan = _prune(root, url)
    assert plan["deleted"] == [] and plan["delete"] == []
    assert {s.name for s in prov.list_snapshots() if s.ours} == {"pre-deploy-old", "pre-deploy-new"}
    st = run_cli("status", cwd=root, env=_env(url))
    assert "cannot tell where the app points" in st.stdout and "--assume-production" in st.stdout
    refused = run_cli("deploy", cwd=root, env=_env(url))
    assert refused.code == 3, refused.stderr
    assert "cannot tell where the app's DATABASE_URL points" in refused.stderr
    assert "--assume-production" in refused.stderr
    assert prov.recorded_app_target() is None  # refusing changed nothing

    # told: the deploy runs, and records production for every later runner
    told = run_cli("--json", "deploy", "--assume-production", cwd=root, env=_env(url))
    assert told.code == 0, told.stderr
    assert prov.recorded_app_target() == prov.production().name
    _fresh_runner(root)
    assert run_cli("deploy", "--dry-run", cwd=root, env=_env(url)).code == 0


def test_a_foreign_comment_on_production_is_never_overwritten(pg_url: str) -> None:
    from deploysafe.errors import ProviderError

    db = pg.dbname_of(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(sql.SQL("COMMENT ON DATABASE {} IS 'owned by the ops team'").format(sql.Identifier(db)))
    prov = LocalProvider(pg_url)
    with pytest.raises(ProviderError, match="did not write"):
        prov.record_app_target("x")
    assert prov.recorded_app_target() is None
    with psycopg.connect(pg_url) as c:
        row = c.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                        (db,)).fetchone()
    assert row == ("owned by the ops team",)
    # a JSON comment of ours is merged, never replaced
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(sql.SQL("COMMENT ON DATABASE {} IS '{{\"team\": \"ops\"}}'").format(sql.Identifier(db)))
    prov.record_app_target("snap-a")
    assert prov.recorded_app_target() == "snap-a"
    with psycopg.connect(pg_url) as c:
        row = c.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                        (db,)).fetchone()
    assert row is not None
    meta = json.loads(row[0])
    assert meta["team"] == "ops" and meta[RECORD_KEY]["name"] == "snap-a"


def test_same_database_compares_host_port_database_and_user() -> None:
    from deploysafe.snapshots.inuse import same_database

    a = "postgresql://app:pw1@db.example:5432/prod?sslmode=require"
    assert same_database(a, "postgresql://app:other@db.example:5432/prod")  # the password does not matter
    assert not same_database(a, "postgresql://app:pw1@db.example:5432/pre-deploy-x")
    assert not same_database(a, "postgresql://admin:pw1@db.example:5432/prod")
    assert not same_database(a, "postgresql://app:pw1@db.example:6543/prod")
    assert not same_database(a, "postgresql://app:pw1@db.example:99999/prod")  # unreadable port: not the same
