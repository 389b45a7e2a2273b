"""``deploysafe deploy``: the guarded deploy.

lock -> preflight -> pre-deploy snapshot (ready to serve, URL resolved) -> generate -> lint
-> [rehearse] -> push (verified) -> [app deploy] -> probes -> on failure rollback -> prune
-> summary. Production ends in one of three states, and the exit code says which:
migrated and healthy (0); rolled back and healthy on the snapshot (1); or a person must act
(4, with the manual steps). Failures before production changed exit 3 and touch nothing.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from deploysafe.console import console
from deploysafe.deploy.plan import Plan, plan_deploy
from deploysafe.durations import format_duration
from deploysafe.errors import (
    DeployFailedRolledBack,
    DeploysafeError,
    Interrupted,
    PreconditionError,
    RollbackFailed,
    StepError,
)
from deploysafe.journal import Journal

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider


@dataclass
class DeployOptions:
    sha: str | None = None
    dry_run: bool = False
    no_rollback: bool = False
    allow_destructive: bool = False
    rehearse: bool = False
    watch: float | None = None
    assume_production: bool = False  # the app runs on production, though nothing can tell (issue 15)


@dataclass
class Summary:
    run_id: str
    outcome: str = "running"  # deployed | rolled back | failed before production changed | needs a person
    exit_code: int = 0
    snapshot: str | None = None
    production: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    new_files: list[str] = field(default_factory=list)
    lint: list[dict[str, Any]] = field(default_factory=list)
    rollback: dict[str, Any] | None = None
    divergence: list[dict[str, Any]] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    error: str | None = None
    manual_steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Interrupt:
    """Signals during a deploy (issues 4, 15).

    Ctrl-C (SIGINT): finish the current step, then stop; a second Ctrl-C stops now.
    SIGTERM and SIGHUP (a cancelled CI job, a closed terminal): stop now. Stopping raises in the
    main thread, so the running step's whole process group is ended at once (``npm.run_step``);
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


def git_sha(explicit: str | None, cwd: Path) -> str | None:
    if explicit:
        return explicit
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        import git

        return str(git.Repo(cwd, search_parent_directories=True).head.commit.hexsha)
    except Exception:  # not a repo, no commits, git missing: the snapshot is named "nosha"
        return None


def deploy(loaded: LoadedConfig, opts: DeployOptions, *, provider: Provider | None = None,
           platform: Platform | None = None) -> Summary:
    from deploysafe.platforms import make_platform
    from deploysafe.providers import make_provider

    journal = Journal(loaded.state_dir, "deploy")
    summary = Summary(run_id=journal.run_id)
    provider = provider or make_provider(loaded)
    platform = platform or make_platform(loaded)
    try:
        return _run(loaded, opts, provider, platform, journal, summary)
    except DeploysafeError as e:
        e.context["summary"] = summary  # the CLI prints the summary whatever the outcome
        if summary.outcome == "running":
            summary.outcome = "failed before production changed" if e.exit_code == 3 else "failed"
            # preflight and lock failures end before _run writes a result: journal it, so `status` knows (issue 10)
            journal.event("result", "failed", outcome=summary.outcome, exit_code=e.exit_code)
        summary.exit_code = e.exit_code
        summary.error = summary.error or e.message
        raise
    finally:
        provider.close()
        platform.close()


def _timed(summary: Summary, journal: Journal, name: str, fn: Any, **details: Any) -> Any:
    t0 = time.monotonic()
    entry: dict[str, Any] = {"step": name, "outcome": "running"}
    summary.timeline.append(entry)
    console.info(f"→ {name}")
    with console.group(name):
        try:
            with journal.step(name, **details) as handle:
                result = fn(handle)
        except BaseException as e:
            entry.update(outcome="failed", seconds=round(time.monotonic() - t0, 3), error=str(e).split("\n")[0])
            raise
    entry.update(outcome=handle.outcome, seconds=round(time.monotonic() - t0, 3))
    if handle.outcome == "ok":  # a step may finish yet fail (probes: unhealthy); never print it as done
        console.ok(f"{name} ({format_duration(entry['seconds'])})")
    return result


