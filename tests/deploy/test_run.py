"""deploy.deploy() with in-memory fakes: every failure point's outcome, exit code, journal line and timeline.

The slow real-component path is in test_deploy_e2e.py. Here the provider and platform are
the in-memory fakes, and generate / push / lint / probes / divergence / the lock are
replaced on the modules deploy imports them from, so each branch runs in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.deploy import run as deploy
from deploysafe.deploy.probes import Verdict
from deploysafe.drizzle.lint import Finding
from deploysafe.errors import (
    DeployFailedRolledBack,
    DeploysafeError,
    Interrupted,
    LintBlocked,
    PlatformError,
    PreconditionError,
    ProviderError,
    RollbackFailed,
    StepError,
)
from deploysafe.journal import read_journal
from deploysafe.platforms.base import Platform
from deploysafe.providers.base import Provider, Snapshot, SnapshotKind
from deploysafe.testing import FakePlatform, FakeProvider

CONFIG = """
[provider]
type = "local"
database_url = "postgresql://app@fake.invalid:5432/production"
{provider_extra}
[platform]
type = "dotenv"
env_file = ".env"
restart = "systemctl restart app"
[[probes.http]]
name = "health"
url = "http://127.0.0.1:3000/health"
{extra}
"""

DESTRUCTIVE = Finding(file="drizzle/0001_x.sql", line=1, statement="ALTER TABLE users DROP COLUMN name;",
                      rule="drop-column", severity="destructive", message="drops a column", url="https://x", allowed=False)


@dataclass
class Rig:
    """One deploy's world: the fakes, the doubles' scripted behaviour, and what the doubles saw."""

    loaded: LoadedConfig
    provider: FakeProvider
    platform: FakePlatform
    generate_error: DeploysafeError | None = None
    generate_reaches: str | None = None  # the URL the app's tooling really reaches during generate
    push_error: DeploysafeError | None = None
    push_breaks_app: bool = False  # the migration leaves the app unhealthy on production
    healthy_on_snapshot: bool = True
    findings: list[Finding] = field(default_factory=list)
    watch_healthy: bool = True
    pushed: list[str] = field(default_factory=list)  # URLs db:push ran against
    provider_calls_at_push: list[str] = field(default_factory=list)
    probed: list[tuple[str | None, str]] = field(default_factory=list)  # (url, phase)

    @property
    def prod_url(self) -> str:
        return self.provider.url_of("production")

    def snapshot_names(self) -> list[str]:
        return [n for n, s in self.provider.snapshots.items() if s.kind is SnapshotKind.PRE_DEPLOY]

    def results(self) -> list[dict[str, Any]]:
        return [r for r in read_journal(self.loaded.state_dir) if r["step"] == "result"]

    def run(self, **opts: Any) -> tuple[deploy.Summary, DeploysafeError | None]:
        opts.setdefault("sha", "0123456789abcdef")
        try:
            summary = deploy.deploy(self.loaded, deploy.DeployOptions(**opts), provider=self.provider,
                                    platform=self.platform)
        except DeploysafeError as e:
            return e.context["summary"], e
        return summary, None


def make_loaded(tmp_path: Path, extra: str = "", provider_extra: str = "") -> LoadedConfig:
    cfg = parse_config(CONFIG.format(extra=extra, provider_extra=provider_extra), env={})
    return LoadedConfig(cfg, tmp_path / "deploysafe.toml")


@contextmanager
def _no_lock(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    yield {}


def install_doubles(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace everything deploy reaches outside the two adapters; the doubles act on the rig."""
    from deploysafe import lock
    from deploysafe.deploy import diverge, probes, watch
    from deploysafe.drizzle import lint
    from deploysafe.drizzle import steps as migrate
    from deploysafe.process import StepResult

    def generate(loaded: LoadedConfig, url: str, *, on_line: Any = None) -> migrate.GenerateResult:
        assert url == rig.prod_url
        if rig.generate_reaches:
            rig.pushed.append(rig.generate_reaches)  # its schema changes: what the fingerprint sees
        if rig.generate_error:
            raise rig.generate_error
        # the snapshot exists by now: whether the app would be healthy on it is the rig's choice
        for name in rig.snapshot_names():
            if rig.healthy_on_snapshot:
                rig.platform.healthy_urls.add(rig.provider.url_of(name))
        new = [loaded.app_dir / "drizzle" / "0001_x.sql"]
        return migrate.GenerateResult(StepResult("generate", "gen", 0, "", 0.0), new, "ALTER TABLE users ADD x int;")

    def plan_push(loaded: LoadedConfig, url: str, *, on_line: Any = None) -> migrate.PushPlan:
        assert url == rig.prod_url  # read-only, against production, before push
        return migrate.PushPlan(StepResult("push-plan", "plan", 0, "", 0.0), ["ALTER TABLE users ADD x int;"], False)

    def push(loaded: LoadedConfig, url: str, *, on_line: Any = None, planned: Any = None) -> migrate.PushResult:
        rig.pushed.append(url)
        if url != rig.prod_url:  # --rehearse: the throwaway copy
            return migrate.PushResult(StepResult("push", "push", 0, "", 0.0), True, True)
        rig.provider_calls_at_push = rig.provider.faults.methods()
        if rig.push_error:
            raise rig.push_error
        if rig.push_breaks_app:
            rig.platform.healthy_urls.discard(rig.prod_url)
        return migrate.PushResult(StepResult("push", "push", 0, "", 0.0), True, True)

    def analyse(cfg: Any, url: str | None, *, journal: Any = None, on_attempt: Any = None, phase: str = "probe",
                **kw: Any) -> Verdict:
        rig.probed.append((url, phase))
        if on_attempt:
            on_attempt(1, [])
        ok = rig.platform.app_healthy()
        return Verdict(ok, "all probes passed" if ok else "health: HTTP 500", 0.0)

    def watch_window(loaded: LoadedConfig, url: str, journal: Any, seconds: float) -> Verdict:
        return Verdict(rig.watch_healthy, "steady" if rig.watch_healthy else "health failed during the window", seconds)

    monkeypatch.setattr(lock, "deploy_lock", _no_lock)
    monkeypatch.setattr(migrate, "generate", generate)
    monkeypatch.setattr(migrate, "push", push)
    # a database's schema changes with each push it receives: what proves generate/rehearse left production alone
    monkeypatch.setattr(migrate, "schema_fingerprint", lambda url: f"{url}#{rig.pushed.count(url)}")
    monkeypatch.setattr(migrate, "plan_push", plan_push)
    # the rig's findings stand for everything linted: the files and the planned statements
    monkeypatch.setattr(lint, "lint_change", lambda paths, sql, **kw: lint.LintReport(list(rig.findings)))
    monkeypatch.setattr(probes, "analyse", analyse)
    monkeypatch.setattr(watch, "watch_window", watch_window)
    monkeypatch.setattr(diverge, "rows_only_in_failed", lambda failed, snap, **kw: [])


