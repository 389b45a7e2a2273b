"""Snapshot side effects behind ``deploysafe snapshot create|list|delete`` and ``deploysafe prune``.

Also called by deploy (``pre_deploy_name``, ``ensure_headroom``, ``prune``) and by the
backup/restore/drill commands (``backup_name``, ``restore_name``, ``drill_name``). The rules
about what may be deleted live in the pure :mod:`deploysafe.snapshots.retention`; this module asks the
provider and the platform for the facts, carries the plan out and journals every deletion.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from deploysafe.console import console
from deploysafe.durations import format_duration
from deploysafe.errors import DeploysafeError, PreconditionError, UsageError
from deploysafe.journal import Journal
from deploysafe.lock import deploy_lock
from deploysafe.platforms import make_platform
from deploysafe.providers.base import COPYING, INCOMPLETE, Snapshot, SnapshotKind
from deploysafe.snapshots.inuse import app_points_at
from deploysafe.snapshots.retention import (
    UNKNOWN_IN_USE,
    PrunePlan,
    expires_at,
    matches,
    of_this_production,
    plan_headroom,
    plan_prune,
)

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.journal import Journal
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider

MAX_NAME = 200
STAMP = "%Y%m%dT%H%M%SZ"


# --- names ----------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("snapshot names need an aware datetime (UTC)")
    return moment.astimezone(UTC).strftime(STAMP)


def pre_deploy_name(now: datetime, sha: str | None) -> str:
    """``pre-deploy-20261125T100000Z-abc1234`` (``nosha`` when the commit is unknown)."""
    # --sha and $GITHUB_SHA are user input: keep ASCII letters and digits only, so a control character, quote
    # or newline never reaches a snapshot (database/branch) name
    clean = "".join(ch for ch in (sha or "").lower() if ch.isascii() and ch.isalnum())
    short = clean[:7] or "nosha"
    return f"pre-deploy-{_stamp(now)}-{short}"


def backup_name(kind: SnapshotKind | str, day: date) -> str:
    """``backup-YYYY-MM-DD`` for daily backups, ``weekly-YYYY-MM-DD`` for weekly ones."""
    prefix = {SnapshotKind.DAILY: "backup", SnapshotKind.WEEKLY: "weekly"}.get(SnapshotKind(kind))
    if prefix is None:
        raise ValueError(f"backup_name is for daily or weekly snapshots, not {kind!r}")
    return f"{prefix}-{day.isoformat()}"


def restore_name(at: datetime) -> str:
    """``restore-20261124T153000Z``: a branch of production as it was at ``at``."""
    return f"restore-{_stamp(at)}"


def drill_name(now: datetime) -> str:
    return f"drill-{_stamp(now)}"


def manual_name(now: datetime) -> str:
    return f"manual-{_stamp(now)}"


def default_name(kind: SnapshotKind, now: datetime, *, at: datetime | None = None, sha: str | None = None) -> str:
    """The name a snapshot of ``kind`` gets when the user gives none."""
    if kind is SnapshotKind.PRE_DEPLOY:
        return pre_deploy_name(now, sha)
    if kind in (SnapshotKind.DAILY, SnapshotKind.WEEKLY):
        return backup_name(kind, now.astimezone(UTC).date())
    if kind is SnapshotKind.RESTORE:
        return restore_name(at or now)
    if kind is SnapshotKind.DRILL:
        return drill_name(now)
    return manual_name(now)


def validate_name(name: str) -> str:
    """A user-given snapshot name: non-empty, at most 200 characters, no control characters."""
    if not name.strip():
        raise UsageError("--name is empty", hint="give a name such as --name before-big-import")
    if len(name) > MAX_NAME:
        raise UsageError(f"--name is {len(name)} characters long; the limit is {MAX_NAME}", hint="use a shorter name")
    bad = [ch for ch in name if unicodedata.category(ch).startswith("C")]
    if bad:
        raise UsageError(
            f"--name contains a control character ({bad[0]!r})", hint="use letters, digits, '-', '_' and '.'"
        )
    return name


def parse_at(text: str, *, now: datetime | None = None) -> datetime:
    """``--at`` as ISO 8601 with a time zone (``2026-11-24T15:30:00Z``), not in the future."""
    try:
        at = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at {text!r} is not an ISO 8601 timestamp", hint="write it like 2026-11-24T15:30:00Z"
        ) from None
    if at.tzinfo is None:
        raise UsageError(f"--at {text!r} has no time zone", hint="add one, e.g. 2026-11-24T15:30:00Z for UTC")
    now = now or datetime.now(UTC)
    if at > now:
        raise UsageError(f"--at {text!r} is in the future", hint="give a moment in the past")
    return at.astimezone(UTC)


# --- facts ------------------------------------------------------------------------------------


def try_platform(loaded: LoadedConfig) -> Platform | None:
    """The platform, or None (with a warning) when it cannot be built; in-use then comes from the journal."""
    try:
        return make_platform(loaded)
    except (DeploysafeError, ImportError) as e:
        console.warn(f"cannot reach the platform ({getattr(e, 'message', e)}); using the journal's last repoint")
        return None


@dataclass(frozen=True)
class Facts:
    snapshots: list[Snapshot]
    production: str
    in_use: str | None
    in_use_source: str

    @property
    def in_use_unknown(self) -> bool:
        """Nobody can tell where the app points: everything it could be using is kept."""
        return self.in_use is None


def gather(loaded: LoadedConfig, provider: Provider, platform: Platform | None) -> Facts:
    """Everything the planner needs: the list, production's name, and where the app points now."""
    production = provider.production().name
    where = app_points_at(loaded, provider, platform)
    if where.name is None:
        # A fresh runner knows no repoint: the app may run on any snapshot a rollback chose. Fail closed.
        console.warn(f"cannot tell where the app points ({where.detail}); keeping every snapshot it could be using")
    return Facts(provider.list_snapshots(), production, where.name, where.source)


