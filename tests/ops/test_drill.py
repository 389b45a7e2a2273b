"""deploysafe drill on real PostgreSQL: report with real timings, checks, targets, branch deleted."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from deploysafe.config import LoadedConfig
from deploysafe.errors import CHECK_FAIL, CHECK_WARN, PreconditionError
from deploysafe.journal import Journal, read_journal
from deploysafe.ops.drill import exit_code, history_lines, load_reports, run_drill
from deploysafe.providers.base import SnapshotKind

CHECKS = """
[[drill.checks]]
name = "user count"
query = "SELECT count(*) FROM users"
min = 20
max = 40

[[drill.checks]]
name = "known user"
query = "SELECT email FROM users WHERE id = 7"
expect = "u7@x"
"""


def test_drill_copies_the_snapshot_verifies_times_and_cleans_up(local_setup: Callable[..., Any]) -> None:
    loaded, prov = local_setup(CHECKS + '\n[[probes.sql]]\nname = "db"\nquery = "SELECT 1"\nexpect = "1"\n')
    prov.create_snapshot("backup-2026-11-20", SnapshotKind.DAILY)
    before = {s.name for s in prov.list_snapshots()}
    report = run_drill(loaded, prov, Journal(loaded.state_dir, "drill"), age=0.0)
    assert report.outcome == "passed" and exit_code(report) == 0
    assert report.source == "snapshot backup-2026-11-20" and report.rpo_gap_seconds is not None
    assert [c.name for c in report.checks] == ["db", "user count", "known user"] and all(c.ok for c in report.checks)
    phases = {p.name: p for p in report.phases}
    assert set(phases) == {"branch", "verify", "total", "cleanup"}
    assert 0 < phases["branch"].seconds < phases["total"].seconds and phases["verify"].seconds > 0
    assert phases["total"].target == 900.0 and phases["total"].within_target
    # the drill branch is gone; the snapshot it came from is untouched
    assert {s.name for s in prov.list_snapshots()} == before and report.deleted
    data = json.loads((loaded.state_dir / "drills" / f"drill-{report.date}.json").read_text())
    assert data["outcome"] == "passed" and data["phases"][0]["seconds"] == round(phases["branch"].seconds, 3)
    md = (loaded.state_dir / "drills" / f"drill-{report.date}.md").read_text()
    assert "| branch |" in md and "| known user | check | pass |" in md
    for ext in ("json", "md"):  # operational detail: owner-only
        assert (loaded.state_dir / "drills" / f"drill-{report.date}.{ext}").stat().st_mode & 0o777 == 0o600
    assert any(r["step"] == "drill-cleanup" and r["outcome"] == "ok" for r in read_journal(loaded.state_dir))
    assert load_reports(loaded.state_dir)[-1]["branch"] == report.branch
    assert history_lines(load_reports(loaded.state_dir))[0].split()[:3] == [report.date, "passed", "branch"]


def test_failed_check_and_missed_target_are_reported(local_setup: Callable[..., Any]) -> None:
    loaded, prov = local_setup('[[drill.checks]]\nname = "too many"\nquery = "SELECT count(*) FROM users"\nmax = 5\n'
                               '\n[drill.targets]\nbranch = "1ms"\n')
    prov.create_snapshot("backup-2026-11-20", SnapshotKind.DAILY)
    report = run_drill(loaded, prov, Journal(loaded.state_dir, "drill"), age=0.0, keep=True)
    assert report.outcome == "failed" and exit_code(report) == CHECK_FAIL
    assert report.reason == "check(s) failed: too many" and "above max 5" in report.checks[0].detail
    assert report.kept and report.branch in {s.name for s in prov.list_snapshots()}  # --keep
    with psycopg.connect(prov.connection_url(report.branch)) as c:  # a real copy, with production's rows
        assert c.execute("SELECT count(*) FROM users").fetchone() == (30,)
    prov.delete(report.branch)  # drill names have one-second resolution; the next drill may reuse this one
    no_checks = loaded.config.model_copy(update={"drill": loaded.config.drill.model_copy(update={"checks": []})})
    slow = run_drill(LoadedConfig(no_checks, loaded.path), prov, Journal(loaded.state_dir, "drill"), age=0.0)
    assert slow.outcome == "missed-targets" and exit_code(slow) == CHECK_WARN
    assert [c.name for c in slow.checks] == ["has tables"]  # built-in check when none configured


def test_drill_needs_a_snapshot_old_enough(local_setup: Callable[..., Any]) -> None:
    loaded, prov = local_setup(seed=False)
    with pytest.raises(PreconditionError, match="no snapshot is at least as old"):
        run_drill(loaded, prov, Journal(loaded.state_dir, "drill"), age=7 * 86400.0)
    report = load_reports(loaded.state_dir)[-1]
    assert report["outcome"] == "failed" and "no snapshot" in report["reason"]  # a failed drill is recorded too
    assert not [s for s in prov.list_snapshots() if s.kind is SnapshotKind.DRILL]
