"""Command-line interface. Only click commands live here; each calls one function.

Heavy modules (httpx, pydantic adapters, gitpython, psycopg) are imported inside the
commands that need them, so ``deploysafe --version`` and the hook's no-op path stay fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from deploysafe import __version__, platforms, providers
from deploysafe.errors import EXIT_CODES

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig

EXIT_TABLE = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())


class Ctx:
    def __init__(self, config_path: str | None, json_mode: bool) -> None:
        self.config_path = config_path
        self.json = json_mode
        self._loaded: LoadedConfig | None = None

    def load(self) -> LoadedConfig:
        if self._loaded is None:
            from deploysafe.config import load_config
            from deploysafe.files import remember_state_dir

            self._loaded = load_config(self.config_path)
            remember_state_dir(self._loaded.state_dir)  # where a crash log goes
        return self._loaded


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nExit codes:\n" + EXIT_TABLE,
)
@click.version_option(__version__, prog_name="deploysafe")
@click.option("--config", "config_path", metavar="PATH", help="deploysafe.toml to use (default: search upward; env DEPLOYSAFE_CONFIG).")
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable result on stdout; human logs go to stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Show more detail, including each command's output.")
@click.option("--no-color", is_flag=True, help="No ANSI colours (also honoured: NO_COLOR).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, json_mode: bool, verbose: bool, no_color: bool) -> None:
    """Safe database deploys for Drizzle ORM apps on Neon or PostgreSQL.

    Takes a snapshot of production, runs your own `npm run db:generate` and
    `npm run db:push`, probes the app, and rolls DATABASE_URL back to the
    snapshot when anything fails.
    """
    from deploysafe.console import console

    console.configure(json_mode=json_mode, verbose=verbose, no_color=no_color)
    ctx.obj = Ctx(config_path, json_mode)


# --- config -------------------------------------------------------------------------------


@cli.group("config")
def config_group() -> None:
    """Validate, show and describe deploysafe.toml."""


@config_group.command("check")
@pass_ctx
def config_check(ctx: Ctx) -> None:
    """Validate deploysafe.toml and print each problem with its key path.

    Example: deploysafe config check --config app/deploysafe.toml

    Exits 0 when the file is valid and 2 when it is not.
    """
    from deploysafe.console import console
    from deploysafe.drizzle.target import describe, problems
    from deploysafe.errors import ConfigError

    loaded = ctx.load()
    found = problems(loaded)
    if found:
        raise ConfigError(f"{loaded.path}: " + "; ".join(p for p, _ in found), hint="; ".join(dict.fromkeys(f for _, f in found)))
    app = describe(loaded)
    if ctx.json:
        console.result({"ok": True, "path": str(loaded.path), "app": app})
    else:
        console.ok(f"{loaded.path} is valid")
        console.plain(f"  workflow {app['workflow']}: " + ", ".join(f"{k} `{c}`" for k, c in app["commands"].items()))
        console.plain(f"  each step gets {', '.join(app['database_env'])} set to its target database"
                      + (f"; env files the app loads: {', '.join(app['env_files'])}" if app["env_files"] else ""))


@config_group.command("show")
@pass_ctx
def config_show(ctx: Ctx) -> None:
    """Print the resolved config (defaults filled in, ${VAR} references as written, secrets redacted).

    Example: deploysafe config show --json
    """
    from deploysafe.config import shown
    from deploysafe.console import console

    loaded = ctx.load()
    data = shown(loaded)
    if ctx.json:
        console.result(data)
    else:
        console.plain(f"# {loaded.path}")
        console.plain(_toml_dump(data))


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of deploysafe.toml (for editor completion).

    Example: deploysafe config schema > deploysafe.schema.json
    """
    import json

    from deploysafe.config import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


def _toml_dump(data: dict[str, Any]) -> str:
    import json

    lines: list[str] = []

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, list) and not any(isinstance(x, dict) for x in v):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    def table(prefix: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if v is not None and not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        lines.append(f"\n[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {val(v)}")
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("env", "headers_env", "database_env_parts"):
                table(f"{prefix}.{k}", v)
            elif isinstance(v, dict):
                lines.append(f"{k} = {val(v)}")
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"\n[[{prefix}.{k}]]")
                    for ik, iv in item.items():
                        if iv is not None:
                            lines.append(f"{ik} = {val(iv)}")

    for section, body in data.items():
        table(section, body)
    return "\n".join(lines).strip()


