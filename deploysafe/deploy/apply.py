"""The deploy executor: walks a :class:`~deploysafe.deploy.plan.Plan`'s steps in order.

Each step's name maps to one action here (:data:`ACTIONS`); the shared executor
(:func:`deploysafe.deploy.steps.run_steps`) walks them, each journaled and timed (:func:`timed`),
checking for an interruption between steps (:func:`_checkpoint`, the one place), and when a step fails runs the undo the plan named: nothing before production
changed (exit 3; the snapshot is kept), the rollback after (exit 1, or 4 when a person must
act). Everything it reaches beyond the provider and the platform comes in as :class:`Tools`,
so tests hand it doubles instead of patching modules.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from deploysafe.console import console
from deploysafe.deploy import diverge, probes, rollback, watch
from deploysafe.deploy.outcome import Outcome, Summary
from deploysafe.deploy.plan import Plan, Step, Undo
from deploysafe.deploy.steps import journaled, run_steps
from deploysafe.drizzle import lint, migrator
from deploysafe.drizzle import steps as migrate
from deploysafe.durations import format_duration
from deploysafe.errors import DeployFailedRolledBack, DeploysafeError, Interrupted, RollbackFailed, StepError
from deploysafe.journal import Journal, StepHandle
from deploysafe.lock import deploy_lock
from deploysafe.process import run_step
from deploysafe.providers.base import SnapshotKind
from deploysafe.snapshots.manage import carry_out, ensure_headroom
from deploysafe.snapshots.retention import PrunePlan

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.deploy.facts import Clock, DeployOptions, Facts
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider

T = TypeVar("T")


class Untouched(Protocol):
    """Run a step that must not touch production, and prove it did not (:func:`deploysafe.drizzle.steps.untouched`)."""

    def __call__(self, loaded: LoadedConfig, production_url: str, step: str, fn: Callable[[], T]) -> T: ...


def app_deploy(loaded: LoadedConfig, database_url: str) -> None:
    """``[deploy] app_deploy``: ship the app's code; a failure is after production changed."""
    cmd = loaded.config.deploy.app_deploy
    assert cmd is not None
    result = run_step("app_deploy", cmd, cwd=loaded.app_dir, env={"DATABASE_URL": database_url},
                      timeout=loaded.config.deploy.app_deploy_timeout, on_line=console.detail,
                      pass_env=loaded.config.app.pass_env)
    if result.exit_code != 0:
        raise StepError(f"[deploy] app_deploy exited {result.exit_code}", step="app_deploy", production_changed=True)


def pending_migration_files(loaded: LoadedConfig, database_url: str, new_files: list[Path]) -> list[Path]:
    """workflow = migrate: every migration the migrate command will apply (journal entries not yet in the
    migrations table), whoever generated it and whenever, plus what generate wrote in this run."""
    folder = migrate.migrations_dir(loaded)
    state = migrator.state(loaded, database_url, folder)
    pending = [folder / f"{e.tag}.sql" for e in state.pending]
    return [*dict.fromkeys([*(p for p in pending if p.is_file()), *new_files])]


@dataclass(frozen=True)
class Tools:
    """What the executor reaches beyond the provider and the platform (production defaults)."""

    lock: Callable[..., AbstractContextManager[object]] = deploy_lock
    generate: Callable[..., migrate.GenerateResult] = migrate.generate
    plan_push: Callable[..., migrate.PushPlan] = migrate.plan_push
    apply: Callable[..., migrate.PushResult] = migrate.apply  # push or migrate, as [app] workflow says
    untouched: Untouched = migrate.untouched
    pending: Callable[[LoadedConfig, str, list[Path]], list[Path]] = pending_migration_files
    lint: Callable[..., lint.LintReport] = lint.lint_change
    analyse: probes.Analyse = probes.analyse
    watch: Callable[[LoadedConfig, str, Journal, float], probes.Verdict] = watch.watch_window
    diverge: Callable[[str, str], list[dict[str, Any]]] = diverge.rows_only_in_failed
    app_deploy: Callable[[LoadedConfig, str], None] = app_deploy