@pytest.fixture
def make_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(extra: str = "", provider_extra: str = "") -> Rig:
        provider = FakeProvider("production")
        url = provider.url_of("production")
        rig = Rig(make_loaded(tmp_path, extra, provider_extra), provider, FakePlatform(url, healthy_urls={url}))
        install_doubles(rig, monkeypatch)
        return rig

    return make


@pytest.fixture
def rig(make_rig: Any) -> Rig:
    r: Rig = make_rig()
    return r


def steps(summary: deploy.Summary) -> list[tuple[str, str]]:
    return [(e["step"], e["outcome"]) for e in summary.timeline]


def assert_nothing_lost(rig: Rig) -> None:
    """The pre-deploy snapshot and the production state survive every path."""
    assert rig.provider.deleted == [], "a pre-deploy run must never delete a snapshot or the failed state"
    assert "production" in rig.provider.snapshots
    assert len(rig.snapshot_names()) == 1
    assert rig.provider.closed and rig.platform.closed


def last_result(rig: Rig, outcome: str, exit_code: int) -> dict[str, Any]:
    results = rig.results()
    assert len(results) == 1, results  # exactly one verdict per run
    rec = results[0]
    assert (rec["details"]["outcome"], rec["details"]["exit_code"]) == (outcome, exit_code)
    return rec


