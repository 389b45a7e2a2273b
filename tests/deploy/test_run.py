"""deploy.deploy() with in-memory fakes: every failure point's outcome, exit code, journal line and timeline.

The slow real-component path is in test_deploy_e2e.py. Here the provider and platform are the
in-memory fakes, and generate / push / lint / probes / divergence / the lock are doubles given
to the executor (tests/support/rig.py), so each branch runs in milliseconds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from deploysafe.deploy import run as deploy
from deploysafe.deploy.outcome import Outcome
from deploysafe.deploy.probes import Verdict
from deploysafe.errors import (
    DeployFailedRolledBack,
    DeploysafeError,
    Interrupted,
    LintBlocked,
    LockHeld,
    PlatformError,
    PreconditionError,
    ProviderError,
    RollbackFailed,
    StepError,
)
from deploysafe.journal import read_journal
from deploysafe.platforms.base import Platform
from deploysafe.providers.base import Provider, Snapshot, SnapshotKind
from deploysafe.testing import FakePlatform, FakeProvider
from support.rig import DESTRUCTIVE, Rig


def steps(summary: deploy.Summary) -> list[tuple[str, str]]:
    return [(e["step"], e["outcome"]) for e in summary.timeline]


def assert_nothing_lost(rig: Rig) -> None:
    """The pre-deploy snapshot and the production state survive every path."""
    assert rig.provider.deleted == [], "a pre-deploy run must never delete a snapshot or the failed state"
    assert "production" in rig.provider.snapshots
    assert len(rig.snapshot_names()) == 1
    assert rig.provider.closed and rig.platform.closed


def last_result(rig: Rig, outcome: str, exit_code: int) -> dict[str, Any]:
    results = rig.results()
    assert len(results) == 1, results  # exactly one verdict per run
    rec = results[0]
    assert (rec["details"]["outcome"], rec["details"]["exit_code"]) == (outcome, exit_code)
    return rec


# --- the fakes are what deploy expects ----------------------------------------------------------


def test_the_fakes_satisfy_the_protocols() -> None:
    assert isinstance(FakeProvider(), Provider)
    assert isinstance(FakePlatform(None), Platform)


def test_a_fault_on_a_misspelled_method_is_refused() -> None:
    with pytest.raises(ValueError, match="no method 'set_ulr'"):
        FakePlatform(None).faults.fail("set_ulr", PlatformError("x"))


def test_a_fault_fires_once_on_the_nth_call_counted_from_when_it_was_planned() -> None:
    p = FakeProvider()
    p.list_snapshots()
    p.faults.fail("list_snapshots", ProviderError("down"), on_call=2)
    p.list_snapshots()
    with pytest.raises(ProviderError, match="down"):
        p.list_snapshots()
    p.list_snapshots()
    assert p.faults.counts["list_snapshots"] == 4 and p.faults.methods() == ["list_snapshots"] * 4


def test_the_fake_platform_changes_the_running_app_only_at_pick_up() -> None:
    p = FakePlatform("postgresql://a", healthy_urls={"postgresql://b"})
    p.set_url("postgresql://b")
    assert p.read_current().value == "postgresql://b" and not p.app_healthy()
    release = p.pick_up()
    assert p.app_healthy() and not release.live
    assert p.wait_live(release, 1.0).live and p.describe() == p.releases[-1]


def test_the_fake_provider_has_no_url_for_a_snapshot_without_a_compute() -> None:
    p = FakeProvider()
    p.create_snapshot("s", SnapshotKind.MANUAL)
    with pytest.raises(ProviderError, match="no compute"):
        p.connection_url("s")
    p.ensure_serving("s")
    assert p.identify(p.connection_url("s")) == "s"


# --- success ------------------------------------------------------------------------------------------


def test_healthy_deploy_exits_0_with_the_timeline_in_order(rig: Rig) -> None:
    summary, err = rig.run()
    assert err is None and summary.exit_code == 0 and summary.outcome == "deployed"
    assert steps(summary) == [(s, "ok") for s in ("preflight", "snapshot", "generate", "lint", "push", "probes", "prune")]
    assert summary.snapshot == rig.snapshot_names()[0]
    assert summary.snapshot.startswith("pre-deploy-") and summary.snapshot.endswith("-0123456")
    assert rig.provider.snapshots[summary.snapshot].git_sha == "0123456789abcdef"
    assert rig.platform.faults.calls("set_url") == [] and rig.platform.value == rig.prod_url  # never repointed
    assert rig.probed == [(rig.prod_url, "probe")]
    assert_nothing_lost(rig)
    rec = last_result(rig, "deployed", 0)
    assert rec["details"]["snapshot"] == summary.snapshot and rec["outcome"] == "ok"


def test_rehearse_app_deploy_and_watch_appear_in_the_timeline(make_rig: Any) -> None:
    rig: Rig = make_rig('[deploy]\napp_deploy = "deploy-app"\n')
    summary, err = rig.run(rehearse=True, watch=5.0)
    assert err is None, err
    assert [s for s, _ in steps(summary)] == ["preflight", "snapshot", "generate", "lint", "rehearse", "push", "app",
                                              "probes", "watch", "prune"]
    assert rig.pushed == [rig.provider.url_of(f"rehearse-{summary.snapshot}"), rig.prod_url]
    assert [c.args[0] for c in rig.provider.faults.calls("delete")] == [f"rehearse-{summary.snapshot}"]
    assert len(rig.snapshot_names()) == 1 and "production" in rig.provider.snapshots


def test_dry_run_changes_nothing(rig: Rig) -> None:
    summary, err = rig.run(dry_run=True)
    assert err is None and summary.outcome == "dry run: nothing changed"
    assert rig.pushed == [] and rig.provider.faults.calls("create_snapshot") == []
    assert [s for s, _ in steps(summary)] == ["preflight"]


def _old_snapshot(rig: Rig, name: str = "pre-deploy-20260101T000000Z-aaaaaaa") -> Snapshot:
    return rig.provider.add(Snapshot(id=f"id-{name}", name=name, kind=SnapshotKind.PRE_DEPLOY, ours=True,
                                     created_at=rig.clock.now() - timedelta(days=30), source="production"))


def test_prune_deletes_only_the_expired_snapshot(rig: Rig) -> None:
    old = _old_snapshot(rig)
    summary, err = rig.run()
    assert err is None and summary.pruned == [old.name]
    assert rig.provider.deleted == [old.name]
    assert summary.snapshot in rig.provider.snapshots and "production" in rig.provider.snapshots


def test_a_failed_deletion_while_pruning_never_fails_the_deploy(rig: Rig) -> None:
    old = _old_snapshot(rig)
    rig.provider.faults.fail("delete", ProviderError("delete refused: branch is busy"))
    summary, err = rig.run()
    assert err is None and summary.exit_code == 0 and summary.outcome == "deployed"
    assert summary.pruned == [] and old.name in rig.provider.snapshots
    last_result(rig, "deployed", 0)


def test_a_healthy_deploy_reads_each_fact_once(rig: Rig) -> None:
    """production, where the app points and the snapshot list are read in preflight only: the rollback's
    preparation and prune use those answers (prune no longer lists the snapshots again)."""
    summary, err = rig.run()
    assert err is None and summary.outcome == "deployed"
    calls = {**rig.provider.faults.counts, **{f"platform.{k}": v for k, v in rig.platform.faults.counts.items()}}
    assert (calls["production"], calls["list_snapshots"], calls["platform.read_current"]) == (1, 1, 1)
    assert calls["platform.caveats"] == 1


def test_the_prune_dry_run_shows_is_the_prune_carried_out(make_rig: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Planned once, counting the snapshot the deploy makes (the newest pre-deploy one from then on), so the
    expired previous one is in the --dry-run list, and exactly that list is deleted."""
    rig: Rig = make_rig()
    old = _old_snapshot(rig)
    dry, err = rig.run(dry_run=True)
    assert err is None and dry.plan is not None and dry.plan.prune == (old.name,)
    assert f"prune would delete: {old.name}" in capsys.readouterr().out
    summary, err = rig.run()
    assert err is None and summary.plan == dry.plan  # the fixed clock: the same plan
    assert summary.pruned == list(dry.plan.prune) == rig.provider.deleted


