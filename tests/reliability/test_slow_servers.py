"""Slow-body and slow-header servers: every HTTP call deploysafe makes ends within its
wall-clock deadline against a real socket server that answers one byte a second, and ends as the
call's ordinary failure (a PlatformError/ProviderError naming the call, an unhealthy probe, a
notify warning) instead of hanging.

httpx's per-read timeout never fires on such a server; only ``deploysafe.http.fetch``'s deadline
does. Each case gives the caller a 1s deadline and one try, and allows generous slack: the point
is that the call ends, not how fast (without the deadline each case runs for over an hour).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploysafe.config import NotifyConfig
from deploysafe.errors import PlatformError, ProviderError
from deploysafe.http import RetryPolicy
from support.slow_server import SlowServer, slow_server

ONE_TRY = RetryPolicy(attempts=1, deadline=1.0, sleep=lambda s: None)
BOUND = 1.0 + 4.0  # the deadline plus generous slack for a loaded CI machine


@pytest.fixture(params=["body", "headers"])
def server(request: pytest.FixtureRequest) -> Iterator[SlowServer]:
    with slow_server(request.param, period=1.0) as s:
        yield s


def _render(url: str) -> Any:
    from deploysafe.platforms.render import RenderPlatform

    return RenderPlatform(token="rnd_slow", service_id="srv-cukouhrtq21c73e9scng", api_url=url, policy=ONE_TRY)


def _vercel(url: str) -> Any:
    from deploysafe.platforms.vercel import VercelPlatform

    return VercelPlatform(token="vercel_slow", project="prj_slow", api_url=url, policy=ONE_TRY)


def _fly(url: str) -> Any:
    from deploysafe.platforms.fly import FlyPlatform

    return FlyPlatform(token="fly_slow", app="slow-app", api_url=url, policy=ONE_TRY)


def _heroku(url: str) -> Any:
    from deploysafe.platforms.heroku import HerokuPlatform

    return HerokuPlatform(token="heroku_slow", app="slow-app", api_url=url, policy=ONE_TRY)


def _railway(url: str) -> Any:
    from deploysafe.platforms.railway import RailwayPlatform

    return RailwayPlatform(token="railway_slow", project_id="p", environment_id="e", service_id="s", api_url=url,
                           policy=ONE_TRY)


PLATFORMS: dict[str, Callable[[str], Any]] = {
    "render": _render, "vercel": _vercel, "fly": _fly, "heroku": _heroku, "railway": _railway,
}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_a_platform_api_that_trickles_its_answer_fails_the_call_within_its_deadline(
    server: SlowServer, platform: str
) -> None:
    adapter = PLATFORMS[platform](server.url)
    t0 = time.monotonic()
    try:
        with pytest.raises(PlatformError, match="did not answer|no answer|DeadlineExceeded") as exc:
            adapter.read_current()
    finally:
        adapter.close()
    assert time.monotonic() - t0 < BOUND
    assert "DeadlineExceeded" in str(exc.value) or "deadline" in str(exc.value).lower()


def test_the_neon_api_that_trickles_its_answer_fails_the_call_within_its_deadline(server: SlowServer) -> None:
    from deploysafe.providers.neon.provider import NeonProvider

    provider = NeonProvider(project_id="slow-project", api_key="neon_slow_key", production_branch="production",
                            database="app", role="app", api_url=server.url, policy=ONE_TRY)
    t0 = time.monotonic()
    with pytest.raises(ProviderError, match="DeadlineExceeded"):
        provider.list_snapshots()
    assert time.monotonic() - t0 < BOUND


def test_a_webhook_that_trickles_its_answer_only_warns_within_its_deadline(
    server: SlowServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deploysafe import notify

    monkeypatch.setenv("SLOW_WEBHOOK", server.url + "/hook")
    monkeypatch.setattr(notify, "TIMEOUT", 1.0)
    t0 = time.monotonic()
    assert notify.notify(NotifyConfig(webhook_env="SLOW_WEBHOOK"), "deploy rolled back") is False
    assert time.monotonic() - t0 < 2 * 1.0 + 4.0  # two tries at most (a POST retries statuses, not this)
    out = capsys.readouterr()
    assert "could not be reached (DeadlineExceeded)" in out.out + out.err
    assert server.url not in out.out + out.err


def test_the_watch_window_ends_unhealthy_on_a_trickling_health_endpoint(server: SlowServer, tmp_path: Path) -> None:
    from deploysafe.config import LoadedConfig, parse_config
    from deploysafe.deploy.watch import watch_window

    config = parse_config(f"""[provider]\ntype = "local"\ndatabase_url = "postgresql://u@127.0.0.1/x"\n
[platform]\ntype = "dotenv"\nenv_file = ".env"\n[probes]\ninterval = "10ms"\nfailure_limit = 2\n[[probes.http]]\nname = "h"\nurl = "{server.url}/health"\ntimeout = "1s"\n""")
    loaded = LoadedConfig(config, tmp_path / "deploysafe.toml")
    t0 = time.monotonic()
    v = watch_window(loaded, None, None, seconds=600)
    assert not v.healthy and "timed out after 1s" in v.reason
    assert time.monotonic() - t0 < 2 * 1.0 + 4.0