# --- list -------------------------------------------------------------------------------------


def describe(snapshots: list[Snapshot], facts: Facts, *, now: datetime, loaded: LoadedConfig, everything: bool = False) -> list[dict[str, Any]]:
    """Rows for ``snapshot list``: ours plus production (``everything``: all), newest first, ISO 8601 times."""
    rows = []
    for s in sorted(snapshots, key=lambda s: (s.created_at, s.name), reverse=True):
        is_prod = s.is_production or matches(s, facts.production)
        if not (everything or (s.ours and of_this_production(s, facts.production)) or is_prod):
            continue
        exp = s.expires_at or expires_at(s, loaded.config.retention)
        rows.append(
            {
                "name": s.name,
                "kind": s.kind.value if s.kind else ("production" if is_prod else None),
                "age_seconds": round(max(0.0, (now - s.created_at).total_seconds()), 3),
                "created_at": _iso(s.created_at),
                "in_use": s.in_use or matches(s, facts.in_use),
                "protected": s.protected,
                "expires_at": _iso(exp) if exp else None,
                "production": is_prod,
                "ours": s.ours,
                "git_sha": s.git_sha,
                "size_bytes": s.size_bytes,
                # a copy that has not finished (copying, or incomplete: stopped half-way); None when usable
                "unfinished": s.state if s.state in (COPYING, INCOMPLETE) else None,
            }
        )
    return rows


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- create / delete ----------------------------------------------------------------------------


def create(
    provider: Provider,
    *,
    kind: SnapshotKind,
    journal: Journal,
    name: str | None = None,
    at: datetime | None = None,
    git_sha: str | None = None,
    serve: bool = False,
    now: datetime | None = None,
) -> Snapshot:
    """Create one snapshot (default name from its kind), journaled as step ``snapshot``."""
    now = now or datetime.now(UTC)
    name = validate_name(name) if name is not None else default_name(kind, now, at=at, sha=git_sha)
    with journal.step("snapshot", snapshot=name, kind=kind.value, at=_iso(at) if at else None) as step:
        snap = provider.create_snapshot(name, kind, at=at, git_sha=git_sha, serve=serve)
        step.details["id"] = snap.id
    return snap


