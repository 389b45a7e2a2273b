"""Which snapshots may go: the pure retention planner behind ``deploysafe prune``.

Snapshots plus the clock, the ``[retention]`` ages and where the app points go in; a
:class:`PrunePlan` comes out. No I/O here, so the same rules can be tested exhaustively.

Never deleted, whatever its age (the first matching reason is the one reported):
production, the default branch, the one the app's DATABASE_URL points at now (every one of
this production's snapshots when nobody can tell where it points: ``in_use_unknown``), not created
by deploysafe, a snapshot of another production (apps sharing one server), protected, a branch with children, the newest snapshot of its kind, and a
kind with no retention set (manual snapshots by default).

Decisions where the issue was silent:
- A parent whose children are all deleted in this plan is still kept in this run; it goes in
  a later run, once the provider no longer reports children. Deleting it in the same run would
  depend on every child's delete succeeding first.
- ``plan_headroom`` deletes only snapshots the policy already lets go (expired), oldest first,
  and only as many as needed; it never deletes a snapshot younger than its retention to make
  room. When that is not enough the plan's ``shortfall`` says how many are missing, and the
  caller fails before the deploy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from deploysafe.config import RetentionConfig
from deploysafe.durations import format_duration
from deploysafe.providers.base import COPYING, INCOMPLETE, Snapshot, SnapshotKind

Decision = tuple[Snapshot, str]
UNKNOWN_IN_USE = "deploysafe cannot tell where the app's DATABASE_URL points: it may be this one"


@dataclass
class PrunePlan:
    """``delete`` (ordered leaf-first, then oldest first) and ``keep`` partition the input, each with a reason."""

    delete: list[Decision] = field(default_factory=list)
    keep: list[Decision] = field(default_factory=list)
    shortfall: int = 0  # plan_headroom: branches still missing after every allowed deletion
    failed: list[Decision] = field(default_factory=list)  # filled by snapshots.prune: (snapshot, error)

    @property
    def deleted(self) -> list[Decision]:
        """Planned deletions that did not fail (meaningful once the plan has been carried out)."""
        bad = {s.id for s, _ in self.failed}
        return [(s, r) for s, r in self.delete if s.id not in bad]


def retention_for(kind: SnapshotKind, retention: RetentionConfig) -> float | None:
    """Seconds to keep a snapshot of this kind; None: keep forever."""
    return {
        SnapshotKind.PRE_DEPLOY: retention.pre_deploy,
        SnapshotKind.DAILY: retention.daily,
        SnapshotKind.WEEKLY: retention.weekly,
        SnapshotKind.MANUAL: retention.manual,
        SnapshotKind.RESTORE: retention.restore,
        SnapshotKind.DRILL: retention.drill,
        SnapshotKind.FAILED_STATE: retention.failed_state,
    }[kind]


def expires_at(snap: Snapshot, retention: RetentionConfig) -> datetime | None:
    """When the policy lets this snapshot go (None: never, or not ours)."""
    if not snap.ours or snap.kind is None:
        return None
    keep = retention_for(snap.kind, retention)
    return None if keep is None else snap.created_at + timedelta(seconds=keep)


def matches(snap: Snapshot, ref: str | None) -> bool:
    """Does a name-or-id reference (production, in-use) denote this snapshot?"""
    return ref is not None and ref in (snap.name, snap.id)


def of_this_production(snap: Snapshot, production: str) -> bool:
    """Taken from this production (or from an unrecorded source), not from another app's on the same server."""
    return snap.source is None or snap.source == production


def newest_of_each_kind(snapshots: list[Snapshot], production: str) -> set[str]:
    """Ids of the newest snapshot (ours, of this production) of each kind; ties broken by name."""
    best: dict[SnapshotKind, Snapshot] = {}
    for s in snapshots:
        if not s.ours or s.kind is None or not of_this_production(s, production) or s.state in (COPYING, INCOMPLETE):
            continue  # an unfinished copy is no snapshot to keep in place of the newest real one
        cur = best.get(s.kind)
        if cur is None or (s.created_at, s.name) > (cur.created_at, cur.name):
            best[s.kind] = s
    return {s.id for s in best.values()}


def _keep_reason(
    s: Snapshot,
    *,
    now: datetime,
    retention: RetentionConfig,
    in_use: str | None,
    production: str,
    parents: set[str],
    newest: set[str],
    in_use_unknown: bool = False,
) -> str | None:
    """Why ``s`` must stay, or None when the policy lets it go."""
    reason = _live_or_not_ours(s, in_use=in_use, production=production)
    if reason is not None:
        return reason
    if in_use_unknown:
        return UNKNOWN_IN_USE
    if s.kind is None:
        return "a kind this deploysafe does not know (made by a newer version?)"
    reason = _still_needed(s, parents)
    if reason is not None:
        return reason
    if s.state == INCOMPLETE:
        return None  # a copy stopped half-way: never usable, whatever its age
    return _policy_reason(s, s.kind, now=now, retention=retention, newest=newest)