def test_making_room_under_the_branch_limit_reuses_the_facts_and_prune_skips_what_it_deleted(rig: Rig) -> None:
    older = _old_snapshot(rig, "pre-deploy-20260101T000000Z-aaaaaaa")
    old = rig.provider.add(older.model_copy(update={"id": "id-b", "name": "pre-deploy-20260102T000000Z-bbbbbbb",
                                                    "created_at": older.created_at + timedelta(days=1)}))
    rig.provider.allowance = 3  # production and the two old ones: one must go before the snapshot fits
    dry, _ = rig.run(dry_run=True)
    assert dry.plan is not None and dry.plan.prune == (older.name, old.name)
    summary, err = rig.run()
    assert err is None and summary.outcome == "deployed"
    assert rig.provider.deleted == [older.name, old.name]  # the oldest to make room, the other by prune
    assert summary.pruned == [old.name] and steps(summary)[-1] == ("prune", "ok")
    counts = rig.provider.faults.counts
    assert (counts["production"], counts["list_snapshots"]) == (2, 2)  # the dry run's and the deploy's, once each
    assert rig.platform.faults.counts["read_current"] == 2


# --- failures before production changed: exit 3, nothing touched ---------------------------------------


@pytest.mark.parametrize(
    ("setup", "failed_step", "snapshots_left"),
    [
        (lambda r: r.provider.faults.fail("create_snapshot", ProviderError("quota exceeded")), "snapshot", 0),
        (lambda r: r.provider.faults.fail("ensure_serving", ProviderError("endpoint limit")), "snapshot", 1),
        (lambda r: r.platform.faults.fail("prepare", PlatformError("service not found")), "snapshot", 1),
        (lambda r: setattr(r, "generate_error", StepError("db:generate exited 1", step="generate")), "generate", 1),
        (lambda r: setattr(r, "findings", [DESTRUCTIVE]), "lint", 1),
        (lambda r: setattr(r, "push_error", StepError("db:push exited 1", step="push")), "push", 1),
    ],
    ids=["snapshot-create", "snapshot-serve", "platform-prepare", "generate", "lint-blocks", "push-unchanged"],
)
def test_failure_before_production_changed_exits_3(rig: Rig, setup: Any, failed_step: str, snapshots_left: int) -> None:
    setup(rig)
    summary, err = rig.run()
    assert isinstance(err, PreconditionError) and err.exit_code == 3
    assert summary.exit_code == 3 and summary.outcome == "failed before production changed"
    assert steps(summary)[-1] == (failed_step, "failed")
    assert rig.platform.faults.calls("set_url") == [] and rig.platform.faults.calls("pick_up") == []
    assert rig.pushed == ([rig.prod_url] if failed_step == "push" else [])
    assert rig.provider.deleted == [] and "production" in rig.provider.snapshots
    assert len(rig.snapshot_names()) == snapshots_left  # a snapshot that was made is kept
    last_result(rig, "failed before production changed", 3)