class _Interrupt:
    """Signals during a deploy (issues 4, 15).

    Ctrl-C (SIGINT): finish the current step, then stop; a second Ctrl-C stops now.
    SIGTERM and SIGHUP (a cancelled CI job, a closed terminal): stop now. Stopping raises in the
    main thread, so the running step's whole process group is ended at once (``process.run_step``);
    the deploy then rolls back if production changed. Once stopping has begun, further signals
    only warn: the rollback they would cut short is what keeps production up. GitHub Actions
    cancels with SIGINT, SIGTERM about 7.5 s later, then SIGKILL; if that comes first, the
    journal's ``running`` lines say where the rollback stopped and ``deploysafe status`` says
    what to run.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.requested = False
        self.stopping = False  # stop-now raised (or the rollback began): later signals only warn
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Interrupt:
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stopping:
            console.warn(f"{name} received: finishing what production needs first (the rollback, if any)")
            return
        if signum == signal.SIGINT and not self.requested:
            self.requested = True
            console.warn("interrupt received: stopping after the current step (Ctrl-C again to stop now)")
            return
        self.requested = self.stopping = True
        if signum == signal.SIGINT:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        console.warn(f"{name} received: stopping now")
        raise Interrupted(f"deploy stopped by {name}")

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class Run:
    """One deploy being executed: its inputs, and what its steps found so far."""

    loaded: LoadedConfig
    opts: DeployOptions
    provider: Provider
    platform: Platform
    journal: Journal
    summary: Summary
    plan: Plan
    facts: Facts
    prune: PrunePlan  # planned once, in preflight: plan.prune names these deletions
    tools: Tools
    clock: Clock
    stack: ExitStack = field(default_factory=ExitStack)  # the lock and the signal handlers, released at the end
    interrupt: _Interrupt | None = None  # set once the lock is held: the guarded part has begun
    prepared: rollback.Prepared | None = None
    generated: migrate.GenerateResult | None = None
    planned: list[str] = field(default_factory=list)  # what push's dry run listed
    deleted_early: set[str] = field(default_factory=set)  # expired snapshots deleted to make room (Neon's limit)
    production_changed: bool = False
    verdict: probes.Verdict | None = None
    verdict_at: float | None = None

    @property
    def production_url(self) -> str:
        return self.facts.production.url


class _Unhealthy(Exception):
    """Probes decided the app is unhealthy after the migration."""


def timed(summary: Summary, journal: Journal, clock: Clock, name: str, fn: Callable[[StepHandle], T]) -> T:
    """Run one step: journaled, timed, shown, and in the summary's timeline."""
    entry: dict[str, Any] = {"step": name, "outcome": "running"}
    summary.timeline.append(entry)
    console.info(f"→ {name}")
    handles: list[StepHandle] = []

    def body(h: StepHandle) -> T:
        handles.append(h)
        return fn(h)

    def took(seconds: float) -> None:
        entry["seconds"] = round(seconds, 3)

    with console.group(name):
        try:
            result = journaled(journal, clock, name, body, took)
        except BaseException as e:
            entry.update(outcome="failed", error=str(e).split("\n")[0])
            raise
    entry["outcome"] = handles[0].outcome
    if handles[0].outcome == "ok":  # a step may finish yet fail (probes: unhealthy); never print it as done
        console.ok(f"{name} ({format_duration(entry['seconds'])})")
    return result


# --- the executor ----------------------------------------------------------------------------------------


def execute(run: Run) -> Summary:
    """Walk the plan; the summary says how it ended (``failure`` set: the error the command ends with)."""
    with run.stack:
        failed = run_steps(run.plan.steps, run=lambda step: _run_step(run, step), checkpoint=lambda: _checkpoint(run),
                           on_failure=lambda step, e: _stopped(run, step, e),
                           failures=(_Unhealthy, DeploysafeError, KeyboardInterrupt))
        if failed is not None:
            return failed
    run.summary.outcome = Outcome.OK
    run.journal.event("result", "ok", outcome=run.summary.outcome.value, exit_code=0, snapshot=run.plan.snapshot)
    return run.summary


def _stopped(run: Run, step: Step, e: BaseException) -> Summary:
    """The walk stopped at ``step``: run the undo it names, unless the guarded part had not begun or is over."""
    if run.interrupt is None or not step.fails_deploy:  # the lock was never held, or the deploy is done
        raise e
    return _failed(run, step, e)


def _checkpoint(run: Run) -> None:
    """Between steps: a Ctrl-C asked to stop after the step that was running."""
    if run.interrupt is not None and run.interrupt.requested:
        raise Interrupted("deploy interrupted by the user")


