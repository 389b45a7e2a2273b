"""When a command posts to the [notify] webhook, and what it says: the decisions in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.deploy.outcome import Summary
    from deploysafe.ops.check import CheckResult


def publish_deploy(loaded: LoadedConfig, summary: Summary, *, as_json: bool) -> None:
    """Where a deploy's result goes: the terminal (text or --json), the GitHub step summary, the webhook."""
    import os
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.deploy.outcome import github_summary
    from deploysafe.redact import redact

    if as_json:
        console.result(summary.as_dict())
    else:
        console.plain(summary.render())
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary and console.github:
        try:  # best effort: a full disk never turns the deploy's outcome into an internal error
            with Path(step_summary).open("a", encoding="utf-8") as f:
                f.write(redact(github_summary(summary)))
        except OSError as e:
            console.warn(f"cannot write the GitHub step summary: {e.strerror or type(e).__name__}")
    notify_deploy(loaded, summary)


def notify_deploy(loaded: LoadedConfig, summary: Summary) -> None:
    """Post on rollback and when a person must act; on success only with [notify] on_success."""
    from deploysafe.deploy.outcome import NOTIFIED, Outcome

    if summary.outcome not in NOTIFIED and not (summary.outcome is Outcome.OK and loaded.config.notify.on_success):
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
