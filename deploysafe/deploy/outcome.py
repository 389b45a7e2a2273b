"""What ``deploy`` returns: the outcome, the exit code, the timeline, and how to show them.

The journal's ``result`` line carries the outcome's value (``deploysafe status`` reads it), so
the values below are the journal's words and must not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from deploysafe.durations import format_duration

if TYPE_CHECKING:
    from deploysafe.deploy.plan import Plan, Undo
    from deploysafe.errors import DeploysafeError


class Outcome(StrEnum):
    RUNNING = "running"
    OK = "deployed"
    DRY_RUN = "dry run: nothing changed"
    FAILED_BEFORE_CHANGE = "failed before production changed"  # exit 3 (130 when interrupted)
    FAILED = "failed"  # before the guarded part began (the lock is held by another run, ...)
    ROLLED_BACK = "rolled back"
    NEEDS_PERSON = "needs a person"


NOTIFIED = (Outcome.ROLLED_BACK, Outcome.NEEDS_PERSON)  # always worth a message; OK only with [notify] on_success

_INTERNAL = ("failure", "plan", "steps_run", "undo")  # the executor's record, not part of the printed summary


@dataclass
class Summary:
    run_id: str
    outcome: Outcome = Outcome.RUNNING
    exit_code: int = 0
    snapshot: str | None = None
    production: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    new_files: list[str] = field(default_factory=list)
    lint: list[dict[str, Any]] = field(default_factory=list)
    rollback: dict[str, Any] | None = None
    divergence: list[dict[str, Any]] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    error: str | None = None
    manual_steps: list[str] = field(default_factory=list)
    failure: DeploysafeError | None = None  # the error the command ends with (its exit code and message)
    plan: Plan | None = None  # the plan that was printed (--dry-run) or executed
    steps_run: list[str] = field(default_factory=list)  # the plan steps the executor started, in order
    undo: Undo | None = None  # the undo the executor ran for the failing step

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _INTERNAL}

    def render(self) -> str:
        return render_summary(self)

    def fail(self, error: DeploysafeError) -> Summary:
        """End with ``error``: its exit code, and its message unless a more precise one was recorded."""
        self.failure = error
        self.exit_code = error.exit_code
        self.error = self.error or error.message
        return self


def render_summary(summary: Summary) -> str:
    lines = [f"deploy {summary.run_id}: {summary.outcome}"]
    if summary.snapshot:
        lines.append(f"  snapshot: {summary.snapshot}")
    lines.append("  timeline:")
    for e in summary.timeline:
        secs = format_duration(e["seconds"]) if "seconds" in e else "-"
        lines.append(f"    {e['step']:<10} {e['outcome']:<8} {secs}")
    if summary.rollback:
        lines.append(
            f"  rollback: unhealthy -> healthy on {summary.rollback['snapshot']} in "
            f"{format_duration(summary.rollback['seconds_verdict_to_healthy'])}"
        )
        lines.append(f"  kept with the failed state: {summary.rollback['failed_state_kept']}")
        if summary.rollback.get("app_release"):
            lines.append(f"  app release brought back: {summary.rollback['app_release']}")
    for d in summary.divergence:
        lines.append(f"    {d['table']}: {d.get('only_in_failed')} row(s) only in the failed state {d.get('note', '')}".rstrip())
    if summary.pruned:
        lines.append("  pruned: " + ", ".join(summary.pruned))
    if summary.manual_steps:
        lines.append("  a person must now:")
        lines += [f"    {i}. {s}" for i, s in enumerate(summary.manual_steps, 1)]
    return "\n".join(lines)


def github_summary(summary: Summary) -> str:
    rows = "\n".join(
        f"| {e['step']} | {e['outcome']} | {format_duration(e['seconds']) if 'seconds' in e else '-'} |"
        for e in summary.timeline
    )
    text = f"## deploysafe: {summary.outcome}\n\nSnapshot: `{summary.snapshot}`\n\n| step | outcome | time |\n|---|---|---|\n{rows}\n"
    if summary.rollback:
        text += (f"\nRolled back to `{summary.rollback['snapshot']}` in "
                 f"{format_duration(summary.rollback['seconds_verdict_to_healthy'])}.\n")
    if summary.error:
        text += f"\nError: {summary.error}\n"
    return text