def test_lint_block_names_the_statement_and_allow_destructive_passes(make_rig: Any) -> None:
    rig: Rig = make_rig()
    rig.findings = [DESTRUCTIVE]
    _, err = rig.run()
    assert isinstance(err, LintBlocked) and "drop-column" in err.message and rig.pushed == []
    rig2: Rig = make_rig()
    rig2.findings = [DESTRUCTIVE]
    summary, err = rig2.run(allow_destructive=True)
    assert err is None and summary.outcome == "deployed" and summary.lint[0]["rule"] == "drop-column"


def test_app_pointing_at_a_snapshot_refuses_with_the_promote_hint(rig: Rig) -> None:
    rig.provider.add(Snapshot(id="id-old", name="pre-deploy-old", kind=SnapshotKind.PRE_DEPLOY, ours=True,
                              created_at=rig.clock.now(), source="production"), serving=True)
    rig.platform.value = rig.platform.live_value = rig.provider.url_of("pre-deploy-old")
    summary, err = rig.run()
    assert isinstance(err, PreconditionError) and err.exit_code == 3 and summary.exit_code == 3
    assert "points at 'pre-deploy-old', not production 'production'" in err.message
    assert err.hint and "deploysafe promote" in err.hint
    assert rig.provider.faults.calls("create_snapshot") == [] and rig.pushed == []
    last_result(rig, "failed before production changed", 3)