def _run_step(run: Run, step: Step) -> None:
    run.summary.steps_run.append(step.name)
    action, report = ACTIONS[step.name]
    if step.changes_production:
        # production may change from here: a journal that cannot be written does not stop the run
        run.journal.strict = False
    try:
        if step.journaled:
            timed(run.summary, run.journal, run.clock, step.name, lambda h: action(run, h))
        else:
            action(run, StepHandle(step.name))
    except DeploysafeError as e:
        if not step.fails_deploy:
            console.warn(f"{step.name} failed: {e.message}")
            return
        _note_change(run, step, e)
        raise
    if step.changes_production:
        run.production_changed = True
        run.journal.event("production_changed", "ok", snapshot=run.plan.snapshot)
    if report is not None:
        report(run)
    if run.verdict is not None and not run.verdict.healthy:
        run.verdict_at = run.clock.monotonic()
        raise _Unhealthy(run.verdict.reason)


def _note_change(run: Run, step: Step, e: DeploysafeError) -> None:
    """A step that changes production failed: did it change it anyway?"""
    if not step.changes_production:
        return
    if isinstance(e, StepError) and e.production_changed:
        run.production_changed = True
    elif isinstance(e, Interrupted) and e.context.get("production_changed", True):
        run.production_changed = True  # stopped mid-push: migrate.push compared the schema after ending it


# --- the steps -------------------------------------------------------------------------------------------


def _lock(run: Run, h: StepHandle) -> None:
    prod = run.facts.production
    run.stack.enter_context(run.tools.lock(run.loaded.state_dir, run.provider.lock_url(prod.url), prod.id,
                                           run_id=run.journal.run_id, command="deploy"))
    run.interrupt = run.stack.enter_context(_Interrupt())


def _snapshot(run: Run, h: StepHandle) -> None:
    loaded, provider, platform = run.loaded, run.provider, run.platform
    made_room = ensure_headroom(loaded, provider, platform, needed=1, journal=run.journal, now=run.facts.now,
                                facts=run.facts.for_snapshots())
    run.deleted_early = {s.name for s, _ in made_room.deleted}
    eager = loaded.config.provider.snapshot_endpoint == "eager"
    snap = provider.create_snapshot(run.plan.snapshot, SnapshotKind.PRE_DEPLOY, git_sha=run.facts.sha, serve=eager)
    h.details["snapshot"] = snap.name
    prepared = rollback.prepare(loaded, provider, platform, snap.name, serve=eager, known=run.facts.known)
    h.details["prepare_s"] = round(prepared.prepare_s, 3)
    if prepared.app_release is not None:  # what a rollback brings back if the app's release changes
        h.details["app_release"] = prepared.app_release.id
    run.prepared = prepared


def _generate(run: Run, h: StepHandle) -> None:
    # generate needs no database; it gets production's URL (drizzle-kit may insist on one) and must not change it
    loaded, url = run.loaded, run.production_url
    run.generated = run.tools.untouched(
        loaded, url, "generate", lambda: run.tools.generate(loaded, url, on_line=console.detail))


def _show_generated(run: Run) -> None:
    gen = run.generated
    assert gen is not None
    run.summary.new_files = [str(p) for p in gen.new_files]
    for f in gen.new_files:
        shown = f"{f.parent.name}/{f.name}" if f.name == "migration.sql" else f.name  # 1.0: a folder each
        console.info(f"new migration: {shown}" + (" (the whole schema: not judged as the change)"
                                                 if gen.baseline else ""))
    if gen.sql.strip() and not gen.baseline:
        console.plain(gen.sql.strip())


def _lint(run: Run, h: StepHandle) -> None:
    gen = run.generated
    assert gen is not None
    if run.loaded.config.app.workflow == "migrate":
        _judge_sql(run, h, run.tools.pending(run.loaded, run.production_url, gen.new_files), "")
        return
    # Lint what push will run (a read-only dry run), not only the files generate wrote.
    push_plan = run.tools.plan_push(run.loaded, run.production_url, on_line=console.detail)
    run.planned.extend(push_plan.statements)
    h.details["planned_statements"] = len(push_plan.statements)
    if not push_plan.understood:
        console.warn(f"`{push_plan.step.command}` listed no statements and did not say \"No changes "
                     "detected\": linting only the new migration files")
    _judge_sql(run, h, [] if gen.baseline else list(gen.new_files), push_plan.sql)
    if push_plan.failure is not None:
        raise push_plan.failure


