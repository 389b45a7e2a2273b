"""``deploysafe drill``: rehearse a recovery and time it against the guide's targets.

Phases (each timed with a monotonic clock):
- ``branch``: a branch as production was ``--age`` ago, ready to serve. Neon: a point-in-time
  branch (recovery point = exactly that moment). Local: the newest snapshot at least that old is
  *copied* into a ``drill-…`` database, so the drill never touches the snapshot itself
  (recovery point = that snapshot's time).
- ``verify``: the ``[probes]`` SQL probes plus the ``[drill] checks`` against the drill branch.
  With none configured, one built-in check asks that the branch holds at least one table.
- ``total``: branch + verify, the recovery time the guide targets (15 min).
Then the drill branch is deleted (unless ``--keep``) and a Markdown + JSON report is written to
``<state dir>/drills/drill-YYYY-MM-DD.{md,json}`` (a second drill on one day replaces it).

Outcome: ``passed``; ``missed-targets`` (verified, but too slow: exit 6); ``failed`` (a check
failed or the branch could not be made: exit 7 / the error's code).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploysafe.durations import format_duration
from deploysafe.errors import CHECK_FAIL, CHECK_WARN, EXIT_OK, DeploysafeError, PointInTimeError, PreconditionError
from deploysafe.ops import newest, utcnow
from deploysafe.providers.base import SnapshotKind

if TYPE_CHECKING:
    from deploysafe.config import DrillCheck, LoadedConfig
    from deploysafe.journal import Journal
    from deploysafe.providers.base import Provider

DRILLS_DIR = "drills"
CHECK_TIMEOUT = 60.0
_SOURCE_KINDS = (SnapshotKind.DAILY, SnapshotKind.WEEKLY, SnapshotKind.MANUAL, SnapshotKind.PRE_DEPLOY)


@dataclass
class Phase:
    name: str
    seconds: float
    target: float | None = None

    @property
    def within_target(self) -> bool | None:
        return None if self.target is None else self.seconds <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": round(self.seconds, 3), "target_seconds": self.target,
                "within_target": self.within_target}


@dataclass
class CheckOutcome:
    name: str
    kind: str  # "probe" | "check" | "builtin"
    ok: bool
    detail: str
    seconds: float


@dataclass
class DrillReport:
    date: str
    started_at: str
    branch: str
    provider: str
    source: str
    target_time: str
    recovery_point: str | None = None
    rpo_gap_seconds: float | None = None
    phases: list[Phase] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    kept: bool = False
    deleted: bool = False
    outcome: str = "failed"
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("phases", "checks")}
        d["phases"] = [p.as_dict() for p in self.phases]
        d["checks"] = [asdict(c) for c in self.checks]
        return d


# --- verification ----------------------------------------------------------------------------------


def run_drill_check(check: DrillCheck, url: str, timeout: float = CHECK_TIMEOUT) -> CheckOutcome:
    """Run one ``[drill] checks`` query (read-only) and compare its first value with expect/min/max."""
    import psycopg

    t0 = time.monotonic()
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10,
                             options=f"-c statement_timeout={int(timeout * 1000)} -c default_transaction_read_only=on") as conn:
            row = conn.execute(check.query).fetchone()  # the user's own configured SQL, verbatim
    except psycopg.Error as e:
        return CheckOutcome(check.name, "check", False, (str(e).strip().splitlines() or ["error"])[0], time.monotonic() - t0)
    took = time.monotonic() - t0
    value = None if not row else row[0]
    ok, detail = _judge(check, value)
    return CheckOutcome(check.name, "check", ok, detail, took)


def _judge(check: DrillCheck, value: Any) -> tuple[bool, str]:
    if check.expect is not None and (value is None or str(value) != check.expect):
        return False, f"returned {value!r}, expected {check.expect!r}"
    if check.min is not None or check.max is not None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False, f"returned {value!r}, not a number (min/max need one)"
        if check.min is not None and number < check.min:
            return False, f"returned {value}, below min {check.min:g}"
        if check.max is not None and number > check.max:
            return False, f"returned {value}, above max {check.max:g}"
    return True, f"returned {value!r}"


def _verify(loaded: LoadedConfig, url: str) -> list[CheckOutcome]:
    from deploysafe.config import DrillCheck
    from deploysafe.deploy.probes import sql_probe

    out: list[CheckOutcome] = []
    for probe in loaded.config.probes.sql:
        pr = sql_probe(probe, url)
        out.append(CheckOutcome(probe.name, "probe", pr.ok, pr.reason or "passed", pr.latency_ms / 1000))
    checks = list(loaded.config.drill.checks)
    if not out and not checks:
        builtin = DrillCheck(
            name="has tables",
            query="SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
            expect=None,
            min=1,
            max=None,
        )
        outcome = run_drill_check(builtin, url)
        outcome.kind = "builtin"
        out.append(outcome)
    out += [run_drill_check(c, url) for c in checks]
    return out


# --- the drill -----------------------------------------------------------------------------------


DEFAULT_AGE = 7 * 86400.0
WINDOW_MARGIN = 600.0  # seconds kept off the history window's edge: the client's own check keeps 300 s


def _checked_age(provider: Provider, age: float | None) -> float:
    """The drill's age, checked against the point-in-time window where there is one (Neon)."""
    if provider.capabilities().database_copies is not None:  # drills copy a snapshot: no window applies
        return DEFAULT_AGE if age is None else age
    window = provider.history_window()
    if not window:
        raise PointInTimeError("the Neon project keeps no history, so there is no past to drill from",
                               hint="raise the history window in the Neon console (Settings > Instant restore)")
    allowed = max(0.0, window - WINDOW_MARGIN)
    if age is None:
        return min(DEFAULT_AGE, allowed)
    if age > allowed:
        raise PointInTimeError(
            f"--age {format_duration(age)} is beyond the project's {format_duration(window)} history window "
            f"(at most {format_duration(allowed)} with the safety margin)",
            hint=f"use --age {format_duration(allowed)} or less, or raise the history window",
        )
    return age


