"""`deploysafe deploy` end to end: fixture Drizzle app, local provider, dotenv platform, real app, real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from deploysafe.demo.run import BREAKING_CHANGE, SAFE_CHANGE, DemoApp, edit_schema
from deploysafe.providers.local import LocalProvider
from support.cli import DEPLOYSAFE
from support.e2e import assert_no_secret, ds, env_url, healthy, journal_lines, rows, set_config

pytestmark = pytest.mark.e2e


def ours(app: DemoApp) -> list[str]:
    return [s.name for s in LocalProvider(app.production_url).list_snapshots() if s.ours]


def test_safe_migration_deploys(live_app: DemoApp) -> None:
    edit_schema(live_app.root, SAFE_CHANGE)
    r = ds(live_app, "--json", "deploy", "--sha", "0123456789abcdef")
    assert r.code == 0, r.stderr
    summary = r.json
    assert summary["outcome"] == "deployed"
    assert summary["snapshot"].startswith("pre-deploy-") and summary["snapshot"].endswith("-0123456")
    assert summary["snapshot"] in ours(live_app)
    assert [e["step"] for e in summary["timeline"]] == ["preflight", "snapshot", "generate", "lint", "push", "probes", "prune"]
    assert all(e["outcome"] == "ok" for e in summary["timeline"])
    assert rows(live_app.production_url, "select count(nickname) from users") == (0,)  # the column exists
    assert env_url(live_app) == live_app.production_url  # never repointed
    steps = {json.loads(line)["step"] for line in journal_lines(live_app)}
    assert {"preflight", "snapshot", "generate", "lint", "push", "probe.attempt", "probes", "prune", "result"} <= steps
    assert_no_secret(live_app, r.stdout, r.stderr)


def test_breaking_migration_rolls_back_and_keeps_the_failed_state(live_app: DemoApp) -> None:
    set_config(live_app, **{'push = "npm run db:push"': 'push = "npm run db:push -- --force"'})
    edit_schema(live_app.root, BREAKING_CHANGE)
    r = ds(live_app, "--json", "deploy")
    assert r.code == 1, r.stderr
    summary = r.json
    snap = summary["snapshot"]
    assert summary["outcome"] == "rolled back"
    assert summary["rollback"]["snapshot"] == snap
    assert summary["rollback"]["seconds_verdict_to_healthy"] > 0
    assert "rolled back to" in r.stderr and "in " in r.stderr
    # the env file points at the snapshot, and the app is healthy on it
    snap_url = LocalProvider(live_app.production_url).connection_url(snap)
    assert env_url(live_app) == snap_url
    assert healthy(live_app)
    # the broken production database is kept, with its rows, minus the dropped column
    assert rows(live_app.production_url) == (25,)
    assert rows(snap_url, "select count(name) from users") == (25,)
    with pytest.raises(Exception, match="name"):
        rows(live_app.production_url, "select count(name) from users")
    # other lines of the env file survive the rewrite
    assert f"PORT=\"{live_app.port}\"" in (live_app.root / ".env").read_text()
    human = ds(live_app, "history")
    assert "rollback" in human.stdout
    assert_no_secret(live_app, r.stdout, r.stderr, human.stdout, human.stderr)


def test_push_refused_by_a_prompt_exits_3_and_touches_nothing(live_app: DemoApp) -> None:
    before = rows(live_app.production_url, "select count(name) from users")
    edit_schema(live_app.root, BREAKING_CHANGE)  # push has no --force: drizzle-kit prompts, finds no TTY, exits 0
    r = ds(live_app, "--json", "deploy")
    assert r.code == 3, r.stderr
    assert "push" in r.json["error"]
    assert rows(live_app.production_url, "select count(name) from users") == before
    assert env_url(live_app) == live_app.production_url
    assert healthy(live_app)
    assert r.json["snapshot"] in ours(live_app)  # the snapshot is kept
    assert_no_secret(live_app, r.stdout, r.stderr)


def _wait_journal(app: DemoApp, predicate, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(json.loads(line)) for line in journal_lines(app) if line.strip()):
            return
        time.sleep(0.1)
    raise AssertionError("journal never showed the expected step")


def _start_deploy(app: DemoApp) -> subprocess.Popen[str]:
    return subprocess.Popen([str(DEPLOYSAFE), "deploy"], cwd=app.root, env=app.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def test_second_deploy_while_one_runs_exits_5_naming_the_holder(live_app: DemoApp) -> None:
    set_config(live_app, **{'generate = "npm run db:generate"': 'generate = "sleep 4 && npm run db:generate"'})
    edit_schema(live_app.root, SAFE_CHANGE)
    first = _start_deploy(live_app)
    try:
        _wait_journal(live_app, lambda rec: rec["step"] == "generate" and rec["outcome"] == "running")
        run_id = next(json.loads(line)["run_id"] for line in journal_lines(live_app))
        second = ds(live_app, "deploy")
        assert second.code == 5, second.stderr
        assert "holds the lock" in second.stderr and run_id in second.stderr and "deploy" in second.stderr
    finally:
        out, err = first.communicate(timeout=180)
    assert first.returncode == 0, err
    third = ds(live_app, "--json", "deploy")  # nothing is left locked
    assert third.code == 0, third.stderr


def test_killed_after_push_status_explains_and_rollback_recovers(live_app: DemoApp) -> None:
    set_config(live_app, **{'push = "npm run db:push"': 'push = "npm run db:push -- --force"'})
    with (live_app.root / "deploysafe.toml").open("a") as f:
        f.write('\n[deploy]\napp_deploy = "sleep 60"\n')
    edit_schema(live_app.root, BREAKING_CHANGE)
    proc = _start_deploy(live_app)
    try:
        _wait_journal(live_app, lambda rec: rec["step"] == "production_changed")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        subprocess.run(["pkill", "-f", "sleep 60"], check=False)
    st = ds(live_app, "--json", "status")
    assert st.code == 0, st.stderr
    report = st.json
    assert report["last_run"]["outcome"] == "cut off"
    assert report["last_run"]["push_ran"] is True
    assert report["last_run"]["production_may_have_changed"] is True
    snap = report["last_run"]["snapshot"]
    assert snap in report["snapshots"]
    assert report["app_points_at"]["name"] == report["production"]
    assert any(f"rollback --to {snap}" in a for a in report["advice"])
    human = ds(live_app, "status")
    assert "cut off" in human.stdout
    rb = ds(live_app, "rollback", "--to", snap, "--yes")
    assert rb.code == 0, rb.stderr
    assert env_url(live_app) == LocalProvider(live_app.production_url).connection_url(snap)
    assert healthy(live_app)
    assert_no_secret(live_app, st.stdout, st.stderr, rb.stdout, rb.stderr, human.stdout)


def test_dry_run_prints_the_plan_and_changes_nothing(live_app: DemoApp) -> None:
    edit_schema(live_app.root, SAFE_CHANGE)
    before = ours(live_app)
    r = ds(live_app, "deploy", "--dry-run")
    assert r.code == 0, r.stderr
    assert "Plan: guarded deploy" in r.stdout and "pre-deploy snapshot: pre-deploy-" in r.stdout
    assert "prune would delete: nothing" in r.stdout
    assert ours(live_app) == before
    assert not (live_app.root / "drizzle" / "0001").exists()
    assert len(list((live_app.root / "drizzle").glob("*.sql"))) == 1
