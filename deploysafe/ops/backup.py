"""``deploysafe backup``: the guide's daily and weekly backup snapshots, then pruning.

One backup per kind per day: ``backup-YYYY-MM-DD`` (daily) or ``weekly-YYYY-MM-DD``. A rerun
on the same day reports the existing one and creates nothing (idempotent, so a schedule may
retry freely). Afterwards old snapshots are pruned per ``[retention]``.

``backup schedule show|set`` manages Neon's native snapshot schedule of the production branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from deploysafe.durations import format_duration, parse_duration
from deploysafe.errors import PreconditionError, UsageError
from deploysafe.ops import utcnow
from deploysafe.providers.base import SnapshotKind

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.journal import Journal
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import BackupSchedules, Provider

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def pick_kind(day: date, weekly_day: str) -> SnapshotKind:
    """Weekly on the configured weekday, daily on every other day."""
    return SnapshotKind.WEEKLY if WEEKDAYS[day.weekday()] == weekly_day else SnapshotKind.DAILY


@dataclass
class BackupResult:
    name: str
    kind: SnapshotKind
    created: bool
    pruned: list[str] = field(default_factory=list)
    prune_failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "created": self.created,
                "pruned": self.pruned, "prune_failed": self.prune_failed}


def run_backup(
    loaded: LoadedConfig,
    provider: Provider,
    platform: Platform | None,
    journal: Journal,
    *,
    kind: SnapshotKind | None = None,
    now: datetime | None = None,
    prune: bool = True,
) -> BackupResult:
    from deploysafe.snapshots.manage import backup_name, ensure_headroom, production_lock

    now = now or utcnow()
    kind = kind or pick_kind(now.date(), loaded.config.backup.weekly_day)
    name = backup_name(kind, now.date())
    # The deploy lock: pruning (and making branch room) must never race a deploy's own snapshots.
    with production_lock(loaded, provider, journal, "backup"):
        with journal.step("backup", snapshot=name, kind=kind.value) as step:
            existing = [s for s in provider.list_snapshots() if s.name == name]
            if existing:
                step.details["existing"] = True
                result = BackupResult(name, kind, created=False)
            else:
                ensure_headroom(loaded, provider, platform, journal=journal, now=now)
                provider.create_snapshot(name, kind)
                result = BackupResult(name, kind, created=True)
        if prune:
            _prune(loaded, provider, platform, journal, result, now)
    journal.event("result", outcome="created" if result.created else "existing", **result.as_dict())
    return result


def _prune(
    loaded: LoadedConfig, provider: Provider, platform: Platform | None, journal: Journal, result: BackupResult, now: datetime
) -> None:
    from deploysafe.snapshots.manage import prune

    plan = prune(loaded, provider, platform, dry_run=False, journal=journal, now=now)  # one clock for the whole run
    result.pruned = [s.name for s, _ in plan.deleted]
    result.prune_failed = [f"{s.name}: {err}" for s, err in plan.failed]


# --- Neon's native backup schedule ---------------------------------------------------------------

FREQUENCIES = ("hourly", "daily", "weekly", "monthly", "yearly")
_INT_FIELDS = {"hour": (0, 23), "day": (1, 31), "month": (1, 12)}


def _schedules(provider: Provider) -> BackupSchedules:
    """The provider's native backup schedule; PreconditionError when it has none."""
    schedules = provider.capabilities().backup_schedules
    if schedules is None:
        raise PreconditionError(
            f"the {provider.name} provider has no native backup schedule (it is a Neon feature)",
            hint="run `deploysafe backup` from cron or a scheduled CI workflow instead",
        )
    return schedules


def parse_schedule_item(text: str) -> dict[str, Any]:
    """``frequency=daily,hour=3,retention=7d`` -> a Neon ``BackupScheduleItem``."""
    item: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"schedule item {text!r}: {part!r} is not key=value", hint="write e.g. frequency=daily,hour=3,retention=7d")
        if key == "frequency":
            if value not in FREQUENCIES:
                raise UsageError(f"schedule item {text!r}: frequency must be one of {', '.join(FREQUENCIES)}")
            item["frequency"] = value
        elif key in _INT_FIELDS:
            lo, hi = _INT_FIELDS[key]
            if not value.isdigit() or not lo <= int(value) <= hi:
                raise UsageError(f"schedule item {text!r}: {key} must be a whole number from {lo} to {hi}")
            item[key] = int(value)
        elif key == "retention":
            try:
                seconds = int(parse_duration(value))
            except ValueError as e:
                raise UsageError(f"schedule item {text!r}: {e}") from None
            if seconds < 3600:
                raise UsageError(f"schedule item {text!r}: Neon keeps scheduled snapshots at least 1h")
            item["retention_seconds"] = seconds
        else:
            raise UsageError(f"schedule item {text!r}: unknown key {key!r}", hint="keys: frequency, hour, day, month, retention")
    if "frequency" not in item:
        raise UsageError(f"schedule item {text!r}: frequency is required", hint="e.g. frequency=daily,hour=3,retention=7d")
    return item


def describe_item(item: dict[str, Any]) -> str:
    parts = [str(item.get("frequency", "?"))]
    for key in ("month", "day", "hour"):
        if key in item and item[key] is not None:
            parts.append(f"{key} {item[key]}")
    keep = item.get("retention_seconds")
    parts.append(f"kept {format_duration(float(keep))}" if keep else "kept forever")
    return ", ".join(parts)


def schedule_show(provider: Provider) -> list[dict[str, Any]]:
    return _schedules(provider).backup_schedule_get()


def schedule_set(provider: Provider, items: list[dict[str, Any]], journal: Journal) -> None:
    schedules = _schedules(provider)
    with journal.step("backup-schedule", items=items):
        schedules.backup_schedule_set(items)
