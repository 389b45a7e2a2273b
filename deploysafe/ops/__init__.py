"""Operations from the recovery guide: backup, check, drill, restore-table, setup, runbook.

Each module holds one command's logic; the CLI only parses options and calls it. This
package module holds what several of them share: the clock and snapshot lookups.
"""

from __future__ import annotations

from deploysafe.providers.base import Snapshot, SnapshotKind
from deploysafe.providers.base import utcnow as utcnow  # re-exported: the ops modules' wall clock


def newest(snapshots: list[Snapshot], *kinds: SnapshotKind) -> Snapshot | None:
    """The newest snapshot deploysafe made of one of ``kinds`` (None when there is none)."""
    mine = [s for s in snapshots if s.ours and s.kind in kinds]
    return max(mine, key=lambda s: (s.created_at, s.name), default=None)