def _preflight(loaded: LoadedConfig, opts: DeployOptions, provider: Provider, platform: Platform) -> tuple[Plan, Any]:
    from deploysafe.deploy.rollback import app_plan
    from deploysafe.drizzle.target import check
    from deploysafe.snapshots.inuse import app_points_at

    check(loaded)  # every step can be pointed at the database deploysafe chooses, or nothing runs
    prod = provider.production()
    caveats = platform.caveats()
    where = app_points_at(loaded, provider, platform)
    sha = git_sha(opts.sha, loaded.app_dir)
    from deploysafe.snapshots.manage import pre_deploy_name

    name = pre_deploy_name(datetime.now(UTC), sha)
    from deploysafe.snapshots.retention import plan_prune

    pp = plan_prune(provider.list_snapshots(), now=datetime.now(UTC), retention=loaded.config.retention,
                    in_use=where.name, production=prod.name, in_use_unknown=where.name is None)
    prune_names = [s.name for s, _ in pp.delete]
    plan = plan_deploy(
        loaded.config, snapshot=name, production=prod.name, app_points_at=where.name, caveats=caveats,
        prune=prune_names, rehearse=opts.rehearse, no_rollback=opts.no_rollback,
        allow_destructive=opts.allow_destructive, watch=opts.watch, app_rollback=app_plan(loaded, platform),
    )
    return plan, (prod, sha, where)