def _live_or_not_ours(s: Snapshot, *, in_use: str | None, production: str) -> str | None:
    """Kept whatever the policy says: production, the default branch, what the app uses, and anything that is
    not one of this production's snapshots."""
    if s.is_production or matches(s, production):
        return "production"
    if s.is_default:
        return "the default branch"
    if s.in_use or matches(s, in_use):
        return "the app's DATABASE_URL points at it now"
    if not s.ours:
        return "not created by deploysafe"
    if not of_this_production(s, production):
        # Another app's snapshot on a shared server/project: its in-use answer is not ours to know.
        return f"a snapshot of another production ({s.source})"
    return None


def _still_needed(s: Snapshot, parents: set[str]) -> str | None:
    """Kept while something depends on it: protection, child branches, a copy in progress."""
    if s.protected:
        return "protected"
    if s.has_children or s.id in parents:
        return "has child branches (it can go in a later run, once they are gone)"
    if s.state == COPYING:
        return "still being copied (its copier is running)"
    return None


def _policy_reason(s: Snapshot, kind: SnapshotKind, *, now: datetime, retention: RetentionConfig,
                   newest: set[str]) -> str | None:
    """The retention policy's answer: keep the newest of each kind, and each one younger than its kind's retention."""
    if s.id in newest:
        return f"the newest {kind.value} snapshot"
    keep = retention_for(kind, retention)
    if keep is None:
        return f"{kind.value} snapshots are kept until [retention] {kind.value} is set"
    age = (now - s.created_at).total_seconds()
    if age < keep:
        return f"younger than the {kind.value} retention of {format_duration(keep)} (age {format_duration(age)})"
    return None


def _depth(s: Snapshot, by_id: dict[str, Snapshot]) -> int:
    depth, seen, cur = 0, {s.id}, s
    while cur.parent_id and cur.parent_id in by_id and cur.parent_id not in seen:
        seen.add(cur.parent_id)
        cur = by_id[cur.parent_id]
        depth += 1
    return depth


def plan_prune(
    snapshots: list[Snapshot],
    *,
    now: datetime,
    retention: RetentionConfig,
    in_use: str | None,
    production: str,
    in_use_unknown: bool = False,
) -> PrunePlan:
    """Split ``snapshots`` into what the retention policy deletes and what it keeps, each with its reason.

    ``in_use_unknown``: nobody can tell where the app points, so every snapshot it could be using is kept.
    """
    parents = {s.parent_id for s in snapshots if s.parent_id}
    newest = newest_of_each_kind(snapshots, production)
    plan = PrunePlan()
    for s in snapshots:
        reason = _keep_reason(
            s, now=now, retention=retention, in_use=in_use, production=production, parents=parents, newest=newest,
            in_use_unknown=in_use_unknown,
        )
        if reason is not None:
            plan.keep.append((s, reason))
            continue
        assert s.kind is not None  # _keep_reason kept every snapshot without a kind
        if s.state == INCOMPLETE:
            plan.delete.append((s, "an incomplete copy (stopped half-way): never usable"))
            continue
        keep = retention_for(s.kind, retention)
        age = (now - s.created_at).total_seconds()
        plan.delete.append(
            (s, f"older than the {s.kind.value} retention of {format_duration(keep or 0)} (age {format_duration(age)})")
        )
    by_id = {s.id: s for s in snapshots}
    # Leaf-first: deepest branches before their ancestors, then oldest first. (A snapshot with a
    # child is never in the plan, so this is belt and braces for providers that misreport children.)
    plan.delete.sort(key=lambda d: (-_depth(d[0], by_id), d[0].created_at, d[0].name))
    return plan


def plan_headroom(
    snapshots: list[Snapshot],
    allowance: int,
    needed: int = 1,
    *,
    now: datetime,
    retention: RetentionConfig,
    in_use: str | None,
    production: str,
    in_use_unknown: bool = False,
) -> PrunePlan:
    """Delete the fewest expired snapshots (oldest first) so ``needed`` more fit under ``allowance``.

    Every snapshot counts towards the allowance (a Neon plan counts all branches, ours or not).
    Only snapshots :func:`plan_prune` would delete are candidates; ``shortfall`` > 0 means even
    all of them are not enough.
    """
    full = plan_prune(snapshots, now=now, retention=retention, in_use=in_use, production=production,
                      in_use_unknown=in_use_unknown)
    missing = len(snapshots) + needed - allowance
    if missing <= 0:
        spare = allowance - len(snapshots)
        return PrunePlan(keep=[(s, f"there is room for {spare} more branch(es)") for s in snapshots])
    by_id = {s.id: s for s in snapshots}
    candidates = sorted(full.delete, key=lambda d: (d[0].created_at, -_depth(d[0], by_id), d[0].name))
    chosen = candidates[:missing]
    chosen.sort(key=lambda d: (-_depth(d[0], by_id), d[0].created_at, d[0].name))
    spared = [(s, "expired, but not needed to make room (prune removes it)") for s, _ in candidates[missing:]]
    return PrunePlan(delete=chosen, keep=full.keep + spared, shortfall=max(0, missing - len(chosen)))
