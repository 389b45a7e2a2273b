"""Deploy and recovery commands: deploy, rollback, unlock, promote, probe, status, watch, history."""

from __future__ import annotations

from typing import Any

import click

from deploysafe.cli.context import Ctx, adapters, confirm, pass_ctx
from deploysafe.cli.notices import notify_deploy
from deploysafe.cli.options import dry_run_option, duration, yes_option


@click.command("deploy")
@click.option("--sha", help="Git sha for the snapshot name (default: $GITHUB_SHA, else git HEAD).")
@click.option("--dry-run", is_flag=True, help="Resolve everything, print the plan, change nothing.")
@click.option("--no-rollback", is_flag=True, help="On failure after production changed, do not roll back (exit 4).")
@click.option("--allow-destructive", is_flag=True, help="Let destructive SQL through for this run (overrides lint block).")
@click.option("--rehearse", is_flag=True, help="Run push against a throwaway copy of production first.")
@click.option("--watch", "watch_for", metavar="DURATION", help="After a healthy deploy, keep probing this long (e.g. 10m).")
@click.option("--assume-production", is_flag=True,
              help="When nothing can tell where DATABASE_URL points (write-only platform, no record), take it as production and record that.")
@pass_ctx
def deploy_cmd(ctx: Ctx, sha: str | None, dry_run: bool, no_rollback: bool, allow_destructive: bool, rehearse: bool,
               watch_for: str | None, assume_production: bool) -> int:
    """Guarded deploy: snapshot, generate, lint, push, probe; roll back on failure.

    Example: deploysafe deploy --sha "$GITHUB_SHA"

    The step a deploy pipeline runs. Exit 0: migrated and healthy. Exit 1: failed, rolled
    back, healthy on the snapshot. Exit 3: failed before production changed. Exit 4: a
    person must act (steps printed). Exit 5: another run holds the lock.
    """
    import os
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.deploy.run import DeployOptions, deploy, github_summary, render_summary
    from deploysafe.durations import parse_duration
    from deploysafe.errors import DeploysafeError, UsageError

    try:
        watch_s = parse_duration(watch_for) if watch_for else None
    except ValueError as e:
        raise UsageError(f"--watch: {e}") from None
    loaded = ctx.load()
    opts = DeployOptions(sha=sha, dry_run=dry_run, no_rollback=no_rollback, allow_destructive=allow_destructive,
                         rehearse=rehearse, watch=watch_s, assume_production=assume_production)
    summary = None
    try:
        summary = deploy(loaded, opts)
        summary.exit_code = 0
        return 0
    except DeploysafeError as e:
        summary = e.context.get("summary")
        raise
    finally:
        if summary is not None:
            if ctx.json:
                console.result(summary.as_dict())
            else:
                console.plain(render_summary(summary))
            step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
            if step_summary and console.github:
                from deploysafe.redact import redact

                try:  # a full disk never turns the deploy's outcome into an internal error (issue 15)
                    with Path(step_summary).open("a", encoding="utf-8") as f:
                        f.write(redact(github_summary(summary)))
                except OSError as e:
                    console.warn(f"cannot write the GitHub step summary: {e.strerror or type(e).__name__}")
            notify_deploy(loaded, summary)


@click.command("rollback")
@click.option("--to", "to", metavar="SNAPSHOT", help="Snapshot to roll back to (default: the newest pre-deploy one).")
@click.option("--at", "at", metavar="TIMESTAMP", help="Roll back to production as it was then (Neon point in time).")
@yes_option()
@dry_run_option("Print the plan and change nothing.")
@click.option("--break-lock", is_flag=True, help="First release the production lock if its holder is dead (as `deploysafe unlock`).")
@pass_ctx
def rollback_cmd(ctx: Ctx, to: str | None, at: str | None, yes: bool, dry_run: bool, break_lock: bool) -> int:
    """Emergency rollback: point the app at a snapshot, restart it, prove it is healthy.

    Example: deploysafe rollback --to pre-deploy-20261125T093000Z-3f2a1b9 --yes

    The command for 3 a.m. The failed production state is kept, never deleted.
    """
    from deploysafe.console import console
    from deploysafe.durations import format_duration
    from deploysafe.ops.recovery import manual_rollback

    loaded = ctx.load()
    result = manual_rollback(loaded, to=to, at=at, yes=yes, dry_run=dry_run, confirm=confirm, break_lock=break_lock)
    if ctx.json:
        console.result(result.__dict__)
    elif result.dry_run:
        console.plain("Rollback plan (dry run, nothing changed):\n" + "\n".join(f"  - {s}" for s in result.plan))
    else:
        console.ok(f"rolled back to {result.snapshot}; the app was repointed and healthy in "
                   f"{format_duration(result.repoint_seconds)}")
        for d in result.divergence:
            console.plain(f"  {d['table']}: {d.get('only_in_failed')} row(s) only in the failed state")
    return 0