def _make_branch(loaded: LoadedConfig, provider: Provider, name: str, target_time: datetime) -> tuple[str, datetime]:
    """Create the drill branch; returns (what it came from, its recovery point)."""
    from deploysafe.snapshots.manage import ensure_headroom

    ensure_headroom(loaded, provider, None)  # only expired snapshots go, and only on a plan with a branch limit
    copies = provider.capabilities().database_copies
    if copies is None:  # a point-in-time branch of production
        provider.create_snapshot(name, SnapshotKind.DRILL, at=target_time, serve=True)
        return f"{provider.production().name} at {target_time.isoformat(timespec='seconds')}", target_time
    candidates = [s for s in provider.list_snapshots() if s.created_at <= target_time]
    src = newest(candidates, *_SOURCE_KINDS)
    if src is None:
        raise PreconditionError(
            f"no snapshot is at least as old as {target_time.isoformat(timespec='seconds')} to drill from",
            hint="run `deploysafe backup` daily, or drill a younger backup with e.g. --age 0s",
        )
    copies.clone(src, name, SnapshotKind.DRILL)
    return f"snapshot {src.name}", src.created_at


def run_drill(
    loaded: LoadedConfig,
    provider: Provider,
    journal: Journal,
    *,
    age: float | None = None,
    keep: bool = False,
    now: datetime | None = None,
) -> DrillReport:
    """Run a drill and write its report; raises the branch error (after writing a failed report).
    ``age`` None: 7 days, or on Neon the history window less a margin when that is shorter."""
    now = now or utcnow()
    age = _checked_age(provider, age)  # before anything is touched (headroom pruning included)
    targets = loaded.config.drill.targets
    target_time = now - timedelta(seconds=age)
    from deploysafe.snapshots.manage import drill_name

    name = drill_name(now)
    report = DrillReport(date=now.date().isoformat(), started_at=now.isoformat(), branch=name, provider=provider.name,
                         source="", target_time=target_time.isoformat())
    created = False
    t_start = time.monotonic()
    try:
        with journal.step("drill-branch", branch=name, age_seconds=age) as step:
            report.source, point = _make_branch(loaded, provider, name, target_time)
            created = True
            provider.ensure_serving(name)
            step.details["source"] = report.source
        branch_s = time.monotonic() - t_start
        report.phases.append(Phase("branch", branch_s, targets.branch))
        report.recovery_point = point.isoformat()
        report.rpo_gap_seconds = max(0.0, (target_time - point).total_seconds())
        t_verify = time.monotonic()
        with journal.step("drill-verify", branch=name) as step:
            report.checks = _verify(loaded, provider.connection_url(name))
            step.details["failed"] = [c.name for c in report.checks if not c.ok]
        report.phases.append(Phase("verify", time.monotonic() - t_verify, targets.verify))
        report.phases.append(Phase("total", time.monotonic() - t_start, targets.total))
    except BaseException as e:
        report.reason = getattr(e, "message", None) or str(e) or type(e).__name__
        _close(loaded, provider, journal, report, created=created, keep=keep, quiet=True)
        raise
    _close(loaded, provider, journal, report, created=created, keep=keep, quiet=False)
    return report


