"""Snapshot commands: snapshot create/list/delete and prune."""

from __future__ import annotations

import sys

import click

from deploysafe.cli.context import Ctx, adapters, pass_ctx
from deploysafe.cli.options import dry_run_option, json_option, yes_option

SNAPSHOT_KINDS = ["manual", "pre-deploy", "daily", "weekly", "restore", "drill"]


@click.group("snapshot")
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
    from deploysafe.providers.base import SnapshotKind
    from deploysafe.snapshots.manage import create, ensure_headroom, parse_at, validate_name

    at = parse_at(at_text) if at_text is not None else None  # --at "" is a usage error, not "no --at"
    if name is not None:
        validate_name(name)
    loaded = ctx.load()
    with adapters(loaded) as a:
        journal = Journal(loaded.state_dir, "snapshot create")
        if a.provider.branch_allowance() is not None:
            ensure_headroom(loaded, a.provider, a.platform, journal=journal)
        snap = create(a.provider, kind=SnapshotKind(kind), name=name, at=at, journal=journal)
    if ctx.json:
        console.result({"name": snap.name, "id": snap.id, "kind": kind, "created_at": iso(snap.created_at)})
    else:
        console.ok(f"snapshot {snap.name} created")


@snapshot_group.command("list")
@json_option("JSON rows (ISO 8601 times) on stdout.")
@click.option("--all", "everything", is_flag=True, help="Also branches/databases deploysafe did not create.")
@pass_ctx
def snapshot_list(ctx: Ctx, everything: bool) -> None:
    """List snapshots: name, kind, age, created_at, in-use, protected, expires_at.

    Example: deploysafe snapshot list --json

    Shows deploysafe's snapshots and production; --all adds everything else the provider sees.
    """
    from datetime import UTC, datetime

    from deploysafe.console import console
    from deploysafe.snapshots.manage import describe, format_table, gather

    loaded = ctx.load()
    with adapters(loaded) as a:
        facts = gather(loaded, a.provider, a.platform)
    rows = describe(facts.snapshots, facts, now=datetime.now(UTC), loaded=loaded, everything=everything)
    if ctx.json:
        console.result(rows)
    else:
        console.plain(format_table(rows))


@snapshot_group.command("delete")
@click.argument("name")
@yes_option("Do not ask; required when stdin is not a terminal.")
@pass_ctx
def snapshot_delete(ctx: Ctx, name: str, yes: bool) -> None:
    """Delete one snapshot. Never deletes production, the one in use, or what deploysafe did not create.

    Example: deploysafe snapshot delete manual-20261125T100000Z --yes

    Use it to free a branch by hand; `deploysafe prune` applies the retention policy instead.
    """
    from deploysafe.console import console
    from deploysafe.errors import UsageError
    from deploysafe.journal import Journal
    from deploysafe.snapshots.manage import delete_one, production_lock

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {name!r} without --yes: stdin is not a terminal", hint=f"run `deploysafe snapshot delete {name} --yes`")
        if not click.confirm(f"Delete snapshot {name!r}?", default=False):
            console.info("nothing deleted")
            return
    loaded = ctx.load()
    with adapters(loaded) as a:
        journal = Journal(loaded.state_dir, "snapshot delete")
        with production_lock(loaded, a.provider, journal, "snapshot-delete"):
            delete_one(loaded, a.provider, a.platform, name, journal=journal)
    console.ok(f"snapshot {name} deleted")


@click.command("prune")
@dry_run_option("Print what would be deleted and why each survivor is kept; delete nothing.")
@json_option("The plan and its outcome as JSON on stdout.")
@pass_ctx
def prune_cmd(ctx: Ctx, dry_run: bool) -> int:
    """Delete snapshots older than their [retention] age, leaf-first, never one still needed.

    Example: deploysafe prune --dry-run

    Kept whatever its age: production, the default branch, the one the app points at, protected
    ones, ones with children, the newest of each kind, and anything deploysafe did not create.
    Run it from cron or CI after backups; deploy runs it too. Exits 3 if a deletion failed.
    """
    from deploysafe.console import console
    from deploysafe.errors import EXIT_PRECONDITION
    from deploysafe.journal import Journal
    from deploysafe.snapshots.manage import format_plan, plan_json, production_lock, prune

    loaded = ctx.load()
    with adapters(loaded) as a:
        journal = Journal(loaded.state_dir, "prune")
        if dry_run:
            plan = prune(loaded, a.provider, a.platform, dry_run=True, journal=journal)
        else:
            with production_lock(loaded, a.provider, journal, "prune"):
                plan = prune(loaded, a.provider, a.platform, dry_run=False, journal=journal)
    if ctx.json:
        console.result(plan_json(plan, dry_run=dry_run))
    else:
        console.plain(format_plan(plan, dry_run=dry_run))
    return EXIT_PRECONDITION if plan.failed else 0