def _run(loaded: LoadedConfig, opts: DeployOptions, provider: Provider, platform: Platform, journal: Journal,
         summary: Summary) -> Summary:
    from deploysafe.deploy import rollback
    from deploysafe.drizzle import lint
    from deploysafe.drizzle import steps as migrate
    from deploysafe.lock import deploy_lock, lock_target
    from deploysafe.providers.base import SnapshotKind

    cfg = loaded.config
    plan, (prod, sha, where) = _timed(summary, journal, "preflight", lambda h: _preflight(loaded, opts, provider, platform))
    summary.production = prod.name
    summary.snapshot = plan.snapshot
    if opts.dry_run:
        console.plain(plan.render())
        summary.outcome = "dry run: nothing changed"
        journal.event("result", "ok", outcome=summary.outcome, dry_run=True)
        return summary
    for w in plan.warnings:
        console.warn(w)
    if where.name and where.name != prod.name:
        raise PreconditionError(
            f"the app points at {where.name!r}, not production {prod.name!r}; deploying would migrate a database "
            "the app does not use",
            hint="run `deploysafe promote` to make it production (or repoint the app), then deploy again",
        )
    _confirm_target(provider, prod.name, where, opts, journal)

    production_changed = False
    verdict_at: float | None = None
    with deploy_lock(loaded.state_dir, lock_target(provider.name, prod.url), prod.id,
                     run_id=journal.run_id, command="deploy"), _Interrupt() as intr:

        def checkpoint() -> None:
            if intr.requested:
                raise Interrupted("deploy interrupted by the user")

        def snapshot_step(h: Any) -> rollback.Prepared:
            from deploysafe.snapshots.manage import ensure_headroom

            ensure_headroom(loaded, provider, platform, needed=1, journal=journal)
            eager = cfg.provider.snapshot_endpoint == "eager"
            snap = provider.create_snapshot(plan.snapshot, SnapshotKind.PRE_DEPLOY, git_sha=sha, serve=eager)
            h.details["snapshot"] = snap.name
            prepared = rollback.prepare(loaded, provider, platform, snap.name, serve=eager)
            h.details["prepare_s"] = round(prepared.prepare_s, 3)
            if prepared.app_release is not None:  # what a rollback brings back if the app's release changes
                h.details["app_release"] = prepared.app_release.id
            return prepared

        try:
            prepared = _timed(summary, journal, "snapshot", snapshot_step)
            checkpoint()
            # generate needs no database; it gets production's URL (drizzle-kit may insist on one) and must not change it
            gen = _timed(summary, journal, "generate", lambda h: migrate.untouched(
                loaded, prod.url, "generate", lambda: migrate.generate(loaded, prod.url, on_line=console.detail)))
            summary.new_files = [str(p) for p in gen.new_files]
            for f in gen.new_files:
                shown = f"{f.parent.name}/{f.name}" if f.name == "migration.sql" else f.name  # 1.0: a folder each
                console.info(f"new migration: {shown}" + (" (the whole schema: not judged as the change)"
                                                         if gen.baseline else ""))
            if gen.sql.strip() and not gen.baseline:
                console.plain(gen.sql.strip())
            checkpoint()
            planned: list[str] = []

            def lint_step(h: Any) -> None:
                if cfg.app.workflow == "migrate":
                    _lint(h, _pending_migration_files(loaded, prod.url, gen.new_files), "")
                    return
                # Lint what push will run (a read-only dry run), not only the files generate wrote (issue 14).
                push_plan = migrate.plan_push(loaded, prod.url, on_line=console.detail)
                planned.extend(push_plan.statements)
                h.details["planned_statements"] = len(push_plan.statements)
                if not push_plan.understood:
                    console.warn(f"`{push_plan.step.command}` listed no statements and did not say \"No changes "
                                 "detected\": linting only the new migration files")
                _lint(h, [] if gen.baseline else list(gen.new_files), push_plan.sql)
                if push_plan.failure is not None:
                    raise push_plan.failure

            def _lint(h: Any, files: list[Path], planned_sql: str) -> None:
                report = lint.lint_change(files, planned_sql, folder=migrate.migrations_dir(loaded))
                summary.lint = [f.__dict__ for f in report.findings]
                h.details["findings"] = len(report.findings)
                for f in lint.enforce(report, cfg.lint.destructive, opts.allow_destructive):
                    console.warn(f"{f.file}:{f.line} {f.severity} {f.rule}: {f.message} ({f.url})")

            _timed(summary, journal, "lint", lint_step)
            checkpoint()
            if opts.rehearse:
                _timed(summary, journal, "rehearse", lambda h: migrate.untouched(
                    loaded, prod.url, "rehearse", lambda: _rehearse(loaded, provider, plan.snapshot)))
                checkpoint()

            def push_step(h: Any) -> None:
                result = migrate.apply(loaded, prod.url, on_line=console.detail, planned=planned)
                if result.unverified_reason:
                    h.details["unverified"] = result.unverified_reason
                    console.warn(f"push applied its statements but is unverified ({result.unverified_reason}); "
                                 "the probes decide")

            # production may change from here: a journal that cannot be written no longer stops the run (issue 15)
            journal.strict = False
            try:
                _timed(summary, journal, "push", push_step)
            except StepError as e:
                if e.production_changed:
                    production_changed = True
                raise
            except Interrupted as e:  # stopped mid-push: migrate.push compared the schema after ending it
                if e.context.get("production_changed", True):
                    production_changed = True
                raise
            production_changed = True
            journal.event("production_changed", "ok", snapshot=plan.snapshot)
            checkpoint()
            if cfg.deploy.app_deploy:
                _timed(summary, journal, "app", lambda h: _app_deploy(loaded, prod.url))
                checkpoint()
            verdict = _timed(summary, journal, "probes", lambda h: _judged(h, _probe(loaded, prod.url, journal)))
            if verdict.healthy and opts.watch:
                verdict = _timed(summary, journal, "watch",
                                 lambda h: _judged(h, _watch(loaded, prod.url, journal, opts.watch)))
            if not verdict.healthy:
                verdict_at = time.monotonic()
                raise _Unhealthy(verdict.reason)
            checkpoint()
        except (_Unhealthy, StepError, DeploysafeError, KeyboardInterrupt) as e:
            intr.stopping = True  # from here a signal never cuts the rollback or the result line short
            if isinstance(e, StepError) and e.production_changed and not production_changed:
                production_changed = True  # e.g. generate or the rehearsal reached production
                journal.event("production_changed", "ok", snapshot=plan.snapshot, step=e.step)
            if not production_changed:
                summary.outcome = "failed before production changed"
                summary.error = str(e)
                # the journaled code is the one the process exits with (Ctrl-C: 130, not 3)
                stopped = isinstance(e, (KeyboardInterrupt, Interrupted))
                journal.event("result", "failed", outcome=summary.outcome,
                              exit_code=Interrupted.exit_code if stopped else getattr(e, "exit_code", 3))
                if stopped:
                    raise Interrupted("deploy interrupted before production changed; nothing was changed") from None
                raise
            reason = str(e).split("\n")[0] if not isinstance(e, KeyboardInterrupt) else "interrupted"
            console.error(f"deploy failed after production changed: {reason}")
            if opts.no_rollback:
                summary.outcome = "needs a person"
                steps = rollback.manual_steps(loaded, prepared, [])
                summary.manual_steps = steps
                journal.event("result", "failed", outcome=summary.outcome, exit_code=4)
                raise RollbackFailed(
                    f"deploy failed after production changed ({reason}) and --no-rollback was given", manual_steps=steps
                ) from None
            return _rollback(loaded, provider, platform, prepared, journal, summary, reason, verdict_at or time.monotonic())
        _prune(loaded, provider, platform, journal, summary)
    summary.outcome = "deployed"
    journal.event("result", "ok", outcome=summary.outcome, exit_code=0, snapshot=plan.snapshot)
    return summary


