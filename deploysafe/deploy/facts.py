"""What a deploy is planned from, read once in preflight: the options, the clock, and the facts.

A healthy deploy asks the provider for production and the snapshot list once, and the
platform where the app points once; every later step (the snapshot's rollback preparation,
prune) uses these same answers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from deploysafe.deploy.rollback import Known
from deploysafe.snapshots import manage
from deploysafe.snapshots.inuse import InUse, points_at, read_current

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import CurrentValue, Platform
    from deploysafe.providers.base import ProductionInfo, Provider, Snapshot


@dataclass
class DeployOptions:
    sha: str | None = None
    dry_run: bool = False
    no_rollback: bool = False
    allow_destructive: bool = False
    rehearse: bool = False
    watch: float | None = None
    assume_production: bool = False  # the app runs on production, though nothing can tell


class Clock(Protocol):
    def now(self) -> datetime: ...  # aware, UTC: names the snapshot, ages the others

    def monotonic(self) -> float: ...  # step timings


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class Facts:
    production: ProductionInfo
    current: CurrentValue | None  # the platform's value of the app's variable; None when it could not say
    where: InUse  # where the app points
    snapshots: tuple[Snapshot, ...]
    caveats: tuple[str, ...]  # the platform's
    sha: str | None  # the commit being deployed
    now: datetime

    def in_use(self, opts: DeployOptions) -> str | None:
        """The snapshot the app runs on, for prune; with --assume-production, production (the deploy records
        so before anything changes)."""
        return self.where.name or (self.production.name if opts.assume_production else None)

    def for_snapshots(self) -> manage.Facts:
        """The same answers, as the snapshot planners take them."""
        return manage.Facts(list(self.snapshots), self.production.name, self.where.name, self.where.source)

    @property
    def known(self) -> Known:
        """What the rollback's preparation would otherwise read again."""
        return Known(self.production, self.current)


def gather(loaded: LoadedConfig, opts: DeployOptions, provider: Provider, platform: Platform, clock: Clock) -> Facts:
    production = provider.production()
    caveats = platform.caveats()
    current, detail = read_current(platform)
    where = points_at(loaded, provider, current, detail)
    sha = git_sha(opts.sha, loaded.app_dir)
    return Facts(production, current, where, tuple(provider.list_snapshots()), tuple(caveats), sha, clock.now())


def git_sha(explicit: str | None, cwd: Path) -> str | None:
    if explicit:
        return explicit
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        import git  # GitPython costs start-up time: only a deploy without --sha or $GITHUB_SHA loads it

        return str(git.Repo(cwd, search_parent_directories=True).head.commit.hexsha)
    except Exception:  # not a repo, no commits, git missing: the snapshot is named "nosha"
        return None
