"""Probe semantics against a real HTTP server and a real PostgreSQL: thresholds, deadline, timeouts, headers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploysafe.config import ProbesConfig
from deploysafe.deploy.probes import analyse
from deploysafe.errors import ProbeError
from deploysafe.journal import Journal, read_journal
from support.slow_server import slow_server


class App:
    """A tiny HTTP app whose answers a test scripts: a list of (status, body) per request, then the last forever."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str]] = [(200, "ok")]
        self.delay = 0.0
        self.headers: list[dict[str, str]] = []
        self.hits = 0


@pytest.fixture
def app() -> Iterator[tuple[App, str]]:
    state = App()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            state.headers.append(dict(self.headers))
            i = min(state.hits, len(state.script) - 1)
            state.hits += 1
            status, body = state.script[i]
            if state.delay:
                time.sleep(state.delay)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()


def cfg(url: str, **kw: object) -> ProbesConfig:
    base: dict[str, object] = {"deadline": "10s", "interval": "10ms", "http": [{"name": "health", "url": url}]}
    base.update(kw)
    return ProbesConfig.model_validate(base)


def test_healthy_after_success_threshold_consecutive_passes(app: tuple[App, str]) -> None:
    state, url = app
    state.script = [(200, "ok"), (500, "x"), (200, "ok"), (200, "ok"), (200, "ok")]
    v = analyse(cfg(url, success_threshold=3, failure_limit=5), None)
    assert v.healthy and len(v.attempts) == 5  # the failure in between reset the count


def test_unhealthy_after_failure_limit_consecutive_failures(app: tuple[App, str]) -> None:
    state, url = app
    state.script = [(503, "down"), (503, "down"), (200, "ok"), (503, "down"), (503, "down"), (503, "down")]
    v = analyse(cfg(url, failure_limit=3, success_threshold=2), None)
    assert not v.healthy and len(v.attempts) == 6
    assert "3 consecutive failing" in v.reason and "status 503 (expected 200): down" in v.reason


def test_body_substring_is_checked(app: tuple[App, str]) -> None:
    state, url = app
    state.script = [(200, "degraded")]
    v = analyse(cfg(url, failure_limit=1, http=[{"name": "h", "url": url, "expect_body": "ok"}]), None)
    assert not v.healthy and "does not contain 'ok'" in v.reason


def test_deadline_ends_probing(app: tuple[App, str]) -> None:
    state, url = app
    state.script = [(500, "x")]
    t0 = time.monotonic()
    v = analyse(cfg(url, deadline="300ms", interval="50ms", failure_limit=1000), None)
    assert not v.healthy and "deadline" in v.reason
    assert time.monotonic() - t0 < 2


def test_a_slow_app_never_hangs_a_probe(app: tuple[App, str]) -> None:
    state, url = app
    state.delay = 2.0
    t0 = time.monotonic()
    v = analyse(cfg(url, failure_limit=1, http=[{"name": "h", "url": url, "timeout": "200ms"}]), None)
    assert not v.healthy and "timed out after 0.2s" in v.reason
    assert time.monotonic() - t0 < 1.5


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_health_endpoint_trickling_one_byte_a_second_ends_probe_unhealthy_within_its_deadline(mode: str) -> None:
    """The per-read timeout never fires on such a server; each attempt's timeout is a wall-clock bound, so
    probing ends within its deadline plus one attempt timeout (generous slack: without it, ~70 minutes)."""
    with slow_server(mode, period=1.0) as server:
        probe = {"name": "h", "url": server.url + "/health", "expect_body": "ok", "timeout": "1.5s"}
        t0 = time.monotonic()
        v = analyse(cfg(server.url, deadline="2s", failure_limit=1000, http=[probe]), None)
        took = time.monotonic() - t0
    assert not v.healthy and "deadline 2s reached" in v.reason and "timed out after 1.5s" in v.reason
    assert took < 2 + 1.5 + 2.0
    assert len(v.attempts) >= 2 and all(not r.ok for a in v.attempts for r in a)


def test_initial_delay_waits_before_the_first_attempt(app: tuple[App, str]) -> None:
    _, url = app
    t0 = time.monotonic()
    assert analyse(cfg(url, initial_delay="300ms"), None).healthy
    assert time.monotonic() - t0 >= 0.3


def test_headers_come_from_the_environment(app: tuple[App, str], monkeypatch: pytest.MonkeyPatch) -> None:
    state, url = app
    monkeypatch.setenv("PROBE_TOKEN", "Bearer probe-token-123")
    probe = {"name": "h", "url": url, "headers_env": {"Authorization": "PROBE_TOKEN"}}
    assert analyse(cfg(url, http=[probe]), None).healthy
    assert state.headers[-1]["Authorization"] == "Bearer probe-token-123"
    monkeypatch.delenv("PROBE_TOKEN")
    v = analyse(cfg(url, http=[probe], failure_limit=1), None)
    assert not v.healthy and "PROBE_TOKEN is not set" in v.reason


def test_sql_probes_with_expected_value(pg_url: str) -> None:
    good = ProbesConfig.model_validate({"sql": [{"name": "one", "query": "select 1", "expect": "1"}]})
    assert analyse(good, pg_url).healthy
    bad = ProbesConfig.model_validate({"failure_limit": 1, "sql": [{"name": "one", "query": "select 2", "expect": "1"}]})
    v = analyse(bad, pg_url)
    assert not v.healthy and "returned '2' (expected '1')" in v.reason
    missing = ProbesConfig.model_validate({"failure_limit": 1, "sql": [{"name": "t", "query": "select * from nope"}]})
    v = analyse(missing, pg_url)
    assert not v.healthy and 'relation "nope" does not exist' in v.reason


def test_sql_probe_statement_timeout(pg_url: str) -> None:
    slow = ProbesConfig.model_validate(
        {"failure_limit": 1, "sql": [{"name": "slow", "query": "select pg_sleep(5)", "timeout": "300ms"}]})
    t0 = time.monotonic()
    v = analyse(slow, pg_url)
    assert not v.healthy and "statement timeout" in v.reason
    assert time.monotonic() - t0 < 3


def test_every_attempt_is_journaled_with_latency_and_reason(app: tuple[App, str], tmp_path: Path) -> None:
    state, url = app
    state.script = [(500, "boom"), (200, "ok")]
    journal = Journal(tmp_path, "probe")
    assert analyse(cfg(url), None, journal=journal).healthy
    attempts = [r for r in read_journal(tmp_path) if r["step"] == "probe.attempt"]
    assert [a["outcome"] for a in attempts] == ["failed", "ok"]
    first = attempts[0]["details"]["results"][0]
    assert first["reason"].startswith("status 500") and first["latency_ms"] >= 0


def test_no_probes_configured_is_a_clear_error() -> None:
    with pytest.raises(ProbeError, match=r"no probes configured"):
        analyse(ProbesConfig(), None)
