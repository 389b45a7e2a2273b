"""``deploysafe check``: the guide's weekly checklist (and more) as ok / warn / fail lines.

Every check returns a status and a one-line reason. One check failing to run (an API error,
an unreachable database) is reported as that check's ``fail``; the others still run.

Decisions where the issue was silent (documented in docs/operations.md):
- A check that does not apply to the provider (point-in-time window, branch allowance,
  protection, computes on the local provider) is ``ok`` with "not applicable: ...": a warning
  nobody can fix would make every scheduled run alert.
- The daily-backup check counts a weekly backup too (on the weekly day, ``backup`` makes only
  the weekly one).
- No weekly backup yet is a warning (a new set-up has none until its first weekly day); one
  older than the limit fails. Leaked computes cost money but break nothing: warning.
- The last drill: none or too old warns, targets missed warns, failed verification fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from deploysafe.durations import format_duration
from deploysafe.errors import CHECK_FAIL, CHECK_WARN, EXIT_OK, DeploysafeError
from deploysafe.journal import read_journal, runs
from deploysafe.ops import newest, utcnow
from deploysafe.ops.drill import load_reports
from deploysafe.providers.base import ProjectInfo, Snapshot, SnapshotKind
from deploysafe.snapshots.inuse import app_points_at

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider
    from deploysafe.snapshots.inuse import InUse

OK, WARN, FAIL = "ok", "warn", "fail"
_RANK = {OK: 0, WARN: 1, FAIL: 2}
FREE_PLAN_SIZE_BYTES = 512 * 1024 * 1024  # Neon Free: 0.5 GB per project (neon.com/docs/introduction/plans)
NA = "not applicable: "


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # ok | warn | fail
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class Facts:
    """What the checks look at, each fetched once and only when a check asks for it."""

    def __init__(self, loaded: LoadedConfig, provider: Provider, platform: Platform | None, now: datetime) -> None:
        self.loaded = loaded
        self.provider = provider
        self.platform = platform
        self.now = now
        self.project_facts = provider.capabilities().project_facts
        self.neon = self.project_facts is not None  # a hosted project with a plan (Neon)

    @cached_property
    def snapshots(self) -> list[Snapshot]:
        return self.provider.list_snapshots()

    @cached_property
    def production(self) -> str:
        for s in self.snapshots:
            if s.is_production:
                return s.name
        return self.provider.production().name

    @cached_property
    def in_use(self) -> InUse:
        return app_points_at(self.loaded, self.provider, self.platform)

    @cached_property
    def project(self) -> ProjectInfo:
        """The hosted project's facts; only read when ``neon`` (a check asks for it)."""
        assert self.project_facts is not None
        return self.project_facts.project_info(details=True)

    @cached_property
    def history_window(self) -> float | None:
        if self.neon:  # one project read serves every Neon fact
            return float(self.project.history_retention_seconds)
        return self.provider.history_window()

    @cached_property
    def branch_allowance(self) -> int | None:
        if self.neon:
            limit = self.project.branches_limit
            return int(limit) if limit is not None else None
        return self.provider.branch_allowance()

    @cached_property
    def branch_count(self) -> int:
        return self.project_facts.count_branches() if self.project_facts else len(self.snapshots)

    def active_endpoints(self, snap: Snapshot) -> list[str]:
        """Neon: ids of the active computes of one branch."""
        assert self.project_facts is not None
        endpoints = self.project_facts.branch_endpoints(snap.id)
        return [str(e.get("id")) for e in endpoints if e.get("current_state") == "active"]

    @cached_property
    def drills(self) -> list[dict[str, Any]]:
        return load_reports(self.loaded.state_dir)


def _age(now: datetime, then: datetime) -> str:
    return format_duration((now - then).total_seconds())


# --- the checks --------------------------------------------------------------------------------

Outcome = tuple[str, str]


def _neon_schedule(f: Facts) -> str | None:
    """Neon's own scheduled snapshots of production (docs: backup-restore), when they back up at least daily."""
    if not f.neon or not f.project.schedule:
        return None
    daily = [i for i in f.project.schedule if i.get("frequency") in ("hourly", "daily")]
    if not daily:
        return None
    return "Neon's backup schedule snapshots production " + ", ".join(str(i.get("frequency")) for i in daily)


