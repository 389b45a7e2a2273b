"""The shared step executor (deploy.steps): order, checkpoints, the first failure, journaling and timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploysafe.deploy import rollback
from deploysafe.deploy.steps import journaled, run_steps
from deploysafe.errors import Interrupted, PlatformError, ProbeError, RollbackFailed, StepError
from deploysafe.journal import Journal, StepHandle, read_journal
from deploysafe.providers.base import SnapshotKind
from support.rig import Rig


class TickClock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        self.t += 1.5
        return self.t


def test_runs_every_step_in_order_with_a_checkpoint_between_two() -> None:
    seen: list[str] = []
    result = run_steps(["a", "b", "c"], run=lambda s: seen.append(s), checkpoint=lambda: seen.append("|"),
                       on_failure=lambda s, e: pytest.fail(f"{s} failed: {e}"), failures=(StepError,))
    assert result is None
    assert seen == ["a", "|", "b", "|", "c"]


@pytest.mark.parametrize("failing", ["a", "b", "c"])
def test_the_first_failure_stops_the_walk_and_goes_to_the_handler(failing: str) -> None:
    ran: list[str] = []

    def run(step: str) -> None:
        ran.append(step)
        if step == failing:
            raise StepError(f"{step} broke", step=step)

    handled = run_steps(["a", "b", "c"], run=run, checkpoint=lambda: None,
                        on_failure=lambda s, e: (s, str(e)), failures=(StepError,))
    assert handled == (failing, f"{failing} broke")
    assert ran == ["a", "b", "c"][: ["a", "b", "c"].index(failing) + 1]


def test_a_stop_at_a_checkpoint_names_the_step_that_was_next_and_runs_it_not() -> None:
    ran: list[str] = []

    def checkpoint() -> None:
        if ran == ["a", "b"]:
            raise Interrupted("stop")

    handled = run_steps(["a", "b", "c"], run=ran.append, checkpoint=checkpoint,
                        on_failure=lambda s, e: s, failures=(Interrupted,))
    assert handled == "c" and ran == ["a", "b"]


def test_an_error_it_was_not_given_passes_through_untouched() -> None:
    def run(step: str) -> None:
        raise ValueError(step)

    with pytest.raises(ValueError, match="a"):
        run_steps(["a", "b"], run=run, checkpoint=lambda: None, on_failure=lambda s, e: s, failures=(StepError,))


def test_journaled_writes_the_step_and_reports_its_seconds_failed_or_not(tmp_path: Path) -> None:
    journal, clock, took = Journal(tmp_path, "test"), TickClock(), []

    def ok(h: StepHandle) -> int:
        h.details["n"] = 1
        return 7

    assert journaled(journal, clock, "one", ok, took.append, snapshot="s") == 7

    def broken(h: StepHandle) -> int:
        raise StepError("boom", step="two")

    with pytest.raises(StepError):
        journaled(journal, clock, "two", broken, took.append)
    assert took == [1.5, 1.5]
    finals = [(r["step"], r["outcome"]) for r in read_journal(tmp_path) if r["outcome"] != "running"]
    assert finals == [("one", "ok"), ("two", "failed")]


# --- the rollback runs through it: what it plans is what runs ------------------------------------------------

SNAP = "pre-deploy-20261125T100000Z-abc1234"


def rollback_rig(rig: Rig, *, code_back: bool, lazy: bool) -> rollback.Prepared:
    """A snapshot the app is healthy on, prepared; ``code_back``: the live release changes after it was recorded."""
    rig.provider.create_snapshot(SNAP, SnapshotKind.PRE_DEPLOY)
    rig.platform.healthy_urls = {rig.provider.url_of(SNAP)}
    prepared = rollback.prepare(rig.loaded, rig.provider, rig.platform, SNAP, serve=not lazy)
    assert prepared.app_release is not None and prepared.restore is None
    if code_back:
        rig.platform.ship("code-1")
    return prepared


def run_rollback(rig: Rig, prepared: rollback.Prepared) -> rollback.Outcome:
    return rollback.execute(rig.loaded, rig.provider, rig.platform, prepared, Journal(rig.loaded.state_dir, "rollback"),
                            analyse=rig.tools().analyse)


def rollback_steps(rig: Rig) -> list[tuple[str, str]]:
    """The rollback.* steps the journal recorded as finished, with their outcome."""
    return [(r["step"], r["outcome"]) for r in read_journal(rig.loaded.state_dir)
            if r["step"].startswith("rollback.") and r["ended_at"]]


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("code_back", [False, True])
def test_the_repoint_rollback_runs_exactly_the_planned_steps(rig: Rig, code_back: bool, lazy: bool) -> None:
    prepared = rollback_rig(rig, code_back=code_back, lazy=lazy)
    out = run_rollback(rig, prepared)
    planned = rollback.plan_steps(restore=False, serve=lazy, app_check=True, code_back=code_back)
    assert out.healthy
    assert rollback_steps(rig) == [(name, "ok") for name in planned]
    assert set(out.timings) == {n.removeprefix("rollback.") for n in planned}
    assert ("rollback.app" in planned) == code_back and ("rollback.set" in planned) == (not code_back)


def test_the_restore_plan_is_restore_then_probes_and_the_code_half_only_when_it_changed() -> None:
    assert rollback.plan_steps(restore=True, serve=False, app_check=False, code_back=False) == (
        "rollback.restore", "rollback.probes")
    assert rollback.plan_steps(restore=True, serve=False, app_check=True, code_back=True) == (
        "rollback.app_check", "rollback.restore", "rollback.app", "rollback.wait_live", "rollback.probes")


FAULTS = {  # rollback step -> (the fake, its method that fails)
    "app_check": ("platform", "describe"),
    "serve": ("provider", "ensure_serving"),
    "hold": ("provider", "hold"),
    "set": ("platform", "set_url"),
    "pick_up": ("platform", "pick_up"),
    "app": ("platform", "return_to"),
    "wait_live": ("platform", "wait_live"),
}


@pytest.mark.parametrize(("code_back", "step"), [
    *((False, s) for s in ["app_check", "serve", "hold", "set", "pick_up", "wait_live", "probes"]),
    *((True, s) for s in ["app_check", "serve", "hold", "app", "wait_live", "probes"]),
])
def test_each_rollback_step_failing_names_itself_and_nothing_after_it_runs(rig: Rig, step: str, code_back: bool) -> None:
    prepared = rollback_rig(rig, code_back=code_back, lazy=True)
    planned = rollback.plan_steps(restore=False, serve=True, app_check=True, code_back=code_back)
    if step == "probes":
        def broken(*a: Any, **k: Any) -> Any:
            raise ProbeError("probes cannot run")
        rig.analyse = broken
    else:
        target, method = FAULTS[step]
        getattr(rig, target).faults.fail(method, PlatformError(f"{method} refused"))
    with pytest.raises(RollbackFailed) as info:
        run_rollback(rig, prepared)
    assert f"failed at step '{step}'" in info.value.message and info.value.exit_code == 4
    assert info.value.manual_steps
    at = planned.index(f"rollback.{step}")
    assert rollback_steps(rig) == [*((n, "ok") for n in planned[:at]), (f"rollback.{step}", "failed")]
