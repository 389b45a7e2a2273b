"""One deploy's world for ``deploy.deploy()`` with the in-memory fakes, and the doubles the executor is given.

The provider and platform are the in-memory fakes; generate / push / lint / probes / the watch
window / divergence / the lock / app_deploy are doubles handed to the executor as its
:class:`~deploysafe.deploy.apply.Tools` (no module is patched), acting on the rig's scripted
behaviour; the clock is fixed, so two runs make the same plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.deploy import run as deploy
from deploysafe.deploy.apply import Tools
from deploysafe.deploy.probes import Analyse, ProbeResult, Verdict
from deploysafe.drizzle import lint
from deploysafe.drizzle import steps as migrate
from deploysafe.drizzle.lint import Finding
from deploysafe.errors import DeploysafeError, StepError
from deploysafe.journal import Journal, read_journal
from deploysafe.process import StepResult
from deploysafe.providers.base import SnapshotKind
from deploysafe.testing import FakePlatform, FakeProvider

T = TypeVar("T")

CONFIG = """
[provider]
type = "local"
database_url = "postgresql://app@fake.invalid:5432/production"
{provider_extra}
[platform]
type = "dotenv"
env_file = ".env"
restart = "systemctl restart app"
[[probes.http]]
name = "health"
url = "http://127.0.0.1:3000/health"
{extra}
"""

DESTRUCTIVE = Finding(file="drizzle/0001_x.sql", line=1, statement="ALTER TABLE users DROP COLUMN name;",
                      rule="drop-column", severity="destructive", message="drops a column", url="https://x", allowed=False)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class RigClock:
    """A fixed wall clock (the snapshot's name, snapshots' ages); step timings on the real monotonic clock,
    the one the rollback's timings use too."""

    def __init__(self, now: datetime = NOW) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class Rig:
    """One deploy's world: the fakes, the doubles' scripted behaviour, and what the doubles saw."""

    loaded: LoadedConfig
    provider: FakeProvider
    platform: FakePlatform
    generate_error: BaseException | None = None
    generate_reaches: str | None = None  # the URL the app's tooling really reaches during generate
    push_error: DeploysafeError | None = None
    rehearse_error: DeploysafeError | None = None  # the push against the throwaway copy fails
    push_breaks_app: bool = False  # the migration leaves the app unhealthy on production
    healthy_on_snapshot: bool = True
    findings: list[Finding] = field(default_factory=list)
    watch_healthy: bool = True
    lock_error: DeploysafeError | None = None  # another run holds the lock
    app_deploy: Callable[[LoadedConfig, str], None] = lambda loaded, url: None  # [deploy] app_deploy
    analyse: Analyse | None = None  # replaces the probes double (the rig's verdict: is the app healthy)
    clock: RigClock = field(default_factory=RigClock)
    pushed: list[str] = field(default_factory=list)  # URLs db:push ran against
    provider_calls_at_push: list[str] = field(default_factory=list)
    probed: list[tuple[str | None, str]] = field(default_factory=list)  # (url, phase)

    @property
    def prod_url(self) -> str:
        return self.provider.url_of("production")

    def snapshot_names(self) -> list[str]:
        return [n for n, s in self.provider.snapshots.items() if s.kind is SnapshotKind.PRE_DEPLOY]

    def results(self) -> list[dict[str, Any]]:
        return [r for r in read_journal(self.loaded.state_dir) if r["step"] == "result"]

    def run(self, **opts: Any) -> tuple[deploy.Summary, DeploysafeError | None]:
        opts.setdefault("sha", "0123456789abcdef")
        summary = deploy.deploy(self.loaded, deploy.DeployOptions(**opts), provider=self.provider,
                                platform=self.platform, tools=self.tools(), clock=self.clock)
        return summary, summary.failure

    def tools(self) -> Tools:
        return Tools(lock=self._lock, generate=self._generate, plan_push=self._plan_push, apply=self._push,
                     untouched=self._untouched, lint=self._lint, analyse=self._analyse, watch=self._watch,
                     diverge=lambda failed, snap: [], app_deploy=self._app_deploy)

    # --- the doubles -----------------------------------------------------------------------------------

    @contextmanager
    def _lock(self, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        if self.lock_error:
            raise self.lock_error
        yield {}

    def _untouched(self, loaded: LoadedConfig, production_url: str, step: str, fn: Callable[[], T]) -> T:
        """A database's schema changes with each push it receives: what proves generate/rehearse left production
        alone (as the schema fingerprint does)."""
        before = self.pushed.count(production_url)
        try:
            return fn()
        finally:
            if self.pushed.count(production_url) != before:
                raise StepError(f"{step}: production's schema changed during a step that must not touch it",
                                step=step, production_changed=True)

    def _generate(self, loaded: LoadedConfig, url: str, *, on_line: Any = None) -> migrate.GenerateResult:
        assert url == self.prod_url
        if self.generate_reaches:
            self.pushed.append(self.generate_reaches)  # its schema changes: what the fingerprint sees
        if self.generate_error:
            raise self.generate_error
        # the snapshot exists by now: whether the app would be healthy on it is the rig's choice
        for name in self.snapshot_names():
            if self.healthy_on_snapshot:
                self.platform.healthy_urls.add(self.provider.url_of(name))
        new = [loaded.app_dir / "drizzle" / "0001_x.sql"]
        return migrate.GenerateResult(StepResult("generate", "gen", 0, "", 0.0), new, "ALTER TABLE users ADD x int;")

    def _plan_push(self, loaded: LoadedConfig, url: str, *, on_line: Any = None) -> migrate.PushPlan:
        assert url == self.prod_url  # read-only, against production, before push
        return migrate.PushPlan(StepResult("push-plan", "plan", 0, "", 0.0), ["ALTER TABLE users ADD x int;"], False)

    def _push(self, loaded: LoadedConfig, url: str, *, on_line: Any = None, planned: Any = None) -> migrate.PushResult:
        self.pushed.append(url)
        if url != self.prod_url:  # --rehearse: the throwaway copy
            if self.rehearse_error:
                raise self.rehearse_error
            return migrate.PushResult(StepResult("push", "push", 0, "", 0.0), True, True)
        self.provider_calls_at_push = self.provider.faults.methods()
        if self.push_error:
            raise self.push_error
        if self.push_breaks_app:
            self.platform.healthy_urls.discard(self.prod_url)
        return migrate.PushResult(StepResult("push", "push", 0, "", 0.0), True, True)

    def _lint(self, paths: list[Path], sql: str, **kw: Any) -> lint.LintReport:
        return lint.LintReport(list(self.findings))  # the rig's findings stand for everything linted

    def _analyse(self, cfg: Any, url: str | None, *, journal: Journal | None = None,
                 on_attempt: Callable[[int, list[ProbeResult]], None] | None = None, phase: str = "probe") -> Verdict:
        self.probed.append((url, phase))
        if self.analyse is not None:
            return self.analyse(cfg, url, journal=journal, on_attempt=on_attempt, phase=phase)
        if on_attempt:
            on_attempt(1, [])
        ok = self.platform.app_healthy()
        return Verdict(ok, "all probes passed" if ok else "health: HTTP 500", 0.0)

    def _watch(self, loaded: LoadedConfig, url: str, journal: Journal, seconds: float) -> Verdict:
        return Verdict(self.watch_healthy, "steady" if self.watch_healthy else "health failed during the window", seconds)

    def _app_deploy(self, loaded: LoadedConfig, url: str) -> None:
        self.app_deploy(loaded, url)


def make_loaded(tmp_path: Path, extra: str = "", provider_extra: str = "") -> LoadedConfig:
    cfg = parse_config(CONFIG.format(extra=extra, provider_extra=provider_extra), env={})
    return LoadedConfig(cfg, tmp_path / "deploysafe.toml")


def new_rig(tmp_path: Path, extra: str = "", provider_extra: str = "") -> Rig:
    provider = FakeProvider("production")
    url = provider.url_of("production")
    return Rig(make_loaded(tmp_path, extra, provider_extra), provider, FakePlatform(url, healthy_urls={url}))