# --- init ---------------------------------------------------------------------------------


@cli.command("init")
@click.option("--dir", "app_dir", default=".", show_default=True, type=click.Path(file_okay=False), help="The app folder (where package.json is).")
@click.option("--provider", type=click.Choice(providers.TYPES), default="neon", show_default=True, help="Snapshot backend.")
@click.option("--platform", type=click.Choice(platforms.TYPES), default="dotenv", show_default=True, help="Where the app runs.")
@click.option("--force", is_flag=True, help="Overwrite an existing deploysafe.toml.")
def init_cmd(app_dir: str, provider: str, platform: str, force: bool) -> None:
    """Write a commented starter deploysafe.toml after reading package.json and drizzle.config.*.

    Example: deploysafe init --provider neon --platform vercel

    Run it once in your app; then `deploysafe config check`.
    """
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.ops.init import write_starter

    path = write_starter(Path(app_dir), provider=provider, platform=platform, force=force)
    console.ok(f"wrote {path}; next: edit it, then run `deploysafe config check`")


# --- history ------------------------------------------------------------------------------


@cli.command("history")
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
        return
    if not recent:
        console.plain("no runs recorded yet")
        return
    for run in recent:
        console.plain(f"{run['started_at']}  {run['command']:<10} {run['outcome']:<12} {run['run_id']}")
        for s in run["steps"]:
            dur = f"{s['duration_ms'] / 1000:.2f}s" if s["duration_ms"] is not None else "(cut off)"
            console.plain(f"    {s['step']:<24} {s['outcome']:<12} {dur}")


# --- git hooks (issue 7) ------------------------------------------------------------------
# `hook ...` runs inside `git push`: it imports only the standard library until it knows the
# push touches schema or migration paths (see deploysafe/hook/prepush.py).


@cli.group("hook")
def hook_group() -> None:
    """Run a git hook (called by the installed hook script, not by hand)."""


@hook_group.command("pre-push")
@click.argument("remote")
@click.argument("url")
@click.option("--legacy", type=click.Path(dir_okay=False), help="The previous hook to run first (set by the hook script).")
@pass_ctx
def hook_pre_push(ctx: Ctx, remote: str, url: str, legacy: str | None) -> int:
    """Check a push to a deploy branch: migrations generated, new SQL linted, optional snapshot.

    Example: git push (the hook runs `deploysafe hook pre-push origin URL` with git's stdin)

    Reads git's `<local ref> <local sha> <remote ref> <remote sha>` lines on stdin. Pushes to other
    branches, tags and deletions pass at once and silently. DEPLOYSAFE_SKIP=1 skips the checks.
    """
    from pathlib import Path

    from deploysafe.errors import UsageError
    from deploysafe.hook.prepush import run_pre_push

    if sys.stdin.isatty():
        raise UsageError("`deploysafe hook pre-push` reads git's push lines on stdin", hint="it is run by git; install it with `deploysafe hooks install`")
    stdin = sys.stdin.buffer.read()
    return run_pre_push(remote, url, stdin, repo_root=Path.cwd(), config=ctx.config_path, legacy=Path(legacy) if legacy else None)


@hook_group.command("pre-commit-pre-push")
@pass_ctx
def hook_pre_commit_pre_push(ctx: Ctx) -> int:
    """The same check, run from pre-commit's pre-push stage (refs come from PRE_COMMIT_* variables).

    Example (.pre-commit-config.yaml): hooks: [{id: deploysafe-pre-push}] with the deploysafe repo
    """
    import os
    from pathlib import Path

    from deploysafe.hook.prepush import run_pre_push, stdin_from_pre_commit

    remote, url, stdin = stdin_from_pre_commit(dict(os.environ))
    return run_pre_push(remote, url, stdin, repo_root=Path.cwd(), config=ctx.config_path)


@cli.group("hooks")
def hooks_group() -> None:
    """Install or remove the git pre-push hook."""