def refuse_reason(snap: Snapshot, facts: Facts) -> str | None:
    """Why ``snapshot delete`` must refuse this one, or None."""
    if snap.is_production or matches(snap, facts.production):
        return "it is production"
    if snap.is_default:
        return "it is the default branch"
    if snap.in_use or matches(snap, facts.in_use):
        return "the app's DATABASE_URL points at it now"
    if not snap.ours:
        return "deploysafe did not create it"
    if not of_this_production(snap, facts.production):
        return f"it is a snapshot of another production ({snap.source})"
    if facts.in_use_unknown:
        return UNKNOWN_IN_USE
    if snap.protected:
        return "it is protected"
    if snap.has_children or any(s.parent_id == snap.id for s in facts.snapshots):
        return "other branches were created from it; delete those first"
    return None


def delete_one(loaded: LoadedConfig, provider: Provider, platform: Platform | None, name: str, *, journal: Journal) -> Snapshot:
    """Delete one snapshot by name after the same never-delete checks prune uses; PreconditionError if refused."""
    facts = gather(loaded, provider, platform)
    found = [s for s in facts.snapshots if s.name == name] or [s for s in facts.snapshots if s.id == name]
    if not found:
        raise PreconditionError(f"no snapshot named {name!r}", hint="see `deploysafe snapshot list --all`")
    snap = found[0]
    why = refuse_reason(snap, facts)
    if why:
        raise PreconditionError(f"refusing to delete {name!r}: {why}", hint="nothing was deleted")
    with journal.step("delete-snapshot", snapshot=snap.name, id=snap.id, reason="asked by the user"):
        provider.delete(snap.name)
    return snap


# --- prune ----------------------------------------------------------------------------------------


def carry_out(plan: PrunePlan, provider: Provider, journal: Journal) -> PrunePlan:
    """Delete the plan's snapshots in order, one journal step each; a failure is recorded and the rest go on."""
    for snap, reason in plan.delete:
        try:
            with journal.step("delete-snapshot", snapshot=snap.name, id=snap.id, kind=snap.kind, reason=reason):
                provider.delete(snap.name)
        except DeploysafeError as e:
            plan.failed.append((snap, e.message))
            console.warn(f"could not delete {snap.name}: {e.message}")
    return plan


def prune(
    loaded: LoadedConfig,
    provider: Provider,
    platform: Platform | None,
    *,
    dry_run: bool,
    journal: Journal,
    now: datetime | None = None,
) -> PrunePlan:
    """Plan with the retention policy and (unless ``dry_run``) delete leaf-first; see ``plan.failed``."""
    facts = gather(loaded, provider, platform)
    plan = plan_prune(
        facts.snapshots,
        now=now or datetime.now(UTC),
        retention=loaded.config.retention,
        in_use=facts.in_use,
        production=facts.production,
        in_use_unknown=facts.in_use_unknown,
    )
    journal.event(
        "prune-plan",
        dry_run=dry_run,
        in_use=facts.in_use,
        in_use_source=facts.in_use_source,
        delete=[s.name for s, _ in plan.delete],
        keep=len(plan.keep),
    )
    return plan if dry_run else carry_out(plan, provider, journal)


