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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deploysafe.errors import DeploysafeError, PreconditionError, RollbackFailed
from deploysafe.inuse import REPOINT_STEP

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.journal import Journal
    from deploysafe.platforms.base import CurrentValue, Platform, Release
    from deploysafe.probes import Verdict
    from deploysafe.providers.base import Provider


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


@dataclass
class Outcome:
    snapshot: str
    healthy: bool
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds
    verdict: Verdict | None = None
    divergence: list[dict[str, Any]] = field(default_factory=list)
    app_release: str | None = None  # the recorded app release brought back with the database

    @property
    def repoint_s(self) -> float:
        return sum(
            v for k, v in self.timings.items()
            if k in ("serve", "set", "pick_up", "app_check", "app", "wait_live", "probes", "restore")
        )


def prepare(loaded: LoadedConfig, provider: Provider, platform: Platform, snapshot: str, *, serve: bool = True) -> Prepared:
    """Resolve the snapshot's URL (making it able to serve) and the platform's ids, before anything changes."""
    t0 = time.monotonic()
    url = None
    if serve:
        provider.ensure_serving(snapshot)
        url = provider.connection_url(snapshot)
    platform.prepare()
    try:
        previous = platform.read_current()
    except DeploysafeError:
        previous = None
    failed_state = provider.production().name
    app_release = None
    if loaded.config.rollback.app == "auto" and platform.release_rollback() is not None:
        try:
            app_release = platform.describe()
        except DeploysafeError:
            app_release = None  # the plan said the code may not come back; the database still will
    return Prepared(snapshot, url, previous, failed_state, time.monotonic() - t0, app_release)


def app_plan(loaded: LoadedConfig, platform: Platform) -> str:
    """What a rollback does with the app's code, for the plan (``deploy --dry-run``) and its warnings. No I/O."""
    if loaded.config.rollback.app == "keep":
        return 'app code: kept as it is on rollback ([rollback] app = "keep"): only the database moves'
    capability = platform.release_rollback()
    if capability is None:
        p = loaded.config.platform
        fix = (
            " (set [platform] release_command and rollback_command to let it)"
            if p.type in ("dotenv", "command")
            else ""
        )
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


