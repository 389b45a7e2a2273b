"""rollback.prepare / execute / manual_steps / resolve_target with the in-memory fakes (no server, no app)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deploysafe.deploy import rollback
from deploysafe.errors import DeploysafeError, PlatformError, PreconditionError, ProbeError, ProviderError, RollbackFailed
from deploysafe.journal import Journal, read_journal
from deploysafe.platforms.base import CurrentValue
from deploysafe.providers.base import RestorePlan, Snapshot, SnapshotKind
from deploysafe.snapshots.inuse import REPOINT_STEP, last_repoint
from support.rig import Rig, make_loaded

SNAP = "pre-deploy-20261125T100000Z-abc1234"


@pytest.fixture
def snap_rig(rig: Rig) -> Rig:
    """A rig with one pre-deploy snapshot (no compute yet) the app is healthy on."""
    rig.provider.create_snapshot(SNAP, SnapshotKind.PRE_DEPLOY)
    rig.platform.healthy_urls = {rig.provider.url_of(SNAP)}  # production is the broken one
    return rig


def journal_of(rig: Rig) -> Journal:
    return Journal(rig.loaded.state_dir, "rollback")


def execute(rig: Rig, prepared: rollback.Prepared, **kw: Any) -> rollback.Outcome:
    """The rollback, probing with the rig's double (the app is healthy where the fake platform says)."""
    kw.setdefault("analyse", rig.tools().analyse)
    return rollback.execute(rig.loaded, rig.provider, rig.platform, prepared, journal_of(rig), **kw)


# --- prepare -------------------------------------------------------------------------------------------


def test_prepare_resolves_everything_and_changes_nothing(snap_rig: Rig) -> None:
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP)
    assert (p.snapshot, p.url, p.failed_state) == (SNAP, snap_rig.provider.url_of(SNAP), "production")
    assert p.previous == CurrentValue(readable=True, value=snap_rig.prod_url)
    assert snap_rig.platform.prepared and snap_rig.platform.value == snap_rig.prod_url
    methods = snap_rig.provider.faults.methods()
    assert methods.index("ensure_serving") < methods.index("connection_url")
    # the release live before the deploy is recorded too ([rollback] app = "auto"), to bring it back if it changes
    assert snap_rig.platform.faults.methods() == ["prepare", "read_current", "describe"]
    assert p.app_release == snap_rig.platform.releases[0]


def test_prepare_lazy_leaves_the_snapshot_without_a_compute(snap_rig: Rig) -> None:
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP, serve=False)
    assert p.url is None and SNAP not in snap_rig.provider.serving
    assert snap_rig.provider.faults.calls("ensure_serving") == []


def test_prepare_survives_an_unreadable_variable(snap_rig: Rig) -> None:
    snap_rig.platform.faults.fail("read_current", PlatformError("token cannot read env vars"))
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP)
    assert p.previous is None and p.url == snap_rig.provider.url_of(SNAP)


def test_prepare_of_a_missing_snapshot_fails_before_anything_changes(snap_rig: Rig) -> None:
    with pytest.raises(ProviderError, match="no snapshot named 'nope'"):
        rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, "nope")
    assert snap_rig.platform.faults.calls("set_url") == []


# --- execute -----------------------------------------------------------------------------------------------


def test_execute_repoints_picks_up_waits_and_probes_the_snapshot(snap_rig: Rig) -> None:
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP)
    out = execute(snap_rig, p, verdict_at=0.0)
    url = snap_rig.provider.url_of(SNAP)
    assert out.healthy and out.verdict and out.verdict.healthy
    # the app's release did not change (describe: same code), so only the database moves
    assert snap_rig.platform.faults.methods()[3:] == ["describe", "set_url", "pick_up", "wait_live"]
    assert snap_rig.platform.value == snap_rig.platform.live_value == url
    assert snap_rig.platform.releases[-1].live
    assert snap_rig.platform.faults.calls("wait_live")[0].args[1] == snap_rig.loaded.config.platform.ready_timeout
    assert snap_rig.probed == [(url, "rollback.probe")]
    assert {"set", "pick_up", "wait_live", "probes", "verdict_to_healthy"} <= out.timings.keys()
    assert "serve" not in out.timings  # eager: resolved before the verdict
    assert last_repoint(snap_rig.loaded) == SNAP
    rec = next(r for r in read_journal(snap_rig.loaded.state_dir) if r["step"] == REPOINT_STEP)
    assert rec["details"] == {"target": SNAP, "previous": "production"}
    assert snap_rig.provider.deleted == [] and "production" in snap_rig.provider.snapshots


