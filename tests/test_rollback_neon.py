"""Manual rollback against the Neon API double, end to end through the real CLI: --to, --at, --dry-run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neon_double import NeonDouble, neon_double  # noqa: F401  (fixture)

from deploysafe.envfile import read_var

pytestmark = pytest.mark.e2e


@pytest.fixture
def neon_app(neon_double: NeonDouble, tmp_path: Path) -> Iterator[tuple[NeonDouble, Path, dict[str, str]]]:
    d = neon_double
    prod_url = d.branch_url("production")
    with psycopg.connect(prod_url, autocommit=True) as c:
        c.execute("CREATE TABLE users (id serial PRIMARY KEY, email text)")
        c.execute("INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 20) g")
    (tmp_path / ".env").write_text(f"# app settings\nDATABASE_URL={prod_url}\nPORT=3000\n")
    (tmp_path / "deploysafe.toml").write_text(
        f'[provider]\ntype = "neon"\nproject_id = "{d.project_id}"\ndatabase = "{d.database}"\nrole = "{d.role}"\n'
        f'api_url = "{d.base_url}"\n\n[platform]\ntype = "dotenv"\nenv_file = ".env"\nrestart = "true"\n\n'
        '[probes]\ndeadline = "10s"\ninterval = "200ms"\n[[probes.sql]]\nname = "users"\n'
        'query = "select count(*) from users"\n'
    )
    env = {"PATH": __import__("os").environ["PATH"], "NEON_API_KEY": d.api_key, "HOME": str(tmp_path)}
    yield d, tmp_path, env


def ds(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploysafe", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_rollback_to_a_named_branch(neon_app: Any) -> None:
    d, root, env = neon_app
    made = ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-20261125T090000Z-abc1234")
    assert made.returncode == 0, made.stderr
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.execute("INSERT INTO users (email) VALUES ('after-snapshot')")
    r = ds(root, env, "--json", "rollback", "--to", "pre-deploy-20261125T090000Z-abc1234", "--yes")
    assert r.returncode == 0, r.stderr
    url = read_var(root / ".env", "DATABASE_URL")
    assert d.branch_for_url(url or "") == "pre-deploy-20261125T090000Z-abc1234"
    assert "# app settings" in (root / ".env").read_text() and "PORT=3000" in (root / ".env").read_text()
    result = json.loads(r.stdout)
    assert next(x for x in result["divergence"] if x["table"] == "public.users")["only_in_failed"] == 1
    assert d.by_name("production")  # the failed production branch is kept
    assert d.api_key not in r.stdout + r.stderr + made.stdout + made.stderr


def test_rollback_to_a_timestamp_makes_a_restore_branch(neon_app: Any) -> None:
    d, root, env = neon_app
    at = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
    r = ds(root, env, "rollback", "--at", at.isoformat().replace("+00:00", "Z"), "--yes")
    assert r.returncode == 0, r.stderr
    name = f"restore-{at.strftime('%Y%m%dT%H%M%SZ')}"
    branch = d.by_name(name)
    assert branch["parent_timestamp"].startswith(at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert d.branch_for_url(read_var(root / ".env", "DATABASE_URL") or "") == name


def test_timestamp_outside_the_history_window_is_refused_before_anything_changes(neon_app: Any) -> None:
    d, root, env = neon_app
    before = (root / ".env").read_text()
    old = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = ds(root, env, "rollback", "--at", old, "--yes")
    assert r.returncode == 3, r.stderr
    assert "history" in r.stderr.lower() and "Traceback" not in r.stderr
    assert (root / ".env").read_text() == before
    assert not [b for b in d.branches.values() if b["name"].startswith("restore-")]


def test_dry_run_changes_nothing(neon_app: Any) -> None:
    d, root, env = neon_app
    assert ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-a").returncode == 0
    before = (root / ".env").read_text()
    count = len(d.branches)
    r = ds(root, env, "rollback", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "pre-deploy-a" in r.stdout
    assert (root / ".env").read_text() == before and len(d.branches) == count


def test_restore_strategy_restores_production_in_place_and_keeps_the_old_state(neon_app: Any) -> None:
    d, root, env = neon_app
    with (root / "deploysafe.toml").open("a") as f:
        f.write('\n[rollback]\nstrategy = "restore"\n')
    assert ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-r").returncode == 0
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.execute("INSERT INTO users (email) VALUES ('written-after')")
    before_env = (root / ".env").read_text()
    r = ds(root, env, "rollback", "--to", "pre-deploy-r", "--yes")
    assert r.returncode == 0, r.stderr
    assert (root / ".env").read_text() == before_env  # DATABASE_URL unchanged: no repoint
    with psycopg.connect(d.branch_url("production")) as c:
        assert c.execute("select count(*) from users").fetchone() == (20,)
    preserved = [b for b in d.branches.values() if b["name"].startswith("production-failed-")]
    assert len(preserved) == 1  # the failed state is kept under a preserved name
    with psycopg.connect(d.branch_url(preserved[0]["name"])) as c:
        assert c.execute("select count(*) from users").fetchone() == (21,)


def test_lazy_snapshot_gets_its_compute_on_the_rollback_path(neon_app: Any) -> None:
    from deploysafe import rollback
    from deploysafe.config import load_config
    from deploysafe.journal import Journal, read_journal
    from deploysafe.platforms import make_platform
    from deploysafe.providers import make_provider
    from deploysafe.providers.base import SnapshotKind

    d, root, env = neon_app
    text = (root / "deploysafe.toml").read_text().replace('api_url =', 'snapshot_endpoint = "lazy"\napi_url =')
    (root / "deploysafe.toml").write_text(text)
    import os

    old = os.environ.get("NEON_API_KEY")
    os.environ["NEON_API_KEY"] = d.api_key
    try:
        loaded = load_config(str(root / "deploysafe.toml"))
        provider, platform = make_provider(loaded), make_platform(loaded)
        provider.create_snapshot("pre-deploy-lazy", SnapshotKind.PRE_DEPLOY, serve=False)
        assert not [e for e in d.endpoints.values() if e["branch_id"] == d.by_name("pre-deploy-lazy")["id"]]
        prepared = rollback.prepare(loaded, provider, platform, "pre-deploy-lazy", serve=False)
        assert prepared.url is None
        outcome = rollback.execute(loaded, provider, platform, prepared, Journal(loaded.state_dir, "rollback"))
    finally:
        if old is None:
            os.environ.pop("NEON_API_KEY", None)
        else:
            os.environ["NEON_API_KEY"] = old
    assert outcome.healthy and "serve" in outcome.timings
    assert d.branch_for_url(read_var(root / ".env", "DATABASE_URL") or "") == "pre-deploy-lazy"
    steps = [r["step"] for r in read_journal(loaded.state_dir) if r["outcome"] == "ok"]
    assert steps.index("rollback.serve") < steps.index("rollback.set")
