"""`deploysafe deploy` with provider = neon, end to end: the Neon API double (real HTTP, a branch is a real
database), the fixture Drizzle app running against its production branch, the dotenv platform."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deploysafe.demo.run import BREAKING_CHANGE, SAFE_CHANGE, DemoApp, copy_app, edit_schema, init_schema, start_app, stop_app
from deploysafe.envfile import read_var
from support.cli import run_cli
from support.e2e import healthy
from support.neon_double import NeonDouble

pytestmark = pytest.mark.e2e


@pytest.fixture
def neon_app(neon_double: NeonDouble, tmp_path: Path, node_modules: Path) -> Iterator[tuple[NeonDouble, DemoApp]]:
    d = neon_double
    root = tmp_path / "app"
    copy_app(root, node_modules=node_modules)
    prod_url = d.branch_url("production")
    init_schema(root, prod_url)
    app = start_app(root, prod_url)
    port = app.port
    (root / "deploysafe.toml").write_text(f"""
[app]
push = "npm run db:push -- --force"
step_timeout = "2m"

[provider]
type = "neon"
project_id = "{d.project_id}"
database = "{d.database}"
role = "{d.role}"
api_url = "{d.base_url}"

[platform]
type = "dotenv"
env_file = ".env"
restart = "sh restart.sh"

[probes]
deadline = "20s"
interval = "300ms"
[[probes.http]]
name = "health"
url = "http://127.0.0.1:{port}/health"
expect_body = "ok"

[lint]
destructive = "warn"
""")
    yield d, app
    stop_app(root)


def deploy(d: NeonDouble, app: DemoApp) -> tuple[int, dict[str, Any], str]:
    env = {**os.environ, "NEON_API_KEY": d.api_key, "NO_COLOR": "1"}
    env.pop("DATABASE_URL", None)
    r = run_cli("--json", "deploy", "--sha", "feedc0ffee", cwd=app.root, env=env, timeout=300)
    return r.code, r.json, r.stderr


def test_safe_then_breaking_migration_on_neon(neon_app: tuple[NeonDouble, DemoApp]) -> None:
    d, app = neon_app
    edit_schema(app.root, SAFE_CHANGE)
    code, summary, err = deploy(d, app)
    assert code == 0, err
    snap = summary["snapshot"]
    branch = d.by_name(snap)
    assert branch["parent_id"] == d.by_name("production")["id"]
    assert d.annotations[branch["id"]]["value"]["deploysafe"] == "pre-deploy"
    assert any(e["branch_id"] == branch["id"] and e["type"] == "read_write" for e in d.endpoints.values())  # eager
    # ready to serve is not in use: the server-side safety net stays, [retention] pre_deploy (7 d) ahead
    ahead = datetime.fromisoformat(branch["expires_at"].replace("Z", "+00:00")) - d.clock()
    assert timedelta(days=6, hours=23) < ahead <= timedelta(days=7)

    edit_schema(app.root, BREAKING_CHANGE)
    code, summary, err = deploy(d, app)
    assert code == 1, err
    snap = summary["snapshot"]
    assert summary["rollback"]["snapshot"] == snap
    # strategy auto: production restored in place from its own history; the app's DATABASE_URL never changed
    assert d.branch_for_url(read_var(app.root / ".env", "DATABASE_URL") or "") == "production"
    assert d.restore_bodies[-1]["source_branch_id"] == d.by_name("production")["id"]
    assert d.restore_bodies[-1]["source_lsn"] == d.by_name(snap)["parent_lsn"]
    assert not {"set", "pick_up", "wait_live"} & set(summary["rollback"]["timings"])  # no platform call
    assert healthy(app)
    kept = summary["rollback"]["failed_state_kept"]
    assert kept.startswith("production-failed-") and d.by_name(kept)  # the failed state is kept
    assert d.api_key not in err and d.role_password not in err and d.role_password not in json.dumps(summary)
    assert not d.spec_problems