def execute(
    loaded: LoadedConfig,
    provider: Provider,
    platform: Platform,
    prepared: Prepared,
    journal: Journal,
    *,
    verdict_at: float | None = None,
) -> Outcome:
    """Repoint, pick up, wait until live, probe. RollbackFailed (exit 4) with manual steps on any failure."""
    from deploysafe.probes import analyse

    outcome = Outcome(prepared.snapshot, healthy=False)
    done: list[str] = []
    back_to: Release | None = None

    def timed(step: str, fn: Any, **details: Any) -> Any:
        t0 = time.monotonic()
        try:
            with journal.step(f"rollback.{step}", snapshot=prepared.snapshot, **details):
                return fn()
        except DeploysafeError as e:
            raise RollbackFailed(
                f"rollback to {prepared.snapshot!r} failed at step '{step}': {e.message}",
                manual_steps=manual_steps(loaded, prepared, done, back_to=back_to),
            ) from e
        finally:
            outcome.timings[step] = time.monotonic() - t0

    if prepared.url is None:  # lazy: the snapshot's compute is made now, on the critical path

        def serve() -> None:
            provider.ensure_serving(prepared.snapshot)
            prepared.url = provider.connection_url(prepared.snapshot)

        timed("serve", serve)
    url = prepared.url
    assert url is not None
    capability = platform.release_rollback()
    back_to, running = _release_to_bring_back(loaded, platform, prepared, timed)

    def app_half(new_url: str | None) -> Release:
        """Make the app pick up the database half: a restart/redeploy of what runs now, or, when the live release
        changed during the deploy, the recorded release brought back (with ``new_url`` set, in the platform's order)."""
        if back_to is None or capability is None:
            picked: Release = timed("pick_up", platform.pick_up)
            return picked
        returned: Release = timed(
            "app",
            lambda: capability.return_to(back_to, new_url),
            release_from=running,
            release_to=back_to.id,
            code_to=back_to.code,
            sets=loaded.config.platform.var if new_url else None,
        )
        done.extend(["set", "app"])
        outcome.app_release = back_to.id
        if new_url:
            journal.event(REPOINT_STEP, "ok", target=prepared.snapshot, previous=prepared.failed_state)
        return returned

    if loaded.config.rollback.strategy == "restore":
        restore = getattr(provider, "restore_in_place", None)
        if restore is None:
            raise RollbackFailed(
                f'[rollback] strategy = "restore" needs provider type "neon", not {provider.name!r}',
                manual_steps=manual_steps(loaded, prepared, done, back_to=back_to),
            )
        preserved = f"{prepared.failed_state}-failed-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        timed("restore", lambda: restore(prepared.snapshot, preserved), preserved_as=preserved)
        production_name = prepared.failed_state
        prepared.failed_state = preserved  # production's name now holds the snapshot's data
        done += ["set"]
        record_repoint(provider, production_name, journal)
        release = app_half(None)  # the URL did not change
    else:
        if back_to is None:
            timed("set", lambda: platform.set_url(url), var=loaded.config.platform.var)
            done.append("set")
            journal.event(REPOINT_STEP, "ok", target=prepared.snapshot, previous=prepared.failed_state)
        # recorded before the code half sets the variable too: if it stops halfway, the snapshot is kept as in use
        record_repoint(provider, prepared.snapshot, journal)
        release = app_half(url)
    done.append("pick_up")
    timed("wait_live", lambda: platform.wait_live(release, loaded.config.platform.ready_timeout), release=release.id)
    verdict = timed("probes", lambda: analyse(loaded.config.probes, url, journal=journal, phase="rollback.probe"))
    outcome.verdict = verdict
    outcome.healthy = verdict.healthy
    if verdict_at is not None:
        outcome.timings["verdict_to_healthy"] = time.monotonic() - verdict_at
    if not verdict.healthy:
        raise RollbackFailed(
            f"the app is not healthy on snapshot {prepared.snapshot!r} either: {verdict.reason}",
            manual_steps=[
                "Look at the app's logs: the failure may not be the database.",
                *manual_steps(loaded, prepared, done, back_to=back_to)[-2:],
            ],
        )
    return outcome


def _release_to_bring_back(
    loaded: LoadedConfig, platform: Platform, prepared: Prepared, timed: Any
) -> tuple[Release | None, str | None]:
    """(the recorded release, when the app's live release changed since it was recorded; what runs now)."""
    recorded = prepared.app_release
    if recorded is None or loaded.config.rollback.app != "auto" or platform.release_rollback() is None:
        return None, None
    now: Release | None = timed("app_check", platform.describe, recorded=recorded.id, code=recorded.code)
    if now is not None and now.runs == recorded.runs:
        return None, now.id  # same code as before the deploy: the database half is all there is to do
    return recorded, now.id if now else None


def record_repoint(provider: Provider, target: str, journal: Journal) -> None:
    """Record the new target with the provider, for runners without this journal; a failure only warns."""
    from deploysafe.console import console
    from deploysafe.inuse import record_target

    why = record_target(provider, target)
    if why:
        console.warn(f"the app now points at {target!r}, but that could not be recorded with the provider: {why}")
        journal.event("record-target", "failed", target=target, error=why)


def resolve_target(provider: Provider, to: str | None) -> str:
    """``--to`` as given, else the newest pre-deploy snapshot."""
    from deploysafe.providers.base import SnapshotKind

    if to:
        snap = provider.get(to)
        if snap.is_production:
            raise PreconditionError(f"{to!r} is production itself", hint="name a snapshot: `deploysafe snapshot list`")
        return snap.name
    pre = [s for s in provider.list_snapshots() if s.ours and s.kind is SnapshotKind.PRE_DEPLOY]
    if not pre:
        raise PreconditionError(
            "there is no pre-deploy snapshot to roll back to", hint="name one with --to, or use --at TIMESTAMP (Neon)"
        )
    return max(pre, key=lambda s: s.created_at).name
