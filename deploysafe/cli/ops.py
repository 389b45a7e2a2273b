"""Operations commands: backup (and its schedule), check, drill, restore-table, setup, runbook."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from deploysafe.cli.context import Adapters, Ctx, adapters, confirm, pass_ctx
from deploysafe.cli.notices import notify_check
from deploysafe.cli.options import dry_run_option, duration, json_option, yes_option

if TYPE_CHECKING:
    from pathlib import Path

    from deploysafe.config import LoadedConfig
    from deploysafe.ops.drill import DrillReport
    from deploysafe.ops.restore_table import RestoreResult
    from deploysafe.ops.setup import SetupReport
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider


def _open_for_check(loaded: LoadedConfig) -> tuple[Provider, Platform | None]:
    # check opens the adapters itself: a provider that cannot be built is a failed check, not exit 3
    opened = Adapters(loaded)
    return opened.provider, opened.platform


@click.group("backup", invoke_without_command=True)
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
    with adapters(loaded) as a:
        journal = Journal(loaded.state_dir, "backup")
        result = run_backup(loaded, a.provider, a.platform, journal, kind=SnapshotKind(kind) if kind else None, prune=not no_prune)
    if ctx.json:
        console.result(result.as_dict())
        return 0
    console.ok(f"backup {result.name} created" if result.created else f"backup {result.name} already exists; nothing created")
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

    with adapters(ctx.load()) as a:
        items = schedule_show(a.provider)
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

    if off == bool(items):
        raise UsageError("give --item at least once, or --off", hint="e.g. --item frequency=daily,hour=3,retention=7d")
    parsed = [parse_schedule_item(i) for i in items]
    loaded = ctx.load()
    with adapters(loaded) as a:
        schedule_set(a.provider, parsed, Journal(loaded.state_dir, "backup schedule"))
    console.ok("backup schedule removed" if off else f"backup schedule set ({len(parsed)} item(s))")
    return 0


@click.command("check")
@json_option("Every check as JSON on stdout.")
@click.option("--warn-ok", is_flag=True, help="Exit 0 when checks only warn (failures still exit 7).")
@click.option("--checklist", is_flag=True, help="Add the guide's pre-production checklist.")
@pass_ctx
def check_cmd(ctx: Ctx, warn_ok: bool, checklist: bool) -> int:
    """Run the backup and recovery checklist: each check ok / warn / fail with a reason.

    Example: deploysafe check --checklist

    Run it daily after `deploysafe backup`. Exit 0: all ok; 6: something warns; 7: something
    fails. Posts to the [notify] webhook on warn or fail.
    """
    from deploysafe.console import console
    from deploysafe.journal import Journal
    from deploysafe.ops.check import checks_or_failure, exit_code, worst

    loaded = ctx.load()
    results = checks_or_failure(loaded, lambda: _open_for_check(loaded), checklist=checklist)
    code = exit_code(results, warn_ok=warn_ok)
    Journal(loaded.state_dir, "check").event("result", outcome=worst(results), checks=[r.as_dict() for r in results])
    if ctx.json:
        console.result({"status": worst(results), "exit_code": code, "checks": [r.as_dict() for r in results]})
    else:
        for r in results:
            console.plain(f"{r.status.upper():<5} {r.name:<26} {r.reason}")
    notify_check(loaded, results)
    return code


@click.command("drill")
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
    from deploysafe.journal import Journal
    from deploysafe.ops.drill import exit_code, history_lines, load_reports, run_drill

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
    age_s = duration("--age", age) if age is not None else None
    with adapters(loaded) as a:
        report = run_drill(loaded, a.provider, Journal(loaded.state_dir, "drill"), age=age_s, keep=keep)
    if ctx.json:
        console.result(report.as_dict())
    else:
        _show_drill(report, loaded.state_dir)
    return exit_code(report)


def _show_drill(report: DrillReport, state_dir: Path) -> None:
    """Each phase against its target, each check, and where the report was written."""
    from deploysafe.console import console
    from deploysafe.durations import format_duration
    from deploysafe.ops.drill import report_path

    for p in report.phases:
        target = f" (target {format_duration(p.target)}{'' if p.within_target else ', MISSED'})" if p.target else ""
        console.plain(f"  {p.name:<8} {format_duration(p.seconds)}{target}")
    for c in report.checks:
        console.plain(f"  {'pass' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
    line = f"drill {report.outcome}" + (f": {report.reason}" if report.reason else "")
    line += f"; report: {report_path(state_dir, report, 'md')}"
    (console.ok if report.outcome == "passed" else console.warn)(line)


@click.command("restore-table")
@click.option("--from", "from_snapshot", metavar="SNAPSHOT", help="Snapshot to take the table from.")
@click.option("--at", "at_text", metavar="TIMESTAMP", help="Or: production as it was then (Neon), e.g. 2026-11-24T15:30:00Z.")
@click.option("--table", required=True, help="Table name, exactly as in the database (case, spaces and quotes are fine).")
@click.option("--schema", default="public", show_default=True, help="Schema of the table.")
@click.option("--into", "into", type=click.Choice(["production"]), help="Insert the missing rows into the production table itself (re-created if dropped).")
@click.option("--as", "as_name", metavar="NEW_NAME", help="Name of the new table to restore into (default: <table>_restored_<timestamp>).")
@dry_run_option("Show the differences and change nothing.")
@yes_option()
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
    from deploysafe.ops.restore_table import restore_table
    from deploysafe.snapshots.manage import parse_at

    at = parse_at(at_text) if at_text is not None else None  # --at "" is a usage error, not "no --at"

    loaded = ctx.load()
    with adapters(loaded) as a:
        result = restore_table(
            loaded, a.provider, Journal(loaded.state_dir, "restore-table"), table=table, schema=schema,
            from_snapshot=from_snapshot, at=at, into_production=into == "production", as_name=as_name, dry_run=dry_run,
            confirm=lambda r: yes or confirm(f"Restore {r.diff.source_rows} row(s) as described into {r.target}?"),
            show=(lambda r: None) if ctx.json else (lambda r: _show_restore(r, schema)),
        )
    if ctx.json:
        console.result(result.as_dict())
    elif result.applied:
        what = "re-created and filled" if result.recreated else "wrote"
        console.ok(f"{what} {result.target}: {result.inserted} row(s) restored from {result.source}")
    elif not dry_run:
        console.info("nothing changed")
    return 0


def _show_restore(r: RestoreResult, schema: str) -> None:
    """What restore-table found and is about to do (or would do, with --dry-run)."""
    from deploysafe.console import console

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


@click.command("setup")
@dry_run_option("Say what would be done; change nothing.")
@pass_ctx
def setup_cmd(ctx: Ctx, dry_run: bool) -> int:
    """Prepare production for deploysafe: production branch, protection, a retention that fits.

    Example: deploysafe setup --dry-run

    Run it once per project (Neon), then `deploysafe check --checklist`.
    """
    from deploysafe.console import console
    from deploysafe.journal import Journal
    from deploysafe.ops.setup import run_setup

    loaded = ctx.load()
    with adapters(loaded) as a:
        report = run_setup(loaded, a.provider, Journal(loaded.state_dir, "setup"), dry_run=dry_run)
    if ctx.json:
        console.result(report.as_dict())
    else:
        _show_setup(report)
    return 0


def _show_setup(report: SetupReport) -> None:
    """What was done, notes, the proposed retention, and what is left to do by hand."""
    from deploysafe.console import console
    from deploysafe.ops.setup import retention_toml

    for line in report.done:
        console.ok(line)
    for line in report.notes:
        console.info(line)
    if report.retention:
        console.plain("Proposed retention that fits the plan's branch allowance (put it in deploysafe.toml):\n"
                      + retention_toml(report.retention))
    for line in report.todo:
        console.warn("to do: " + line)


@click.command("runbook")
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

