"""In-memory doubles of a ``Provider`` and a ``Platform`` for fast unit tests of deploy and rollback.

Pure Python, no I/O. ``FakeProvider`` keeps snapshots in a dict and makes up URLs; ``FakePlatform``
models the one thing the orchestration relies on: setting the variable changes nothing until
``pick_up``; only then does the running app use the new value (``live_value``). ``healthy_urls`` is
what a probe double consults: the app is healthy when the URL it runs on is in the set.
:class:`Faults` logs every call and makes the Nth call of a method raise a chosen exception, so each
failure point of deploy and rollback can be driven without a server.

Neither is in a registry: ``"fake"`` is not a valid ``[provider]`` or ``[platform] type``. Tests build
them directly and pass them to ``deploy.deploy(..., provider=..., platform=...)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deploysafe.errors import PlatformError, ProviderError
from deploysafe.platforms.base import CurrentValue, Release, ReleaseRollback
from deploysafe.providers.base import Capabilities, ProductionInfo, RestorePlan, Snapshot, SnapshotKind


@dataclass(frozen=True)
class Call:
    """One logged call: the method name and its arguments."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class Faults:
    """Per-method fault injection and a call log, shared by the fake provider and the fake platform."""

    def __init__(self, owner: object) -> None:
        self._owner = owner
        self._planned: dict[str, dict[int, BaseException]] = {}
        self.counts: Counter[str] = Counter()
        self.log: list[Call] = []

    def fail(self, method: str, exc: BaseException, *, on_call: int = 1) -> None:
        """Make the ``on_call``-th call of ``method`` (1-based, counted from now on) raise ``exc``."""
        if not callable(getattr(self._owner, method, None)):
            # a typo here would make a fault test pass without injecting anything
            raise ValueError(f"{type(self._owner).__name__} has no method {method!r}")
        if on_call < 1:
            raise ValueError("on_call counts from 1")
        self._planned.setdefault(method, {})[self.counts[method] + on_call] = exc

    def record(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Log the call, then raise the exception planned for this call number, if any."""
        self.counts[method] += 1
        self.log.append(Call(method, args, kwargs))
        exc = self._planned.get(method, {}).pop(self.counts[method], None)
        if exc is not None:
            raise exc

    def calls(self, method: str | None = None) -> list[Call]:
        """The logged calls, all of them or those of one method, in order."""
        return [c for c in self.log if method is None or c.method == method]

    def methods(self) -> list[str]:
        """Method names in call order."""
        return [c.method for c in self.log]


class FakeProvider:
    """In-memory snapshot backend: production plus named snapshots, each with a made-up URL."""

    name = "fake"

    def __init__(
        self,
        production: str = "production",
        *,
        host: str = "fake.invalid",
        allowance: int | None = None,
        history: float | None = None,
        now: datetime | None = None,
    ) -> None:
        self.host = host
        self.allowance = allowance
        self.history = history
        self.faults = Faults(self)
        self.closed = False
        self.deleted: list[str] = []
        created = now or datetime.now(UTC)
        self.production_name = production
        self.snapshots: dict[str, Snapshot] = {
            production: Snapshot(id=f"id-{production}", name=production, created_at=created, is_production=True,
                                 is_default=True)
        }
        self.serving: set[str] = {production}  # names with a compute: only those have a connection URL
        self.app_target: str | None = None  # what record_app_target stored (the provider-side record)

    # --- helpers for tests -------------------------------------------------------------------

    def url_of(self, name: str) -> str:
        """The URL a snapshot has (or would have once serving); no password, so nothing to redact."""
        return f"postgresql://app@{self.host}:5432/{name}"

    def add(self, snap: Snapshot, *, serving: bool = False) -> Snapshot:
        """Seed a snapshot as if an earlier run had made it."""
        self.snapshots[snap.name] = snap
        if serving:
            self.serving.add(snap.name)
        return snap

    # --- Provider ------------------------------------------------------------------------------

    def production(self) -> ProductionInfo:
        self.faults.record("production")
        snap = self.snapshots[self.production_name]
        return ProductionInfo(id=snap.id, name=snap.name, url=self.url_of(snap.name))

    def create_snapshot(
        self,
        name: str,
        kind: SnapshotKind,
        *,
        at: datetime | None = None,
        git_sha: str | None = None,
        serve: bool = False,
    ) -> Snapshot:
        self.faults.record("create_snapshot", name, kind, at=at, git_sha=git_sha, serve=serve)
        if name in self.snapshots:
            raise ProviderError(f"a snapshot named {name!r} already exists", hint="choose another name")
        snap = Snapshot(
            id=f"id-{name}", name=name, kind=kind, ours=True, created_at=datetime.now(UTC),
            source=self.production_name, git_sha=git_sha, at=at, parent_id=self.snapshots[self.production_name].id,
        )
        return self.add(snap, serving=serve)

    def list_snapshots(self) -> list[Snapshot]:
        self.faults.record("list_snapshots")
        return list(self.snapshots.values())

    def get(self, name: str) -> Snapshot:
        self.faults.record("get", name)
        return self._get(name)

    def _get(self, name: str) -> Snapshot:
        if name not in self.snapshots:
            raise ProviderError(f"no snapshot named {name!r}", hint="see `deploysafe snapshot list`")
        return self.snapshots[name]

    def ensure_serving(self, name: str) -> None:
        self.faults.record("ensure_serving", name)
        self._get(name)
        self.serving.add(name)

    def connection_url(self, name: str, *, like: str | None = None) -> str:
        self.faults.record("connection_url", name)
        self._get(name)
        if name not in self.serving:  # like a Neon branch with no endpoint: the URL does not exist yet
            raise ProviderError(f"{name!r} has no compute to connect to", hint="call ensure_serving first")
        return self.url_of(name)

    def delete(self, name: str) -> None:
        self.faults.record("delete", name)
        if name == self.production_name:
            raise ProviderError("refusing to delete production", hint="this is a bug in the caller")
        if self.snapshots.pop(name, None) is not None:
            self.deleted.append(name)
        self.serving.discard(name)

    def rename(self, name: str, new_name: str) -> None:
        self.faults.record("rename", name, new_name)
        snap = self._get(name)
        if new_name in self.snapshots:
            raise ProviderError(f"a snapshot named {new_name!r} already exists", hint="choose another name")
        del self.snapshots[name]
        self.snapshots[new_name] = snap.model_copy(update={"name": new_name})
        if name in self.serving:
            self.serving.discard(name)
            self.serving.add(new_name)
        if name == self.production_name:
            self.production_name = new_name

    def hold(self, name: str) -> None:
        """Nothing expires on its own here: prune alone deletes."""
        self.faults.record("hold", name)

    def plan_restore(self, snapshot: str | None = None, *, at: datetime | None = None) -> RestorePlan:
        return RestorePlan.unsupported(self.name)

    def restore_in_place(self, plan: RestorePlan, preserve_as: str) -> None:
        refused = RestorePlan.unsupported(self.name)
        raise ProviderError(refused.reason, hint=refused.fix)

    def identify(self, url: str) -> str | None:
        self.faults.record("identify", url)
        return next((n for n in self.snapshots if self.url_of(n) == url), None)

    def record_app_target(self, name: str) -> None:
        self.faults.record("record_app_target", name)
        self.app_target = name

    def recorded_app_target(self) -> str | None:
        self.faults.record("recorded_app_target")
        return self.app_target

    def branch_allowance(self) -> int | None:
        self.faults.record("branch_allowance")
        return self.allowance

    def history_window(self) -> float | None:
        self.faults.record("history_window")
        return self.history

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def lock_url(self, production_url: str) -> str:
        return production_url

    def close(self) -> None:
        self.closed = True


class FakePlatform:
    """In-memory deployment platform: one variable, a list of releases, a set of URLs the app is healthy on."""

    name = "fake"

    def __init__(
        self,
        value: str | None,
        *,
        readable: bool = True,
        reference: bool = False,
        healthy_urls: Iterable[str] = (),
        caveats: Iterable[str] = (),
        fail_release: bool = False,
        code: str = "code-0",
        can_return: bool = True,
    ) -> None:
        self.value = value  # what the variable holds (set_url changes it at once)
        self.live_value = value  # what the running app uses (changes at pick_up)
        self.readable = readable
        self.reference = reference
        self.healthy_urls: set[str] = set(healthy_urls)
        self._caveats = list(caveats)
        self.fail_release = fail_release  # wait_live sees the new release fail (a crashing build)
        self.releases: list[Release] = [Release(id="rel-0", status="live", live=True, code=code)]
        self.can_return = can_return  # whether it offers the ReleaseRollback capability
        self.broken_code: set[str] = set()  # code the app is unhealthy on whatever the database
        self.prepared = False
        self.closed = False
        self.faults = Faults(self)

    def app_healthy(self) -> bool:
        """What a probe double asks: is the app healthy on the URL and the code it runs now?"""
        return (
            self.live_value is not None and self.live_value in self.healthy_urls and self.live_code not in self.broken_code
        )

    @property
    def live_code(self) -> str | None:
        live = self.describe_quiet()
        return live.code if live else None

    def describe_quiet(self) -> Release | None:
        return next((r for r in reversed(self.releases) if r.live), None)

    def ship(self, code: str) -> Release:
        """What an app deploy does (deploysafe's ``[deploy] app_deploy``, or the platform on its own): new code live."""
        release = Release(id=f"rel-{len(self.releases)}", status="live", live=True, code=code)
        self.releases.append(release)
        return release

    # --- Platform ------------------------------------------------------------------------------

    def read_current(self) -> CurrentValue:
        self.faults.record("read_current")
        if not self.readable:
            return CurrentValue(readable=False)
        return CurrentValue(readable=True, value=self.value, reference=self.reference)

    def prepare(self) -> None:
        self.faults.record("prepare")
        self.prepared = True

    def set_url(self, url: str) -> None:
        self.faults.record("set_url", url)
        self.value = url
        self.reference = False

    def pick_up(self) -> Release:
        self.faults.record("pick_up")
        release = Release(id=f"rel-{len(self.releases)}", status="building", code=self.live_code)
        self.releases.append(release)
        self.live_value = self.value
        return release

    def wait_live(self, release: Release, timeout: float) -> Release:
        self.faults.record("wait_live", release, timeout)
        index = next((i for i, r in enumerate(self.releases) if r.id == release.id), None)
        if index is None:
            raise PlatformError(f"no release {release.id!r}", platform=self.name)
        if self.fail_release:
            self.releases[index] = release.model_copy(update={"status": "failed", "failed": True})
            raise PlatformError(f"release {release.id} failed", hint="see the platform's build log", platform=self.name)
        live = release.model_copy(update={"status": "live", "live": True})
        self.releases[index] = live
        return live

    def describe(self) -> Release | None:
        self.faults.record("describe")
        return self.describe_quiet()

    def release_rollback(self) -> ReleaseRollback | None:
        return self if self.can_return else None

    def release_rollback_fix(self) -> str:
        # it stands in for a platform whose user commands bring releases back (dotenv/command) when allowed to
        return "set [platform] release_command and rollback_command to let it"

    # --- ReleaseRollback ---------------------------------------------------------------------------

    def how(self) -> str:
        return "fake: start the recorded release again with the current variable"

    def return_to(self, release: Release, url: str | None) -> Release:
        self.faults.record("return_to", release, url)
        if url is not None:
            self.value = url
            self.reference = False
        back = Release(id=f"rel-{len(self.releases)}", status="building", code=release.code)
        self.releases.append(back)
        self.live_value = self.value
        return back

    def caveats(self) -> list[str]:
        self.faults.record("caveats")
        return list(self._caveats)

    def close(self) -> None:
        self.closed = True
