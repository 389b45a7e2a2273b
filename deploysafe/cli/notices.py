"""When a command posts to the [notify] webhook, and what it says: the decisions in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.ops.check import CheckResult


def notify_deploy(loaded: LoadedConfig, summary: Any) -> None:
    """Post on rollback and when a person must act; on success only with [notify] on_success."""
    if summary.outcome not in ("rolled back", "needs a person") and not (
        summary.outcome == "deployed" and loaded.config.notify.on_success
    ):
        return
    from deploysafe.notify import notify

    text = f"deploysafe deploy: {summary.outcome} (snapshot {summary.snapshot})"
    if summary.rollback:
        text += f"; rolled back in {summary.rollback['seconds_verdict_to_healthy']:.1f}s: {summary.rollback['reason']}"
    if summary.manual_steps:
        text += "; a person must act: " + " / ".join(summary.manual_steps)
    notify(loaded.config.notify, text, {"outcome": summary.outcome, "run_id": summary.run_id, "snapshot": summary.snapshot})


def notify_check(loaded: LoadedConfig, results: list[CheckResult]) -> None:
    """Post when any check warns or fails."""
    from deploysafe.ops.check import OK, summary, worst

    if worst(results) == OK:
        return
    from deploysafe.notify import notify

    notify(loaded.config.notify, summary(results, loaded.root.name), {"checks": [r.as_dict() for r in results]})
