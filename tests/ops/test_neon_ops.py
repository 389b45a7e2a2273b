"""The operations against the Neon API double: real HTTP, real databases behind the branches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.errors import ProviderError
from deploysafe.http import RetryPolicy
from deploysafe.journal import Journal
from deploysafe.ops.backup import run_backup, schedule_set, schedule_show
from deploysafe.ops.check import FAIL, OK, WARN, run_checks
from deploysafe.ops.drill import load_reports, run_drill
from deploysafe.ops.restore_table import restore_table
from deploysafe.ops.setup import run_setup
from deploysafe.providers.base import SnapshotKind
from deploysafe.providers.neon.provider import NeonProvider
from support.neon_double import NeonDouble, Point
from support.ops_helpers import rows, seed_users

WED = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


@pytest.fixture
def neon_ops(neon_double: NeonDouble, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LoadedConfig, NeonProvider, NeonDouble]]:
    d = neon_double
    monkeypatch.setenv("NEON_API_KEY", d.api_key)
    (tmp_path / ".env").write_text(f"DATABASE_URL={d.branch_url('production')}\n")
    text = (f'[provider]\ntype = "neon"\nproject_id = "{d.project_id}"\ndatabase = "{d.database}"\nrole = "{d.role}"\n'
            f'api_url = "{d.base_url}"\n\n[platform]\ntype = "dotenv"\nenv_file = ".env"\n')
    (tmp_path / "deploysafe.toml").write_text(text)
    loaded = LoadedConfig(parse_config(text), tmp_path / "deploysafe.toml")
    prov = NeonProvider.from_config(loaded, policy=RetryPolicy(sleep=lambda s: None), poll_interval=0.0)
    seed_users(d.branch_url("production"))
    d.checkpoint("production", at=datetime.now(UTC) - timedelta(hours=2))  # the rows have been there for 2 hours
    yield loaded, prov, d
    prov.close()


def journal(loaded: LoadedConfig, command: str) -> Journal:
    return Journal(loaded.state_dir, command)


def test_backup_is_idempotent_per_day_on_neon(neon_ops: Any) -> None:
    loaded, prov, d = neon_ops
    first = run_backup(loaded, prov, None, journal(loaded, "backup"), now=WED)
    again = run_backup(loaded, prov, None, journal(loaded, "backup"), now=WED)
    assert first.created and not again.created and first.name == again.name == "backup-2026-11-25"
    assert [b["name"] for b in d.branches.values()].count("backup-2026-11-25") == 1
    prov.ensure_serving("backup-2026-11-25")
    assert rows(prov.connection_url("backup-2026-11-25")) == rows(d.branch_url("production"))


def test_schedule_show_and_set(neon_ops: Any) -> None:
    loaded, prov, d = neon_ops
    with pytest.raises(ProviderError, match="not available on the Free plan"):  # the API's refusal, passed on
        schedule_set(prov, [{"frequency": "daily"}], journal(loaded, "backup schedule"))
    d.subscription_type = "launch"
    assert schedule_show(prov) == []
    items = [{"frequency": "daily", "hour": 3, "retention_seconds": 604800}]
    schedule_set(prov, items, journal(loaded, "backup schedule"))
    assert schedule_show(prov) == items


def status_of(loaded: LoadedConfig, prov: NeonProvider) -> dict[str, str]:
    return {r.name: r.status for r in run_checks(loaded, prov, None)}


def test_neon_checks_both_ways(neon_ops: Any) -> None:
    loaded, prov, d = neon_ops
    journal(loaded, "rollback").event("repoint", target="production")  # where the app points (journal)
    d.history_seconds = 3600  # below the required 1 day
    d.subscription_type = "launch"
    s = status_of(loaded, prov)
    assert (s["history-window"], s["production-protected"], s["app-target"]) == (FAIL, WARN, OK)
    assert s["branch-count"] == OK and s["leaked-computes"] == OK
    # fill the allowance: 8 of 10 warns, 10 of 10 fails
    for i in range(7):
        d.add_branch(f"other-{i}", parent="production", database=False)
    assert status_of(loaded, prov)["branch-count"] == WARN
    d.add_branch("other-7", parent="production", database=False)
    d.add_branch("other-8", parent="production", database=False)
    assert status_of(loaded, prov)["branch-count"] == FAIL
    d.history_seconds = 7 * 86400
    d.by_name("production")["protected"] = True
    # a forgotten restore branch with a running compute, the app pointing elsewhere: leaked
    d.add_branch("restore-20261120T000000Z", parent="production", endpoint=True, database=False,
                 annotation={"deploysafe": "restore"})
    s = status_of(loaded, prov)
    assert (s["history-window"], s["production-protected"], s["leaked-computes"]) == (OK, OK, WARN)
    journal(loaded, "rollback").event("repoint", target="restore-20261120T000000Z")
    s = status_of(loaded, prov)
    assert s["app-target"] == FAIL and s["leaked-computes"] == OK  # in use: not leaked, but not production either


def test_check_counts_neons_scheduled_snapshots_and_reports_root_branches(neon_ops: Any) -> None:
    loaded, prov, d = neon_ops
    d.subscription_type = "launch"
    s = {r.name: r for r in run_checks(loaded, prov, None, now=datetime.now(UTC))}
    assert s["daily-backup"].status == FAIL
    prov.backup_schedule_set([{"frequency": "daily", "hour": 3, "retention_seconds": 7 * 86400}])
    s = {r.name: r for r in run_checks(loaded, prov, None, now=datetime.now(UTC))}
    assert s["daily-backup"].status == OK and "Neon's backup schedule" in s["daily-backup"].reason
    assert "root branches 1 of 5" in s["branch-count"].reason
    d.subscription_type = "free_v3"
    d.add_branch("root-2")
    d.add_branch("root-3")
    s = {r.name: r for r in run_checks(loaded, prov, None, now=datetime.now(UTC))}
    assert s["branch-count"].status == WARN and "rollbacks will repoint" in s["branch-count"].reason


def test_drill_on_neon_point_in_time_and_deleted(neon_ops: Any) -> None:
    loaded, prov, d = neon_ops
    report = run_drill(loaded, prov, journal(loaded, "drill"), age=3600.0)
    assert report.outcome == "passed" and report.rpo_gap_seconds == 0.0
    assert report.source.startswith("production at ")
    assert report.deleted and report.branch not in [b["name"] for b in d.branches.values()]
    created = [p for m, p, _ in d.log if m == "POST" and p.endswith("/branches")]
    assert created and all(p["seconds"] > 0 for p in report.as_dict()["phases"])
    assert load_reports(loaded.state_dir)[-1]["provider"] == "neon"


def test_drill_passes_on_a_7_day_window_with_its_default_age(neon_ops: Any) -> None:
    loaded, prov, d = neon_ops
    d.history_seconds = 7 * 86400
    # the seeded rows have been there for 8 days (history before the window is gone either way)
    points = d.history[d.by_name("production")["id"]]
    points.insert(0, Point(datetime.now(UTC) - timedelta(days=8), 1, points[-1].db))
    report = run_drill(loaded, prov, journal(loaded, "drill"))
    assert report.outcome == "passed", report.reason
    age = datetime.now(UTC) - datetime.fromisoformat(report.target_time)
    assert timedelta(days=6, hours=23) < age < timedelta(days=7)


def test_drill_refuses_an_age_beyond_the_window_before_touching_anything(neon_ops: Any) -> None:
    from deploysafe.errors import PointInTimeError

    loaded, prov, d = neon_ops
    d.history_seconds = 86400
    prov.create_snapshot("pre-deploy-old", SnapshotKind.PRE_DEPLOY)
    before = (len(d.branches), len([m for m, _, _ in d.log if m != "GET"]))
    with pytest.raises(PointInTimeError, match="beyond the project's 1d00h history window"):
        run_drill(loaded, prov, journal(loaded, "drill"), age=2 * 86400.0)
    assert (len(d.branches), len([m for m, _, _ in d.log if m != "GET"])) == before


def test_restore_rows_and_dropped_table_on_neon(neon_ops: Any) -> None:
    loaded, prov, d = neon_ops
    prod = d.branch_url("production")
    with psycopg.connect(prod, autocommit=True) as c:
        c.execute("CREATE TABLE orders (id int PRIMARY KEY, total int)")
        c.execute("INSERT INTO orders SELECT g, g FROM generate_series(1, 3) g")
    before = rows(prod)
    prov.create_snapshot("backup-2026-11-24", SnapshotKind.DAILY)
    with psycopg.connect(prod, autocommit=True) as c:
        c.execute("DELETE FROM users WHERE id BETWEEN 11 AND 20")
    orders = rows(prod, "SELECT * FROM orders ORDER BY id")
    done = restore_table(loaded, prov, journal(loaded, "restore-table"), table="users",
                         from_snapshot="backup-2026-11-24", into_production=True)
    assert done.inserted == 10 and rows(prod) == before
    with psycopg.connect(prod, autocommit=True) as c:
        c.execute("DROP TABLE users")
    done = restore_table(loaded, prov, journal(loaded, "restore-table"), table="users",
                         from_snapshot="backup-2026-11-24", into_production=True)
    assert done.recreated and rows(prod) == before
    assert rows(prod, "SELECT * FROM orders ORDER BY id") == orders


def test_restore_at_uses_a_temporary_branch_and_drops_it(neon_ops: Any) -> None:
    loaded, prov, d = neon_ops
    at = datetime.now(UTC) - timedelta(minutes=5)
    done = restore_table(loaded, prov, journal(loaded, "restore-table"), table="users", at=at, dry_run=True)
    assert done.temp_branch and done.temp_branch.startswith("restore-") and done.temp_deleted
    assert done.temp_branch not in [b["name"] for b in d.branches.values()]
    assert done.diff.only_source == done.diff.only_production == done.diff.differing == 0


def test_setup_makes_the_root_default_branch_production_protects_it_and_fits_retention(neon_double: NeonDouble, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    d = neon_double
    d.by_name("production")["name"] = "main"  # the project has only its default branch
    d.subscription_type = "launch"
    monkeypatch.setenv("NEON_API_KEY", d.api_key)
    text = (f'[provider]\ntype = "neon"\nproject_id = "{d.project_id}"\ndatabase = "{d.database}"\nrole = "{d.role}"\n'
            f'api_url = "{d.base_url}"\n\n[platform]\ntype = "vercel"\nproject = "web"\n')
    loaded = LoadedConfig(parse_config(text), tmp_path / "deploysafe.toml")
    prov = NeonProvider.from_config(loaded, policy=RetryPolicy(sleep=lambda s: None), poll_interval=0.0)
    try:
        dry = run_setup(loaded, prov, journal(loaded, "setup"), dry_run=True)
        assert not dry.done and "production" not in [b["name"] for b in d.branches.values()]
        url_before = d.branch_url("main")
        report = run_setup(loaded, prov, journal(loaded, "setup"))
        prod = d.by_name("production")
        # production is the root default branch (instant restore works on roots only), not a child of main
        assert "parent_id" not in prod and prod["default"] and prod["protected"]
        assert d.branch_url("production") == url_before and len(d.branches) == 1
        assert len(report.done) == 2
        assert report.retention["daily"] == "4d" and report.retention["weekly"] == "2w"  # fits 10 branches
        assert any("Connect" in t and "vercel" in t for t in report.todo)
        assert d.api_key not in str(report.as_dict()) and (not d.role_password or d.role_password not in str(report.as_dict()))
        again = run_setup(loaded, prov, journal(loaded, "setup"))
        assert not again.done  # idempotent
    finally:
        prov.close()


def test_setup_explains_what_a_child_production_loses(pg_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.neon_double import make_double

    d = make_double(pg_server, subscription_type="launch")
    try:
        d.add_branch("main", default=True, endpoint=True)
        d.add_branch("production", parent="main", endpoint=True, protected=True)
        monkeypatch.setenv("NEON_API_KEY", d.api_key)
        text = (f'[provider]\ntype = "neon"\nproject_id = "{d.project_id}"\ndatabase = "{d.database}"\n'
                f'role = "{d.role}"\napi_url = "{d.base_url}"\n\n[platform]\ntype = "dotenv"\nenv_file = ".env"\n')
        loaded = LoadedConfig(parse_config(text), tmp_path / "deploysafe.toml")
        prov = NeonProvider.from_config(loaded, policy=RetryPolicy(sleep=lambda s: None), poll_interval=0.0)
        report = run_setup(loaded, prov, journal(loaded, "setup"))
        prov.close()
        todo = " ".join(report.todo)
        assert "child of 'main'" in todo and "instant restore" in todo and "production_branch = 'main'" in todo
        assert not report.done and {b["name"] for b in d.branches.values()} == {"main", "production"}
    finally:
        d.stop()