def test_execute_lazy_serves_the_snapshot_before_repointing(snap_rig: Rig) -> None:
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP, serve=False)
    before = len(snap_rig.provider.faults.log)
    out = execute(snap_rig, p)
    assert out.healthy and "serve" in out.timings and "verdict_to_healthy" not in out.timings
    # hold: the app moves onto it; then the repoint is recorded with the provider, for runners without this journal
    assert snap_rig.provider.faults.methods()[before:] == ["ensure_serving", "connection_url", "hold", "record_app_target"]
    assert p.url == snap_rig.provider.url_of(SNAP) == snap_rig.platform.value


@pytest.mark.parametrize(
    ("target", "method", "step", "repointed"),
    [
        ("provider", "ensure_serving", "serve", False),
        ("platform", "set_url", "set", False),
        ("platform", "pick_up", "pick_up", True),
        ("platform", "wait_live", "wait_live", True),
    ],
)
def test_a_failed_step_gives_manual_steps_for_what_remains(
    snap_rig: Rig, target: str, method: str, step: str, repointed: bool
) -> None:
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP, serve=False)
    getattr(snap_rig, target).faults.fail(method, PlatformError(f"{method} refused"))
    with pytest.raises(RollbackFailed) as info:
        execute(snap_rig, p)
    e = info.value
    assert e.exit_code == 4 and f"rollback to {SNAP!r} failed at step '{step}': {method} refused" == e.message
    text = "\n".join(e.manual_steps)
    assert repr(SNAP) in text and "Keep 'production'" in text
    assert ("Set DATABASE_URL" in text) == (not repointed)
    assert ("Restart the app: systemctl restart app" in text) == (step != "wait_live")
    assert (last_repoint(snap_rig.loaded) == SNAP) == repointed
    failed = [r for r in read_journal(snap_rig.loaded.state_dir) if r["step"] == f"rollback.{step}" and r["ended_at"]]
    assert [r["outcome"] for r in failed] == ["failed"]
    assert snap_rig.provider.deleted == [] and "production" in snap_rig.provider.snapshots


def test_probes_that_cannot_run_fail_the_rollback(snap_rig: Rig) -> None:
    def broken(*a: Any, **k: Any) -> Any:
        raise ProbeError("no probes configured")

    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP)
    with pytest.raises(RollbackFailed, match="failed at step 'probes': no probes configured") as info:
        execute(snap_rig, p, analyse=broken)
    assert not any("Set DATABASE_URL" in s for s in info.value.manual_steps)  # the repoint did happen


def test_unhealthy_on_the_snapshot_points_at_the_logs(snap_rig: Rig) -> None:
    snap_rig.platform.healthy_urls = set()
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP)
    with pytest.raises(RollbackFailed) as info:
        execute(snap_rig, p)
    e = info.value
    assert e.message == f"the app is not healthy on snapshot {SNAP!r} either: health: HTTP 500"
    assert e.manual_steps == [
        "Look at the app's logs: the failure may not be the database.",
        f"Check the app is healthy on snapshot {SNAP!r}: deploysafe probe",
        "Keep 'production': it holds the failed production state and the writes made since the snapshot.",
    ]
    assert snap_rig.provider.deleted == []


def test_restore_strategy_is_refused_before_anything_changes_where_the_provider_cannot(tmp_path: Path,
                                                                                       snap_rig: Rig) -> None:
    # refused while preparing (exit 3, before production changes), not after the verdict (exit 4)
    snap_rig.loaded = make_loaded(tmp_path, '[rollback]\nstrategy = "restore"\n')
    with pytest.raises(PreconditionError, match="cannot restore production in place: the fake provider") as e:
        rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP)
    assert "repoint" in (e.value.hint or "")
    assert snap_rig.platform.faults.calls("set_url") == [] and snap_rig.provider.faults.calls("ensure_serving") == []


def test_auto_strategy_repoints_where_the_provider_cannot_restore(tmp_path: Path, snap_rig: Rig) -> None:
    snap_rig.loaded = make_loaded(tmp_path, '[rollback]\nstrategy = "auto"\n')
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP)
    assert p.restore is None
    assert execute(snap_rig, p).healthy and snap_rig.platform.value == snap_rig.provider.url_of(SNAP)