# --- production changed: roll back (1) or a person must act (4) --------------------------------------


def assert_rolled_back(rig: Rig, summary: deploy.Summary, err: DeploysafeError | None) -> None:
    assert isinstance(err, DeployFailedRolledBack) and err.exit_code == 1
    assert summary.exit_code == 1 and summary.outcome == "rolled back"
    snap_url = rig.provider.url_of(summary.snapshot or "")
    assert rig.platform.value == rig.platform.live_value == snap_url
    assert rig.platform.app_healthy()
    assert summary.rollback and summary.rollback["snapshot"] == summary.snapshot
    assert summary.rollback["failed_state_kept"] == "production"
    assert (snap_url, "rollback.probe") in rig.probed
    assert_nothing_lost(rig)
    rec = last_result(rig, "rolled back", 1)
    assert rec["details"]["rollback"]["snapshot"] == summary.snapshot


def test_push_that_fails_after_changing_production_rolls_back(rig: Rig) -> None:
    rig.push_error = StepError("db:push died half way", step="push", production_changed=True)
    summary, err = rig.run()
    assert_rolled_back(rig, summary, err)
    assert [s for s, _ in steps(summary)] == ["preflight", "snapshot", "generate", "lint", "push", "rollback"]
    assert steps(summary)[-2:] == [("push", "failed"), ("rollback", "ok")]
    assert "db:push died half way" in summary.rollback["reason"]  # type: ignore[index]


def test_unhealthy_probes_roll_back(rig: Rig) -> None:
    rig.push_breaks_app = True
    summary, err = rig.run()
    assert_rolled_back(rig, summary, err)
    assert [s for s, _ in steps(summary)] == ["preflight", "snapshot", "generate", "lint", "push", "probes", "rollback"]
    # the probes ran to a verdict, and the verdict was a failure: never shown as "ok"
    assert steps(summary)[-2:] == [("probes", "failed"), ("rollback", "ok")]
    assert summary.rollback and summary.rollback["reason"] == "health: HTTP 500"
    probes = [r for r in read_journal(rig.loaded.state_dir) if r["step"] == "probes" and r["ended_at"]]
    assert [(r["outcome"], r["details"]["verdict"]) for r in probes] == [("failed", "health: HTTP 500")]


def test_unhealthy_watch_window_rolls_back(rig: Rig) -> None:
    rig.watch_healthy = False
    summary, err = rig.run(watch=30.0)
    assert_rolled_back(rig, summary, err)
    assert steps(summary)[-3:] == [("probes", "ok"), ("watch", "failed"), ("rollback", "ok")]