def _close(loaded: LoadedConfig, provider: Provider, journal: Journal, report: DrillReport, *, created: bool, keep: bool,
           quiet: bool) -> None:
    """Judge, clean up, write the report. ``quiet``: an error is already on its way; a cleanup failure must not hide it."""
    try:
        _finish(provider, journal, report, created=created, keep=keep)
    except DeploysafeError as e:
        report.reason = (report.reason + "; " if report.reason else "") + f"the drill branch was not deleted: {e.message}"
        report.outcome = "failed"
        if not quiet:
            _record(loaded, journal, report)
            raise
    _record(loaded, journal, report)


def _record(loaded: LoadedConfig, journal: Journal, report: DrillReport) -> None:
    write_report(loaded.state_dir, report)
    journal.event("result", outcome=report.outcome, branch=report.branch,
                  report=str(report_path(loaded.state_dir, report, "json")))


def _finish(provider: Provider, journal: Journal, report: DrillReport, *, created: bool, keep: bool) -> None:
    failed = [c.name for c in report.checks if not c.ok]
    if report.reason or not report.phases or len(report.phases) < 3:
        report.outcome = "failed"
        report.reason = report.reason or "the drill stopped before it finished"
    elif failed:
        report.outcome, report.reason = "failed", f"check(s) failed: {', '.join(failed)}"
    elif any(p.within_target is False for p in report.phases):
        report.outcome = "missed-targets"
        report.reason = "slower than: " + ", ".join(p.name for p in report.phases if p.within_target is False)
    else:
        report.outcome, report.reason = "passed", ""
    if not created:
        return
    if keep:
        report.kept = True
        return
    t0 = time.monotonic()
    with journal.step("drill-cleanup", branch=report.branch):
        provider.delete(report.branch)
    report.deleted = True
    report.phases.append(Phase("cleanup", time.monotonic() - t0))


def exit_code(report: DrillReport) -> int:
    return {"passed": EXIT_OK, "missed-targets": CHECK_WARN}.get(report.outcome, CHECK_FAIL)


# --- reports -------------------------------------------------------------------------------------


def report_path(state_dir: Path, report: DrillReport, ext: str) -> Path:
    return state_dir / DRILLS_DIR / f"drill-{report.date}.{ext}"


def write_report(state_dir: Path, report: DrillReport) -> None:
    from deploysafe.files import write_private
    from deploysafe.redact import redact_obj

    write_private(report_path(state_dir, report, "json"), json.dumps(redact_obj(report.as_dict()), indent=2) + "\n")
    write_private(report_path(state_dir, report, "md"), render_markdown(report))


def _target(p: Phase) -> str:
    if p.target is None:
        return "-"
    return f"{format_duration(p.target)} ({'met' if p.within_target else 'MISSED'})"


def render_markdown(r: DrillReport) -> str:
    lines = [
        f"# Recovery drill {r.date}",
        "",
        f"- Outcome: **{r.outcome}**" + (f" ({r.reason})" if r.reason else ""),
        f"- Provider: {r.provider}; drill branch `{r.branch}` ({'kept' if r.kept else 'deleted' if r.deleted else 'not created'})",
        f"- Restored from: {r.source or '(nothing)'}",
        f"- Asked for production as of {r.target_time}; recovery point achieved: {r.recovery_point or '-'}"
        + (f" (gap {format_duration(r.rpo_gap_seconds)})" if r.rpo_gap_seconds is not None else ""),
        "",
        "| Phase | Took | Target |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {p.name} | {format_duration(p.seconds)} | {_target(p)} |" for p in r.phases]
    lines += ["", "| Check | Kind | Result | Detail |", "| --- | --- | --- | --- |"]
    lines += [f"| {c.name} | {c.kind} | {'pass' if c.ok else 'FAIL'} | {c.detail.replace('|', '/')} |" for c in r.checks]
    return "\n".join(lines) + "\n"


def load_reports(state_dir: Path) -> list[dict[str, Any]]:
    """Every readable drill report, oldest first."""
    out: list[dict[str, Any]] = []
    for path in sorted((state_dir / DRILLS_DIR).glob("drill-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            datetime.fromisoformat(data["started_at"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a torn or foreign file is not a drill
        out.append(data)
    out.sort(key=lambda d: d["started_at"])
    return out


def history_lines(reports: list[dict[str, Any]]) -> list[str]:
    """One line per past drill: date, outcome, each phase's time against its target."""
    lines = []
    for r in reports:
        phases = {p["name"]: p for p in r.get("phases", [])}
        cells = []
        for name in ("branch", "verify", "total"):
            p = phases.get(name)
            mark = "" if p is None or p.get("within_target") is not False else "!"
            cells.append(f"{name} {format_duration(p['seconds']) + mark if p else '-':<9}")
        lines.append(f"{r.get('date', '?'):<11} {r.get('outcome', '?'):<15} " + "  ".join(cells))
    return lines