def _confirm_target(provider: Provider, production: str, where: Any, opts: DeployOptions, journal: Journal) -> None:
    """Fail closed when nobody can tell where the app points (issue 15); record production once it is known
    from this runner alone (journal) or from the user (--assume-production), so the next runner knows too."""
    from deploysafe.snapshots.inuse import record_target

    if where.name is None and opts.assume_production:
        console.warn(f"cannot tell where the app points ({where.detail}); assuming production {production!r} "
                     "as --assume-production says")
    if where.name is None and not opts.assume_production:
        raise PreconditionError(
            f"cannot tell where the app's DATABASE_URL points ({where.detail}); after a rollback it may run on a "
            f"snapshot, and migrating production {production!r} would then change a database the app does not use",
            hint=f"if the app runs on production {production!r}, run `deploysafe deploy --assume-production` once "
                 "(deploysafe then records it with the provider, for every runner); if it runs on a snapshot, "
                 "point it back or promote that snapshot first",
        )
    if where.source in ("unknown", "journal"):
        why = record_target(provider, production)
        journal.event("record-target", "failed" if why else "ok", target=production, source=where.source,
                      assumed=where.name is None, error=why)
        if why:
            console.warn(f"could not record with the provider that the app points at {production!r}: {why}")


class _Unhealthy(Exception):
    """Probes decided the app is unhealthy after the migration."""


def _judged(handle: Any, verdict: Any) -> Any:
    """An unhealthy verdict makes its step 'failed' in the timeline and journal (it used to read 'ok')."""
    if not verdict.healthy:
        handle.outcome = "failed"
        handle.details["verdict"] = verdict.reason
    return verdict


def _probe(loaded: LoadedConfig, url: str, journal: Journal) -> Any:
    from deploysafe.deploy.probes import analyse

    verdict = analyse(loaded.config.probes, url, journal=journal, on_attempt=_show_attempt)
    (console.ok if verdict.healthy else console.error)(f"probes: {'healthy' if verdict.healthy else 'UNHEALTHY'}: {verdict.reason}")
    return verdict


def _show_attempt(n: int, results: list[Any]) -> None:
    bad = [f"{r.name}: {r.reason}" for r in results if not r.ok]
    console.detail(f"probe attempt {n}: " + ("all passed" if not bad else "; ".join(bad)))


def _watch(loaded: LoadedConfig, url: str, journal: Journal, seconds: float) -> Any:
    from deploysafe.deploy.watch import watch_window

    return watch_window(loaded, url, journal, seconds)


def _pending_migration_files(loaded: LoadedConfig, database_url: str, new_files: list[Path]) -> list[Path]:
    """workflow = migrate: every migration the migrate command will apply (journal entries not yet in the
    migrations table), whoever generated it and whenever, plus what generate wrote in this run."""
    from deploysafe.drizzle import migrator
    from deploysafe.drizzle.steps import migrations_dir

    folder = migrations_dir(loaded)
    state = migrator.state(loaded, database_url, folder)
    pending = [folder / f"{e.tag}.sql" for e in state.pending]
    return [*dict.fromkeys([*(p for p in pending if p.is_file()), *new_files])]


def _app_deploy(loaded: LoadedConfig, database_url: str) -> None:
    from deploysafe.process import run_step

    cmd = loaded.config.deploy.app_deploy
    assert cmd is not None
    result = run_step("app_deploy", cmd, cwd=loaded.app_dir, env={"DATABASE_URL": database_url},
                      timeout=loaded.config.deploy.app_deploy_timeout, on_line=console.detail,
                      pass_env=loaded.config.app.pass_env)
    if result.exit_code != 0:
        raise StepError(f"[deploy] app_deploy exited {result.exit_code}", step="app_deploy", production_changed=True)


def _rehearse(loaded: LoadedConfig, provider: Provider, snapshot: str) -> None:
    """Push against a throwaway copy first, so a migration that fails on real data fails before production."""
    from deploysafe.drizzle import steps as migrate
    from deploysafe.providers.base import SnapshotKind

    name = f"rehearse-{snapshot}"[:200]
    provider.create_snapshot(name, SnapshotKind.DRILL, serve=True)
    try:
        migrate.apply(loaded, provider.connection_url(name), on_line=console.detail)
    except StepError as e:
        raise StepError(f"rehearsal failed on a copy of production: {e.message}", step="rehearse",
                        hint=e.hint or "fix the migration; production was not touched") from None
    finally:
        provider.delete(name)


