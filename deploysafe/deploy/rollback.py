"""Rollback: point the app at a snapshot, make it pick that up, and prove it is healthy.

Used by ``deploy`` (automatically, when probes fail after production changed) and by the
manual ``deploysafe rollback``. Everything that can be resolved before production changes
(the snapshot's compute and URL, the platform's ids and current release) is resolved in
:func:`prepare`, so the critical path after the "unhealthy" verdict is only: set the
variable, pick it up, wait until live, probe.

The failed production state is never deleted: it holds the writes made since the snapshot.
If a step fails, :class:`RollbackFailed` carries the exact manual steps that remain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from deploysafe.console import console
from deploysafe.deploy import probes
from deploysafe.deploy.probes import Analyse
from deploysafe.deploy.steps import Step, journaled, run_steps
from deploysafe.errors import DeploysafeError, PreconditionError, RollbackFailed
from deploysafe.providers.base import SnapshotKind, failed_state_name
from deploysafe.snapshots.inuse import REPOINT_STEP, record_target

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.journal import Journal
    from deploysafe.platforms.base import CurrentValue, Platform, Release
    from deploysafe.providers.base import ProductionInfo, Provider, RestorePlan


@dataclass
class Prepared:
    """What a rollback needs, resolved before production changes."""

    snapshot: str
    url: str | None  # None: the snapshot gets its compute at rollback time ([provider] snapshot_endpoint = "lazy")
    previous: CurrentValue | None
    failed_state: str  # the branch/database that holds the failed production state (kept)
    prepare_s: float
    # the app release live before production changed ([rollback] app = "auto" and the platform can bring it back)
    app_release: Release | None = None
    restore: RestorePlan | None = None  # set: production is restored in place (its URL stays; no platform call)
    like: str | None = None  # the app's current URL: the snapshot's URL follows its connection style


T = TypeVar("T")


@dataclass(frozen=True)
class Known:
    """What the caller has already read (a deploy's facts), so :func:`prepare` does not read it again."""

    production: ProductionInfo
    current: CurrentValue | None  # the platform's value; None when it could not say


@dataclass
class Outcome:
    snapshot: str
    healthy: bool
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds
    verdict: probes.Verdict | None = None
    divergence: list[dict[str, Any]] = field(default_factory=list)
    app_release: str | None = None  # the recorded app release brought back with the database


def plan_in_place(
    loaded: LoadedConfig, provider: Provider, snapshot: str | None, *, at: datetime | None = None
) -> RestorePlan | None:
    """The in-place restore to use, or None to repoint. ``strategy = "restore"`` that cannot be done is refused
    here, before anything changes, with the reason and the fix; ``auto`` restores only from production's own
    history (the kept failed state then stays deletable) and repoints otherwise."""
    strategy = loaded.config.rollback.strategy
    if strategy == "repoint":
        return None
    plan = provider.plan_restore(snapshot, at=at)
    if plan.possible and (strategy == "restore" or plan.own_history):
        return plan
    if strategy == "restore":
        raise PreconditionError(
            f"cannot restore production in place: {plan.reason or 'the restore would read another branch'}",
            hint=plan.fix or 'use [rollback] strategy = "auto" or "repoint"',
        )
    return None


def prepare(
    loaded: LoadedConfig, provider: Provider, platform: Platform, snapshot: str, *, serve: bool = True,
    at: datetime | None = None, plan: RestorePlan | None = None, decided: bool = False, known: Known | None = None,
) -> Prepared:
    """Resolve the snapshot's URL (making it able to serve) and the platform's ids, before anything changes.
    ``plan`` (``decided``: as the caller's :func:`plan_in_place` found; else found here): restore in place,
    and nothing on the platform is needed. ``known``: production and the platform's value, already read."""
    t0 = time.monotonic()
    if not decided:
        plan = plan_in_place(loaded, provider, None if at is not None else snapshot, at=at)
    prod = known.production if known is not None else provider.production()
    if plan is not None:
        # production keeps its URL: the platform is needed only to record the live release (code rollback)
        release = None
        if wants_release(loaded, platform):
            try:
                platform.prepare()
            except DeploysafeError as e:  # the restore needs no platform: only the code half is lost
                console.warn(f"{platform.name}: cannot record the live release ({e.message}); a restore in place "
                             "will move only the database")
            else:
                release = _live_release(loaded, platform)
        return Prepared(snapshot, prod.url, None, prod.name, time.monotonic() - t0, release, restore=plan)
    platform.prepare()
    previous = known.current if known is not None else _read_current(platform)
    like = previous.value if previous is not None and previous.readable and not previous.reference else None
    url = None
    if serve:
        provider.ensure_serving(snapshot)
        url = provider.connection_url(snapshot, like=like)
    return Prepared(snapshot, url, previous, prod.name, time.monotonic() - t0, _live_release(loaded, platform),
                    like=like)


def _read_current(platform: Platform) -> CurrentValue | None:
    try:
        return platform.read_current()
    except DeploysafeError:
        return None


def wants_release(loaded: LoadedConfig, platform: Platform) -> bool:
    """Whether a rollback may bring back the app's code: [rollback] app = "auto" and the platform can."""
    return loaded.config.rollback.app == "auto" and platform.release_rollback() is not None


def _live_release(loaded: LoadedConfig, platform: Platform) -> Release | None:
    """The app release live now, when a rollback may have to bring it back ([rollback] app = "auto" and the
    platform can); None otherwise or when the platform cannot say (the plan said the code may not come back)."""
    if not wants_release(loaded, platform):
        return None
    try:
        return platform.describe()
    except DeploysafeError:
        return None


def app_plan(loaded: LoadedConfig, platform: Platform) -> str:
    """What a rollback does with the app's code, for the plan (``deploy --dry-run``) and its warnings. No I/O."""
    if loaded.config.rollback.app == "keep":
        return 'app code: kept as it is on rollback ([rollback] app = "keep"): only the database moves'
    capability = platform.release_rollback()
    if capability is None:
        p = loaded.config.platform
        fix = platform.release_rollback_fix()
        fix = f" ({fix})" if fix else ""
        return (
            f"app code: NOT rolled back: {p.type} cannot bring back a previous release{fix}; if the deploy ships "
            "new code, a rollback moves only the database"
        )
    return (
        "app code: if the live release changes during the deploy, a rollback brings the recorded one back with the "
        f"database: {capability.how()}"
    )


def manual_steps(
    loaded: LoadedConfig, prepared: Prepared, done: list[str], *, back_to: Release | None = None
) -> list[str]:
    """The steps a person must still do, with the real names filled in (never a password)."""
    p = loaded.config.platform
    steps: list[str] = []
    if back_to is not None and "app" not in done:
        steps.append(
            f"Bring back the app release that was live before the deploy ({back_to.id}"
            + (f", code {back_to.code}" if back_to.code and back_to.code != back_to.id else "")
            + f") on {p.type}: the new code expects the new schema."
        )
    if "set" not in done:
        if p.type == "dotenv":
            where = f"in {loaded.resolve(p.env_file or '.env')}"
        elif p.type == "command":
            where = "with your set command"
        else:
            where = f"on {p.type} (production environment)"
        steps.append(
            f"Set {p.var} {where} to the connection string of snapshot {prepared.snapshot!r} "
            f"(`deploysafe snapshot list` shows it; the Neon console or your server gives its password)."
        )
    if "pick_up" not in done:
        if p.restart:
            steps.append(f"Restart the app: {p.restart}")
        elif p.type not in ("dotenv", "command"):
            steps.append(f"Redeploy the app on {p.type} so it reads the new {p.var}.")
        else:
            steps.append("Restart the app so it reads the new value.")
    # name the snapshot here too: once "set" is done the steps above no longer say where the app should be
    steps.append(f"Check the app is healthy on snapshot {prepared.snapshot!r}: deploysafe probe")
    steps.append(
        f"Keep {prepared.failed_state!r}: it holds the failed production state and the writes made since the snapshot."
    )
    return steps


def plan_steps(*, restore: bool, serve: bool, app_check: bool, code_back: bool) -> tuple[str, ...]:
    """The ``rollback.<step>`` names a rollback runs, in order (pure: ``rollback --dry-run`` prints these).
    ``restore``: production restored in place, else the app repointed; ``serve``: the snapshot's compute is made
    at rollback time (lazy); ``app_check``: the live release was recorded ([rollback] app = "auto" on a platform
    that can bring it back); ``code_back``: the check found it changed, so the recorded release comes back too."""
    if restore:
        names = ["restore", *(["app", "wait_live"] if code_back else [])]
    else:
        names = [*(["serve"] if serve else []), "hold", *([] if code_back else ["set"]),
                 "app" if code_back else "pick_up", "wait_live"]
    return tuple(f"rollback.{n}" for n in [*(["app_check"] if app_check else []), *names, "probes"])


@dataclass
class _Rollback:
    """One rollback being executed: its inputs, and what its steps settled so far."""

    loaded: LoadedConfig
    provider: Provider
    platform: Platform
    prepared: Prepared
    journal: Journal
    outcome: Outcome
    done: list[str] = field(default_factory=list)  # what the manual steps no longer need ("set", "pick_up", "app")
    back_to: Release | None = None  # the recorded release to bring back (the live one changed)
    running: str | None = None  # the release live when the rollback began
    release: Release | None = None  # what the app half made live (wait_live waits for it)
    verdict: probes.Verdict | None = None

    def timed(self, step: str, fn: Callable[[], T], **details: object) -> T:
        return journaled(self.journal, time, f"rollback.{step}", lambda h: fn(),
                         lambda s: self.outcome.timings.__setitem__(step, s),
                         snapshot=self.prepared.snapshot, **details)

    def run(self, steps: list[Step]) -> None:
        """Run the steps through the shared executor; the first failure is RollbackFailed with what is left."""

        def one(step: Step) -> None:
            self.timed(step.name, step.action, **step.details())
            if step.after is not None:
                step.after()

        def failed(step: Step, e: BaseException) -> None:
            assert isinstance(e, DeploysafeError)
            raise RollbackFailed(
                f"rollback to {self.prepared.snapshot!r} failed at step '{step.name}': {e.message}",
                manual_steps=manual_steps(self.loaded, self.prepared, self.done, back_to=self.back_to),
            ) from e

        run_steps(steps, run=one, checkpoint=lambda: None, on_failure=failed, failures=(DeploysafeError,))


def execute(
    loaded: LoadedConfig,
    provider: Provider,
    platform: Platform,
    prepared: Prepared,
    journal: Journal,
    *,
    verdict_at: float | None = None,
    analyse: Analyse = probes.analyse,
) -> Outcome:
    """Repoint, pick up, wait until live, probe (or, with ``prepared.restore``, restore production in place and
    probe): the steps :func:`plan_steps` names, run by the shared executor. RollbackFailed (exit 4) with manual
    steps on any failure."""
    rb = _Rollback(loaded, provider, platform, prepared, journal, Outcome(prepared.snapshot, healthy=False))
    if prepared.app_release is not None:
        rb.run([_app_check(rb)])
    if prepared.restore is not None:
        production_name = prepared.failed_state
        try:
            rb.run(_restore_steps(rb, analyse))
            return _judge(rb, verdict_at, f"production restored to {prepared.snapshot!r}",
                          [f"Keep {prepared.failed_state!r}: it holds the failed production state and the writes "
                           "made since the snapshot."])
        finally:
            # the app still points at production: recorded after the probes, off the critical path
            record_repoint(provider, production_name, journal)
    rb.run(_repoint_steps(rb, analyse))
    return _judge(rb, verdict_at, f"snapshot {prepared.snapshot!r}",
                  manual_steps(loaded, prepared, rb.done, back_to=rb.back_to)[-2:])


def _app_check(rb: _Rollback) -> Step:
    """Whether the app's live release changed since it was recorded (then the recorded one comes back too)."""
    recorded = rb.prepared.app_release
    assert recorded is not None  # set by prepare only with app = "auto" on a platform that can bring it back

    def check() -> None:
        now = rb.platform.describe()
        if now is not None and now.runs == recorded.runs:
            rb.running = now.id  # same code as before the deploy: the database half is all there is to do
            return
        rb.back_to, rb.running = recorded, now.id if now else None

    return Step("app_check", check, lambda: {"recorded": recorded.id, "code": recorded.code})


def _restore_steps(rb: _Rollback, analyse: Analyse) -> list[Step]:
    """Restore production in place: its connection string stays, so no platform call unless the code comes back
    too; the app's connections drop and reconnect. The failed state is kept under a deploysafe name."""
    plan = rb.prepared.restore
    assert plan is not None
    preserved = failed_state_name(plan.target, datetime.now(UTC))

    def restored() -> None:
        rb.prepared.failed_state = preserved  # production's name now holds the snapshot's data
        rb.done.append("set")  # production's URL already serves the snapshot's data

    steps = [Step(
        "restore", lambda: rb.provider.restore_in_place(plan, preserved),
        lambda: {"preserved_as": preserved, "source": plan.source, "lsn": plan.source_lsn,
                 "at": plan.source_timestamp.isoformat() if plan.source_timestamp else None},
        restored)]
    if rb.back_to is not None:  # the code changed during the deploy: bring it back too (the URL did not change)
        steps += _app_half(rb, None)
    assert rb.prepared.url is not None
    return [*steps, _probes(rb, rb.prepared.url, analyse)]


def _repoint_steps(rb: _Rollback, analyse: Analyse) -> list[Step]:
    prepared, provider = rb.prepared, rb.provider
    steps: list[Step] = []
    if prepared.url is None:  # lazy: the snapshot's compute is made now, on the critical path

        def serve() -> None:
            provider.ensure_serving(prepared.snapshot)
            prepared.url = provider.connection_url(prepared.snapshot, like=prepared.like)

        steps.append(Step("serve", serve))

    def url() -> str:
        assert prepared.url is not None
        return prepared.url

    def recorded() -> None:  # before the code half sets the variable too: if it stops halfway, the snapshot is kept
        record_repoint(provider, prepared.snapshot, rb.journal)

    def set_done() -> None:
        rb.done.append("set")
        rb.journal.event(REPOINT_STEP, "ok", target=prepared.snapshot, previous=prepared.failed_state)
        recorded()

    # the app moves onto the snapshot now: its server-side expiry must not delete it under the app
    steps.append(Step("hold", lambda: provider.hold(prepared.snapshot),
                              after=recorded if rb.back_to is not None else None))
    if rb.back_to is None:
        var = rb.loaded.config.platform.var
        steps.append(Step("set", lambda: rb.platform.set_url(url()), lambda: {"var": var}, set_done))
    return [*steps, *_app_half(rb, url), _probes(rb, None, analyse, url)]


def _app_half(rb: _Rollback, new_url: Callable[[], str] | None) -> list[Step]:
    """Make the app pick up the database half: a restart/redeploy of what runs now, or, when the live release
    changed during the deploy, the recorded release brought back (with ``new_url`` set, in the platform's order);
    then wait until what it made live is live."""
    capability, back_to = rb.platform.release_rollback(), rb.back_to

    def picked(release: Release) -> None:
        rb.release = release

    if back_to is None or capability is None:
        half = Step("pick_up", lambda: picked(rb.platform.pick_up()), after=lambda: rb.done.append("pick_up"))
    else:
        var = rb.loaded.config.platform.var if new_url else None

        def returned() -> None:
            rb.done.extend(["set", "app"])
            rb.outcome.app_release = back_to.id
            if new_url:
                rb.journal.event(REPOINT_STEP, "ok", target=rb.prepared.snapshot, previous=rb.prepared.failed_state)
            rb.done.append("pick_up")

        half = Step(
            "app", lambda: picked(capability.return_to(back_to, new_url() if new_url else None)),
            lambda: {"release_from": rb.running, "release_to": back_to.id, "code_to": back_to.code, "sets": var},
            returned)

    def live() -> None:
        assert rb.release is not None
        rb.platform.wait_live(rb.release, rb.loaded.config.platform.ready_timeout)

    return [half, Step("wait_live", live, lambda: {"release": rb.release.id if rb.release else None})]


def _probes(rb: _Rollback, url: str | None, analyse: Analyse, lazy: Callable[[], str] | None = None) -> Step:
    """The rollback's last step: probes against the app's database (judged by :func:`_judge`)."""

    def probe() -> None:
        target = url if url is not None else lazy() if lazy is not None else None
        assert target is not None
        rb.verdict = analyse(rb.loaded.config.probes, target, journal=rb.journal, phase="rollback.probe")

    return Step("probes", probe)


def _judge(rb: _Rollback, verdict_at: float | None, where: str, steps: list[str]) -> Outcome:
    """Probes prove the app healthy, or RollbackFailed with what is left to do."""
    verdict, outcome = rb.verdict, rb.outcome
    assert verdict is not None
    outcome.verdict = verdict
    outcome.healthy = verdict.healthy
    if verdict_at is not None:
        outcome.timings["verdict_to_healthy"] = time.monotonic() - verdict_at
    if not verdict.healthy:
        raise RollbackFailed(
            f"the app is not healthy on {where} either: {verdict.reason}",
            manual_steps=["Look at the app's logs: the failure may not be the database.", *steps],
        )
    return outcome


def record_repoint(provider: Provider, target: str, journal: Journal) -> None:
    """Record the new target with the provider, for runners without this journal; a failure only warns."""
    why = record_target(provider, target)
    if why:
        console.warn(f"the app now points at {target!r}, but that could not be recorded with the provider: {why}")
        journal.event("record-target", "failed", target=target, error=why)


def resolve_target(provider: Provider, to: str | None) -> str:
    """``--to`` as given, else the newest pre-deploy snapshot."""
    if to:
        snap = provider.get(to)
        if snap.is_production:
            raise PreconditionError(f"{to!r} is production itself", hint="name a snapshot: `deploysafe snapshot list`")
        return snap.name
    pre = [s for s in provider.list_snapshots() if s.ours and s.kind is SnapshotKind.PRE_DEPLOY and not s.is_production]
    if not pre:
        raise PreconditionError(
            "there is no pre-deploy snapshot to roll back to", hint="name one with --to, or use --at TIMESTAMP (Neon)"
        )
    return max(pre, key=lambda s: s.created_at).name