def check_daily_backup(f: Facts) -> Outcome:
    limit = f.loaded.config.check.daily_max_age
    snap = newest(f.snapshots, SnapshotKind.DAILY, SnapshotKind.WEEKLY)
    native = _neon_schedule(f)
    if native and (snap is None or (f.now - snap.created_at).total_seconds() > limit):
        return OK, native + " (deploysafe cannot see those snapshots' age; `backup schedule show` lists the schedule)"
    if snap is None:
        unread = f"; could not read {', '.join(f.project.unread)}" if f.neon and f.project.unread else ""
        return FAIL, "no daily backup exists; run `deploysafe backup` (and schedule it daily)" + unread
    age = (f.now - snap.created_at).total_seconds()
    if age > limit:
        return FAIL, f"latest backup {snap.name} is {_age(f.now, snap.created_at)} old (limit {format_duration(limit)}); is the daily schedule running?"
    return OK, f"latest backup {snap.name} is {_age(f.now, snap.created_at)} old (limit {format_duration(limit)})"


def check_weekly_backup(f: Facts) -> Outcome:
    limit = f.loaded.config.check.weekly_max_age
    snap = newest(f.snapshots, SnapshotKind.WEEKLY)
    if snap is None:
        day = f.loaded.config.backup.weekly_day
        return WARN, f"no weekly backup yet; `deploysafe backup` makes one on {day}s"
    age = (f.now - snap.created_at).total_seconds()
    if age > limit:
        return FAIL, f"latest weekly backup {snap.name} is {_age(f.now, snap.created_at)} old (limit {format_duration(limit)})"
    return OK, f"latest weekly backup {snap.name} is {_age(f.now, snap.created_at)} old (limit {format_duration(limit)})"


def check_history_window(f: Facts) -> Outcome:
    window = f.history_window
    need = f.loaded.config.check.min_history
    if window is None:
        return OK, NA + f"the {f.provider.name} provider keeps no point-in-time history; snapshots are the restore points"
    if window <= 0:
        return FAIL, "point-in-time history is disabled (history_retention_seconds = 0); enable it in the Neon console"
    if window < need:
        return FAIL, f"point-in-time window is {format_duration(window)}, below the required {format_duration(need)} ([check] min_history)"
    return OK, f"point-in-time window is {format_duration(window)} (required {format_duration(need)})"


def _ratio_outcome(what: str, used: float, limit: float, show: Callable[[float], str]) -> Outcome:
    ratio = used / limit if limit else 1.0
    text = f"{what}: {show(used)} of {show(limit)} ({ratio:.0%})"
    if ratio >= 1.0:
        return FAIL, text + ": at the limit"
    if ratio >= 0.8:
        return WARN, text + ": above 80%"
    return OK, text


def check_branch_count(f: Facts) -> Outcome:
    allowance = f.branch_allowance
    if allowance is None:
        return OK, NA + f"no branch allowance on the {f.provider.name} provider ({len(f.snapshots)} databases)"
    used = f.branch_count
    status, text = _ratio_outcome("branches", used, allowance, lambda v: str(int(v)))
    if status != OK:
        text += "; run `deploysafe prune` or shorten [retention]"
    if f.neon and f.project.root_branches is not None and f.project.root_branches_limit:
        roots, cap = f.project.root_branches, f.project.root_branches_limit
        text += f"; root branches {roots} of {cap} (plan {f.project.subscription_type})"
        if roots >= cap:
            status = WARN if status == OK else status
            text += ": no room for the failed-state branch an in-place restore keeps, so rollbacks will repoint"
    return status, text


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_database_size(f: Facts) -> Outcome:
    size: int | None = None
    for s in f.snapshots:
        if s.is_production:
            size = s.size_bytes  # Neon: production's logical size, which the plan's per-branch limit caps
    limit = f.loaded.config.check.size_limit_bytes
    if limit is None and f.neon:
        limit = f.project.branch_logical_size_limit_bytes
        if limit is None and str(f.project.subscription_type or "").startswith("free"):
            limit = FREE_PLAN_SIZE_BYTES
    if size is None:
        return WARN, "the database size could not be read"
    if limit is None:
        return OK, f"database size {_human_bytes(size)}; no limit known (set [check] size_limit_bytes to watch one)"
    return _ratio_outcome("database size", size, limit, _human_bytes)


