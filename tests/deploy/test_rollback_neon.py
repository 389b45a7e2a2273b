"""Manual rollback against the Neon API double, end to end through the real CLI: --to, --at, --dry-run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploysafe.envfile import read_var
from deploysafe.journal import read_journal
from support.cli import CliResult, run_cli
from support.neon_double import NeonDouble

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
        f'api_url = "{d.base_url}"\n\n[platform]\ntype = "dotenv"\nenv_file = ".env"\nrestart = "echo restart >> restarts.log"\n\n'
        '[probes]\ndeadline = "10s"\ninterval = "200ms"\n[[probes.sql]]\nname = "users"\n'
        'query = "select count(*) from users"\n'
    )
    env = {"PATH": __import__("os").environ["PATH"], "NEON_API_KEY": d.api_key, "HOME": str(tmp_path)}
    yield d, tmp_path, env


def ds(root: Path, env: dict[str, str], *args: str) -> CliResult:
    return run_cli(*args, cwd=root, env=env, timeout=120)


def use_strategy(root: Path, strategy: str) -> None:
    with (root / "deploysafe.toml").open("a") as f:
        f.write(f'\n[rollback]\nstrategy = "{strategy}"\n')


def table(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT id, email FROM users ORDER BY id").fetchall()


def test_rollback_to_a_named_branch(neon_app: Any) -> None:
    d, root, env = neon_app
    use_strategy(root, "repoint")
    made = ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-20261125T090000Z-abc1234")
    assert made.code == 0, made.stderr
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.execute("INSERT INTO users (email) VALUES ('after-snapshot')")
    r = ds(root, env, "--json", "rollback", "--to", "pre-deploy-20261125T090000Z-abc1234", "--yes")
    assert r.code == 0, r.stderr
    url = read_var(root / ".env", "DATABASE_URL")
    assert d.branch_for_url(url or "") == "pre-deploy-20261125T090000Z-abc1234"
    assert "# app settings" in (root / ".env").read_text() and "PORT=3000" in (root / ".env").read_text()
    result = json.loads(r.stdout)
    assert next(x for x in result["divergence"] if x["table"] == "public.users")["only_in_failed"] == 1
    assert d.by_name("production")  # the failed production branch is kept
    assert d.api_key not in r.stdout + r.stderr + made.stdout + made.stderr


def test_rollback_at_a_timestamp_with_repoint_serves_the_data_as_it_was(neon_app: Any) -> None:
    d, root, env = neon_app
    use_strategy(root, "repoint")
    now = datetime.now(UTC).replace(microsecond=0)
    before = table(d.branch_url("production"))
    d.checkpoint("production", at=now - timedelta(minutes=40))
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.execute("INSERT INTO users (email) VALUES ('late-1'), ('late-2')")
    d.checkpoint("production", at=now - timedelta(minutes=5))
    at = now - timedelta(minutes=30)
    r = ds(root, env, "rollback", "--at", at.isoformat().replace("+00:00", "Z"), "--yes")
    assert r.code == 0, r.stderr
    name = f"restore-{at.strftime('%Y%m%dT%H%M%SZ')}"
    branch = d.by_name(name)
    assert branch["parent_timestamp"].startswith(at.strftime("%Y-%m-%dT%H:%M:%S"))
    url = read_var(root / ".env", "DATABASE_URL") or ""
    assert d.branch_for_url(url) == name
    assert table(url) == before  # row for row the state at 40 min ago, not production's 22 rows
    assert len(table(d.branch_url("production"))) == 22


def test_rollback_at_a_timestamp_restores_production_in_place_by_default(neon_app: Any) -> None:
    d, root, env = neon_app
    now = datetime.now(UTC).replace(microsecond=0)
    before = table(d.branch_url("production"))
    d.checkpoint("production", at=now - timedelta(minutes=40))
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.execute("INSERT INTO users (email) VALUES ('late-1'), ('late-2')")
    env_before = (root / ".env").read_text()
    at = now - timedelta(minutes=30)
    r = ds(root, env, "rollback", "--at", at.isoformat().replace("+00:00", "Z"), "--yes")
    assert r.code == 0, r.stderr
    assert (root / ".env").read_text() == env_before and not (root / "restarts.log").exists()
    assert table(d.branch_url("production")) == before
    kept = [b for b in d.branches.values() if b["name"].startswith("production-failed-")]
    assert len(kept) == 1 and len(table(d.branch_url(kept[0]["name"]))) == 22
    assert not [b for b in d.branches.values() if b["name"].startswith("restore-")]  # no branch to repoint to


def test_timestamp_outside_the_history_window_is_refused_before_anything_changes(neon_app: Any) -> None:
    d, root, env = neon_app
    before = (root / ".env").read_text()
    old = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = ds(root, env, "rollback", "--at", old, "--yes")
    assert r.code == 3, r.stderr
    assert "history" in r.stderr.lower() and "Traceback" not in r.stderr
    assert (root / ".env").read_text() == before
    assert not [b for b in d.branches.values() if b["name"].startswith("restore-")]


def test_dry_run_changes_nothing(neon_app: Any) -> None:
    d, root, env = neon_app
    assert ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-a").code == 0
    before = (root / ".env").read_text()
    count = len(d.branches)
    r = ds(root, env, "rollback", "--dry-run")
    assert r.code == 0, r.stderr
    assert "pre-deploy-a" in r.stdout
    assert (root / ".env").read_text() == before and len(d.branches) == count


def breaking_change(d: NeonDouble) -> None:
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.execute("INSERT INTO users (email) VALUES ('written-after')")
        c.execute("ALTER TABLE users ADD COLUMN broken int")


def test_auto_restores_production_in_place_from_its_own_history_twice(neon_app: Any) -> None:
    d, root, env = neon_app
    assert ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-r").code == 0
    before = table(d.branch_url("production"))
    breaking_change(d)
    env_before = (root / ".env").read_text()
    posts = d.count("POST", r"/restore$")
    r = ds(root, env, "--json", "rollback", "--to", "pre-deploy-r", "--yes")
    assert r.code == 0, r.stderr
    assert d.count("POST", r"/restore$") == posts + 1
    body = d.restore_bodies[-1]
    prod_id = d.by_name("production")["id"]
    assert body["source_branch_id"] == prod_id  # production's OWN history, at the snapshot's LSN
    assert body["source_lsn"] == d.by_name("pre-deploy-r")["parent_lsn"]
    assert (root / ".env").read_text() == env_before  # DATABASE_URL unchanged
    assert not (root / "restarts.log").exists()  # 0 platform calls: no restart, no variable written
    assert table(d.branch_url("production")) == before  # rows and schema equal the snapshot's, row for row
    with psycopg.connect(d.branch_url("production")) as c:
        assert c.execute("SELECT count(*) FROM information_schema.columns WHERE column_name = 'broken'").fetchone() == (0,)
    kept = [b for b in d.branches.values() if b["name"].startswith("production-failed-")]
    assert len(kept) == 1 and not kept[0].get("parent_id")  # a separate root branch (docs: branch-restore)
    assert len(table(d.branch_url(kept[0]["name"]))) == 21  # the failed state, with the write made after the snapshot
    listed = ds(root, env, "--json", "snapshot", "list")
    assert listed.code == 0, listed.stderr
    kinds = {s["name"]: s["kind"] for s in json.loads(listed.stdout)}
    assert kinds[kept[0]["name"]] == "failed-state"

    # a second breaking deploy afterwards: a new pre-deploy snapshot of the restored production, rolled back again
    assert ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-s").code == 0
    breaking_change(d)
    import time as _time

    _time.sleep(1.1)  # a second failed-state name (they carry the time to the second)
    r2 = ds(root, env, "rollback", "--yes")
    assert r2.code == 0, r2.stderr
    assert d.restore_bodies[-1]["source_lsn"] == d.by_name("pre-deploy-s")["parent_lsn"]
    assert table(d.branch_url("production")) == before
    assert (root / ".env").read_text() == env_before
    assert len([b for b in d.branches.values() if b["name"].startswith("production-failed-")]) == 2


def test_restore_strategy_on_a_child_production_is_refused_before_anything_changes(pg_server: Any, tmp_path: Path) -> None:
    from support.neon_double import make_double

    d = make_double(pg_server)
    try:
        d.add_branch("main", default=True, endpoint=True)
        d.add_branch("production", parent="main", endpoint=True)
        with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
            c.execute("CREATE TABLE users (id serial PRIMARY KEY, email text)")
        (tmp_path / ".env").write_text(f"DATABASE_URL={d.branch_url('production')}\n")
        (tmp_path / "deploysafe.toml").write_text(
            f'[provider]\ntype = "neon"\nproject_id = "{d.project_id}"\ndatabase = "{d.database}"\nrole = "{d.role}"\n'
            f'api_url = "{d.base_url}"\n\n[platform]\ntype = "dotenv"\nenv_file = ".env"\n\n'
            '[rollback]\nstrategy = "restore"\n'
        )
        env = {"PATH": __import__("os").environ["PATH"], "NEON_API_KEY": d.api_key, "HOME": str(tmp_path)}
        assert ds(tmp_path, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-c").code == 0
        count = len(d.branches)
        r = ds(tmp_path, env, "rollback", "--yes")
        assert r.code == 3, r.stderr
        assert "child of 'main'" in r.stderr and "root" in r.stderr and "Traceback" not in r.stderr
        assert d.count("POST", r"/restore$") == 0 and len(d.branches) == count
    finally:
        d.stop()


def test_rollback_from_a_pooled_production_url_sets_a_pooled_url(neon_app: Any) -> None:
    d, root, env = neon_app
    use_strategy(root, "repoint")
    pooled = d.branch_url("production", pooled=True)
    assert "-pooler." in pooled
    (root / ".env").write_text(f"DATABASE_URL={pooled}\n")
    assert ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-p").code == 0
    r = ds(root, env, "rollback", "--yes")
    assert r.code == 0, r.stderr
    url = read_var(root / ".env", "DATABASE_URL") or ""
    assert d.branch_for_url(url) == "pre-deploy-p" and "-pooler." in url


def test_after_rollback_promote_and_a_new_snapshot_rollback_goes_to_the_new_snapshot(neon_app: Any) -> None:
    d, root, env = neon_app
    use_strategy(root, "repoint")
    assert ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-1").code == 0
    assert ds(root, env, "rollback", "--yes").code == 0
    p = ds(root, env, "promote", "--yes")
    assert p.code == 0, p.stderr
    assert ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-2").code == 0
    r = ds(root, env, "--json", "rollback", "--yes", "--dry-run")
    assert r.code == 0, r.stderr
    assert "pre-deploy-2" in r.stdout  # not production, which still carries pre-deploy-1's annotation


def test_lazy_snapshot_gets_its_compute_on_the_rollback_path(neon_app: Any) -> None:
    from deploysafe.config import load_config
    from deploysafe.deploy import rollback
    from deploysafe.journal import Journal, read_journal
    from deploysafe.platforms import make_platform
    from deploysafe.providers import make_provider
    from deploysafe.providers.base import SnapshotKind

    d, root, env = neon_app
    text = (root / "deploysafe.toml").read_text().replace('api_url =', 'snapshot_endpoint = "lazy"\napi_url =')
    (root / "deploysafe.toml").write_text(text)
    use_strategy(root, "repoint")
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


@pytest.mark.parametrize(("strategy", "expected"), [
    ("auto", ["rollback.restore", "rollback.probes"]),  # production's own history: restored in place
    ("repoint", ["rollback.hold", "rollback.set", "rollback.pick_up", "rollback.wait_live", "rollback.probes"]),
])
def test_dry_run_lists_the_rollback_steps_that_then_run(neon_app: Any, strategy: str, expected: list[str]) -> None:
    d, root, env = neon_app
    use_strategy(root, strategy)
    assert ds(root, env, "snapshot", "create", "--kind", "pre-deploy", "--name", "pre-deploy-p").code == 0
    breaking_change(d)
    dry = ds(root, env, "--json", "rollback", "--to", "pre-deploy-p", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert json.loads(dry.stdout)["steps"] == expected
    text = ds(root, env, "rollback", "--to", "pre-deploy-p", "--dry-run")
    assert "steps: " + ", ".join(expected) in text.stdout
    r = ds(root, env, "--json", "rollback", "--to", "pre-deploy-p", "--yes")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == expected
    ran = read_journal(next(root.rglob("journal.jsonl")).parent)
    steps = [x["step"] for x in ran if x["step"].startswith("rollback.") and x["ended_at"]]
    assert [s for s in steps if not s.startswith("rollback.probe.")] == expected  # less each probe attempt