@hooks_group.command("install")
@click.option("--force", is_flag=True, help="Also when pre-push.legacy exists: move it aside to pre-push.legacy.bak (nothing is deleted).")
@pass_ctx
def hooks_install(ctx: Ctx, force: bool) -> None:
    """Install the pre-push hook into this repository (core.hooksPath and worktrees respected).

    Example: deploysafe hooks install

    An existing pre-push hook is kept as pre-push.legacy and still runs first.
    """
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.hook.install import install, missing_policy

    result = install(Path.cwd(), force=force, missing=missing_policy(Path.cwd(), ctx.config_path))
    for msg in result.messages:
        console.info(msg)
    console.ok(f"installed {result.path}; pushes to deploy branches are now checked")


@hooks_group.command("uninstall")
def hooks_uninstall() -> None:
    """Remove deploysafe's pre-push hook and restore the hook it replaced.

    Example: deploysafe hooks uninstall
    """
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.hook.install import uninstall

    result = uninstall(Path.cwd())
    for msg in result.messages:
        console.ok(msg)


# --- snapshots and prune (issue 3) --------------------------------------------------------

SNAPSHOT_KINDS = ["manual", "pre-deploy", "daily", "weekly", "restore", "drill"]


@cli.group("snapshot")
def snapshot_group() -> None:
    """Create, list and delete snapshots of production."""


@snapshot_group.command("create")
@click.option("--kind", type=click.Choice(SNAPSHOT_KINDS), default="manual", show_default=True, help="What the snapshot is for; sets its retention.")
@click.option("--name", help="Snapshot name (default: from the kind and the time, e.g. manual-20261125T100000Z).")
@click.option("--at", "at_text", metavar="TIMESTAMP", help="ISO 8601 moment to branch from (Neon only), e.g. 2026-11-24T15:30:00Z.")
@pass_ctx
def snapshot_create(ctx: Ctx, kind: str, name: str | None, at_text: str | None) -> None:
    """Take a snapshot of production now, or (Neon) as it was at a moment.

    Example: deploysafe snapshot create --name before-big-import

    Use it before a risky manual change, or with --at to get back data deleted by mistake.
    """
    from deploysafe.console import console
    from deploysafe.journal import Journal, iso
    from deploysafe.providers import make_provider
    from deploysafe.providers.base import SnapshotKind
    from deploysafe.snapshots.manage import create, ensure_headroom, parse_at, try_platform, validate_name

    at = parse_at(at_text) if at_text is not None else None  # --at "" is a usage error, not "no --at" (issue 10)
    if name is not None:
        validate_name(name)
    loaded = ctx.load()
    provider = make_provider(loaded)
    try:
        journal = Journal(loaded.state_dir, "snapshot create")
        if provider.branch_allowance() is not None:
            ensure_headroom(loaded, provider, try_platform(loaded), journal=journal)
        snap = create(provider, kind=SnapshotKind(kind), name=name, at=at, journal=journal)
    finally:
        provider.close()
    if ctx.json:
        console.result({"name": snap.name, "id": snap.id, "kind": kind, "created_at": iso(snap.created_at)})
    else:
        console.ok(f"snapshot {snap.name} created")


@snapshot_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON rows (ISO 8601 times) on stdout.")
@click.option("--all", "everything", is_flag=True, help="Also branches/databases deploysafe did not create.")
@pass_ctx
def snapshot_list(ctx: Ctx, as_json: bool, everything: bool) -> None:
    """List snapshots: name, kind, age, created_at, in-use, protected, expires_at.

    Example: deploysafe snapshot list --json

    Shows deploysafe's snapshots and production; --all adds everything else the provider sees.
    """
    from datetime import UTC, datetime

    from deploysafe.console import console
    from deploysafe.providers import make_provider
    from deploysafe.snapshots.manage import describe, format_table, gather, try_platform

    if as_json:
        console.json_mode = True  # warnings go to stderr; stdout stays pure JSON
    loaded = ctx.load()
    provider = make_provider(loaded)
    try:
        facts = gather(loaded, provider, try_platform(loaded))
    finally:
        provider.close()
    rows = describe(facts.snapshots, facts, now=datetime.now(UTC), loaded=loaded, everything=everything)
    if as_json or ctx.json:
        console.result(rows)
    else:
        console.plain(format_table(rows))


