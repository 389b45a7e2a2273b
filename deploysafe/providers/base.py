"""The ``Provider`` interface: where snapshots come from (a Neon branch, or a database copy).

Metadata lives with the snapshot itself (Neon: branch annotation + name; local: a JSON
``COMMENT ON DATABASE``), never in a local file, so every machine sees the same list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

ANNOTATION_KEY = "deploysafe"  # marks what deploysafe created; value = the kind

Json = dict[str, Any]


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


class ProjectInfo(BaseModel):
    """What `deploysafe check`/`setup` need to know about a hosted project and its plan (Neon's today)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    history_retention_seconds: int
    branches_limit: int | None = None
    subscription_type: str | None = None
    logical_size_bytes: int | None = None  # production's logical size (what the plan's per-branch limit caps)
    branch_logical_size_limit_bytes: int | None = None  # 0 or absent: none reported
    root_branches: int | None = None
    root_branches_limit: int | None = None  # by plan (docs: plans); the API does not report it
    store_passwords: bool | None = None
    schedule: list[Json] | None = None  # the host's own backup schedule on production; None: not read
    unread: tuple[str, ...] = ()  # facts that could not be read, and why


# --- optional capabilities ------------------------------------------------------------------------
# A provider offers each one by returning itself in the matching field of ``capabilities()``;
# callers ask once and branch on None, never on the provider's name or class.


class RestoresInPlace(Protocol):
    """Restore production in place (Neon). Every provider answers ``plan_restore``: one that cannot restore
    returns ``RestorePlan.unsupported`` and refuses ``restore_in_place`` with the same reason."""

    def plan_restore(self, snapshot: str | None = None, *, at: datetime | None = None) -> RestorePlan:
        """Whether production can be restored in place to ``snapshot`` (or to time ``at``), and how."""
        ...

    def restore_in_place(self, plan: RestorePlan, preserve_as: str) -> None:
        """Carry out a possible plan: production gets the snapshot's data under its own connection string;
        its state before is kept as ``preserve_as``."""
        ...


class BackupSchedules(Protocol):
    """The host's own scheduled snapshots of production (Neon's backup schedule); items are the host's JSON."""

    def backup_schedule_get(self) -> list[Json]:
        ...

    def backup_schedule_set(self, items: list[Json]) -> None:
        ...


class ProjectFacts(Protocol):
    """Facts about a hosted project and its plan, and branch protection (Neon)."""

    def project_info(self, *, details: bool = False) -> ProjectInfo:
        """The project and its plan; ``details`` adds production's size, the root-branch count and the
        host's backup schedule (each one that cannot be read is named in ``unread``)."""
        ...

    def branch_endpoints(self, branch_id: str) -> list[Json]:
        """The computes of one branch, as the host's JSON (id, type, current_state, host, ...)."""
        ...

    def count_branches(self) -> int:
        ...

    def protect(self, name: str) -> None:
        """Protect a branch against deletion and reset."""
        ...


class DatabaseCopies(Protocol):
    """Snapshots are databases on production's server (local provider): copy one, or make one production."""

    def clone(self, source: Snapshot, name: str, kind: SnapshotKind) -> Snapshot:
        """Copy snapshot ``source`` into a new snapshot ``name`` of kind ``kind``; ``source`` is left untouched."""
        ...

    def take_name(self, snapshot: str, new_name: str) -> str:
        """Disconnect the snapshot's sessions and rename its database ``new_name``; returns its new URL."""
        ...

    def unmark(self, name: str) -> None:
        """Drop deploysafe's mark from database ``name``: it no longer counts as a snapshot."""
        ...


@dataclass(frozen=True)
class Capabilities:
    """The optional capabilities a provider offers (None: not offered)."""

    backup_schedules: BackupSchedules | None = None
    project_facts: ProjectFacts | None = None
    database_copies: DatabaseCopies | None = None


@runtime_checkable
class Provider(RestoresInPlace, Protocol):
    """Snapshot backend. Methods raise ProviderError (or PointInTimeError) with a fix hint.

    ``name`` is for display only; behaviour that differs by provider is a method or a capability."""

    name: str

    def capabilities(self) -> Capabilities:
        """The optional capabilities this provider offers."""
        ...

    def lock_url(self, production_url: str) -> str:
        """Where the deploy lock (a session advisory lock) is held for this production."""
        ...

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