# --- the fakes are what deploy expects ----------------------------------------------------------


def test_the_fakes_satisfy_the_protocols() -> None:
    assert isinstance(FakeProvider(), Provider)
    assert isinstance(FakePlatform(None), Platform)


def test_a_fault_on_a_misspelled_method_is_refused() -> None:
    with pytest.raises(ValueError, match="no method 'set_ulr'"):
        FakePlatform(None).faults.fail("set_ulr", PlatformError("x"))


def test_a_fault_fires_once_on_the_nth_call_counted_from_when_it_was_planned() -> None:
    p = FakeProvider()
    p.list_snapshots()
    p.faults.fail("list_snapshots", ProviderError("down"), on_call=2)
    p.list_snapshots()
    with pytest.raises(ProviderError, match="down"):
        p.list_snapshots()
    p.list_snapshots()
    assert p.faults.counts["list_snapshots"] == 4 and p.faults.methods() == ["list_snapshots"] * 4


def test_the_fake_platform_changes_the_running_app_only_at_pick_up() -> None:
    p = FakePlatform("postgresql://a", healthy_urls={"postgresql://b"})
    p.set_url("postgresql://b")
    assert p.read_current().value == "postgresql://b" and not p.app_healthy()
    release = p.pick_up()
    assert p.app_healthy() and not release.live
    assert p.wait_live(release, 1.0).live and p.describe() == p.releases[-1]


def test_the_fake_provider_has_no_url_for_a_snapshot_without_a_compute() -> None:
    p = FakeProvider()
    p.create_snapshot("s", SnapshotKind.MANUAL)
    with pytest.raises(ProviderError, match="no compute"):
        p.connection_url("s")
    p.ensure_serving("s")
    assert p.identify(p.connection_url("s")) == "s"


# --- success ------------------------------------------------------------------------------------------


def test_healthy_deploy_exits_0_with_the_timeline_in_order(rig: Rig) -> None:
    summary, err = rig.run()
    assert err is None and summary.exit_code == 0 and summary.outcome == "deployed"
    assert steps(summary) == [(s, "ok") for s in ("preflight", "snapshot", "generate", "lint", "push", "probes", "prune")]
    assert summary.snapshot == rig.snapshot_names()[0]
    assert summary.snapshot.startswith("pre-deploy-") and summary.snapshot.endswith("-0123456")
    assert rig.provider.snapshots[summary.snapshot].git_sha == "0123456789abcdef"
    assert rig.platform.faults.calls("set_url") == [] and rig.platform.value == rig.prod_url  # never repointed
    assert rig.probed == [(rig.prod_url, "probe")]
    assert_nothing_lost(rig)
    rec = last_result(rig, "deployed", 0)
    assert rec["details"]["snapshot"] == summary.snapshot and rec["outcome"] == "ok"