def _judge_sql(run: Run, h: StepHandle, files: list[Path], planned_sql: str) -> None:
    report = run.tools.lint(files, planned_sql, folder=migrate.migrations_dir(run.loaded))
    run.summary.lint = [f.__dict__ for f in report.findings]
    h.details["findings"] = len(report.findings)
    for f in lint.enforce(report, run.loaded.config.lint.destructive, run.opts.allow_destructive):
        console.warn(f"{f.file}:{f.line} {f.severity} {f.rule}: {f.message} ({f.url})")


def _rehearse(run: Run, h: StepHandle) -> None:
    """Push against a throwaway copy first, so a migration that fails on real data fails before production."""
    run.tools.untouched(run.loaded, run.production_url, "rehearse", lambda: _rehearse_on_copy(run))


def _rehearse_on_copy(run: Run) -> None:
    provider = run.provider
    name = f"rehearse-{run.plan.snapshot}"[:200]
    provider.create_snapshot(name, SnapshotKind.DRILL, serve=True)
    try:
        run.tools.apply(run.loaded, provider.connection_url(name), on_line=console.detail)
    except StepError as e:
        raise StepError(f"rehearsal failed on a copy of production: {e.message}", step="rehearse",
                        hint=e.hint or "fix the migration; production was not touched") from None
    finally:
        provider.delete(name)


def _push(run: Run, h: StepHandle) -> None:
    result = run.tools.apply(run.loaded, run.production_url, on_line=console.detail, planned=run.planned)
    if result.unverified_reason:
        h.details["unverified"] = result.unverified_reason
        console.warn(f"push applied its statements but is unverified ({result.unverified_reason}); "
                     "the probes decide")


def _app(run: Run, h: StepHandle) -> None:
    run.tools.app_deploy(run.loaded, run.production_url)


def _probes(run: Run, h: StepHandle) -> None:
    verdict = run.tools.analyse(run.loaded.config.probes, run.production_url, journal=run.journal,
                                on_attempt=_show_attempt)
    (console.ok if verdict.healthy else console.error)(
        f"probes: {'healthy' if verdict.healthy else 'UNHEALTHY'}: {verdict.reason}")
    _judged(run, h, verdict)


def _show_attempt(n: int, results: list[probes.ProbeResult]) -> None:
    bad = [f"{r.name}: {r.reason}" for r in results if not r.ok]
    console.detail(f"probe attempt {n}: " + ("all passed" if not bad else "; ".join(bad)))


def _watch(run: Run, h: StepHandle) -> None:
    assert run.opts.watch is not None
    _judged(run, h, run.tools.watch(run.loaded, run.production_url, run.journal, run.opts.watch))


def _judged(run: Run, h: StepHandle, verdict: probes.Verdict) -> None:
    """An unhealthy verdict makes its step 'failed' in the timeline and journal; the executor then rolls back."""
    run.verdict = verdict
    if not verdict.healthy:
        h.outcome = "failed"
        h.details["verdict"] = verdict.reason


def _prune(run: Run, h: StepHandle) -> None:
    """Delete exactly what the plan listed (planned in preflight, shown by --dry-run)."""
    planned = run.prune
    # what the plan listed, less what making room for the snapshot already deleted
    chosen = [d for d in planned.delete if d[0].name in run.plan.prune and d[0].name not in run.deleted_early]
    run.journal.event("prune-plan", dry_run=False, in_use=run.facts.in_use(run.opts),
                      in_use_source=run.facts.where.source, delete=[s.name for s, _ in chosen],
                      keep=len(planned.keep))
    done = carry_out(PrunePlan(delete=chosen, keep=list(planned.keep)), run.provider, run.journal)
    run.summary.pruned = [s.name for s, _ in done.deleted]
    for snap, why in done.failed:
        console.warn(f"prune could not delete {snap.name}: {why}")


Action = Callable[[Run, StepHandle], None]
ACTIONS: dict[str, tuple[Action, Callable[[Run], None] | None]] = {
    # step name -> (its action, what is shown once it is done)
    "lock": (_lock, None),
    "snapshot": (_snapshot, None),
    "generate": (_generate, _show_generated),
    "lint": (_lint, None),
    "rehearse": (_rehearse, None),
    "push": (_push, None),
    "app": (_app, None),
    "probes": (_probes, None),
    "watch": (_watch, None),
    "prune": (_prune, None),
}


