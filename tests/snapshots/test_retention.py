"""The pure retention planner: exact decisions on a realistic set, and properties over any set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from deploysafe.config import RetentionConfig
from deploysafe.providers.base import Snapshot, SnapshotKind
from deploysafe.snapshots.retention import PrunePlan, plan_headroom, plan_prune

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
K = SnapshotKind


def snap(name: str, kind: SnapshotKind | None, age_days: float, **kw: object) -> Snapshot:
    return Snapshot(
        id=kw.pop("id", name),  # type: ignore[arg-type]
        name=name,
        kind=kind,
        ours=kind is not None,
        created_at=NOW - timedelta(days=age_days),
        **kw,  # type: ignore[arg-type]
    )


def names(decisions: list[tuple[Snapshot, str]]) -> list[str]:
    return [s.name for s, _ in decisions]


def reasons(plan: PrunePlan) -> dict[str, str]:
    return {s.name: r for s, r in plan.delete + plan.keep}


def realistic() -> list[Snapshot]:
    return [
        snap("production", None, 400, is_production=True, is_default=True),
        snap("someone-elses-branch", None, 300),
        # pre-deploy (7d): two old, one in use though old, one young, newest
        snap("pre-deploy-a", K.PRE_DEPLOY, 20),
        snap("pre-deploy-b", K.PRE_DEPLOY, 10),
        snap("pre-deploy-inuse", K.PRE_DEPLOY, 9),
        snap("pre-deploy-young", K.PRE_DEPLOY, 3),
        snap("pre-deploy-newest", K.PRE_DEPLOY, 1),
        # daily (30d): one expired with a child, one expired, one young
        snap("backup-2026-09-01", K.DAILY, 85, id="br-parent"),
        snap("backup-2026-10-01", K.DAILY, 55),
        snap("backup-2026-11-24", K.DAILY, 1),
        # weekly (90d): one protected and expired, one expired, newest
        snap("weekly-2026-06-07", K.WEEKLY, 171, protected=True),
        snap("weekly-2026-07-05", K.WEEKLY, 143),
        snap("weekly-2026-11-22", K.WEEKLY, 3),
        # restore (7d): the child of backup-2026-09-01, expired
        snap("restore-20260901T000000Z", K.RESTORE, 60, parent_id="br-parent"),
        snap("restore-20261120T000000Z", K.RESTORE, 5),
        # drill (7d): one expired, newest
        snap("drill-1", K.DRILL, 40),
        snap("drill-2", K.DRILL, 8),
        # manual: kept forever by default
        snap("manual-old", K.MANUAL, 500),
        snap("manual-new", K.MANUAL, 2),
    ]


def test_exactly_the_expired_unneeded_snapshots_are_deleted_leaf_first() -> None:
    plan = plan_prune(realistic(), now=NOW, retention=RetentionConfig(), in_use="pre-deploy-inuse", production="production")
    assert names(plan.delete) == [
        "restore-20260901T000000Z",  # a child (depth 1) goes before everything else
        "weekly-2026-07-05",
        "backup-2026-10-01",
        "drill-1",
        "pre-deploy-a",
        "pre-deploy-b",
    ]
    r = reasons(plan)
    assert r["production"] == "production"
    assert r["someone-elses-branch"] == "not created by deploysafe"
    assert r["pre-deploy-inuse"] == "the app's DATABASE_URL points at it now"
    assert r["weekly-2026-06-07"] == "protected"
    assert r["backup-2026-09-01"].startswith("has child branches")
    assert r["pre-deploy-newest"] == "the newest pre-deploy snapshot"
    assert r["drill-2"] == "the newest drill snapshot"
    assert r["restore-20261120T000000Z"] == "the newest restore snapshot"
    assert r["pre-deploy-young"] == "younger than the pre-deploy retention of 7d00h (age 3d00h)"
    assert r["manual-old"] == "manual snapshots are kept until [retention] manual is set"
    assert r["pre-deploy-a"] == "older than the pre-deploy retention of 7d00h (age 20d00h)"
    assert len(plan.delete) + len(plan.keep) == len(realistic())


def test_manual_retention_when_set_and_in_use_by_id() -> None:
    snaps = [snap("manual-old", K.MANUAL, 500, id="db_old"), snap("manual-mid", K.MANUAL, 100), snap("manual-new", K.MANUAL, 2)]
    month = RetentionConfig(manual="30d")  # type: ignore[arg-type]
    plan = plan_prune(snaps, now=NOW, retention=month, in_use="db_old", production="p")
    assert names(plan.delete) == ["manual-mid"]
    assert reasons(plan)["manual-old"] == "the app's DATABASE_URL points at it now"


def test_another_apps_snapshots_on_a_shared_server_are_never_ours_to_prune() -> None:
    snaps = [
        snap("pre-deploy-theirs-old", K.PRE_DEPLOY, 30, source="other_prod"),
        snap("pre-deploy-theirs-new", K.PRE_DEPLOY, 1, source="other_prod"),
        snap("pre-deploy-mine-old", K.PRE_DEPLOY, 30, source="prod"),
        snap("pre-deploy-mine-new", K.PRE_DEPLOY, 20, source="prod"),  # newest of mine, though expired
    ]
    plan = plan_prune(snaps, now=NOW, retention=RetentionConfig(), in_use=None, production="prod")
    assert names(plan.delete) == ["pre-deploy-mine-old"]
    assert reasons(plan)["pre-deploy-theirs-old"] == "a snapshot of another production (other_prod)"
    assert reasons(plan)["pre-deploy-mine-new"] == "the newest pre-deploy snapshot"


def test_a_future_created_at_clock_skew_is_kept() -> None:
    snaps = [snap("pre-deploy-future", K.PRE_DEPLOY, -2), snap("pre-deploy-new", K.PRE_DEPLOY, -3)]
    assert plan_prune(snaps, now=NOW, retention=RetentionConfig(), in_use=None, production="p").delete == []


def test_headroom_deletes_only_as_many_expired_as_needed_oldest_first() -> None:
    snaps = realistic()
    common = {"now": NOW, "retention": RetentionConfig(), "in_use": "pre-deploy-inuse", "production": "production"}
    room = plan_headroom(snaps, allowance=len(snaps) + 1, **common)  # type: ignore[arg-type]
    assert room.delete == [] and room.shortfall == 0 and len(room.keep) == len(snaps)
    two = plan_headroom(snaps, allowance=len(snaps) - 1, needed=1, **common)  # type: ignore[arg-type]
    assert names(two.delete) == ["restore-20260901T000000Z", "weekly-2026-07-05"]  # the two oldest, leaf-first and two.shortfall == 0
    assert "not needed to make room" in reasons(two)["pre-deploy-a"]
    short = plan_headroom(snaps, allowance=5, needed=1, **common)  # type: ignore[arg-type]
    assert len(short.delete) == 6 and short.shortfall == len(snaps) + 1 - 5 - 6


# --- properties --------------------------------------------------------------------------------

KINDS = [None, *SnapshotKind]


@st.composite
def snapshot_sets(draw: st.DrawFn) -> tuple[list[Snapshot], datetime, str | None, str]:
    n = draw(st.integers(0, 14))
    snaps: list[Snapshot] = []
    for i in range(n):
        kind = draw(st.sampled_from(KINDS))
        ours = kind is not None and draw(st.booleans())
        parent = draw(st.one_of(st.none(), st.integers(0, max(0, n - 1)).map(lambda j: f"id{j}")))
        snaps.append(
            Snapshot(
                id=f"id{i}",
                name=f"s{i}",
                kind=kind,
                ours=ours,
                created_at=NOW - timedelta(hours=draw(st.integers(-48, 24 * 200))),
                protected=draw(st.booleans()),
                is_production=draw(st.integers(0, 9)) == 0,
                is_default=draw(st.integers(0, 9)) == 0,
                has_children=draw(st.integers(0, 5)) == 0,
                parent_id=parent if parent != f"id{i}" else None,
                source=draw(st.sampled_from([None, "s0", "other-app"])),
            )
        )
    now = NOW + timedelta(hours=draw(st.integers(-100, 24 * 100)))
    in_use = draw(st.one_of(st.none(), st.sampled_from([s.name for s in snaps] or ["x"])))
    production = draw(st.sampled_from(["s0"] if snaps else ["p"]))
    return snaps, now, in_use, production


def retention_configs() -> st.SearchStrategy[RetentionConfig]:
    age = st.integers(0, 200 * 24).map(lambda h: f"{h}h")  # the config takes duration strings
    return st.builds(
        RetentionConfig,
        pre_deploy=age,
        daily=age,
        weekly=age,
        restore=age,
        drill=age,
        manual=st.one_of(st.none(), age),
    )


def assert_safe(plan: PrunePlan, snaps: list[Snapshot], in_use: str | None, production: str) -> None:
    deleted = [s for s, _ in plan.delete]
    assert sorted(s.id for s in deleted + [s for s, _ in plan.keep]) == sorted(s.id for s in snaps)  # a partition
    parents = {s.parent_id for s in snaps}
    for s in deleted:
        assert s.ours and s.kind is not None
        assert s.name not in (in_use, production) and s.id not in (in_use, production)
        assert not (s.is_production or s.is_default or s.protected or s.has_children or s.in_use)
        assert s.id not in parents
        assert s.source in (None, production)  # never another app's snapshot
        same_kind = [o for o in snaps if o.ours and o.kind is s.kind and o.source in (None, production)]
        newest = max(same_kind, key=lambda o: (o.created_at, o.name))
        assert newest.id != s.id


@settings(max_examples=200, deadline=None)
@given(snapshot_sets(), retention_configs())
def test_prune_never_selects_what_must_stay(case: tuple[list[Snapshot], datetime, str | None, str], retention: RetentionConfig) -> None:
    snaps, now, in_use, production = case
    plan = plan_prune(snaps, now=now, retention=retention, in_use=in_use, production=production)
    assert_safe(plan, snaps, in_use, production)
    for s, _ in plan.delete:  # and only what is expired
        assert s.created_at <= now


@settings(max_examples=120, deadline=None)
@given(snapshot_sets(), retention_configs(), st.integers(0, 20), st.integers(1, 3))
def test_headroom_is_as_safe_and_deletes_no_more_than_needed(
    case: tuple[list[Snapshot], datetime, str | None, str], retention: RetentionConfig, allowance: int, needed: int
) -> None:
    snaps, now, in_use, production = case
    plan = plan_headroom(snaps, allowance, needed, now=now, retention=retention, in_use=in_use, production=production)
    assert_safe(plan, snaps, in_use, production)
    missing = max(0, len(snaps) + needed - allowance)
    assert len(plan.delete) == missing - plan.shortfall
    full = plan_prune(snaps, now=now, retention=retention, in_use=in_use, production=production)
    assert {s.id for s, _ in plan.delete} <= {s.id for s, _ in full.delete}


def test_failed_state_branches_go_after_their_own_retention_leaf_first() -> None:
    # an in-place restore on Neon keeps production's failed state as a root branch the snapshots then hang off
    old = snap("production-failed-20261101T000000Z", SnapshotKind.FAILED_STATE, 20, source="production")
    parent = snap("production-failed-20261110T000000Z", SnapshotKind.FAILED_STATE, 16, source="production")
    child = snap("pre-deploy-under-it", SnapshotKind.PRE_DEPLOY, 3, source="production", parent_id=parent.id)
    newest = snap("production-failed-20261124T000000Z", SnapshotKind.FAILED_STATE, 1, source="production")
    plan = plan_prune([old, parent, child, newest], now=NOW, retention=RetentionConfig(), in_use=None,
                      production="production")
    assert [s.name for s, _ in plan.delete] == [old.name]  # 14 d retention; the parent has a child; newest kept
    assert "failed-state retention of 14d00h" in plan.delete[0][1]
