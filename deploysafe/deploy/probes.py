"""Health probes with rollout-controller semantics.

One *attempt* runs every configured probe (HTTP and SQL). Consecutive passing attempts
reaching ``success_threshold`` decide "healthy"; consecutive failing attempts reaching
``failure_limit`` decide "unhealthy"; reaching ``deadline`` first is "unhealthy" too.
``initial_delay`` waits before the first attempt. Every probe has its own timeout, a wall-clock
bound on the whole probe (an HTTP probe's connect, headers and body together, through
:func:`deploysafe.http.fetch`), so an attempt never hangs, even on a server that trickles its
answer; each attempt is journaled with latency and the reason for failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import psycopg

from deploysafe.errors import ProbeError
from deploysafe.http import fetch, make_client
from deploysafe.pg import first_line

if TYPE_CHECKING:
    from deploysafe.config import HttpProbe, ProbesConfig, SqlProbe
    from deploysafe.journal import Journal


@dataclass(frozen=True)
class ProbeResult:
    name: str
    kind: str  # "http" | "sql"
    ok: bool
    latency_ms: float
    reason: str = ""


@dataclass
class Verdict:
    healthy: bool
    reason: str
    elapsed: float
    attempts: list[list[ProbeResult]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "reason": self.reason,
            "elapsed_s": round(self.elapsed, 3),
            "attempts": [[asdict(r) for r in a] for a in self.attempts],
        }


def http_probe(probe: HttpProbe, client: httpx.Client) -> ProbeResult:
    headers = {}
    for header, env_name in probe.headers_env.items():
        value = os.environ.get(env_name)
        if value is None:
            return ProbeResult(probe.name, "http", False, 0.0, f"header {header}: environment variable {env_name} is not set")
        headers[header] = value
    t0 = time.monotonic()
    try:
        resp = fetch(client, "GET", probe.url, headers=headers, deadline=probe.timeout, timeout=probe.timeout)
    except httpx.TimeoutException:
        return ProbeResult(probe.name, "http", False, _ms(t0), f"timed out after {probe.timeout:g}s")
    except httpx.HTTPError as e:
        return ProbeResult(probe.name, "http", False, _ms(t0), f"{type(e).__name__}: {e}")
    latency = _ms(t0)
    if resp.status_code != probe.expect_status:
        body = resp.text[:120].replace("\n", " ")
        return ProbeResult(probe.name, "http", False, latency, f"status {resp.status_code} (expected {probe.expect_status}): {body}")
    if probe.expect_body is not None and probe.expect_body not in resp.text:
        return ProbeResult(probe.name, "http", False, latency, f"body does not contain {probe.expect_body!r}")
    return ProbeResult(probe.name, "http", True, latency)


def sql_probe(probe: SqlProbe, database_url: str) -> ProbeResult:
    t0 = time.monotonic()
    timeout_ms = int(probe.timeout * 1000)
    try:
        with psycopg.connect(
            database_url,
            autocommit=True,
            connect_timeout=max(1, int(probe.timeout)),
            options=f"-c statement_timeout={timeout_ms}",
        ) as conn:
            row = conn.execute(probe.query).fetchone()  # the configured query, verbatim: the user's own SQL
    except psycopg.Error as e:
        return ProbeResult(probe.name, "sql", False, _ms(t0), first_line(e))
    latency = _ms(t0)
    if probe.expect is not None:
        got = None if row is None or not row else str(row[0])
        if got != probe.expect:
            return ProbeResult(probe.name, "sql", False, latency, f"returned {got!r} (expected {probe.expect!r})")
    return ProbeResult(probe.name, "sql", True, latency)


def _ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 1)


def run_once(cfg: ProbesConfig, database_url: str | None, client: httpx.Client) -> list[ProbeResult]:
    results = [http_probe(p, client) for p in cfg.http]
    for p in cfg.sql:
        if database_url is None:
            results.append(ProbeResult(p.name, "sql", False, 0.0, "no database URL to probe"))
        else:
            results.append(sql_probe(p, database_url))
    return results


class Analyse(Protocol):
    """:func:`analyse`'s shape, for callers that take it as a collaborator (the deploy executor, the rollback)."""

    def __call__(
        self, cfg: ProbesConfig, database_url: str | None, *, journal: Journal | None = None,
        on_attempt: Callable[[int, list[ProbeResult]], None] | None = None, phase: str = "probe",
    ) -> Verdict: ...


def analyse(
    cfg: ProbesConfig,
    database_url: str | None,
    *,
    journal: Journal | None = None,
    on_attempt: Callable[[int, list[ProbeResult]], None] | None = None,
    phase: str = "probe",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> Verdict:
    """Probe until healthy, unhealthy, or the deadline; return the verdict (never raises for an unhealthy app)."""
    if not cfg.http and not cfg.sql:
        raise ProbeError("no probes configured", hint="add [[probes.http]] or [[probes.sql]] to deploysafe.toml")
    start = clock()
    deadline = start + cfg.deadline
    if cfg.initial_delay:
        sleep(cfg.initial_delay)
    passes = fails = 0
    attempts: list[list[ProbeResult]] = []
    with make_client(transport=transport) as client:
        while True:
            t_attempt = clock()
            results = run_once(cfg, database_url, client)
            attempts.append(results)
            ok = all(r.ok for r in results)
            if journal is not None:
                journal.event(
                    f"{phase}.attempt",
                    "ok" if ok else "failed",
                    attempt=len(attempts),
                    results=[asdict(r) for r in results],
                )
            if on_attempt:
                on_attempt(len(attempts), results)
            if ok:
                passes, fails = passes + 1, 0
                if passes >= cfg.success_threshold:
                    return Verdict(True, f"{passes} consecutive passing attempt(s)", clock() - start, attempts)
            else:
                passes, fails = 0, fails + 1
                if fails >= cfg.failure_limit:
                    reasons = "; ".join(f"{r.name}: {r.reason}" for r in results if not r.ok)
                    return Verdict(False, f"{fails} consecutive failing attempt(s): {reasons}", clock() - start, attempts)
            now = clock()
            if now >= deadline:
                last = "; ".join(f"{r.name}: {r.reason}" for r in results if not r.ok) or "not yet healthy"
                return Verdict(False, f"deadline {cfg.deadline:g}s reached: {last}", now - start, attempts)
            sleep(max(0.0, min(cfg.interval - (now - t_attempt), deadline - now)))