# --- failure: the undo the plan named ----------------------------------------------------------------------


def _failed(run: Run, step: Step, e: BaseException) -> Summary:
    assert run.interrupt is not None
    run.interrupt.stopping = True  # from here a signal never cuts the rollback or the result line short
    if isinstance(e, StepError) and e.production_changed and not run.production_changed:
        run.production_changed = True  # e.g. generate or the rehearsal reached production
        run.journal.event("production_changed", "ok", snapshot=run.plan.snapshot, step=e.step)
    if not run.production_changed:
        return _failed_before_change(run, step, e)
    run.summary.undo = Undo.ROLLBACK if run.plan.rollback else None
    reason = str(e).split("\n")[0] if not isinstance(e, KeyboardInterrupt) else "interrupted"
    console.error(f"deploy failed after production changed: {reason}")
    prepared = run.prepared
    assert prepared is not None  # production changes only after the snapshot step prepared its rollback
    if not run.plan.rollback:
        run.summary.outcome = Outcome.NEEDS_PERSON
        run.summary.manual_steps = rollback.manual_steps(run.loaded, prepared, [])
        run.journal.event("result", "failed", outcome=run.summary.outcome.value, exit_code=4)
        return run.summary.fail(RollbackFailed(
            f"deploy failed after production changed ({reason}) and --no-rollback was given",
            manual_steps=run.summary.manual_steps))
    return _rollback(run, prepared, reason)


def _failed_before_change(run: Run, step: Step, e: BaseException) -> Summary:
    summary = run.summary
    summary.undo = step.on_failure if step.on_failure is Undo.KEEP else None
    summary.outcome = Outcome.FAILED_BEFORE_CHANGE
    summary.error = str(e)
    # the journaled code is the one the process exits with (Ctrl-C: 130, not 3)
    stopped = isinstance(e, (KeyboardInterrupt, Interrupted))
    run.journal.event("result", "failed", outcome=summary.outcome.value,
                      exit_code=Interrupted.exit_code if stopped else getattr(e, "exit_code", 3))
    if stopped:
        return summary.fail(Interrupted("deploy interrupted before production changed; nothing was changed"))
    if isinstance(e, DeploysafeError):
        return summary.fail(e)
    raise e  # _Unhealthy is raised only after production changed


def _rollback(run: Run, prepared: rollback.Prepared, reason: str) -> Summary:
    summary, journal = run.summary, run.journal
    console.warn(f"rolling back to {prepared.snapshot}")
    verdict_at = run.verdict_at or run.clock.monotonic()
    try:
        outcome = timed(summary, journal, run.clock, "rollback", lambda h: rollback.execute(
            run.loaded, run.provider, run.platform, prepared, journal, verdict_at=verdict_at, analyse=run.tools.analyse))
    except RollbackFailed as e:
        summary.outcome = Outcome.NEEDS_PERSON
        summary.error = e.message
        summary.manual_steps = e.manual_steps
        journal.event("result", "failed", outcome=summary.outcome.value, exit_code=4, error=e.message)
        return summary.fail(e)
    summary.rollback = {
        "snapshot": prepared.snapshot,
        "reason": reason,
        "seconds_verdict_to_healthy": round(outcome.timings.get("verdict_to_healthy", 0.0), 3),
        "timings": {k: round(v, 3) for k, v in outcome.timings.items()},
        "failed_state_kept": prepared.failed_state,
        "app_release": outcome.app_release,  # the recorded release brought back with the database, if any
    }
    try:
        if prepared.restore is None:  # after a restore in place the failed state has no compute to read
            summary.divergence = run.tools.diverge(run.provider.production().url, prepared.url or "")
    except DeploysafeError as e:
        console.warn(f"could not compare the failed state with the snapshot: {e.message}")
    summary.outcome = Outcome.ROLLED_BACK
    journal.event("result", "ok", outcome=summary.outcome.value, exit_code=1, rollback=summary.rollback)
    return summary.fail(DeployFailedRolledBack(
        f"deploy failed ({reason}); rolled back to {prepared.snapshot} in "
        f"{format_duration(summary.rollback['seconds_verdict_to_healthy'])}; the app is healthy on the snapshot; "
        f"{prepared.failed_state!r} is kept with the failed state",
    ))
