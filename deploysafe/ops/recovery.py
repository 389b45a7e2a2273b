"""The commands a person runs when things go wrong: rollback, promote, status, probe, watch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deploysafe.console import console
from deploysafe.deploy.steps import Step, journaled, run_steps
from deploysafe.durations import format_duration
from deploysafe.errors import DeploysafeError, PartialChange, PreconditionError, ProviderError, UsageError
from deploysafe.journal import Journal, read_journal, runs
from deploysafe.redact import redact

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.deploy.probes import Verdict
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider


def _adapters(loaded: LoadedConfig) -> tuple[Provider, Platform]:
    from deploysafe.platforms import make_platform
    from deploysafe.providers import make_provider

    return make_provider(loaded), make_platform(loaded)


@dataclass
class RollbackResult:
    snapshot: str
    dry_run: bool
    plan: list[str]
    steps: list[str] = field(default_factory=list)  # the rollback.<step> names that run, in order (rollback.plan_steps)
    timings: dict[str, float] = field(default_factory=dict)
    repoint_seconds: float = 0.0
    divergence: list[dict[str, Any]] = field(default_factory=list)


def release_dead_lock(loaded: LoadedConfig, provider: Provider, *, yes: bool, confirm: Any) -> str:
    """``deploysafe unlock``: end the session of a dead holder of the production lock (see lock.py)."""
    from deploysafe.lock import Holder, break_lock

    prod = provider.production()

    def ask(h: Holder, why: str) -> bool:
        console.warn(f"the production lock is held by {h.describe()}; it looks dead: {why}")
        return yes or bool(confirm(f"End its database session (backend {h.backend_pid}) to release the lock?"))

    gone = break_lock(provider.lock_url(prod.url), prod.id, confirm=ask)
    if gone is None:
        return "nobody holds the production lock"
    Journal(loaded.state_dir, "unlock").event("result", "ok", outcome="lock released", holder=gone.info,
                                              backend=gone.backend_pid)
    return f"released the production lock held by {gone.describe()}"


def manual_rollback(
    loaded: LoadedConfig, *, to: str | None, at: str | None, yes: bool, dry_run: bool, confirm: Any,
    break_lock: bool = False,
) -> RollbackResult:
    """Roll the app back to a snapshot (or a point in time), under the deploy lock (``break_lock``: first
    release a lock whose holder is dead, as ``deploysafe unlock`` does)."""
    from deploysafe.deploy import rollback
    from deploysafe.lock import deploy_lock
    from deploysafe.providers.base import SnapshotKind

    if to and at:
        raise UsageError("give --to or --at, not both")
    from deploysafe.snapshots.manage import parse_at, restore_name

    when = parse_at(at) if at is not None else None  # --at "" is an error, never "no --at"
    provider, platform = _adapters(loaded)
    try:
        prod = provider.production()
        if when is not None:
            window = provider.history_window()
            if window is None:
                from deploysafe.errors import PointInTimeError

                raise PointInTimeError(
                    f"provider {provider.name!r} cannot restore to a point in time",
                    hint="roll back to a snapshot with --to (see `deploysafe snapshot list`)",
                )
            target = restore_name(when)
        else:
            target = rollback.resolve_target(provider, to)
        p = loaded.config.platform
        in_place = rollback.plan_in_place(loaded, provider, None if when else target, at=when)
        if in_place is not None:
            label = f"{prod.name}@{when.isoformat()}" if when else target
            source = f"{in_place.source!r} at {when.isoformat()}" if when else f"{target!r} (LSN {in_place.source_lsn})"
            plan = [
                f"restore {prod.name!r} in place from {source}: its connection string stays, {p.var} is not touched",
                f"keep the failed state in a new branch {prod.name}-failed-<time>",
                *in_place.notes,
                f"run the probes against {prod.name!r}",
            ]
            target = label
        else:
            plan = [
                *([f"create branch {target!r} from {prod.name!r} as it was at {when.isoformat()}"] if when else []),
                f"make {target!r} ready to serve and resolve its connection URL",
                f"set {p.var} on {p.type} to {target!r}",
                "make the app pick it up and wait until it is live",
                "run the probes against it",
                f"keep {prod.name!r} (the failed state) untouched",
            ]
        # prepare resolves the snapshot's URL (never lazy here); the recorded release comes back only if it changed
        steps = list(rollback.plan_steps(restore=in_place is not None, serve=False,
                                         app_check=rollback.wants_release(loaded, platform), code_back=False))
        plan.append("steps: " + ", ".join(steps))
        if dry_run:
            return RollbackResult(target, True, plan, steps)
        if not yes:
            if not confirm("\n".join(["Rollback plan:", *[f"  - {s}" for s in plan], "Proceed?"])):
                raise UsageError("rollback not confirmed", hint="pass --yes to run without asking")
        journal = Journal(loaded.state_dir, "rollback")
        journal.strict = False  # a full disk never stops a rollback: journal lines fall back to stderr
        if break_lock:
            console.info(release_dead_lock(loaded, provider, yes=yes, confirm=confirm))
        with deploy_lock(loaded.state_dir, provider.lock_url(prod.url), prod.id,
                         run_id=journal.run_id, command="rollback"):
            if when is not None and in_place is None:
                with journal.step("restore_branch", at=when.isoformat(), branch=target):
                    provider.create_snapshot(target, SnapshotKind.RESTORE, at=when, serve=True)
            with journal.step("prepare", snapshot=target):
                prepared = rollback.prepare(loaded, provider, platform, target, plan=in_place, decided=True)
            t0 = time.monotonic()
            outcome = rollback.execute(loaded, provider, platform, prepared, journal, verdict_at=t0)
            result = RollbackResult(target, False, plan, steps, outcome.timings, time.monotonic() - t0)
            try:
                from deploysafe.deploy.diverge import rows_only_in_failed

                if prepared.restore is None:  # after a restore in place the failed state has no compute to read
                    result.divergence = rows_only_in_failed(prod.url, prepared.url or "")
            except (ProviderError, PreconditionError) as e:
                console.warn(f"could not compare the failed state with the snapshot: {e.message}")
            journal.event("result", "ok", outcome="rolled back", snapshot=target,
                          repoint_seconds=round(result.repoint_seconds, 3))
            return result
    finally:
        provider.close()
        platform.close()


def promote(loaded: LoadedConfig, *, yes: bool, confirm: Any) -> dict[str, str]:
    """After a rollback: the snapshot the app runs on becomes the production branch; the old one is kept renamed."""
    from deploysafe.lock import deploy_lock
    from deploysafe.snapshots.inuse import REPOINT_STEP, app_points_at

    provider, platform = _adapters(loaded)
    try:
        prod = provider.production()
        where = app_points_at(loaded, provider, platform)
        if not where.name:
            raise PreconditionError("cannot tell which snapshot the app runs on", hint="check the platform's DATABASE_URL")
        if where.name == prod.name:
            raise PreconditionError(f"the app already runs on production {prod.name!r}; nothing to promote")
        from deploysafe.providers.base import failed_state_name

        failed_name, where_name = failed_state_name(prod.name, datetime.now(UTC)), where.name
        if not yes and not confirm(
            f"Rename {prod.name!r} -> {failed_name!r} (kept) and {where.name!r} -> {prod.name!r}. Proceed?"
        ):
            raise UsageError("promote not confirmed", hint="pass --yes to run without asking")
        journal = Journal(loaded.state_dir, "promote")
        done: list[str] = []  # the steps that changed something, in order
        with deploy_lock(loaded.state_dir, provider.lock_url(prod.url), prod.id,
                         run_id=journal.run_id, command="promote"):
            def one(step: Step) -> None:
                journaled(journal, time, step.name, lambda h: step.action(), lambda s: None, **step.details())
                if step.after is not None:
                    step.after()

            def failed(step: Step, e: BaseException) -> None:
                if not done:
                    raise e  # nothing changed: the error's own exit code (3) is the truth
                left = _promote_left(loaded, provider, where_name, prod.name, failed_name, done)
                journal.event("result", "failed", outcome="needs a person", done=done, left=left)
                reason = e.message if isinstance(e, DeploysafeError) else f"{type(e).__name__}: {redact(str(e))}"
                changed = "; ".join(_PROMOTE_DONE[d].format(prod=prod.name, failed=failed_name, snap=where_name)
                                    for d in done)
                raise PartialChange(f"promote stopped half-way: {reason}\nAlready changed: {changed}.",
                                    manual_steps=left) from None

            run_steps([
                Step("rename_failed", lambda: provider.rename(prod.name, failed_name),
                     lambda: {"old": prod.name, "new": failed_name}, lambda: done.append("rename_failed")),
                Step("rename_snapshot", lambda: _promote_snapshot(provider, platform, where_name, prod.name, done),
                     lambda: {"old": where_name, "new": prod.name}),
            ], run=one, checkpoint=lambda: None, on_failure=failed, failures=(Exception,))
            journal.event(REPOINT_STEP, "ok", target=prod.name, previous=failed_name)
            from deploysafe.deploy.rollback import record_repoint

            record_repoint(provider, prod.name, journal)
            journal.event("result", "ok", outcome="promoted")
        return {"production": prod.name, "was": where.name, "failed_state": failed_name}
    finally:
        provider.close()
        platform.close()


_PROMOTE_DONE = {
    "rename_failed": "production {prod!r} was renamed {failed!r} (kept: the failed state)",
    "rename_snapshot": "snapshot {snap!r} was renamed {prod!r}",
    "set": "the app's database URL now names {prod!r}",
    "pick_up": "the app was restarted",
}


def _promote_left(loaded: LoadedConfig, provider: Provider, snapshot: str, production: str, failed: str,
                  done: list[str]) -> list[str]:
    """The promote steps a person must still do, with the real names (never a URL: it holds a password)."""
    p = loaded.config.platform
    copies = provider.capabilities().database_copies is not None  # a database takes production's name
    steps: list[str] = []
    if "rename_snapshot" not in done:
        if copies:
            steps.append(f"Rename the database of snapshot {snapshot!r} to {production!r} (no session may be "
                         f"connected to it): ALTER DATABASE <its database> RENAME TO \"{production}\"")
        else:
            steps.append(f"Rename branch {snapshot!r} to {production!r} (Neon console, Branches).")
    if copies:
        if "set" not in done:
            steps.append(f"Set {p.var} for the app to the URL of database {production!r} (production's URL, "
                         f"same server); the app's current URL names a database that no longer exists")
        if "pick_up" not in done:
            steps.append(f"Restart the app: {p.restart}" if p.restart else "Restart the app so it reads the new value.")
    steps.append("Check the app is healthy: deploysafe probe")
    steps.append(f"Keep {failed!r}: it holds the failed production state.")
    return steps


def _promote_snapshot(provider: Provider, platform: Platform, snapshot: str, production: str, done: list[str]) -> None:
    copies = provider.capabilities().database_copies
    if copies is None:
        provider.rename(snapshot, production)  # Neon: names only; connection strings stay the same
        done.append("rename_snapshot")
        return
    # A database cannot be renamed while the app is connected to it: disconnect, rename, repoint, restart.
    url = copies.take_name(snapshot, production)
    done.append("rename_snapshot")
    copies.unmark(production)  # it is production now, not a snapshot
    platform.set_url(url)
    done.append("set")
    release = platform.pick_up()
    done.append("pick_up")
    platform.wait_live(release, 300)


def probe(loaded: LoadedConfig) -> tuple[Verdict, str | None]:
    """Probe the app and the database its DATABASE_URL points at now."""
    from deploysafe.deploy.probes import analyse

    provider, platform = _adapters(loaded)
    try:
        url = None
        try:
            cur = platform.read_current()
            if cur.readable and cur.value and not cur.reference:
                url = cur.value
        except PreconditionError as e:
            console.warn(f"cannot read the platform's value ({e.message}); probing production")
        if url is None and loaded.config.probes.sql:
            url = provider.production().url
        journal = Journal(loaded.state_dir, "probe")
        verdict = analyse(loaded.config.probes, url, journal=journal)
        journal.event("result", "ok" if verdict.healthy else "failed", outcome="healthy" if verdict.healthy else "unhealthy")
        return verdict, url
    finally:
        provider.close()
        platform.close()


def status(loaded: LoadedConfig) -> dict[str, Any]:
    """What happened in the last run and what state production is in now."""
    from deploysafe.snapshots.inuse import app_points_at

    all_runs = runs(read_journal(loaded.state_dir))
    last = next((r for r in reversed(all_runs) if r["command"] in ("deploy", "rollback", "promote", "watch")), None)
    out: dict[str, Any] = {"last_run": None, "app_points_at": None, "production": None, "snapshots": [], "advice": []}
    if last:
        steps = {s["step"]: s for s in last["steps"]}
        pushed = "push" in steps and steps["push"]["outcome"] in ("ok", "running", "failed")
        changed = "production_changed" in steps or (pushed and steps["push"]["outcome"] != "ok")
        out["last_run"] = {
            "run_id": last["run_id"],
            "command": last["command"],
            "started_at": last["started_at"],
            "outcome": last["outcome"],
            "cut_off_in": [s["step"] for s in last["steps"] if s["outcome"] == "running"],
            "push_ran": pushed,
            "production_may_have_changed": changed,
            "snapshot": next((s["details"].get("snapshot") for s in last["steps"] if s["step"] == "snapshot"
                              and s["details"].get("snapshot")), None),
        }
    provider, platform = _adapters(loaded)
    try:
        prod = provider.production()
        out["production"] = prod.name
        where = app_points_at(loaded, provider, platform)
        out["app_points_at"] = {"name": where.name, "source": where.source, "detail": where.detail}
        out["snapshots"] = [s.name for s in provider.list_snapshots() if s.ours]
    except PreconditionError as e:
        out["advice"].append(f"cannot reach the provider or platform: {e.message}")
        return out
    finally:
        provider.close()
        platform.close()
    lr = out["last_run"]
    in_rollback = [s for s in (lr or {}).get("cut_off_in", []) if s.startswith("rollback")]
    if lr and lr["outcome"] == "cut off" and in_rollback and lr["snapshot"]:
        # killed mid-rollback (e.g. SIGKILL after a cancelled job's SIGTERM): the steps left are the rollback's
        out["advice"].append(
            f"the last {lr['command']} was cut off during its rollback to {lr['snapshot']!r} "
            f"({', '.join(in_rollback)}); finish it: `deploysafe rollback --to {lr['snapshot']} --yes`"
        )
    elif lr and lr["outcome"] == "cut off":
        if lr["production_may_have_changed"] and out["app_points_at"]["name"] == out["production"]:
            out["advice"].append(
                f"the last {lr['command']} was cut off during {', '.join(lr['cut_off_in']) or 'a step'} after production "
                f"may have changed; run `deploysafe probe`, and if unhealthy `deploysafe rollback --to {lr['snapshot']}`"
            )
        elif lr["production_may_have_changed"]:
            out["advice"].append(
                f"the last {lr['command']} was cut off during {', '.join(lr['cut_off_in']) or 'a step'} after production "
                "may have changed; run `deploysafe probe` to see whether the app is healthy"
            )
        else:
            out["advice"].append(
                f"the last {lr['command']} was cut off before production changed; production is as it was"
            )
    if not out["app_points_at"]["name"]:
        out["advice"].append(
            f"cannot tell where the app points ({out['app_points_at']['detail']}): prune keeps every snapshot and deploy "
            "refuses; if the app runs on production, `deploysafe deploy --assume-production` records it"
        )
    if out["app_points_at"]["name"] and out["app_points_at"]["name"] != out["production"]:
        out["advice"].append(
            f"the app runs on {out['app_points_at']['name']!r}, not production: run `deploysafe promote` once you are satisfied"
        )
    return out


def render_status(st: dict[str, Any]) -> str:
    lines = []
    lr = st.get("last_run")
    if lr:
        lines.append(f"last run: {lr['command']} {lr['run_id']} started {lr['started_at']}: {lr['outcome']}")
        if lr["cut_off_in"]:
            lines.append(f"  cut off during: {', '.join(lr['cut_off_in'])}")
        lines.append(f"  push ran: {'yes' if lr['push_ran'] else 'no'}; production may have changed: "
                     f"{'yes' if lr['production_may_have_changed'] else 'no'}")
        if lr["snapshot"]:
            lines.append(f"  its snapshot: {lr['snapshot']}")
    else:
        lines.append("no deploy or rollback recorded yet")
    if st.get("production"):
        lines.append(f"production: {st['production']}")
    ap = st.get("app_points_at") or {}
    if ap:
        lines.append(f"app points at: {ap.get('name') or 'unknown'} (from {ap.get('source')})")
    if st.get("snapshots"):
        lines.append("snapshots: " + ", ".join(st["snapshots"]))
    lines += [f"! {a}" for a in st.get("advice", [])]
    return "\n".join(lines)


def watch(loaded: LoadedConfig, seconds: float) -> dict[str, Any]:
    """Probe for a window after a deploy; roll back to the newest pre-deploy snapshot on sustained failure."""
    from deploysafe.deploy import rollback
    from deploysafe.deploy.watch import watch_window
    from deploysafe.errors import DeployFailedRolledBack
    from deploysafe.lock import deploy_lock

    provider, platform = _adapters(loaded)
    try:
        prod = provider.production()
        target = rollback.resolve_target(provider, None)
        snap = provider.get(target)
        age = (datetime.now(UTC) - snap.created_at).total_seconds()
        if age > loaded.config.retention.pre_deploy:
            raise PreconditionError(f"the newest pre-deploy snapshot {target!r} is {format_duration(age)} old: too old to "
                                    "roll back to safely", hint="deploy again to take a fresh snapshot")
        journal = Journal(loaded.state_dir, "watch")
        verdict = watch_window(loaded, prod.url, journal, seconds)
        if verdict.healthy:
            journal.event("result", "ok", outcome="healthy")
            return {"healthy": True, "reason": verdict.reason}
        t_verdict = time.monotonic()
        journal.strict = False  # the rollback below must not be stopped by a full disk
        console.error(verdict.reason)
        with deploy_lock(loaded.state_dir, provider.lock_url(prod.url), prod.id,
                         run_id=journal.run_id, command="watch"):
            prepared = rollback.prepare(loaded, provider, platform, target)
            outcome = rollback.execute(loaded, provider, platform, prepared, journal, verdict_at=t_verdict)
        journal.event("result", "ok", outcome="rolled back", snapshot=target)
        raise DeployFailedRolledBack(
            f"unhealthy during the watch window; rolled back to {target} in "
            f"{format_duration(outcome.timings.get('verdict_to_healthy', 0))}; {prod.name!r} is kept"
        )
    finally:
        provider.close()
        platform.close()