def test_a_restore_in_place_records_the_live_release_and_survives_a_platform_it_cannot_reach(
    tmp_path: Path, snap_rig: Rig
) -> None:
    snap_rig.loaded = make_loaded(tmp_path, '[rollback]\nstrategy = "auto"\n')
    snap_rig.platform.can_return = True
    plan = RestorePlan(possible=True, own_history=True, target="production", source="production")
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP, plan=plan, decided=True)
    # the live release is recorded (a code rollback may need it); nothing is read or set for the database
    assert p.restore == plan and p.app_release is not None
    assert snap_rig.platform.faults.methods() == ["prepare", "describe"]
    # the restore itself needs no platform: one that cannot be reached costs only the code half
    snap_rig.platform.faults.fail("prepare", PlatformError("fake: 503 from the API", platform="fake"))
    p = rollback.prepare(snap_rig.loaded, snap_rig.provider, snap_rig.platform, SNAP, plan=plan, decided=True)
    assert p.restore == plan and p.app_release is None


# --- manual steps per platform -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform_toml", "where", "restart"),
    [
        ('type = "dotenv"\nenv_file = "app/.env"', "in {root}/app/.env", "Restart the app so it reads the new value."),
        ('type = "command"\nset_command = "set-it"\nrestart = "kick"', "with your set command", "Restart the app: kick"),
        ('type = "render"\nservice_id = "srv-1"', "on render (production environment)",
         "Redeploy the app on render so it reads the new DATABASE_URL."),
    ],
)
def test_manual_steps_name_the_platform_the_snapshot_and_the_failed_state(
    tmp_path: Path, platform_toml: str, where: str, restart: str
) -> None:
    from deploysafe.config import LoadedConfig, parse_config

    cfg = parse_config(
        f'[provider]\ntype = "local"\ndatabase_url = "postgresql://app@h/production"\n[platform]\n{platform_toml}\n',
        env={},
    )
    loaded = LoadedConfig(cfg, tmp_path / "deploysafe.toml")
    p = rollback.Prepared(SNAP, None, None, "production", 0.0)
    assert rollback.manual_steps(loaded, p, []) == [
        f"Set DATABASE_URL {where.format(root=tmp_path)} to the connection string of snapshot {SNAP!r} "
        "(`deploysafe snapshot list` shows it; the Neon console or your server gives its password).",
        restart,
        f"Check the app is healthy on snapshot {SNAP!r}: deploysafe probe",
        "Keep 'production': it holds the failed production state and the writes made since the snapshot.",
    ]
    assert rollback.manual_steps(loaded, p, ["set", "pick_up"]) == rollback.manual_steps(loaded, p, [])[2:]


# --- resolve_target ----------------------------------------------------------------------------------------


def _seed(rig: Rig, name: str, kind: SnapshotKind, hours_ago: float, ours: bool = True) -> None:
    rig.provider.add(Snapshot(id=f"id-{name}", name=name, kind=kind if ours else None, ours=ours,
                              created_at=datetime.now(UTC) - timedelta(hours=hours_ago), source="production"))


def test_resolve_target_picks_the_newest_pre_deploy_snapshot_of_ours(rig: Rig) -> None:
    _seed(rig, "pre-deploy-old", SnapshotKind.PRE_DEPLOY, 5)
    _seed(rig, "pre-deploy-new", SnapshotKind.PRE_DEPLOY, 1)
    _seed(rig, "manual-newer", SnapshotKind.MANUAL, 0.5)
    _seed(rig, "someone-elses", SnapshotKind.PRE_DEPLOY, 0.1, ours=False)
    assert rollback.resolve_target(rig.provider, None) == "pre-deploy-new"
    assert rollback.resolve_target(rig.provider, "manual-newer") == "manual-newer"


def test_resolve_target_refuses_production_a_missing_name_and_an_empty_list(rig: Rig) -> None:
    with pytest.raises(PreconditionError, match="'production' is production itself"):
        rollback.resolve_target(rig.provider, "production")
    with pytest.raises(ProviderError, match="no snapshot named 'gone'"):
        rollback.resolve_target(rig.provider, "gone")
    with pytest.raises(PreconditionError, match="no pre-deploy snapshot to roll back to") as info:
        rollback.resolve_target(rig.provider, None)
    assert isinstance(info.value, DeploysafeError) and info.value.hint and "--to" in info.value.hint
