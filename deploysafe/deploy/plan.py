"""Pure planning for ``deploysafe deploy``: config + observed state in, a frozen Plan out.

No network, no subprocesses: ``--dry-run`` prints this plan, and the executor in
:mod:`deploysafe.deploy.apply` runs these same steps in order, mapping each step's name to
one action. Each step names its undo (what a failure at or after it triggers).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from deploysafe.config import Config


class Undo(Enum):
    """What the executor does when a step fails."""

    KEEP = "keep"  # nothing changed: nothing to undo, and the snapshot made so far is kept
    ROLLBACK = "rollback"  # production may have changed: roll back to the pre-deploy snapshot


@dataclass(frozen=True)
class Step:
    name: str  # also the executor's action for it (deploy.apply.ACTIONS)
    does: str
    undo: str | None = None  # what a failure at this step or after it triggers, for people
    changes_production: bool = False
    on_failure: Undo | None = None  # the undo the executor runs when this step fails (None: none)
    journaled: bool = True  # journaled and timed under its name (the lock is not: it holds the others)
    fails_deploy: bool = True  # False: a failure only warns (prune never fails a deploy that succeeded)


@dataclass(frozen=True)
class Plan:
    snapshot: str
    production: str
    steps: tuple[Step, ...]
    prune: tuple[str, ...]
    warnings: tuple[str, ...]
    rollback: bool
    app_rollback: str | None = None  # what a rollback does with the app's code

    def render(self) -> str:
        lines = [f"Plan: guarded deploy of {self.production!r}", f"  pre-deploy snapshot: {self.snapshot}"]
        for i, s in enumerate(self.steps, 1):
            undo = f"  (on failure: {s.undo})" if s.undo else ""
            lines.append(f"  {i:>2}. {s.name:<10} {s.does}{undo}")
        if self.rollback and self.app_rollback:
            lines.append(f"  on rollback, {self.app_rollback}")
        if self.prune:
            lines.append("  prune would delete: " + ", ".join(self.prune))
        else:
            lines.append("  prune would delete: nothing")
        lines += [f"  ! {w}" for w in self.warnings]
        return "\n".join(lines)


def plan_deploy(
    config: Config,
    *,
    snapshot: str,
    production: str,
    app_points_at: str | None,
    caveats: list[str],
    prune: list[str],
    rehearse: bool,
    no_rollback: bool,
    allow_destructive: bool,
    watch: float | None = None,
    app_rollback: str | None = None,
) -> Plan:
    app = config.app
    rollback_undo = None if no_rollback else f"roll back: point {config.platform.var} at {snapshot}, restart, probe"
    reverts = None if no_rollback else Undo.ROLLBACK
    probe_names = [p.name for p in config.probes.http] + [p.name for p in config.probes.sql]
    steps = [
        Step("lock", "take the deploy lock (local file + PostgreSQL advisory lock on production)", journaled=False),
        Step("snapshot", f"create {snapshot} from {production}, "
             + ("ready to serve, and resolve its URL" if config.provider.snapshot_endpoint == "eager"
                else "without a compute (it gets one at rollback: [provider] snapshot_endpoint = \"lazy\")"),
             undo="nothing to undo; the snapshot is kept", on_failure=Undo.KEEP),
        Step("generate", f"run `{app.generate}` in {app.dir}; record the new migration files"
             if app.generate else "no generate step ([app] generate is empty)"),
        Step("lint", ("classify every pending migration (not yet in the migrations table)"
                      if app.workflow == "migrate" else "classify what push will run (read-only dry run) and the new SQL")
             + f"; destructive = {config.lint.destructive!r}"
             + (" (overridden by --allow-destructive)" if allow_destructive else "")),
    ]
    target = f"with {', '.join([*app.database_env, *app.database_env_parts.values()])} set to it" + (
        f", which {', '.join(app.env_files)} cannot override" if app.env_files else "")
    if app.workflow == "migrate":
        apply, verify = app.migrate, "verify the migrations table matches the journal"
    else:
        apply, verify = app.push, "verify the schema matches"
    if rehearse:
        steps.append(Step("rehearse", f"run `{apply}` against a throwaway copy first ({target}); delete it after; "
                          "production must not change"))
    steps.append(Step("push", f"run `{apply}` against production ({target}) and {verify}",
                      undo=rollback_undo, changes_production=True, on_failure=reverts))
    if config.deploy.app_deploy:
        steps.append(Step("app", f"run `{config.deploy.app_deploy}` and wait for the app", undo=rollback_undo,
                          on_failure=reverts))
    steps.append(Step("probes", "probe until healthy: " + (", ".join(probe_names) or "(none configured)"),
                      undo=rollback_undo, on_failure=reverts))
    if watch:
        steps.append(Step("watch", f"keep probing for {watch:g}s", undo=rollback_undo, on_failure=reverts))
    steps.append(Step("prune", "delete snapshots past [retention]", fails_deploy=False))
    warnings = list(caveats)
    if app_points_at and app_points_at != production:
        warnings.append(
            f"the app points at {app_points_at!r}, not production {production!r}: run `deploysafe promote` first"
        )
    if not no_rollback and config.deploy.app_deploy and app_rollback and "NOT rolled back" in app_rollback:
        warnings.append(f"[deploy] app_deploy ships new code, and {app_rollback}")
    return Plan(snapshot, production, tuple(steps), tuple(prune), tuple(warnings), not no_rollback, app_rollback)
