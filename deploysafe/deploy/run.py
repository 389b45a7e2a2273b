"""``deploysafe deploy``: the guarded deploy.

preflight (the facts, read once, and the plan made from them) -> lock -> pre-deploy snapshot
(ready to serve, URL resolved) -> generate -> lint -> [rehearse] -> push (verified) -> [app
deploy] -> probes -> [watch] -> prune; on failure after production changed, the rollback. The
plan's steps are what :mod:`deploysafe.deploy.apply` executes, and what ``--dry-run`` prints.
Production ends in one of three states, and the exit code says which: migrated and healthy (0);
rolled back and healthy on the snapshot (1); or a person must act (4, with the manual steps).
Failures before production changed exit 3 and touch nothing. :func:`deploy` returns the
:class:`~deploysafe.deploy.outcome.Summary` whatever the outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deploysafe.console import console
from deploysafe.deploy.apply import Run, Tools, execute, timed
from deploysafe.deploy.facts import Clock, DeployOptions, Facts, SystemClock, gather
from deploysafe.deploy.outcome import Outcome, Summary, github_summary, render_summary
from deploysafe.deploy.plan import Plan, plan_deploy
from deploysafe.deploy.rollback import app_plan
from deploysafe.drizzle.target import check
from deploysafe.errors import DeploysafeError, PreconditionError
from deploysafe.journal import Journal
from deploysafe.platforms import make_platform
from deploysafe.providers import make_provider
from deploysafe.providers.base import Snapshot, SnapshotKind
from deploysafe.snapshots.inuse import record_target
from deploysafe.snapshots.manage import pre_deploy_name
from deploysafe.snapshots.retention import PrunePlan, plan_prune

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider

__all__ = ["DeployOptions", "Outcome", "Summary", "deploy", "github_summary", "render_summary"]


def deploy(loaded: LoadedConfig, opts: DeployOptions, *, provider: Provider | None = None,
           platform: Platform | None = None, tools: Tools | None = None, clock: Clock | None = None) -> Summary:
    """Plan and run one deploy; the summary's ``outcome`` and ``exit_code`` say how it ended, and ``failure``
    holds the error the command ends with (None: exit 0)."""
    journal = Journal(loaded.state_dir, "deploy")
    summary = Summary(run_id=journal.run_id)
    provider = provider or make_provider(loaded)
    platform = platform or make_platform(loaded)
    try:
        return _run(loaded, opts, provider, platform, journal, summary, tools or Tools(), clock or SystemClock())
    except DeploysafeError as e:
        if summary.outcome is Outcome.RUNNING:
            summary.outcome = Outcome.FAILED_BEFORE_CHANGE if e.exit_code == 3 else Outcome.FAILED
            # preflight and lock failures end before the executor writes a result: journal it, so `status` knows
            journal.event("result", "failed", outcome=summary.outcome.value, exit_code=e.exit_code)
        return summary.fail(e)
    finally:
        provider.close()
        platform.close()


def _run(loaded: LoadedConfig, opts: DeployOptions, provider: Provider, platform: Platform, journal: Journal,
         summary: Summary, tools: Tools, clock: Clock) -> Summary:
    facts, plan, prune = timed(summary, journal, clock, "preflight",
                               lambda h: preflight(loaded, opts, provider, platform, clock))
    summary.production = facts.production.name
    summary.snapshot = plan.snapshot
    summary.plan = plan
    if opts.dry_run:
        console.plain(plan.render())
        summary.outcome = Outcome.DRY_RUN
        journal.event("result", "ok", outcome=summary.outcome.value, dry_run=True)
        return summary
    for w in plan.warnings:
        console.warn(w)
    where = facts.where
    if where.name and where.name != plan.production:
        raise PreconditionError(
            f"the app points at {where.name!r}, not production {plan.production!r}; deploying would migrate a "
            "database the app does not use",
            hint="run `deploysafe promote` to make it production (or repoint the app), then deploy again",
        )
    _confirm_target(provider, facts, opts, journal)
    return execute(Run(loaded, opts, provider, platform, journal, summary, plan, facts, prune, tools, clock))


def preflight(loaded: LoadedConfig, opts: DeployOptions, provider: Provider, platform: Platform,
              clock: Clock) -> tuple[Facts, Plan, PrunePlan]:
    """Read the facts once and make the one plan from them (prune included)."""
    check(loaded)  # every step can be pointed at the database deploysafe chooses, or nothing runs
    facts = gather(loaded, opts, provider, platform, clock)
    name = pre_deploy_name(facts.now, facts.sha)
    prune = _plan_prune(loaded, facts, name, in_use=facts.in_use(opts))
    plan = plan_deploy(
        loaded.config, snapshot=name, production=facts.production.name, app_points_at=facts.where.name,
        caveats=list(facts.caveats), prune=[s.name for s, _ in prune.delete], rehearse=opts.rehearse,
        no_rollback=opts.no_rollback, allow_destructive=opts.allow_destructive, watch=opts.watch,
        app_rollback=app_plan(loaded, platform),
    )
    return facts, plan, prune


def _plan_prune(loaded: LoadedConfig, facts: Facts, snapshot: str, *, in_use: str | None) -> PrunePlan:
    """What prune deletes once the deploy succeeded: planned now, with the pre-deploy snapshot this run makes
    (it becomes the newest of its kind), so --dry-run shows the list that is carried out."""
    made = Snapshot(id=snapshot, name=snapshot, kind=SnapshotKind.PRE_DEPLOY, ours=True, created_at=facts.now,
                    source=facts.production.name, git_sha=facts.sha)
    return plan_prune([*facts.snapshots, made], now=facts.now, retention=loaded.config.retention,
                      in_use=in_use, production=facts.production.name, in_use_unknown=in_use is None)


def _confirm_target(provider: Provider, facts: Facts, opts: DeployOptions, journal: Journal) -> None:
    """Fail closed when nobody can tell where the app points; record production once it is known
    from this runner alone (journal) or from the user (--assume-production), so the next runner knows too."""
    where, production = facts.where, facts.production.name
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
