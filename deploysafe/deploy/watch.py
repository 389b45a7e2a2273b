"""The watch window: keep probing after a deploy, and report the first sustained failure.

The guide says to watch for errors in the first hour after a migration. ``watch_window``
probes every ``[probes] interval`` for ``seconds``; ``failure_limit`` consecutive failing
attempts end the window as unhealthy (the caller rolls back while the pre-deploy snapshot
is still fresh).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from deploysafe.deploy.probes import ProbeResult, Verdict, run_once
from deploysafe.http import make_client

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.journal import Journal


def watch_window(
    loaded: LoadedConfig,
    url: str | None,
    journal: Journal | None,
    seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    cfg = loaded.config.probes
    start = clock()
    end = start + seconds
    fails = 0
    attempts: list[list[ProbeResult]] = []
    with make_client() as client:
        while True:
            results = run_once(cfg, url, client)
            attempts = (attempts + [results])[-50:]  # bounded memory over a long window
            ok = all(r.ok for r in results)
            if journal is not None and not ok:
                journal.event("watch.attempt", "failed", results=[r.__dict__ for r in results])
            fails = 0 if ok else fails + 1
            if fails >= cfg.failure_limit:
                reasons = "; ".join(f"{r.name}: {r.reason}" for r in results if not r.ok)
                return Verdict(False, f"unhealthy during the watch window: {reasons}", clock() - start, attempts)
            now = clock()
            if now >= end:
                return Verdict(True, f"healthy for the whole {seconds:g}s window", now - start, attempts)
            sleep(min(cfg.interval, end - now))