def check_app_target(f: Facts) -> Outcome:
    where = f.in_use
    prod = f.production
    if where.name is None:
        return WARN, f"cannot tell where the app's DATABASE_URL points ({where.detail or 'the platform does not say'})"
    if where.name == prod:
        return OK, f"the app's DATABASE_URL points at production {prod!r} (from the {where.source})"
    return FAIL, (f"the app's DATABASE_URL points at {where.name!r}, not production {prod!r}; "
                  "promote it (`deploysafe promote`) or repoint the app")


def check_protected(f: Facts) -> Outcome:
    if not f.neon:
        return OK, NA + f"the {f.provider.name} provider has no branch protection"
    prod = next((s for s in f.snapshots if s.is_production), None)
    if prod is not None and prod.protected:
        return OK, f"production branch {prod.name!r} is protected"
    plan = str(f.project.subscription_type or "unknown")
    if plan.startswith("free"):
        return OK, NA + "the Free plan has no protected branches"
    return WARN, f"production branch {f.production!r} is not protected; run `deploysafe setup` (plan {plan} allows it)"


def check_leaked_computes(f: Facts) -> Outcome:
    if not f.neon:
        return OK, NA + f"the {f.provider.name} provider runs no computes"
    leaked: list[str] = []
    for s in f.snapshots:
        if not s.ours or s.is_production or s.name == f.in_use.name:
            continue
        if f.active_endpoints(s):
            leaked.append(s.name)
    if leaked:
        return WARN, (f"{len(leaked)} deploysafe branch(es) have a running compute the app does not use: "
                      f"{', '.join(sorted(leaked))}; delete them or let them suspend")
    return OK, "no deploysafe compute is running unused"


def check_last_drill(f: Facts) -> Outcome:
    limit = f.loaded.config.check.drill_max_age
    if not f.drills:
        return WARN, "no drill has run; run `deploysafe drill` (monthly)"
    last = f.drills[-1]
    when = datetime.fromisoformat(last["started_at"])
    age = (f.now - when).total_seconds()
    name = last.get("date", "")
    if last.get("outcome") == "failed":
        return FAIL, f"the last drill ({name}) failed: {last.get('reason', 'see its report')}"
    if age > limit:
        return WARN, f"the last drill ({name}) is {_age(f.now, when)} old (limit {format_duration(limit)}); run `deploysafe drill`"
    missed = [p["name"] for p in last.get("phases", []) if p.get("within_target") is False]
    if missed:
        return WARN, f"the last drill ({name}) missed its target for: {', '.join(missed)}"
    return OK, f"the last drill ({name}) passed within targets, {_age(f.now, when)} ago"


# --- the guide's pre-production checklist (--checklist) ----------------------------------------


def check_history_enabled(f: Facts) -> Outcome:
    window = f.history_window
    if window is None:
        return OK, NA + f"the {f.provider.name} provider keeps no history; backups are the restore points"
    if window <= 0:
        return FAIL, "point-in-time history is disabled; enable it (history retention) in the Neon console"
    return OK, f"point-in-time history is enabled ({format_duration(window)})"


def check_initial_backup(f: Facts) -> Outcome:
    snap = newest(f.snapshots, SnapshotKind.DAILY, SnapshotKind.WEEKLY, SnapshotKind.MANUAL)
    if snap is None:
        return FAIL, "no backup exists yet; run `deploysafe backup`"
    return OK, f"a backup exists ({snap.name})"


def check_drill_ran(f: Facts) -> Outcome:
    if not f.drills:
        return WARN, "no drill has run yet; run `deploysafe drill` and schedule it monthly"
    return OK, f"{len(f.drills)} drill(s) recorded, the last on {f.drills[-1].get('date')}"


def check_notify(f: Facts) -> Outcome:
    env = f.loaded.config.notify.webhook_env
    if not env:
        return WARN, "no notify webhook configured; set [notify] webhook_env so failures reach a person"
    if not os.environ.get(env):
        return FAIL, f"[notify] webhook_env names ${env}, which is empty here; export it (from a secret)"
    return OK, f"notify webhook configured (${env})"


