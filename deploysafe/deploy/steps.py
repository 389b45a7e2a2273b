"""The one step executor, shared by ``deploy`` (:mod:`deploysafe.deploy.apply`) and its rollback.

:func:`run_steps` walks steps in order, checks for an interruption between them (the caller's
``checkpoint``) and stops at the first failure, handing the step and the error to the caller's
``on_failure``: what a failure means (undo, rollback, manual steps) is the caller's to decide.
:func:`journaled` is the one way a step is journaled under its name and timed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from deploysafe.journal import Journal, StepHandle

T = TypeVar("T")
S = TypeVar("S")
R = TypeVar("R")


@dataclass(frozen=True)
class Step:
    """One step as data (rollback, promote): ``name`` is its journal name (rollback's are ``rollback.<name>``);
    ``details`` are journaled with it when it starts; ``after`` runs once it is done (what it settled, recorded
    outside its journal step). The deploy's steps are :class:`deploysafe.deploy.plan.Step`: their actions are
    looked up by name."""

    name: str
    action: Callable[[], object]
    details: Callable[[], dict[str, object]] = dict
    after: Callable[[], None] | None = None


class Monotonic(Protocol):
    def monotonic(self) -> float: ...


def journaled(
    journal: Journal, clock: Monotonic, name: str, fn: Callable[[StepHandle], T],
    took: Callable[[float], None], /, **details: object,
) -> T:
    """Run ``fn`` as the journal step ``name`` (with ``details``); ``took`` gets its seconds, failed or not."""
    t0 = clock.monotonic()
    try:
        with journal.step(name, **details) as handle:
            return fn(handle)
    finally:
        took(clock.monotonic() - t0)


def run_steps(
    steps: Iterable[S],
    *,
    run: Callable[[S], None],
    checkpoint: Callable[[], None],
    on_failure: Callable[[S, BaseException], R],
    failures: tuple[type[BaseException], ...],
) -> R | None:
    """Run each step in order (``checkpoint`` between two steps); the first of ``failures`` raised stops the walk
    and is handed to ``on_failure`` with the step that was running (stopped at a checkpoint: the step that was
    next, whose undo then applies), whose result is returned. None: every step ran."""
    step: S | None = None
    try:
        for i, step in enumerate(steps):
            if i:
                checkpoint()
            run(step)
    except failures as e:
        assert step is not None  # the first checkpoint comes after the first step
        return on_failure(step, e)
    return None