@pytest.mark.parametrize(("method", "step"), [("set_url", "set"), ("pick_up", "pick_up"), ("wait_live", "wait_live")])
def test_rollback_step_failure_exits_4_with_manual_steps(rig: Rig, method: str, step: str) -> None:
    rig.push_breaks_app = True
    rig.platform.faults.fail(method, PlatformError(f"{method}: HTTP 503 from the platform"))
    summary, err = rig.run()
    assert isinstance(err, RollbackFailed) and err.exit_code == 4
    assert summary.exit_code == 4 and summary.outcome == "needs a person"
    assert f"failed at step '{step}'" in err.message
    text = "\n".join(summary.manual_steps)
    assert summary.manual_steps == err.manual_steps
    assert repr(summary.snapshot) in text  # a person must know which database the app should end up on
    assert "Keep 'production'" in text  # the failed state
    assert ("Set DATABASE_URL" in text) == (method == "set_url")
    assert ("systemctl restart app" in text) == (method in ("set_url", "pick_up"))
    assert steps(summary)[-1] == ("rollback", "failed")
    assert_nothing_lost(rig)
    last_result(rig, "needs a person", 4)


def test_app_unhealthy_on_the_snapshot_too_exits_4(rig: Rig) -> None:
    rig.push_breaks_app = True
    rig.healthy_on_snapshot = False
    summary, err = rig.run()
    assert isinstance(err, RollbackFailed) and err.exit_code == 4 and summary.exit_code == 4
    assert "not healthy on snapshot" in err.message and repr(summary.snapshot) in err.message
    assert "logs" in summary.manual_steps[0] and "Keep 'production'" in summary.manual_steps[-1]
    assert_nothing_lost(rig)
    last_result(rig, "needs a person", 4)


def test_no_rollback_exits_4_and_leaves_production_alone(rig: Rig) -> None:
    rig.push_breaks_app = True
    summary, err = rig.run(no_rollback=True)
    assert isinstance(err, RollbackFailed) and err.exit_code == 4 and summary.exit_code == 4
    assert "--no-rollback" in err.message and summary.outcome == "needs a person"
    assert rig.platform.faults.calls("set_url") == [] and rig.platform.value == rig.prod_url
    text = "\n".join(summary.manual_steps)
    assert repr(summary.snapshot) in text and "Keep 'production'" in text
    assert "rollback" not in [s for s, _ in steps(summary)]
    assert_nothing_lost(rig)
    last_result(rig, "needs a person", 4)


# --- eager and lazy snapshot endpoints ---------------------------------------------------------------------


def test_eager_snapshot_serves_before_push(rig: Rig) -> None:
    rig.push_breaks_app = True
    summary, err = rig.run()
    assert isinstance(err, DeployFailedRolledBack)
    assert "ensure_serving" in rig.provider_calls_at_push and "connection_url" in rig.provider_calls_at_push
    create = rig.provider.faults.calls("create_snapshot")[0]
    assert create.kwargs["serve"] is True
    assert "serve" not in rig.results()[0]["details"]["rollback"]["timings"]  # nothing left for the critical path


def test_lazy_snapshot_gets_its_compute_on_the_rollback_path(make_rig: Any) -> None:
    rig: Rig = make_rig(provider_extra='snapshot_endpoint = "lazy"')
    rig.push_breaks_app = True
    summary, err = rig.run()
    assert_rolled_back(rig, summary, err)
    assert rig.provider.faults.calls("create_snapshot")[0].kwargs["serve"] is False
    assert "ensure_serving" not in rig.provider_calls_at_push
    after = rig.provider.faults.methods()[len(rig.provider_calls_at_push):]
    assert after.index("ensure_serving") < after.index("connection_url")
    assert "serve" in summary.rollback["timings"]  # type: ignore[index]


def test_lazy_snapshot_never_gets_a_compute_when_the_deploy_succeeds(make_rig: Any) -> None:
    rig: Rig = make_rig(provider_extra='snapshot_endpoint = "lazy"')
    summary, err = rig.run()
    assert err is None and summary.outcome == "deployed"
    assert rig.provider.faults.calls("ensure_serving") == []