def ensure_headroom(
    loaded: LoadedConfig,
    provider: Provider,
    platform: Platform | None,
    needed: int = 1,
    *,
    journal: Journal | None = None,
    now: datetime | None = None,
    facts: Facts | None = None,
) -> PrunePlan:
    """Make room for ``needed`` more branches under the plan's allowance, deleting only expired snapshots
    (``facts``: as the caller already read them; else read here).

    Raises PreconditionError before deleting anything when the policy cannot free enough, and
    when a needed deletion fails. A provider with no known limit returns an empty plan.
    """
    allowance = provider.branch_allowance()
    if allowance is None:
        return PrunePlan()
    facts = facts or gather(loaded, provider, platform)
    plan = plan_headroom(
        facts.snapshots,
        allowance,
        needed,
        now=now or datetime.now(UTC),
        retention=loaded.config.retention,
        in_use=facts.in_use,
        production=facts.production,
        in_use_unknown=facts.in_use_unknown,
    )
    count = len(facts.snapshots)
    if plan.shortfall:
        raise PreconditionError(
            f"the plan allows {allowance} branches and {count} exist; {needed} more are needed and the retention "
            f"policy lets deploysafe delete only {len(plan.delete)}",
            hint="delete branches you no longer need (`deploysafe snapshot list --all`, `deploysafe snapshot delete "
            "NAME`, or the Neon console), shorten [retention] in deploysafe.toml, or move to a plan with more branches",
        )
    if plan.delete:
        console.info(f"the plan allows {allowance} branches and {count} exist: deleting {len(plan.delete)} expired")
        carry_out(plan, provider, journal or Journal(loaded.state_dir, "headroom"))
        if plan.failed:
            snap, err = plan.failed[0]
            raise PreconditionError(
                f"the plan allows {allowance} branches and {count} exist; deleting {snap.name!r} to make room failed: {err}",
                hint="delete a branch you no longer need, then run again",
            )
    return plan


# --- output and locking for the commands ------------------------------------------------------------


def format_table(rows: list[dict[str, Any]]) -> str:
    """The human ``snapshot list`` table."""
    head = ("NAME", "KIND", "AGE", "CREATED_AT", "IN-USE", "PROTECTED", "EXPIRES_AT")
    body = [
        (
            r["name"],
            (r["kind"] or "-") + (f" ({r['unfinished']})" if r.get("unfinished") else ""),
            format_duration(r["age_seconds"]),
            r["created_at"],
            "yes" if r["in_use"] else "",
            "yes" if r["protected"] else "",
            r["expires_at"] or ("never" if r["ours"] else "-"),
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *body])


def plan_json(plan: PrunePlan, *, dry_run: bool) -> dict[str, Any]:
    def item(d: tuple[Snapshot, str]) -> dict[str, Any]:
        s, reason = d
        return {"name": s.name, "kind": s.kind.value if s.kind else None, "created_at": _iso(s.created_at), "reason": reason}

    return {
        "dry_run": dry_run,
        "delete": [item(d) for d in plan.delete],
        "deleted": [] if dry_run else [item(d) for d in plan.deleted],
        "failed": [{"name": s.name, "error": err} for s, err in plan.failed],
        "keep": [item(d) for d in plan.keep],
    }


def format_plan(plan: PrunePlan, *, dry_run: bool) -> str:
    """What prune deleted (or would delete) and why each survivor is kept."""
    verb = "would delete" if dry_run else "deleted"
    done = plan.delete if dry_run else plan.deleted
    lines = [f"{verb} {len(done)} snapshot(s)" + (":" if done else "")]
    lines += [f"  {s.name}  ({r})" for s, r in done]
    if plan.failed:
        lines.append(f"failed to delete {len(plan.failed)}:")
        lines += [f"  {s.name}  ({err})" for s, err in plan.failed]
    lines.append(f"kept {len(plan.keep)}" + (":" if plan.keep else ""))
    lines += [f"  {s.name}  ({r})" for s, r in plan.keep]
    return "\n".join(lines)


def production_lock(loaded: LoadedConfig, provider: Provider, journal: Journal, command: str) -> Any:
    """The deploy lock (file + advisory lock on production's server), so prune never races a deploy."""
    prod = provider.production()
    return deploy_lock(loaded.state_dir, provider.lock_url(prod.url), prod.id, run_id=journal.run_id, command=command)
