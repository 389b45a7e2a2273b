"""The ``Platform`` interface: where the app runs and how its DATABASE_URL is changed."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


class CurrentValue(BaseModel):
    """What the variable holds now. ``readable=False``: write-only (e.g. Vercel sensitive, Fly secrets)."""

    model_config = ConfigDict(frozen=True)

    readable: bool
    value: str | None = None  # the literal value, or the reference text (``${{Postgres.DATABASE_URL}}``)
    reference: bool = False  # the value is a reference to keep, not a URL
    var_id: str | None = None  # platform id of the variable, when it has one


class Release(BaseModel):
    """A deployment/release the platform is running or rolling out."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: str
    live: bool = False
    failed: bool = False
    url: str | None = None
    detail: str | None = None
    # what code the release runs (commit, image, slug, build): two releases with the same code are the same app
    code: str | None = None

    @property
    def runs(self) -> str:
        """The code identity to compare releases by: ``code`` when known, else the release id."""
        return self.code or self.id


@runtime_checkable
class ReleaseRollback(Protocol):
    """Capability of a platform that can bring back a previous release of the app's code."""

    def how(self) -> str:
        """One line for the plan: how a previous release is brought back, and whether it reads the new variable."""
        ...

    def return_to(self, release: Release, url: str | None) -> Release:
        """Start running ``release``'s code again. ``url``: also set the variable to it, in the order that keeps the
        app working (one release action where the platform can do both). Returns the release to ``wait_live`` on."""
        ...


@runtime_checkable
class Platform(Protocol):
    """Deployment platform adapter. Methods raise PlatformError with a fix hint."""

    name: str

    def read_current(self) -> CurrentValue:
        """Where DATABASE_URL points now (or that it cannot be read)."""
        ...

    def prepare(self) -> None:
        """Resolve everything a rollback needs (ids, current release) so its critical path is short."""
        ...

    def set_url(self, url: str) -> None:
        """Set DATABASE_URL (or restore a reference text) for production, without restarting."""
        ...

    def pick_up(self) -> Release:
        """Make the running app pick up the new value (restart / redeploy); returns the new release."""
        ...

    def wait_live(self, release: Release, timeout: float) -> Release:
        """Poll until the release is live; PlatformError if it fails or the deadline passes."""
        ...

    def describe(self) -> Release | None:
        """The release serving production now, where the platform can tell."""
        ...

    def release_rollback(self) -> ReleaseRollback | None:
        """The capability to bring back a previous release, or None when this platform (as configured) cannot.
        No I/O: the plan asks it."""
        ...

    def release_rollback_fix(self) -> str:
        """When ``release_rollback()`` is None: what in deploysafe.toml would give the capability ("" when nothing
        can). No I/O."""
        ...

    def caveats(self) -> list[str]:
        """Warnings to show before the first deploy (e.g. a release phase that migrates)."""
        ...

    def close(self) -> None:
        ...