@click.command("unlock")
@yes_option("Do not ask (required without a terminal).")
@pass_ctx
def unlock_cmd(ctx: Ctx, yes: bool) -> int:
    """Release the production lock when its holder is dead (its machine vanished, its process was killed).

    Example: deploysafe unlock --yes

    Shows the holder and ends its database session only when it is a deploysafe lock holder that is
    dead: its process is gone from this machine, or it has sent no heartbeat for 30s. Refuses (exit 5)
    while the holder is alive.
    """
    from deploysafe.console import console
    from deploysafe.ops.recovery import release_dead_lock

    loaded = ctx.load()
    with adapters(loaded) as a:
        message = release_dead_lock(loaded, a.provider, yes=yes, confirm=confirm)
    if ctx.json:
        console.result({"message": message})
    else:
        console.ok(message)
    return 0


@click.command("promote")
@yes_option("Do not ask for confirmation.")
@pass_ctx
def promote_cmd(ctx: Ctx, yes: bool) -> int:
    """After a rollback, make the snapshot the production branch; keep the old one renamed.

    Example: deploysafe promote --yes

    Run it once you are satisfied the app is good on the snapshot, before the next deploy.
    """
    from deploysafe.console import console
    from deploysafe.ops.recovery import promote

    result = promote(ctx.load(), yes=yes, confirm=confirm)
    if ctx.json:
        console.result(result)
    else:
        console.ok(f"{result['was']} is now {result['production']}; the failed state is kept as {result['failed_state']}")
    return 0


@click.command("probe")
@pass_ctx
def probe_cmd(ctx: Ctx) -> int:
    """Run the health probes against the app and the database it points at now.

    Example: deploysafe probe --json

    Exit 0 when healthy, 7 when not.
    """
    from deploysafe.console import console
    from deploysafe.errors import CHECK_FAIL
    from deploysafe.ops.recovery import probe

    verdict, _ = probe(ctx.load())
    if ctx.json:
        console.result(verdict.as_dict())
    else:
        for r in verdict.attempts[-1] if verdict.attempts else []:
            (console.ok if r.ok else console.error)(f"{r.kind} {r.name}: {'ok' if r.ok else r.reason} ({r.latency_ms:.0f} ms)")
        (console.ok if verdict.healthy else console.error)(("healthy: " if verdict.healthy else "unhealthy: ") + verdict.reason)
    return 0 if verdict.healthy else CHECK_FAIL


@click.command("status")
@pass_ctx
def status_cmd(ctx: Ctx) -> int:
    """Say what the last run did and what state production is in now.

    Example: deploysafe status

    Use it after a run was killed: it says whether the push ran and what to do next.
    """
    from deploysafe.console import console
    from deploysafe.ops.recovery import render_status, status

    st = status(ctx.load())
    if ctx.json:
        console.result(st)
    else:
        console.plain(render_status(st))
    return 0


@click.command("watch")
@click.option("--for", "window", default="1h", show_default=True, help="How long to keep probing.")
@pass_ctx
def watch_cmd(ctx: Ctx, window: str) -> int:
    """Keep probing after a deploy; roll back automatically if the app turns unhealthy.

    Example: deploysafe watch --for 1h

    Run it from a second CI job, a scheduler or a terminal after a deploy.
    """
    from deploysafe.console import console
    from deploysafe.ops.recovery import watch

    result = watch(ctx.load(), duration("--for", window))
    if ctx.json:
        console.result(result)
    else:
        console.ok(result["reason"])
    return 0


# --- history ------------------------------------------------------------------------------


@click.command("history")
@click.option("--limit", default=10, show_default=True, help="How many recent runs.")
@pass_ctx
def history_cmd(ctx: Ctx, limit: int) -> None:
    """List recent runs with their steps and durations, from the journal.

    Example: deploysafe history --limit 3 --json
    """
    from deploysafe.console import console
    from deploysafe.journal import read_journal, runs

    loaded = ctx.load()
    recent = runs(read_journal(loaded.state_dir))[-limit:]
    if ctx.json:
        console.result(recent)
    elif not recent:
        console.plain("no runs recorded yet")
    else:
        _show_runs(recent)


def _show_runs(recent: list[dict[str, Any]]) -> None:
    """One line per run, one indented line per step with its duration."""
    from deploysafe.console import console

    for run in recent:
        console.plain(f"{run['started_at']}  {run['command']:<10} {run['outcome']:<12} {run['run_id']}")
        for s in run["steps"]:
            dur = f"{s['duration_ms'] / 1000:.2f}s" if s["duration_ms"] is not None else "(cut off)"
            console.plain(f"    {s['step']:<24} {s['outcome']:<12} {dur}")

