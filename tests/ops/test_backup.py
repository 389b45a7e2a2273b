"""deploysafe backup on real PostgreSQL: daily/weekly choice, idempotent per day, prune afterwards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from deploysafe.errors import PreconditionError, UsageError
from deploysafe.journal import Journal, read_journal
from deploysafe.ops.backup import describe_item, parse_schedule_item, pick_kind, run_backup, schedule_show
from deploysafe.providers.base import SnapshotKind
from deploysafe.providers.local import LocalProvider
from support.ops_helpers import rows

WED = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
SUN = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def test_pick_kind_follows_the_configured_weekday() -> None:
    assert pick_kind(date(2026, 11, 29), "sunday") is SnapshotKind.WEEKLY
    assert pick_kind(date(2026, 11, 25), "sunday") is SnapshotKind.DAILY
    assert pick_kind(date(2026, 11, 25), "wednesday") is SnapshotKind.WEEKLY


def test_backup_is_idempotent_per_day_and_holds_production(local_setup: Callable[..., Any]) -> None:
    loaded, prov = local_setup()
    journal = Journal(loaded.state_dir, "backup")
    first = run_backup(loaded, prov, None, journal, now=WED)
    assert (first.name, first.kind, first.created) == ("backup-2026-11-25", SnapshotKind.DAILY, True)
    assert rows(prov.connection_url("backup-2026-11-25")) == rows(prov.url)
    again = run_backup(loaded, prov, None, journal, now=WED)
    assert again.created is False and again.name == first.name
    assert [s.name for s in prov.list_snapshots() if s.ours] == ["backup-2026-11-25"]
    steps = [r for r in read_journal(loaded.state_dir) if r["step"] == "backup" and r["outcome"] == "ok"]
    assert [s["details"].get("existing", False) for s in steps] == [False, True]
    # on the weekly day: a weekly backup; --kind daily forces a daily one
    assert run_backup(loaded, prov, None, journal, now=SUN).name == "weekly-2026-11-29"
    forced = run_backup(loaded, prov, None, journal, now=SUN, kind=SnapshotKind.DAILY)
    assert forced.name == "backup-2026-11-29" and forced.created


def test_backup_prunes_expired_backups_but_keeps_the_newest(local_setup: Callable[..., Any]) -> None:
    # One clock for the run and the provider: snapshots are stamped with the time the run believes it is,
    # so the test holds on any date.
    clock = [WED]
    loaded, prov = local_setup('[retention]\ndaily = "1s"\n', now=lambda: clock[0])
    journal = Journal(loaded.state_dir, "backup")
    # no platform here: where the app points comes from the provider's record (without one, prune keeps all)
    prov.record_app_target(prov.production().name)
    run_backup(loaded, prov, None, journal, now=WED, prune=False)
    later = clock[0] = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    # the next day's run prunes with its own clock: the first backup is then older than 1s
    result = run_backup(loaded, prov, None, journal, now=later)
    names = {s.name for s in prov.list_snapshots() if s.ours}
    assert "backup-2026-11-26" in names
    # retention 1s: the older one went, the newest of the kind stays
    assert result.pruned == ["backup-2026-11-25"] and names == {"backup-2026-11-26"}


def test_schedule_is_neon_only() -> None:
    prov = LocalProvider("postgresql://u@localhost:5432/prod")  # no connection needed to refuse
    with pytest.raises(PreconditionError, match="Neon feature"):
        schedule_show(prov)


def test_schedule_items_parse_strictly() -> None:
    assert parse_schedule_item("frequency=daily,hour=3,retention=7d") == {"frequency": "daily", "hour": 3, "retention_seconds": 604800}
    assert describe_item({"frequency": "weekly", "day": 7, "hour": 4}) == "weekly, day 7, hour 4, kept forever"
    for bad in ("hour=3", "frequency=often", "frequency=daily,hour=24", "frequency=daily,retention=10m", "frequency=daily,x=1", "daily"):
        with pytest.raises(UsageError):
            parse_schedule_item(bad)
