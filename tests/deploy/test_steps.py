"""The shared step executor (deploy.steps): order, checkpoints, the first failure, journaling and timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploysafe.deploy.steps import journaled, run_steps
from deploysafe.errors import Interrupted, StepError
from deploysafe.journal import Journal, StepHandle, read_journal


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