@snapshot_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask; required when stdin is not a terminal.")
@pass_ctx
def snapshot_delete(ctx: Ctx, name: str, yes: bool) -> None:
    """Delete one snapshot. Never deletes production, the one in use, or what deploysafe did not create.

    Example: deploysafe snapshot delete manual-20261125T100000Z --yes

    Use it to free a branch by hand; `deploysafe prune` applies the retention policy instead.
    """
    from deploysafe.console import console
    from deploysafe.errors import UsageError
    from deploysafe.journal import Journal
    from deploysafe.providers import make_provider
    from deploysafe.snapshots.manage import delete_one, production_lock, try_platform

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {name!r} without --yes: stdin is not a terminal", hint=f"run `deploysafe snapshot delete {name} --yes`")
        if not click.confirm(f"Delete snapshot {name!r}?", default=False):
            console.info("nothing deleted")
            return
    loaded = ctx.load()
    provider = make_provider(loaded)
    try:
        journal = Journal(loaded.state_dir, "snapshot delete")
        with production_lock(loaded, provider, journal, "snapshot-delete"):
            delete_one(loaded, provider, try_platform(loaded), name, journal=journal)
    finally:
        provider.close()
    console.ok(f"snapshot {name} deleted")


@cli.command("prune")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted and why each survivor is kept; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="The plan and its outcome as JSON on stdout.")
@pass_ctx
def prune_cmd(ctx: Ctx, dry_run: bool, as_json: bool) -> int:
    """Delete snapshots older than their [retention] age, leaf-first, never one still needed.

    Example: deploysafe prune --dry-run

    Kept whatever its age: production, the default branch, the one the app points at, protected
    ones, ones with children, the newest of each kind, and anything deploysafe did not create.
    Run it from cron or CI after backups; deploy runs it too. Exits 3 if a deletion failed.
    """
    from deploysafe.console import console
    from deploysafe.errors import EXIT_PRECONDITION
    from deploysafe.journal import Journal
    from deploysafe.providers import make_provider
    from deploysafe.snapshots.manage import format_plan, plan_json, production_lock, prune, try_platform

    if as_json:
        console.json_mode = True
    loaded = ctx.load()
    provider = make_provider(loaded)
    try:
        journal = Journal(loaded.state_dir, "prune")
        if dry_run:
            plan = prune(loaded, provider, try_platform(loaded), dry_run=True, journal=journal)
        else:
            with production_lock(loaded, provider, journal, "prune"):
                plan = prune(loaded, provider, try_platform(loaded), dry_run=False, journal=journal)
    finally:
        provider.close()
    if as_json or ctx.json:
        console.result(plan_json(plan, dry_run=dry_run))
    else:
        console.plain(format_plan(plan, dry_run=dry_run))
    return EXIT_PRECONDITION if plan.failed else 0


# --- deploy, rollback and recovery (lead) ---------------------------------------------------


def _confirm(question: str) -> bool:
    """Ask on a TTY; refuse without one (a pipeline must pass --yes)."""
    if not sys.stdin.isatty():
        from deploysafe.errors import UsageError

        raise UsageError("this needs confirmation and stdin is not a terminal", hint="pass --yes")
    return click.confirm(question, default=False, err=True)


@cli.command("deploy")
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
            _notify(loaded, summary)


def _notify(loaded: LoadedConfig, summary: Any) -> None:
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


