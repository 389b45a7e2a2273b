"""deploysafe check: every check both ways, exit codes, and a full run against real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from deploysafe.errors import CHECK_FAIL, CHECK_WARN, ProviderError
from deploysafe.journal import Journal
from deploysafe.ops import check as C
from deploysafe.ops.check import FAIL, OK, WARN, CheckResult, Facts, exit_code, run_checks, run_one, summary
from deploysafe.providers.base import Capabilities, Snapshot, SnapshotKind
from support.ops_helpers import write_config

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def snap(name: str, kind: SnapshotKind | None, age_h: float, **kw: Any) -> Snapshot:
    return Snapshot(id=name, name=name, kind=kind, ours=kind is not None, created_at=NOW - timedelta(hours=age_h), **kw)


class FakeProvider:
    """Only what Facts asks of a provider; tests set the answers."""

    def __init__(self, name: str = "local", **answers: Any) -> None:
        self.name = name
        self.answers = answers

    def capabilities(self) -> Capabilities:
        """A "neon" fake offers the project facts (the checks ask for them only there)."""
        return Capabilities(project_facts=self if self.name == "neon" else None)  # type: ignore[arg-type]

    def history_window(self) -> float | None:
        return self.answers.get("history")

    def branch_allowance(self) -> int | None:
        return self.answers.get("allowance")

    def project_info(self, *, details: bool = False) -> Any:
        return SimpleNamespace(subscription_type=self.answers.get("plan", "launch"), logical_size_bytes=self.answers.get("size"),
                               branch_logical_size_limit_bytes=self.answers.get("branch_limit"), root_branches=None,
                               root_branches_limit=None, schedule=None, unread=())

    def branch_endpoints(self, branch_id: str) -> list[dict[str, str]]:
        return self.answers.get("endpoints", {}).get(branch_id, [])


def facts(tmp_path: Path, provider: FakeProvider | None = None, extra: str = "", **values: Any) -> Facts:
    loaded = write_config(tmp_path, "postgresql://u@localhost:5432/prod", extra)
    f = Facts(loaded, provider or FakeProvider(), None, NOW)  # type: ignore[arg-type]
    defaults = {"snapshots": [snap("prod", None, 1000, is_production=True, size_bytes=1000)], "production": "prod",
                "in_use": SimpleNamespace(name="prod", source="platform", detail=""), "drills": []}
    for k, v in {**defaults, **values}.items():
        setattr(f, k, v)  # cached_property values may be set directly
    return f


def status(fn: Callable[[Facts], tuple[str, str]], f: Facts) -> str:
    return fn(f)[0]


def test_daily_backup_both_ways(tmp_path: Path) -> None:
    base = [snap("prod", None, 1000, is_production=True)]
    assert status(C.check_daily_backup, facts(tmp_path, snapshots=base)) == FAIL
    assert status(C.check_daily_backup, facts(tmp_path, snapshots=base + [snap("backup-a", SnapshotKind.DAILY, 30)])) == FAIL
    assert status(C.check_daily_backup, facts(tmp_path, snapshots=base + [snap("backup-b", SnapshotKind.DAILY, 2)])) == OK
    # the weekly day makes only a weekly backup: it counts as that day's backup
    assert status(C.check_daily_backup, facts(tmp_path, snapshots=base + [snap("weekly-c", SnapshotKind.WEEKLY, 20)])) == OK


def test_weekly_backup_both_ways(tmp_path: Path) -> None:
    assert status(C.check_weekly_backup, facts(tmp_path, snapshots=[])) == WARN
    assert status(C.check_weekly_backup, facts(tmp_path, snapshots=[snap("w", SnapshotKind.WEEKLY, 9 * 24)])) == FAIL
    assert status(C.check_weekly_backup, facts(tmp_path, snapshots=[snap("w", SnapshotKind.WEEKLY, 6 * 24)])) == OK


def test_history_window_both_ways(tmp_path: Path) -> None:
    ok, reason = C.check_history_window(facts(tmp_path, history_window=None))
    assert ok == OK and reason.startswith("not applicable")
    assert status(C.check_history_window, facts(tmp_path, FakeProvider("neon"), history_window=0.0)) == FAIL
    assert status(C.check_history_window, facts(tmp_path, FakeProvider("neon"), history_window=6 * 3600.0)) == FAIL
    assert status(C.check_history_window, facts(tmp_path, FakeProvider("neon"), history_window=7 * 86400.0)) == OK


def test_branch_count_both_ways(tmp_path: Path) -> None:
    assert status(C.check_branch_count, facts(tmp_path, branch_allowance=None)) == OK
    assert status(C.check_branch_count, facts(tmp_path, branch_allowance=10, branch_count=5)) == OK
    assert status(C.check_branch_count, facts(tmp_path, branch_allowance=10, branch_count=8)) == WARN
    assert C.check_branch_count(facts(tmp_path, branch_allowance=10, branch_count=10)) == (
        FAIL, "branches: 10 of 10 (100%): at the limit; run `deploysafe prune` or shorten [retention]")


def test_database_size_both_ways(tmp_path: Path) -> None:
    prod = lambda size: [snap("prod", None, 1, is_production=True, size_bytes=size)]  # noqa: E731
    limit = "[check]\nsize_limit_bytes = 1000\n"
    assert status(C.check_database_size, facts(tmp_path, snapshots=prod(500))) == OK  # no limit known
    assert status(C.check_database_size, facts(tmp_path, extra=limit, snapshots=prod(500))) == OK
    assert status(C.check_database_size, facts(tmp_path, extra=limit, snapshots=prod(850))) == WARN
    assert status(C.check_database_size, facts(tmp_path, extra=limit, snapshots=prod(1000))) == FAIL
    # Neon: production's logical size (not the project's synthetic storage) against the plan's per-branch limit
    neon_free = FakeProvider("neon", plan="free_v3")
    assert status(C.check_database_size, facts(tmp_path, neon_free, project=neon_free.project_info(),
                                                snapshots=prod(450 * 1024 * 1024))) == WARN
    neon_limit = FakeProvider("neon", plan="launch", branch_limit=1000)
    assert status(C.check_database_size, facts(tmp_path, neon_limit, project=neon_limit.project_info(),
                                                snapshots=prod(1000))) == FAIL


def test_app_target_both_ways(tmp_path: Path) -> None:
    at = lambda name: SimpleNamespace(name=name, source="platform", detail="")  # noqa: E731
    assert status(C.check_app_target, facts(tmp_path, in_use=at("prod"))) == OK
    reason = C.check_app_target(facts(tmp_path, in_use=at("restore-20261120T000000Z")))
    assert reason[0] == FAIL and "restore-20261120T000000Z" in reason[1]
    assert status(C.check_app_target, facts(tmp_path, in_use=at(None))) == WARN


def test_protected_both_ways(tmp_path: Path) -> None:
    assert C.check_protected(facts(tmp_path))[1].startswith("not applicable")
    neon = FakeProvider("neon", plan="launch")
    unprotected = [snap("production", None, 1, is_production=True)]
    protected = [snap("production", None, 1, is_production=True, protected=True)]
    f = facts(tmp_path, neon, snapshots=unprotected, production="production", project=neon.project_info())
    assert status(C.check_protected, f) == WARN
    assert status(C.check_protected, facts(tmp_path, neon, snapshots=protected, project=neon.project_info())) == OK
    free = FakeProvider("neon", plan="free_v3")
    assert status(C.check_protected, facts(tmp_path, free, snapshots=unprotected, project=free.project_info())) == OK


def test_leaked_computes_both_ways(tmp_path: Path) -> None:
    snaps = [snap("production", None, 1, is_production=True), snap("restore-1", SnapshotKind.RESTORE, 3),
             snap("pre-deploy-1", SnapshotKind.PRE_DEPLOY, 3)]
    active = {"restore-1": [{"id": "ep-1", "current_state": "active"}], "pre-deploy-1": [{"id": "ep-2", "current_state": "idle"}]}
    neon = FakeProvider("neon", endpoints=active)
    in_use = SimpleNamespace(name="production", source="platform", detail="")
    status_, reason = C.check_leaked_computes(facts(tmp_path, neon, snapshots=snaps, in_use=in_use))
    assert status_ == WARN and "restore-1" in reason and "pre-deploy-1" not in reason
    # the branch the app uses is not leaked
    assert status(C.check_leaked_computes, facts(tmp_path, neon, snapshots=snaps,
                                               in_use=SimpleNamespace(name="restore-1", source="journal", detail=""))) == OK
    assert C.check_leaked_computes(facts(tmp_path))[1].startswith("not applicable")


def drill(age_days: float, outcome: str = "passed", missed: bool = False) -> dict[str, Any]:
    return {"date": "d", "started_at": (NOW - timedelta(days=age_days)).isoformat(), "outcome": outcome,
            "phases": [{"name": "branch", "within_target": not missed}]}


def test_last_drill_both_ways(tmp_path: Path) -> None:
    assert status(C.check_last_drill, facts(tmp_path, drills=[])) == WARN
    assert status(C.check_last_drill, facts(tmp_path, drills=[drill(40)])) == WARN
    assert status(C.check_last_drill, facts(tmp_path, drills=[drill(3, missed=True)])) == WARN
    assert status(C.check_last_drill, facts(tmp_path, drills=[drill(3, outcome="failed")])) == FAIL
    assert status(C.check_last_drill, facts(tmp_path, drills=[drill(40), drill(3)])) == OK


def test_checklist_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert status(C.check_initial_backup, facts(tmp_path, snapshots=[])) == FAIL
    assert status(C.check_initial_backup, facts(tmp_path, snapshots=[snap("m", SnapshotKind.MANUAL, 1)])) == OK
    assert status(C.check_drill_ran, facts(tmp_path)) == WARN
    assert status(C.check_drill_ran, facts(tmp_path, drills=[drill(1)])) == OK
    assert status(C.check_history_enabled, facts(tmp_path, FakeProvider("neon"), history_window=0.0)) == FAIL
    assert status(C.check_history_enabled, facts(tmp_path, FakeProvider("neon"), history_window=3600.0)) == OK
    assert status(C.check_notify, facts(tmp_path)) == WARN
    hook = '[notify]\nwebhook_env = "OPS_HOOK"\n'
    monkeypatch.delenv("OPS_HOOK", raising=False)
    assert status(C.check_notify, facts(tmp_path, extra=hook)) == FAIL
    monkeypatch.setenv("OPS_HOOK", "https://hooks.example/x")
    assert status(C.check_notify, facts(tmp_path, extra=hook)) == OK
    f = facts(tmp_path)
    assert status(C.check_last_migration, f) == WARN
    j = Journal(f.loaded.state_dir, "deploy")
    j.event("result", outcome="failed")
    assert status(C.check_last_migration, f) == FAIL
    Journal(f.loaded.state_dir, "deploy").event("result", outcome="deployed")
    assert status(C.check_last_migration, f) == OK


def test_a_check_that_cannot_run_fails_alone(tmp_path: Path) -> None:
    def broken(_f: Facts) -> tuple[str, str]:
        raise ProviderError("Neon API answered 500")

    r = run_one("x", broken, facts(tmp_path))
    assert r == CheckResult("x", FAIL, "could not check: Neon API answered 500")


def test_exit_codes_and_summary() -> None:
    ok, warn, fail = CheckResult("a", OK, "."), CheckResult("b", WARN, "w"), CheckResult("c", FAIL, "f")
    assert exit_code([ok]) == 0
    assert exit_code([ok, warn]) == CHECK_WARN == 6
    assert exit_code([ok, warn], warn_ok=True) == 0
    assert exit_code([warn, fail], warn_ok=True) == CHECK_FAIL == 7
    assert summary([ok, warn, fail], "app") == "deploysafe check (app): FAIL\n- warn: b: w\n- fail: c: f"


def test_full_run_on_local_postgres(local_setup: Callable[..., Any]) -> None:
    loaded, prov = local_setup()
    from deploysafe.platforms import make_platform

    platform = make_platform(loaded)
    results = {r.name: r for r in run_checks(loaded, prov, platform, checklist=True)}
    assert results["daily-backup"].status == FAIL  # nothing backed up yet
    assert results["app-target"].status == OK
    assert results["history-window"].reason.startswith("not applicable")
    assert results["checklist-initial-backup"].status == FAIL
    prov.create_snapshot("backup-2026-01-01", SnapshotKind.DAILY)
    results = {r.name: r for r in run_checks(loaded, prov, platform)}
    assert results["daily-backup"].status == OK
    assert results["database-size"].status == OK and "database size" in results["database-size"].reason
    # the app repointed at a snapshot and forgotten there: a failure
    (loaded.root / ".env").write_text(f"DATABASE_URL={prov.connection_url('backup-2026-01-01')}\n")
    results = {r.name: r for r in run_checks(loaded, prov, platform)}
    assert results["app-target"].status == FAIL and "backup-2026-01-01" in results["app-target"].reason
    assert json.dumps([r.as_dict() for r in results.values()])  # serialisable for --json


def test_an_unreachable_provider_is_a_failing_check(tmp_path: Path) -> None:
    from deploysafe.ops.check import checks_or_failure

    loaded = write_config(tmp_path, "postgresql://u@localhost:5432/prod")

    def broken() -> Any:
        raise ProviderError("Neon API key refused")

    results = checks_or_failure(loaded, broken)
    assert results == [CheckResult("provider", FAIL, "cannot reach the local provider: Neon API key refused")]
    assert exit_code(results) == CHECK_FAIL
