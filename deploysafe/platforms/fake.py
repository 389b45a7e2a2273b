"""An in-memory ``Platform`` for fast unit tests of deploy and rollback (STYLE.md "Adapters"; issues 5, 6).

Pure Python, no I/O. It models the one thing the orchestration relies on: setting the
variable changes nothing until ``pick_up``; only then does the running app use the new
value (``live_value``). ``healthy_urls`` is what a probe double consults: the app is
healthy when the URL it runs on is in the set. Faults and the call log come from
:class:`deploysafe.providers.fake.Faults`.

Not registered in ``platforms.ADAPTERS``: ``"fake"`` is not a valid ``[platform] type``.
"""

from __future__ import annotations

from collections.abc import Iterable

from deploysafe.errors import PlatformError
from deploysafe.platforms.base import CurrentValue, Release, ReleaseRollback
from deploysafe.providers.fake import Faults


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