def test_lazy_rollback_that_cannot_serve_the_snapshot_exits_4(make_rig: Any) -> None:
    rig: Rig = make_rig(provider_extra='snapshot_endpoint = "lazy"')
    rig.push_breaks_app = True
    rig.provider.faults.fail("ensure_serving", ProviderError("compute quota exceeded"))
    summary, err = rig.run()
    assert isinstance(err, RollbackFailed) and "failed at step 'serve'" in err.message
    assert summary.exit_code == 4 and rig.platform.faults.calls("set_url") == []
    assert any(repr(summary.snapshot) in s for s in summary.manual_steps)
    assert_nothing_lost(rig)
    last_result(rig, "needs a person", 4)


# --- Ctrl-C ------------------------------------------------------------------------------------------------


def test_ctrl_c_before_production_changed_exits_130_and_journals_130(rig: Rig) -> None:
    rig.generate_error = KeyboardInterrupt()  # type: ignore[assignment]
    summary, err = rig.run()
    assert isinstance(err, Interrupted) and err.exit_code == 130 and summary.exit_code == 130
    assert "nothing was changed" in err.message and rig.pushed == []
    assert_nothing_lost(rig)
    last_result(rig, "failed before production changed", 130)


def test_ctrl_c_after_push_rolls_back(rig: Rig) -> None:
    def interrupted(cfg: Any, url: str | None, *, phase: str = "probe", **k: Any) -> Any:
        if phase == "probe":  # Ctrl-C once, during the post-push probes; the rollback's probes run
            raise KeyboardInterrupt
        ok = rig.platform.app_healthy()
        return Verdict(ok, "all probes passed" if ok else "health: HTTP 500", 0.0)

    rig.analyse = interrupted
    summary, err = rig.run()
    assert isinstance(err, DeployFailedRolledBack) and summary.exit_code == 1
    assert summary.rollback and summary.rollback["reason"] == "interrupted"
    assert rig.platform.value == rig.provider.url_of(summary.snapshot or "")


def test_generate_that_reaches_production_is_caught_by_the_fingerprint_and_rolled_back(rig: Rig) -> None:
    (rig.loaded.app_dir / "drizzle.config.ts").write_text(
        'export default { dialect: "postgresql", dbCredentials: { url: process.env[name] } };\n')
    rig.generate_reaches = rig.prod_url
    summary, err = rig.run()
    assert isinstance(err, DeployFailedRolledBack) and summary.outcome == "rolled back"
    # the message naming the variables is drizzle/steps.untouched's (tests/drizzle/test_target_e2e.py)
    assert summary.error and summary.error.startswith(
        "deploy failed (generate: production's schema changed during a step that must not touch it)")
    assert "push" not in [s for s, _ in steps(summary)]
    assert rig.platform.value == rig.provider.url_of(summary.snapshot)


def test_a_generate_that_reaches_another_database_is_no_concern_of_production(rig: Rig) -> None:
    rig.generate_reaches = "postgresql://app@fake.invalid:5432/scratch"
    summary, err = rig.run()
    assert err is None and summary.outcome == "deployed"



# --- the plan is the program: --dry-run's steps are the steps the executor runs ------------------------------

APP_DEPLOY = '[deploy]\napp_deploy = "ship-it"\n'
EVERY_STEP = {"rehearse": True, "watch": 5.0}  # with APP_DEPLOY: a plan with every kind of step


def _app_deploy_fails(rig: Rig) -> None:
    def app_deploy(loaded: Any, url: str) -> None:
        raise StepError("[deploy] app_deploy exited 1", step="app_deploy", production_changed=True)

    rig.app_deploy = app_deploy