def check_last_migration(f: Facts) -> Outcome:
    deploys = [r for r in runs(read_journal(f.loaded.state_dir)) if r.get("command") == "deploy"]
    if not deploys:
        return WARN, "the journal records no deploy yet; deploy with `deploysafe deploy`"
    last = deploys[-1]
    if last["outcome"] in ("failed", "cut off") or "rolled" in str(last["outcome"]):
        return FAIL, f"the last deploy ({last['started_at']}) ended {last['outcome']!r}; see `deploysafe history`"
    return OK, f"the last deploy ({last['started_at']}) ended {last['outcome']!r}"


CHECKS: list[tuple[str, Callable[[Facts], Outcome]]] = [
    ("daily-backup", check_daily_backup),
    ("weekly-backup", check_weekly_backup),
    ("history-window", check_history_window),
    ("branch-count", check_branch_count),
    ("database-size", check_database_size),
    ("app-target", check_app_target),
    ("production-protected", check_protected),
    ("leaked-computes", check_leaked_computes),
    ("last-drill", check_last_drill),
]
# Checks that report "not applicable" on the local provider (``deploysafe setup`` lists the others).
LOCAL_NOT_APPLICABLE = frozenset({"history-window", "branch-count", "production-protected", "leaked-computes"})
CHECKLIST: list[tuple[str, Callable[[Facts], Outcome]]] = [
    ("checklist-history-enabled", check_history_enabled),
    ("checklist-initial-backup", check_initial_backup),
    ("checklist-drill", check_drill_ran),
    ("checklist-notify", check_notify),
    ("checklist-last-migration", check_last_migration),
]


def run_one(name: str, fn: Callable[[Facts], Outcome], facts: Facts) -> CheckResult:
    try:
        status, reason = fn(facts)
    except DeploysafeError as e:
        status, reason = FAIL, f"could not check: {e.message}"
    except Exception as e:  # one broken check must not hide the others' answers
        status, reason = FAIL, f"could not check: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
    return CheckResult(name, status, reason)


def run_checks(
    loaded: LoadedConfig,
    provider: Provider,
    platform: Platform | None,
    *,
    now: datetime | None = None,
    checklist: bool = False,
) -> list[CheckResult]:
    facts = Facts(loaded, provider, platform, now or utcnow())
    todo = CHECKS + (CHECKLIST if checklist else [])
    return [run_one(name, fn, facts) for name, fn in todo]


def checks_or_failure(
    loaded: LoadedConfig,
    open_adapters: Callable[[], tuple[Provider, Platform | None]],
    *,
    checklist: bool = False,
    now: datetime | None = None,
) -> list[CheckResult]:
    """Run the checks; a provider that cannot even be built (missing API key, bad URL) is one ``fail`` line,
    so a scheduled ``check`` still exits 7 and notifies instead of stopping with exit 3."""
    try:
        provider, platform = open_adapters()
    except DeploysafeError as e:
        return [CheckResult("provider", FAIL, f"cannot reach the {loaded.config.provider.type} provider: {e.message}")]
    try:
        return run_checks(loaded, provider, platform, now=now, checklist=checklist)
    finally:
        provider.close()


def worst(results: list[CheckResult]) -> str:
    return max((r.status for r in results), key=lambda s: _RANK[s], default=OK)


def exit_code(results: list[CheckResult], *, warn_ok: bool = False) -> int:
    """0 all ok; CHECK_WARN (6) something warns; CHECK_FAIL (7) something fails. --warn-ok: warnings exit 0."""
    w = worst(results)
    if w == FAIL:
        return CHECK_FAIL
    if w == WARN and not warn_ok:
        return CHECK_WARN
    return EXIT_OK


def summary(results: list[CheckResult], project: str) -> str:
    """The notification text: the worst status and every line that is not ok."""
    bad = [r for r in results if r.status != OK]
    head = f"deploysafe check ({project}): {worst(results).upper()}"
    return "\n".join([head] + [f"- {r.status}: {r.name}: {r.reason}" for r in bad])
