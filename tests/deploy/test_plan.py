"""plan_deploy is pure: config + observed state in, a frozen Plan out (STYLE.md "Plan, then apply")."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from deploysafe.config import Config, parse_config
from deploysafe.deploy.plan import Plan, Undo, plan_deploy

SNAP = "pre-deploy-20261125T100000Z-abc1234"

BASE = """
[provider]
type = "local"
database_url = "postgresql://app@fake.invalid:5432/production"
[platform]
type = "dotenv"
env_file = ".env"
[[probes.http]]
name = "health"
url = "http://127.0.0.1:3000/health"
[[probes.sql]]
name = "users"
query = "select 1 from users limit 1"
"""


def config(extra: str = "") -> Config:
    return parse_config(BASE + extra, env={})


def plan(cfg: Config | None = None, **overrides: Any) -> Plan:
    kwargs: dict[str, Any] = dict(
        snapshot=SNAP, production="production", app_points_at="production", caveats=[], prune=[],
        rehearse=False, no_rollback=False, allow_destructive=False, watch=None,
    )
    kwargs.update(overrides)
    return plan_deploy(cfg or config(), **kwargs)


def names(p: Plan) -> list[str]:
    return [s.name for s in p.steps]


def test_step_order_without_options() -> None:
    assert names(plan()) == ["lock", "snapshot", "generate", "lint", "push", "probes", "prune"]


def test_rehearse_comes_between_lint_and_push() -> None:
    assert names(plan(rehearse=True)) == ["lock", "snapshot", "generate", "lint", "rehearse", "push", "probes", "prune"]


def test_app_deploy_runs_after_push_and_before_probes() -> None:
    p = plan(config('[deploy]\napp_deploy = "vercel deploy --prod"\n'))
    assert names(p) == ["lock", "snapshot", "generate", "lint", "push", "app", "probes", "prune"]
    assert "`vercel deploy --prod`" in p.steps[names(p).index("app")].does


def test_watch_follows_probes_with_its_window() -> None:
    p = plan(watch=300.0, rehearse=True)
    assert names(p) == ["lock", "snapshot", "generate", "lint", "rehearse", "push", "probes", "watch", "prune"]
    assert p.steps[names(p).index("watch")].does == "keep probing for 300s"


def test_only_push_changes_production_and_steps_after_it_undo_by_rolling_back() -> None:
    p = plan(config('[deploy]\napp_deploy = "deploy-app"\n'), watch=60.0)
    assert [s.name for s in p.steps if s.changes_production] == ["push"]
    undo = f"roll back: point DATABASE_URL at {SNAP}, restart, probe"
    assert {s.name: s.undo for s in p.steps if s.undo and s.name != "snapshot"} == {
        "push": undo, "app": undo, "probes": undo, "watch": undo,
    }
    assert p.rollback is True


def test_no_rollback_drops_the_undo_text() -> None:
    p = plan(no_rollback=True, watch=60.0)
    assert p.rollback is False
    assert all(s.undo is None for s in p.steps if s.name != "snapshot")
    assert "roll back" not in p.render()


def test_undo_names_the_configured_variable() -> None:
    p = plan(config().model_copy(update={"platform": config().platform.model_copy(update={"var": "PG_URL"})}))
    assert p.steps[names(p).index("push")].undo == f"roll back: point PG_URL at {SNAP}, restart, probe"


def test_warns_when_the_app_points_elsewhere() -> None:
    p = plan(app_points_at="pre-deploy-older", caveats=["the release phase runs migrations"])
    assert p.warnings == (
        "the release phase runs migrations",
        "the app points at 'pre-deploy-older', not production 'production': run `deploysafe promote` first",
    )


@pytest.mark.parametrize("where", ["production", None])
def test_no_warning_when_the_app_is_on_production_or_unknown(where: str | None) -> None:
    assert plan(app_points_at=where).warnings == ()


def test_allow_destructive_and_the_policy_show_in_the_lint_step() -> None:
    lint = {s.name: s for s in plan(config('[lint]\ndestructive = "warn"\n'), allow_destructive=True).steps}["lint"]
    assert lint.does == "classify what push will run (read-only dry run) and the new SQL; destructive = 'warn' (overridden by --allow-destructive)"


def test_the_plan_is_frozen_and_the_input_lists_are_copied() -> None:
    caveats, prune = ["c"], ["old"]
    p = plan(caveats=caveats, prune=prune)
    caveats.append("later")
    prune.append("later")
    assert p.warnings == ("c",) and p.prune == ("old",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.snapshot = "other"  # type: ignore[misc]


def test_render_exact() -> None:
    p = plan(caveats=["release phase migrates"], prune=["pre-deploy-old"], rehearse=True)
    undo = f"  (on failure: roll back: point DATABASE_URL at {SNAP}, restart, probe)"
    assert p.render() == "\n".join([
        "Plan: guarded deploy of 'production'",
        f"  pre-deploy snapshot: {SNAP}",
        "   1. lock       take the deploy lock (local file + PostgreSQL advisory lock on production)",
        f"   2. snapshot   create {SNAP} from production, ready to serve, and resolve its URL"
        "  (on failure: nothing to undo; the snapshot is kept)",
        "   3. generate   run `npm run db:generate` in .; record the new migration files",
        "   4. lint       classify what push will run (read-only dry run) and the new SQL; destructive = 'block'",
        "   5. rehearse   run `npm run db:push` against a throwaway copy first (with DATABASE_URL set to it); delete it after; production must not change",
        "   6. push       run `npm run db:push` against production (with DATABASE_URL set to it) and verify the schema matches" + undo,
        "   7. probes     probe until healthy: health, users" + undo,
        "   8. prune      delete snapshots past [retention]",
        "  prune would delete: pre-deploy-old",
        "  ! release phase migrates",
    ])


def test_render_says_when_nothing_is_pruned_and_no_probes_are_configured() -> None:
    cfg = config().model_copy(update={"probes": config().probes.model_copy(update={"http": [], "sql": []})})
    text = plan(cfg).render()
    assert "probe until healthy: (none configured)" in text
    assert text.splitlines()[-1] == "  prune would delete: nothing"


def test_the_undo_the_executor_runs_is_the_one_the_plan_shows() -> None:
    p = plan(config('[deploy]\napp_deploy = "ship"\n'), rehearse=True, watch=60.0)
    assert {s.name: s.on_failure for s in p.steps if s.on_failure} == {
        "snapshot": Undo.KEEP, "push": Undo.ROLLBACK, "app": Undo.ROLLBACK, "probes": Undo.ROLLBACK,
        "watch": Undo.ROLLBACK,
    }
    assert all((s.on_failure is Undo.ROLLBACK) == bool(s.undo and s.undo.startswith("roll back")) for s in p.steps)
    no_rollback = plan(no_rollback=True)
    assert [s.name for s in no_rollback.steps if s.on_failure] == ["snapshot"]
    assert [s.name for s in p.steps if not s.journaled] == ["lock"]  # it holds the others: not a timed step
    assert [s.name for s in p.steps if not s.fails_deploy] == ["prune"]