# how each step of the plan is made to fail, and how the deploy must then end (exit code, journaled outcome)
FAILURES: dict[str, tuple[Any, int, Outcome]] = {
    "lock": (lambda r: setattr(r, "lock_error", LockHeld("another deploysafe run holds the lock")), 5, Outcome.FAILED),
    "snapshot": (lambda r: r.provider.faults.fail("create_snapshot", ProviderError("quota exceeded")), 3,
                 Outcome.FAILED_BEFORE_CHANGE),
    "generate": (lambda r: setattr(r, "generate_error", StepError("db:generate exited 1", step="generate")), 3,
                 Outcome.FAILED_BEFORE_CHANGE),
    "lint": (lambda r: setattr(r, "findings", [DESTRUCTIVE]), 3, Outcome.FAILED_BEFORE_CHANGE),
    "rehearse": (lambda r: setattr(r, "rehearse_error", StepError("db:push exited 1", step="push")), 3,
                 Outcome.FAILED_BEFORE_CHANGE),
    "push": (lambda r: setattr(r, "push_error", StepError("db:push died half way", step="push",
                                                          production_changed=True)), 1, Outcome.ROLLED_BACK),
    "app": (_app_deploy_fails, 1, Outcome.ROLLED_BACK),
    "probes": (lambda r: setattr(r, "push_breaks_app", True), 1, Outcome.ROLLED_BACK),
    "watch": (lambda r: setattr(r, "watch_healthy", False), 1, Outcome.ROLLED_BACK),
    # the second deletion is prune's (the first removes the rehearsal's copy): a failed prune never fails a deploy
    "prune": (lambda r: r.provider.faults.fail("delete", ProviderError("branch is busy"), on_call=2), 0, Outcome.OK),
}


def test_every_step_of_the_plan_has_a_failure_case(make_rig: Any) -> None:
    dry, _ = make_rig(APP_DEPLOY).run(dry_run=True, **EVERY_STEP)
    assert dry.plan is not None and [s.name for s in dry.plan.steps] == list(FAILURES)


@pytest.mark.parametrize("failing", list(FAILURES))
def test_a_failing_step_runs_the_plan_up_to_it_and_the_undo_it_names(make_rig: Any, failing: str) -> None:
    rig: Rig = make_rig(APP_DEPLOY)
    old = _old_snapshot(rig)  # something for prune to delete
    dry, err = rig.run(dry_run=True, **EVERY_STEP)
    assert err is None and dry.plan is not None and dry.plan.prune == (old.name,)
    names = [s.name for s in dry.plan.steps]
    at = names.index(failing)
    fail, exit_code, outcome = FAILURES[failing]
    fail(rig)
    summary, err = rig.run(**EVERY_STEP)
    assert summary.plan == dry.plan  # the plan --dry-run printed is the one executed
    assert summary.steps_run == names[: at + 1]  # exactly the plan's steps, in order, up to the failing one
    assert summary.undo == dry.plan.steps[at].on_failure  # the undo the plan named for that step, and no other
    assert summary.exit_code == exit_code and summary.outcome is outcome
    assert (err is None) == (exit_code == 0) and (err is None or err.exit_code == exit_code)
    result = [r for r in rig.results() if r["run_id"] == summary.run_id]  # the dry run wrote its own
    assert [(r["details"]["outcome"], r["details"]["exit_code"]) for r in result] == [(outcome.value, exit_code)]
    assert rig.platform.value == (rig.provider.url_of(summary.snapshot or "") if outcome is Outcome.ROLLED_BACK
                                  else rig.prod_url)
    assert "production" in rig.provider.snapshots
    if failing == "prune":
        assert summary.pruned == [] and old.name in rig.provider.snapshots


@pytest.mark.parametrize("options", [{}, EVERY_STEP], ids=["default", "every-step"])
def test_a_healthy_run_executes_exactly_the_dry_run_plan(make_rig: Any, options: dict[str, Any]) -> None:
    rig: Rig = make_rig(APP_DEPLOY if options else "")
    dry, _ = rig.run(dry_run=True, **options)
    assert dry.plan is not None and dry.steps_run == []  # a dry run executes nothing
    summary, err = rig.run(**options)
    assert err is None and summary.outcome is Outcome.OK and summary.undo is None
    assert summary.plan == dry.plan
    assert summary.steps_run == [s.name for s in dry.plan.steps]
    # every journaled step is in the timeline, in the plan's order, after preflight
    assert [s for s, _ in steps(summary)] == ["preflight", *(s.name for s in dry.plan.steps if s.journaled)]