def _rollback(loaded: LoadedConfig, provider: Provider, platform: Platform, prepared: Any, journal: Journal,
              summary: Summary, reason: str, verdict_at: float) -> Summary:
    from deploysafe.deploy import rollback
    from deploysafe.deploy.diverge import rows_only_in_failed

    console.warn(f"rolling back to {prepared.snapshot}")
    try:
        outcome = _timed(summary, journal, "rollback",
                         lambda h: rollback.execute(loaded, provider, platform, prepared, journal, verdict_at=verdict_at))
    except RollbackFailed as e:
        summary.outcome = "needs a person"
        summary.error = e.message
        summary.manual_steps = e.manual_steps
        journal.event("result", "failed", outcome=summary.outcome, exit_code=4, error=e.message)
        raise
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
            summary.divergence = rows_only_in_failed(provider.production().url, prepared.url or "")
    except DeploysafeError as e:
        console.warn(f"could not compare the failed state with the snapshot: {e.message}")
    summary.outcome = "rolled back"
    journal.event("result", "ok", outcome=summary.outcome, exit_code=1, rollback=summary.rollback)
    raise DeployFailedRolledBack(
        f"deploy failed ({reason}); rolled back to {prepared.snapshot} in "
        f"{format_duration(summary.rollback['seconds_verdict_to_healthy'])}; the app is healthy on the snapshot; "
        f"{prepared.failed_state!r} is kept with the failed state",
        summary=summary,
    )


def _prune(loaded: LoadedConfig, provider: Provider, platform: Platform, journal: Journal, summary: Summary) -> None:
    from deploysafe.snapshots.manage import prune

    def step(h: Any) -> None:
        plan = prune(loaded, provider, platform, dry_run=False, journal=journal)
        summary.pruned = [s.name for s, _ in plan.deleted]
        for snap, why in plan.failed:
            console.warn(f"prune could not delete {snap.name}: {why}")

    try:
        _timed(summary, journal, "prune", step)
    except DeploysafeError as e:  # a failed prune never fails a deploy that succeeded
        console.warn(f"prune failed: {e.message}")


def render_summary(summary: Summary) -> str:
    lines = [f"deploy {summary.run_id}: {summary.outcome}"]
    if summary.snapshot:
        lines.append(f"  snapshot: {summary.snapshot}")
    lines.append("  timeline:")
    for e in summary.timeline:
        secs = format_duration(e["seconds"]) if "seconds" in e else "-"
        lines.append(f"    {e['step']:<10} {e['outcome']:<8} {secs}")
    if summary.rollback:
        lines.append(
            f"  rollback: unhealthy -> healthy on {summary.rollback['snapshot']} in "
            f"{format_duration(summary.rollback['seconds_verdict_to_healthy'])}"
        )
        lines.append(f"  kept with the failed state: {summary.rollback['failed_state_kept']}")
        if summary.rollback.get("app_release"):
            lines.append(f"  app release brought back: {summary.rollback['app_release']}")
    for d in summary.divergence:
        lines.append(f"    {d['table']}: {d.get('only_in_failed')} row(s) only in the failed state {d.get('note', '')}".rstrip())
    if summary.pruned:
        lines.append("  pruned: " + ", ".join(summary.pruned))
    if summary.manual_steps:
        lines.append("  a person must now:")
        lines += [f"    {i}. {s}" for i, s in enumerate(summary.manual_steps, 1)]
    return "\n".join(lines)


def github_summary(summary: Summary) -> str:
    rows = "\n".join(
        f"| {e['step']} | {e['outcome']} | {format_duration(e['seconds']) if 'seconds' in e else '-'} |"
        for e in summary.timeline
    )
    text = f"## deploysafe: {summary.outcome}\n\nSnapshot: `{summary.snapshot}`\n\n| step | outcome | time |\n|---|---|---|\n{rows}\n"
    if summary.rollback:
        text += (f"\nRolled back to `{summary.rollback['snapshot']}` in "
                 f"{format_duration(summary.rollback['seconds_verdict_to_healthy'])}.\n")
    if summary.error:
        text += f"\nError: {summary.error}\n"
    return text