def test_rehearse_app_deploy_and_watch_appear_in_the_timeline(make_rig: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rig: Rig = make_rig('[deploy]\napp_deploy = "deploy-app"\n')
    monkeypatch.setattr(deploy, "_app_deploy", lambda loaded, url: None)
    summary, err = rig.run(rehearse=True, watch=5.0)
    assert err is None, err
    assert [s for s, _ in steps(summary)] == ["preflight", "snapshot", "generate", "lint", "rehearse", "push", "app",
                                              "probes", "watch", "prune"]
    assert rig.pushed == [rig.provider.url_of(f"rehearse-{summary.snapshot}"), rig.prod_url]
    assert [c.args[0] for c in rig.provider.faults.calls("delete")] == [f"rehearse-{summary.snapshot}"]
    assert len(rig.snapshot_names()) == 1 and "production" in rig.provider.snapshots


def test_dry_run_changes_nothing(rig: Rig) -> None:
    summary, err = rig.run(dry_run=True)
    assert err is None and summary.outcome == "dry run: nothing changed"
    assert rig.pushed == [] and rig.provider.faults.calls("create_snapshot") == []
    assert [s for s, _ in steps(summary)] == ["preflight"]


def _old_snapshot(rig: Rig, name: str = "pre-deploy-20260101T000000Z-aaaaaaa") -> Snapshot:
    return rig.provider.add(Snapshot(id=f"id-{name}", name=name, kind=SnapshotKind.PRE_DEPLOY, ours=True,
                                     created_at=datetime.now(UTC) - timedelta(days=30), source="production"))


def test_prune_deletes_only_the_expired_snapshot(rig: Rig) -> None:
    old = _old_snapshot(rig)
    summary, err = rig.run()
    assert err is None and summary.pruned == [old.name]
    assert rig.provider.deleted == [old.name]
    assert summary.snapshot in rig.provider.snapshots and "production" in rig.provider.snapshots


def test_a_failed_deletion_while_pruning_never_fails_the_deploy(rig: Rig) -> None:
    old = _old_snapshot(rig)
    rig.provider.faults.fail("delete", ProviderError("delete refused: branch is busy"))
    summary, err = rig.run()
    assert err is None and summary.exit_code == 0 and summary.outcome == "deployed"
    assert summary.pruned == [] and old.name in rig.provider.snapshots
    last_result(rig, "deployed", 0)


def test_a_prune_that_cannot_even_list_never_fails_the_deploy(rig: Rig) -> None:
    rig.provider.faults.fail("list_snapshots", ProviderError("provider unreachable"), on_call=2)  # 1: preflight
    summary, err = rig.run()
    assert err is None and summary.exit_code == 0 and summary.outcome == "deployed"
    assert steps(summary)[-1] == ("prune", "failed")
    assert rig.provider.faults.counts["list_snapshots"] == 2  # the fault did fire, in prune
    assert_nothing_lost(rig)
    last_result(rig, "deployed", 0)


# --- failures before production changed: exit 3, nothing touched ---------------------------------------


@pytest.mark.parametrize(
    ("setup", "failed_step", "snapshots_left"),
    [
        (lambda r: r.provider.faults.fail("create_snapshot", ProviderError("quota exceeded")), "snapshot", 0),
        (lambda r: r.provider.faults.fail("ensure_serving", ProviderError("endpoint limit")), "snapshot", 1),
        (lambda r: r.platform.faults.fail("prepare", PlatformError("service not found")), "snapshot", 1),
        (lambda r: setattr(r, "generate_error", StepError("db:generate exited 1", step="generate")), "generate", 1),
        (lambda r: setattr(r, "findings", [DESTRUCTIVE]), "lint", 1),
        (lambda r: setattr(r, "push_error", StepError("db:push exited 1", step="push")), "push", 1),
    ],
    ids=["snapshot-create", "snapshot-serve", "platform-prepare", "generate", "lint-blocks", "push-unchanged"],
)
def test_failure_before_production_changed_exits_3(rig: Rig, setup: Any, failed_step: str, snapshots_left: int) -> None:
    setup(rig)
    summary, err = rig.run()
    assert isinstance(err, PreconditionError) and err.exit_code == 3
    assert summary.exit_code == 3 and summary.outcome == "failed before production changed"
    assert steps(summary)[-1] == (failed_step, "failed")
    assert rig.platform.faults.calls("set_url") == [] and rig.platform.faults.calls("pick_up") == []
    assert rig.pushed == ([rig.prod_url] if failed_step == "push" else [])
    assert rig.provider.deleted == [] and "production" in rig.provider.snapshots
    assert len(rig.snapshot_names()) == snapshots_left  # a snapshot that was made is kept
    last_result(rig, "failed before production changed", 3)


def test_lint_block_names_the_statement_and_allow_destructive_passes(make_rig: Any) -> None:
    rig: Rig = make_rig()
    rig.findings = [DESTRUCTIVE]
    _, err = rig.run()
    assert isinstance(err, LintBlocked) and "drop-column" in err.message and rig.pushed == []
    rig2: Rig = make_rig()
    rig2.findings = [DESTRUCTIVE]
    summary, err = rig2.run(allow_destructive=True)
    assert err is None and summary.outcome == "deployed" and summary.lint[0]["rule"] == "drop-column"


def test_app_pointing_at_a_snapshot_refuses_with_the_promote_hint(rig: Rig) -> None:
    rig.provider.add(Snapshot(id="id-old", name="pre-deploy-old", kind=SnapshotKind.PRE_DEPLOY, ours=True,
                              created_at=datetime.now(UTC), source="production"), serving=True)
    rig.platform.value = rig.platform.live_value = rig.provider.url_of("pre-deploy-old")
    summary, err = rig.run()
    assert isinstance(err, PreconditionError) and err.exit_code == 3 and summary.exit_code == 3
    assert "points at 'pre-deploy-old', not production 'production'" in err.message
    assert err.hint and "deploysafe promote" in err.hint
    assert rig.provider.faults.calls("create_snapshot") == [] and rig.pushed == []
    last_result(rig, "failed before production changed", 3)


# --- production changed: roll back (1) or a person must act (4) --------------------------------------


def assert_rolled_back(rig: Rig, summary: deploy.Summary, err: DeploysafeError | None) -> None:
    assert isinstance(err, DeployFailedRolledBack) and err.exit_code == 1
    assert summary.exit_code == 1 and summary.outcome == "rolled back"
    snap_url = rig.provider.url_of(summary.snapshot or "")
    assert rig.platform.value == rig.platform.live_value == snap_url
    assert rig.platform.app_healthy()
    assert summary.rollback and summary.rollback["snapshot"] == summary.snapshot
    assert summary.rollback["failed_state_kept"] == "production"
    assert (snap_url, "rollback.probe") in rig.probed
    assert_nothing_lost(rig)
    rec = last_result(rig, "rolled back", 1)
    assert rec["details"]["rollback"]["snapshot"] == summary.snapshot


def test_push_that_fails_after_changing_production_rolls_back(rig: Rig) -> None:
    rig.push_error = StepError("db:push died half way", step="push", production_changed=True)
    summary, err = rig.run()
    assert_rolled_back(rig, summary, err)
    assert [s for s, _ in steps(summary)] == ["preflight", "snapshot", "generate", "lint", "push", "rollback"]
    assert steps(summary)[-2:] == [("push", "failed"), ("rollback", "ok")]
    assert "db:push died half way" in summary.rollback["reason"]  # type: ignore[index]


def test_unhealthy_probes_roll_back(rig: Rig) -> None:
    rig.push_breaks_app = True
    summary, err = rig.run()
    assert_rolled_back(rig, summary, err)
    assert [s for s, _ in steps(summary)] == ["preflight", "snapshot", "generate", "lint", "push", "probes", "rollback"]
    # the probes ran to a verdict, and the verdict was a failure: never shown as "ok"
    assert steps(summary)[-2:] == [("probes", "failed"), ("rollback", "ok")]
    assert summary.rollback and summary.rollback["reason"] == "health: HTTP 500"
    probes = [r for r in read_journal(rig.loaded.state_dir) if r["step"] == "probes" and r["ended_at"]]
    assert [(r["outcome"], r["details"]["verdict"]) for r in probes] == [("failed", "health: HTTP 500")]


def test_unhealthy_watch_window_rolls_back(rig: Rig) -> None:
    rig.watch_healthy = False
    summary, err = rig.run(watch=30.0)
    assert_rolled_back(rig, summary, err)
    assert steps(summary)[-3:] == [("probes", "ok"), ("watch", "failed"), ("rollback", "ok")]


@pytest.mark.parametrize(("method", "step"), [("set_url", "set"), ("pick_up", "pick_up"), ("wait_live", "wait_live")])
def test_rollback_step_failure_exits_4_with_manual_steps(rig: Rig, method: str, step: str) -> None:
    rig.push_breaks_app = True
    rig.platform.faults.fail(method, PlatformError(f"{method}: HTTP 503 from the platform"))
    summary, err = rig.run()
    assert isinstance(err, RollbackFailed) and err.exit_code == 4
    assert summary.exit_code == 4 and summary.outcome == "needs a person"
    assert f"failed at step '{step}'" in err.message
    text = "\n".join(summary.manual_steps)
    assert summary.manual_steps == err.manual_steps
    assert repr(summary.snapshot) in text  # a person must know which database the app should end up on
    assert "Keep 'production'" in text  # the failed state
    assert ("Set DATABASE_URL" in text) == (method == "set_url")
    assert ("systemctl restart app" in text) == (method in ("set_url", "pick_up"))
    assert steps(summary)[-1] == ("rollback", "failed")
    assert_nothing_lost(rig)
    last_result(rig, "needs a person", 4)


def test_app_unhealthy_on_the_snapshot_too_exits_4(rig: Rig) -> None:
    rig.push_breaks_app = True
    rig.healthy_on_snapshot = False
    summary, err = rig.run()
    assert isinstance(err, RollbackFailed) and err.exit_code == 4 and summary.exit_code == 4
    assert "not healthy on snapshot" in err.message and repr(summary.snapshot) in err.message
    assert "logs" in summary.manual_steps[0] and "Keep 'production'" in summary.manual_steps[-1]
    assert_nothing_lost(rig)
    last_result(rig, "needs a person", 4)


def test_no_rollback_exits_4_and_leaves_production_alone(rig: Rig) -> None:
    rig.push_breaks_app = True
    summary, err = rig.run(no_rollback=True)
    assert isinstance(err, RollbackFailed) and err.exit_code == 4 and summary.exit_code == 4
    assert "--no-rollback" in err.message and summary.outcome == "needs a person"
    assert rig.platform.faults.calls("set_url") == [] and rig.platform.value == rig.prod_url
    text = "\n".join(summary.manual_steps)
    assert repr(summary.snapshot) in text and "Keep 'production'" in text
    assert "rollback" not in [s for s, _ in steps(summary)]
    assert_nothing_lost(rig)
    last_result(rig, "needs a person", 4)


# --- eager and lazy snapshot endpoints ---------------------------------------------------------------------


def test_eager_snapshot_serves_before_push(rig: Rig) -> None:
    rig.push_breaks_app = True
    summary, err = rig.run()
    assert isinstance(err, DeployFailedRolledBack)
    assert "ensure_serving" in rig.provider_calls_at_push and "connection_url" in rig.provider_calls_at_push
    create = rig.provider.faults.calls("create_snapshot")[0]
    assert create.kwargs["serve"] is True
    assert "serve" not in rig.results()[0]["details"]["rollback"]["timings"]  # nothing left for the critical path


def test_lazy_snapshot_gets_its_compute_on_the_rollback_path(make_rig: Any) -> None:
    rig: Rig = make_rig(provider_extra='snapshot_endpoint = "lazy"')
    rig.push_breaks_app = True
    summary, err = rig.run()
    assert_rolled_back(rig, summary, err)
    assert rig.provider.faults.calls("create_snapshot")[0].kwargs["serve"] is False
    assert "ensure_serving" not in rig.provider_calls_at_push
    after = rig.provider.faults.methods()[len(rig.provider_calls_at_push):]
    assert after.index("ensure_serving") < after.index("connection_url")
    assert "serve" in summary.rollback["timings"]  # type: ignore[index]


def test_lazy_snapshot_never_gets_a_compute_when_the_deploy_succeeds(make_rig: Any) -> None:
    rig: Rig = make_rig(provider_extra='snapshot_endpoint = "lazy"')
    summary, err = rig.run()
    assert err is None and summary.outcome == "deployed"
    assert rig.provider.faults.calls("ensure_serving") == []


def test_lazy_rollback_that_cannot_serve_the_snapshot_exits_4(make_rig: Any) -> None:
    rig: Rig = make_rig(provider_extra='snapshot_endpoint = "lazy"')
    rig.push_breaks_app = True
    rig.provider.faults.fail("ensure_serving", ProviderError("compute quota exceeded"))
    summary, err = rig.run()
    assert isinstance(err, RollbackFailed) and "failed at step 'serve'" in err.message
    assert summary.exit_code == 4 and rig.platform.faults.calls("set_url") == []
    assert any(repr(summary.snapshot) in s for s in summary.manual_steps)
    assert_nothing_lost(rig)
    last_result(rig, "needs a person", 4)


# --- Ctrl-C ------------------------------------------------------------------------------------------------


def test_ctrl_c_before_production_changed_exits_130_and_journals_130(rig: Rig) -> None:
    rig.generate_error = KeyboardInterrupt()  # type: ignore[assignment]
    summary, err = rig.run()
    assert isinstance(err, Interrupted) and err.exit_code == 130 and summary.exit_code == 130
    assert "nothing was changed" in err.message and rig.pushed == []
    assert_nothing_lost(rig)
    last_result(rig, "failed before production changed", 130)


def test_ctrl_c_after_push_rolls_back(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    from deploysafe.deploy import probes

    healthy = probes.analyse  # the rig's double

    def interrupted(cfg: Any, url: str | None, *, phase: str = "probe", **k: Any) -> Any:
        if phase == "probe":  # Ctrl-C once, during the post-push probes; the rollback's probes run
            raise KeyboardInterrupt
        return healthy(cfg, url, phase=phase, **k)

    monkeypatch.setattr(probes, "analyse", interrupted)
    summary, err = rig.run()
    assert isinstance(err, DeployFailedRolledBack) and summary.exit_code == 1
    assert summary.rollback and summary.rollback["reason"] == "interrupted"
    assert rig.platform.value == rig.provider.url_of(summary.snapshot or "")


def test_generate_that_reaches_production_is_caught_by_the_fingerprint_and_rolled_back(rig: Rig) -> None:
    (rig.loaded.app_dir / "drizzle.config.ts").write_text(
        'export default { dialect: "postgresql", dbCredentials: { url: process.env[name] } };\n')
    rig.generate_reaches = rig.prod_url
    summary, err = rig.run()
    assert isinstance(err, DeployFailedRolledBack) and summary.outcome == "rolled back"
    assert summary.error and summary.error.startswith(
        "deploy failed (generate: production's schema changed during a step that must not touch it; the app's tooling reached "
        "production instead of the database deploysafe chose (drizzle.config.ts does not say which variable it "
        "reads; deploysafe set DATABASE_URL)")
    assert "push" not in [s for s, _ in steps(summary)]
    assert rig.platform.value == rig.provider.url_of(summary.snapshot)


def test_a_generate_that_reaches_another_database_is_no_concern_of_production(rig: Rig) -> None:
    rig.generate_reaches = "postgresql://app@fake.invalid:5432/scratch"
    summary, err = rig.run()
    assert err is None and summary.outcome == "deployed"

