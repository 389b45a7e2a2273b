"""The ``Provider`` interface: where snapshots come from (a Neon branch, or a database copy).

Metadata lives with the snapshot itself (Neon: branch annotation + name; local: a JSON
``COMMENT ON DATABASE``), never in a local file, so every machine sees the same list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

ANNOTATION_KEY = "deploysafe"  # marks what deploysafe created; value = the kind


def utcnow() -> datetime:
    """The wall clock, timezone-aware (UTC). Providers take it as an injectable ``now``."""
    return datetime.now(UTC)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from provider metadata (``Z`` or an offset; naive means UTC), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def failed_state_name(production: str, now: datetime) -> str:
    """Name of the branch that keeps production's failed state (restore's backup, promote's renamed production)."""
    return f"{production}-failed-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


class SnapshotKind(StrEnum):
    PRE_DEPLOY = "pre-deploy"
    DAILY = "daily"
    WEEKLY = "weekly"
    MANUAL = "manual"
    RESTORE = "restore"
    DRILL = "drill"
    FAILED_STATE = "failed-state"  # production's state before an in-place restore, kept by Neon under our name


# Snapshot.state of a copy that has not finished: its copier still runs (COPYING), or it was stopped
# (INCOMPLETE: killed mid-copy). Neither is ever served or restored from; prune deletes an INCOMPLETE one.
COPYING = "copying"
INCOMPLETE = "incomplete"


class Snapshot(BaseModel):
    """One snapshot (or, with ``ours=False``, another branch/database the provider can see)."""

    model_config = ConfigDict(frozen=True)

    id: str  # Neon branch id; local: database name
    name: str
    kind: SnapshotKind | None = None  # None: not created by deploysafe
    ours: bool = False
    created_at: datetime
    source: str | None = None  # what it was taken from (production branch / database)
    git_sha: str | None = None
    size_bytes: int | None = None
    in_use: bool = False  # the app's DATABASE_URL points at it now
    protected: bool = False
    is_production: bool = False
    is_default: bool = False
    parent_id: str | None = None
    has_children: bool = False
    expires_at: datetime | None = None
    at: datetime | None = None  # point in time it represents, when not "now"
    state: str | None = None  # provider state (Neon: init/ready/...)


class ProductionInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    url: str  # connection URL (holds a password: never print unredacted)


class RestorePlan(BaseModel):
    """How production would be restored in place (or why it cannot be), decided before anything changes."""

    model_config = ConfigDict(frozen=True)

    possible: bool
    reason: str = ""  # why not, when not possible
    fix: str = ""
    target: str = ""  # the production branch restored (keeps its name, id and connection string)
    source: str = ""  # the branch whose history is read (production itself, or another root branch)
    source_id: str = ""
    source_lsn: str | None = None
    source_timestamp: datetime | None = None
    own_history: bool = False  # source is production: the kept failed state stays deletable
    notes: tuple[str, ...] = ()

    @classmethod
    def refused(cls, reason: str, fix: str) -> RestorePlan:
        return cls(possible=False, reason=reason, fix=fix)

    @classmethod
    def unsupported(cls, provider: str) -> RestorePlan:
        """For providers with no in-place restore: ``auto`` repoints, ``restore`` is refused with this reason."""
        return cls.refused(f"the {provider} provider cannot restore production in place",
                           'use [rollback] strategy = "repoint" (or "auto", which repoints here)')


@runtime_checkable
class Provider(Protocol):
    """Snapshot backend. Methods raise ProviderError (or PointInTimeError) with a fix hint."""

    name: str

    def production(self) -> ProductionInfo:
        """Resolve the production branch/database and its connection URL."""
        ...

    def create_snapshot(
        self,
        name: str,
        kind: SnapshotKind,
        *,
        at: datetime | None = None,
        git_sha: str | None = None,
        serve: bool = False,
    ) -> Snapshot:
        """Snapshot production (at head, or at ``at``); ``serve`` makes it ready for the app at once."""
        ...

    def list_snapshots(self) -> list[Snapshot]:
        """Every branch/database the provider sees, ours or not, production included."""
        ...

    def get(self, name: str) -> Snapshot:
        """One snapshot by exact name; ProviderError if missing."""
        ...

    def ensure_serving(self, name: str) -> None:
        """Make the snapshot able to serve the app (Neon: a ready read-write endpoint)."""
        ...

    def connection_url(self, name: str, *, like: str | None = None) -> str:
        """Connection URL for the snapshot, fetched from the backend (never derived from production's).
        ``like``: the app's current URL, whose connection style (pooled or direct) the new URL follows."""
        ...

    def hold(self, name: str) -> None:
        """The app is about to be moved onto this snapshot: drop any server-side expiry so it is never deleted
        under the app (a snapshot that only stands ready to serve keeps its expiry)."""
        ...

    def plan_restore(self, snapshot: str | None = None, *, at: datetime | None = None) -> RestorePlan:
        """Whether production can be restored in place to ``snapshot`` (or to time ``at``), and how."""
        ...

    def restore_in_place(self, plan: RestorePlan, preserve_as: str) -> None:
        """Carry out a possible plan: production gets the snapshot's data under its own connection string;
        its state before is kept as ``preserve_as``."""
        ...

    def delete(self, name: str) -> None:
        """Delete a snapshot; deleting one that is already gone succeeds."""
        ...

    def rename(self, name: str, new_name: str) -> None:
        """Rename a snapshot/branch (used by promote)."""
        ...

    def identify(self, url: str) -> str | None:
        """Name of the branch/database a connection URL points at, if this provider knows it."""
        ...

    def record_app_target(self, name: str) -> None:
        """Record, where every runner sees it, that the app's DATABASE_URL now points at ``name``
        (production's name or a snapshot's); ProviderError when it cannot."""
        ...

    def recorded_app_target(self) -> str | None:
        """The last recorded target (see ``record_app_target``), or None when nothing was recorded."""
        ...

    def branch_allowance(self) -> int | None:
        """How many branches the plan allows (None: no limit known)."""
        ...

    def history_window(self) -> float | None:
        """Point-in-time window in seconds (None: point in time unsupported)."""
        ...

    def close(self) -> None:
        ...