@cli.command("rollback")
@click.option("--to", "to", metavar="SNAPSHOT", help="Snapshot to roll back to (default: the newest pre-deploy one).")
@click.option("--at", "at", metavar="TIMESTAMP", help="Roll back to production as it was then (Neon point in time).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
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
    result = manual_rollback(loaded, to=to, at=at, yes=yes, dry_run=dry_run, confirm=_confirm, break_lock=break_lock)
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


@cli.command("unlock")
@click.option("--yes", is_flag=True, help="Do not ask (required without a terminal).")
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
    from deploysafe.providers import make_provider

    loaded = ctx.load()
    provider = make_provider(loaded)
    try:
        message = release_dead_lock(loaded, provider, yes=yes, confirm=_confirm)
    finally:
        provider.close()
    if ctx.json:
        console.result({"message": message})
    else:
        console.ok(message)
    return 0


@cli.command("promote")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def promote_cmd(ctx: Ctx, yes: bool) -> int:
    """After a rollback, make the snapshot the production branch; keep the old one renamed.

    Example: deploysafe promote --yes

    Run it once you are satisfied the app is good on the snapshot, before the next deploy.
    """
    from deploysafe.console import console
    from deploysafe.ops.recovery import promote

    result = promote(ctx.load(), yes=yes, confirm=_confirm)
    if ctx.json:
        console.result(result)
    else:
        console.ok(f"{result['was']} is now {result['production']}; the failed state is kept as {result['failed_state']}")
    return 0


@cli.command("probe")
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


@cli.command("status")
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


@cli.command("watch")
@click.option("--for", "window", default="1h", show_default=True, help="How long to keep probing.")
@pass_ctx
def watch_cmd(ctx: Ctx, window: str) -> int:
    """Keep probing after a deploy; roll back automatically if the app turns unhealthy.

    Example: deploysafe watch --for 1h

    Run it from a second CI job, a scheduler or a terminal after a deploy.
    """
    from deploysafe.console import console
    from deploysafe.durations import parse_duration
    from deploysafe.errors import UsageError
    from deploysafe.ops.recovery import watch

    try:
        seconds = parse_duration(window)
    except ValueError as e:
        raise UsageError(f"--for: {e}") from None
    result = watch(ctx.load(), seconds)
    if ctx.json:
        console.result(result)
    else:
        console.ok(result["reason"])
    return 0


@cli.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Work here instead of a temporary folder.")
@click.option("--keep", is_flag=True, help="Leave the app and database running, and print how to stop them.")
def demo_cmd(directory: str | None, keep: bool) -> int:
    """Show the whole job on this machine: a good deploy, then a bad one caught and rolled back.

    Example: deploysafe demo

    Needs only Node >= 20 (PostgreSQL comes from this machine or the pgserver wheel).
    """
    from pathlib import Path

    from deploysafe.demo.run import run_demo

    return run_demo(Path(directory) if directory else None, keep)


# --- operations (issue 8): backup, check, drill, restore-table, setup, runbook ---------------


def _ops_adapters(loaded: LoadedConfig) -> tuple[Any, Any]:
    from deploysafe.providers import make_provider
    from deploysafe.snapshots.manage import try_platform

    return make_provider(loaded), try_platform(loaded)


@cli.group("backup", invoke_without_command=True)
@click.option("--kind", type=click.Choice(["daily", "weekly"]), help="Force the kind (default: weekly on [backup] weekly_day, else daily).")
@click.option("--no-prune", is_flag=True, help="Only take the backup; do not prune old snapshots afterwards.")
@click.pass_context
def backup_group(cctx: click.Context, kind: str | None, no_prune: bool) -> int | None:
    """Take today's backup snapshot of production (once per day), then prune per [retention].

    Example: deploysafe backup --kind weekly

    Run it daily from cron or a scheduled CI workflow; a rerun the same day reports the existing
    backup and creates nothing. `deploysafe backup schedule` manages Neon's own snapshot schedule.
    """
    if cctx.invoked_subcommand is not None:
        return None
    from deploysafe.console import console
    from deploysafe.journal import Journal
    from deploysafe.ops.backup import run_backup
    from deploysafe.providers.base import SnapshotKind

    ctx = cctx.find_object(Ctx)
    assert ctx is not None
    loaded = ctx.load()
    provider, platform = _ops_adapters(loaded)
    try:
        journal = Journal(loaded.state_dir, "backup")
        result = run_backup(loaded, provider, platform, journal, kind=SnapshotKind(kind) if kind else None, prune=not no_prune)
    finally:
        provider.close()
    if ctx.json:
        console.result(result.as_dict())
    else:
        if result.created:
            console.ok(f"backup {result.name} created")
        else:
            console.ok(f"backup {result.name} already exists; nothing created")
        for name in result.pruned:
            console.info(f"pruned {name}")
        for line in result.prune_failed:
            console.warn(f"could not prune {line}")
    return 0


@backup_group.group("schedule")
def backup_schedule_group() -> None:
    """Show or set Neon's native snapshot schedule of the production branch (paid plans)."""


@backup_schedule_group.command("show")
@pass_ctx
def backup_schedule_show(ctx: Ctx) -> int:
    """Print the production branch's Neon backup schedule.

    Example: deploysafe backup schedule show --json

    Neon only; the local provider says so and exits 3.
    """
    from deploysafe.console import console
    from deploysafe.ops.backup import describe_item, schedule_show
    from deploysafe.providers import make_provider

    provider = make_provider(ctx.load())
    try:
        items = schedule_show(provider)
    finally:
        provider.close()
    if ctx.json:
        console.result({"schedule": items})
    elif not items:
        console.plain("no native backup schedule")
    else:
        for item in items:
            console.plain(describe_item(item))
    return 0


@backup_schedule_group.command("set")
@click.option("--item", "items", multiple=True, metavar="SPEC", help="frequency=hourly|daily|weekly|monthly|yearly[,hour=H][,day=D][,month=M][,retention=7d]; repeatable.")
@click.option("--off", is_flag=True, help="Remove the schedule (no native snapshots).")
@pass_ctx
def backup_schedule_set(ctx: Ctx, items: tuple[str, ...], off: bool) -> int:
    """Replace the production branch's Neon backup schedule.

    Example: deploysafe backup schedule set --item frequency=daily,hour=3,retention=7d --item frequency=weekly,day=7,hour=4,retention=30d

    Neon only, on plans that allow it. Give --item at least once, or --off.
    """
    from deploysafe.console import console
    from deploysafe.errors import UsageError
    from deploysafe.journal import Journal
    from deploysafe.ops.backup import parse_schedule_item, schedule_set
    from deploysafe.providers import make_provider

    if off == bool(items):
        raise UsageError("give --item at least once, or --off", hint="e.g. --item frequency=daily,hour=3,retention=7d")
    parsed = [parse_schedule_item(i) for i in items]
    loaded = ctx.load()
    provider = make_provider(loaded)
    try:
        schedule_set(provider, parsed, Journal(loaded.state_dir, "backup schedule"))
    finally:
        provider.close()
    console.ok("backup schedule removed" if off else f"backup schedule set ({len(parsed)} item(s))")
    return 0


@cli.command("check")
@click.option("--json", "as_json", is_flag=True, help="Every check as JSON on stdout.")
@click.option("--warn-ok", is_flag=True, help="Exit 0 when checks only warn (failures still exit 7).")
@click.option("--checklist", is_flag=True, help="Add the guide's pre-production checklist.")
@pass_ctx
def check_cmd(ctx: Ctx, as_json: bool, warn_ok: bool, checklist: bool) -> int:
    """Run the backup and recovery checklist: each check ok / warn / fail with a reason.

    Example: deploysafe check --checklist

    Run it daily after `deploysafe backup`. Exit 0: all ok; 6: something warns; 7: something
    fails. Posts to the [notify] webhook on warn or fail.
    """
    from deploysafe.console import console
    from deploysafe.journal import Journal
    from deploysafe.notify import notify
    from deploysafe.ops.check import OK, checks_or_failure, exit_code, summary, worst

    if as_json:
        console.json_mode = True
    loaded = ctx.load()
    results = checks_or_failure(loaded, lambda: _ops_adapters(loaded), checklist=checklist)
    code = exit_code(results, warn_ok=warn_ok)
    Journal(loaded.state_dir, "check").event("result", outcome=worst(results), checks=[r.as_dict() for r in results])
    if as_json or ctx.json:
        console.result({"status": worst(results), "exit_code": code, "checks": [r.as_dict() for r in results]})
    else:
        for r in results:
            console.plain(f"{r.status.upper():<5} {r.name:<26} {r.reason}")
    if worst(results) != OK:
        notify(loaded.config.notify, summary(results, loaded.root.name), {"checks": [r.as_dict() for r in results]})
    return code


@cli.command("drill")
@click.option("--age", default=None, help="Restore production as it was this long ago (Neon; default 7d, or the history window less a few minutes when shorter), or the newest snapshot at least this old (local; default 7d).")
@click.option("--keep", is_flag=True, help="Keep the drill branch afterwards (it is deleted by default).")
@click.option("--history", "show_history", is_flag=True, help="Show past drills instead of running one.")
@pass_ctx
def drill_cmd(ctx: Ctx, age: str | None, keep: bool, show_history: bool) -> int:
    """Rehearse a recovery: branch from the past, verify it, time each phase against [drill] targets.

    Example: deploysafe drill --age 7d

    Run it monthly. Writes <state dir>/drills/drill-YYYY-MM-DD.{md,json}. Exit 0 passed,
    6 verified but slower than a target, 7 a check failed.
    """
    from deploysafe.console import console
    from deploysafe.durations import format_duration, parse_duration
    from deploysafe.errors import UsageError
    from deploysafe.journal import Journal
    from deploysafe.ops.drill import exit_code, history_lines, load_reports, report_path, run_drill
    from deploysafe.providers import make_provider

    loaded = ctx.load()
    if show_history:
        reports = load_reports(loaded.state_dir)
        if ctx.json:
            console.result(reports)
        elif not reports:
            console.plain("no drills recorded yet; run `deploysafe drill`")
        else:
            console.plain("\n".join(history_lines(reports)))
        return 0
    try:
        age_s = parse_duration(age) if age is not None else None
    except ValueError as e:
        raise UsageError(f"--age: {e}") from None
    provider = make_provider(loaded)
    try:
        report = run_drill(loaded, provider, Journal(loaded.state_dir, "drill"), age=age_s, keep=keep)
    finally:
        provider.close()
    if ctx.json:
        console.result(report.as_dict())
    else:
        for p in report.phases:
            target = f" (target {format_duration(p.target)}{'' if p.within_target else ', MISSED'})" if p.target else ""
            console.plain(f"  {p.name:<8} {format_duration(p.seconds)}{target}")
        for c in report.checks:
            console.plain(f"  {'pass' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
        line = f"drill {report.outcome}" + (f": {report.reason}" if report.reason else "")
        line += f"; report: {report_path(loaded.state_dir, report, 'md')}"
        (console.ok if report.outcome == "passed" else console.warn)(line)
    return exit_code(report)


@cli.command("restore-table")
@click.option("--from", "from_snapshot", metavar="SNAPSHOT", help="Snapshot to take the table from.")
@click.option("--at", "at_text", metavar="TIMESTAMP", help="Or: production as it was then (Neon), e.g. 2026-11-24T15:30:00Z.")
@click.option("--table", required=True, help="Table name, exactly as in the database (case, spaces and quotes are fine).")
@click.option("--schema", default="public", show_default=True, help="Schema of the table.")
@click.option("--into", "into", type=click.Choice(["production"]), help="Insert the missing rows into the production table itself (re-created if dropped).")
@click.option("--as", "as_name", metavar="NEW_NAME", help="Name of the new table to restore into (default: <table>_restored_<timestamp>).")
@click.option("--dry-run", is_flag=True, help="Show the differences and change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@pass_ctx
def restore_table_cmd(ctx: Ctx, from_snapshot: str | None, at_text: str | None, table: str, schema: str,
                      into: str | None, as_name: str | None, dry_run: bool, yes: bool) -> int:
    """Bring back one table, or the rows deleted from it, from a snapshot or a past moment.

    Example: deploysafe restore-table --from backup-2026-11-24 --table orders --into production --dry-run

    Use it after an accidental DROP TABLE or DELETE. By default the rows land in a new table
    so nothing in production is overwritten; --into production inserts only the missing rows.
    """
    from deploysafe.console import console
    from deploysafe.journal import Journal
    from deploysafe.ops.restore_table import RestoreResult, restore_table
    from deploysafe.providers import make_provider
    from deploysafe.snapshots.manage import parse_at

    at = parse_at(at_text) if at_text is not None else None  # --at "" is a usage error, not "no --at" (issue 10)

    def show(r: RestoreResult) -> None:
        d = r.diff
        if not d.production_exists:
            console.plain(f"{schema}.{r.table}: not in production; {d.source_rows} row(s) in {r.source}")
        elif not d.by_key:
            console.plain(f"{r.table}: no primary key; {d.source_rows} row(s) in {r.source} (no row-by-row comparison)")
        else:
            for label, key in (("only in the source", "only_source"), ("only in production", "only_production"), ("differing", "differing")):
                sample = d.samples.get(key) or []
                more = f" (keys: {'; '.join(sample)}{', …' if getattr(d, key) > len(sample) else ''})" if sample else ""
                console.plain(f"  {getattr(d, key):>8} row(s) {label}{more}")
        if d.missing_columns:
            console.warn(f"columns only in the source (not restored into production): {', '.join(d.missing_columns)}")
        action = ("insert the missing rows into" if r.mode == "into-production" else "create the new table") + f" {r.target}"
        console.plain(f"would {action}" if r.dry_run else f"about to {action}")

    loaded = ctx.load()
    provider = make_provider(loaded)
    try:
        result = restore_table(
            loaded, provider, Journal(loaded.state_dir, "restore-table"), table=table, schema=schema,
            from_snapshot=from_snapshot, at=at, into_production=into == "production", as_name=as_name, dry_run=dry_run,
            confirm=lambda r: yes or _confirm(f"Restore {r.diff.source_rows} row(s) as described into {r.target}?"),
            show=(lambda r: None) if ctx.json else show,
        )
    finally:
        provider.close()
    if ctx.json:
        console.result(result.as_dict())
    elif result.applied:
        what = "re-created and filled" if result.recreated else "wrote"
        console.ok(f"{what} {result.target}: {result.inserted} row(s) restored from {result.source}")
    elif not dry_run:
        console.info("nothing changed")
    return 0


@cli.command("setup")
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@pass_ctx
def setup_cmd(ctx: Ctx, dry_run: bool) -> int:
    """Prepare production for deploysafe: production branch, protection, a retention that fits.

    Example: deploysafe setup --dry-run

    Run it once per project (Neon), then `deploysafe check --checklist`.
    """
    from deploysafe.console import console
    from deploysafe.journal import Journal
    from deploysafe.ops.setup import retention_toml, run_setup
    from deploysafe.providers import make_provider

    loaded = ctx.load()
    provider = make_provider(loaded)
    try:
        report = run_setup(loaded, provider, Journal(loaded.state_dir, "setup"), dry_run=dry_run)
    finally:
        provider.close()
    if ctx.json:
        console.result(report.as_dict())
        return 0
    for line in report.done:
        console.ok(line)
    for line in report.notes:
        console.info(line)
    if report.retention:
        console.plain("Proposed retention that fits the plan's branch allowance (put it in deploysafe.toml):\n"
                      + retention_toml(report.retention))
    for line in report.todo:
        console.warn("to do: " + line)
    return 0


@cli.command("runbook")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@pass_ctx
def runbook_cmd(ctx: Ctx, output: str | None) -> int:
    """Print the recovery runbook (Markdown) with this project's real names and commands.

    Example: deploysafe runbook -o RUNBOOK.md

    Commit it next to your code and regenerate it when deploysafe.toml changes.
    """
    from pathlib import Path

    from deploysafe.journal import Journal
    from deploysafe.ops.runbook import render

    loaded = ctx.load()
    text = render(loaded)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    Journal(loaded.state_dir, "runbook").event("result", outcome="written" if output else "printed", output=output)
    return 0


# --- lint (issue 4) -------------------------------------------------------------------------


@cli.command("lint")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON on stdout.")
@pass_ctx
def lint_cmd(ctx: Ctx, paths: tuple[str, ...], as_json: bool) -> int:
    """Classify migration SQL as destructive, locking or info (squawk + PostgreSQL's parser).

    Example: deploysafe lint drizzle/

    Use it in CI or a git hook to stop a destructive migration before a deploy runs it.
    PATH may be .sql files or folders; without PATH it lints the app's migrations not yet
    applied (per drizzle's journal table when DATABASE_URL is set, else all of them). Each
    finding prints as `file:line  severity  rule  message  url`. Exits 3 when [lint]
    destructive = "block" (the default, also without a config) stops a statement; a
    `-- deploysafe: allow <rule>` comment above it allows that one statement.
    """
    from deploysafe.drizzle.lint import run_lint

    return run_lint(list(paths), config_path=ctx.config_path, as_json=as_json or ctx.json)


# --- error boundary -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run the CLI and map every error to its documented exit code."""
    code = run(argv)
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    from deploysafe.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, DeploysafeError

    try:
        rv = cli.main(args=argv, prog_name="deploysafe", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE
    except DeploysafeError as e:
        from deploysafe.console import console

        console.error(f"{type(e).__name__}: {e}" if e.exit_code == EXIT_INTERNAL else str(e))
        return e.exit_code
    except Exception as e:  # the one place a bug becomes exit 70 with a pointer to the log
        return _internal_error(e)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    return EXIT_INTERNAL  # unreachable; keeps mypy honest


def _internal_error(e: BaseException) -> int:
    import traceback

    from deploysafe.errors import EXIT_INTERNAL
    from deploysafe.files import write_crash_log
    from deploysafe.redact import redact

    try:
        log = write_crash_log("".join(traceback.format_exception(e)))  # 0600, state folder, unique name
        where = f"the traceback is in {log}"
    except OSError:
        where = "the traceback could not be saved"
    click.echo(redact(f"internal error (a bug in deploysafe): {type(e).__name__}: {e}; {where}"), err=True)
    return EXIT_INTERNAL
