"""Control-plane calls on the rollback's critical path, provider = neon against the API double.

Every request to the Neon double and to the platform (Vercel, through respx with the recorded
fixtures) gets 200 ms of latency. We count the sequential calls made between the probe verdict
"unhealthy" and the platform restart (Vercel's redeploy POST, included). Goal: at most 2.
Everything resolvable before production changes (the snapshot's compute and URL, the variable's
id, the production deployment) is resolved by ``rollback.prepare`` before the verdict.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

import httpx  # noqa: E402
import respx  # noqa: E402
from _common import save  # noqa: E402

from deploysafe.config import LoadedConfig, parse_config  # noqa: E402
from deploysafe.demo import embedded  # noqa: E402
from deploysafe.deploy import rollback  # noqa: E402
from deploysafe.http import RetryPolicy  # noqa: E402
from deploysafe.journal import Journal  # noqa: E402
from deploysafe.platforms import make_platform  # noqa: E402
from deploysafe.providers import make_provider  # noqa: E402
from deploysafe.providers.base import SnapshotKind  # noqa: E402
from support.neon_double import make_double, seed_production  # noqa: E402

LATENCY = 0.2
VERCEL = ROOT / "tests" / "fixtures" / "vercel"
PROJECT = "prj_XLKmu1DyR1eY7zq8UgeRKbA7yVLA"
ENV_ID = "aBcD1234efGH5678"


class _Stop(Exception):
    """Stops the rollback right after the restart call: the window we measure ends there."""


def fx(name: str) -> httpx.Response:
    time.sleep(LATENCY)
    return httpx.Response(200, json=json.loads((VERCEL / f"{name}.json").read_text()))


def main() -> None:
    server = embedded.start()
    d = make_double(server, latency=LATENCY)
    try:
        seed_production(d)
        env = {"NEON_API_KEY": d.api_key, "VERCEL_TOKEN": "vcp_bench", "DATABASE_URL": ""}
        text = f"""
[provider]
type = "neon"
project_id = "{d.project_id}"
database = "{d.database}"
role = "{d.role}"
api_url = "{d.base_url}"
[platform]
type = "vercel"
project = "{PROJECT}"
[rollback]
strategy = "repoint"
[[probes.http]]
name = "health"
url = "http://127.0.0.1:9/health"
"""
        import os

        os.environ.update(env)
        state = Path(tempfile.mkdtemp())
        loaded = LoadedConfig(parse_config(text), state / "deploysafe.toml")
        router = respx.MockRouter(base_url="https://api.vercel.com", assert_all_called=False)
        calls: list[tuple[float, str]] = []

        def rec(name: str):  # type: ignore[no-untyped-def]
            def handler(request: httpx.Request) -> httpx.Response:
                calls.append((time.monotonic(), f"vercel {request.method} {request.url.path}"))
                return fx(name)
            return handler

        router.get(f"/v10/projects/{PROJECT}/env").mock(side_effect=rec("env_list_encrypted"))
        router.get(f"/v1/projects/{PROJECT}/env/{ENV_ID}").mock(side_effect=rec("env_get_decrypted"))
        router.patch(f"/v9/projects/{PROJECT}/env/{ENV_ID}").mock(side_effect=rec("env_patch_ok"))
        router.get(f"/v9/projects/{PROJECT}").mock(side_effect=rec("project_get_ok"))
        router.post("/v13/deployments").mock(side_effect=rec("deployments_create_ok"))
        provider = make_provider(loaded, policy=RetryPolicy(attempts=3), poll_interval=0.05)
        platform = make_platform(loaded, transport=httpx.MockTransport(router.handler))
        provider.create_snapshot("pre-deploy-bench", SnapshotKind.PRE_DEPLOY, serve=True)
        prepared = rollback.prepare(loaded, provider, platform, "pre-deploy-bench")
        neon_before = len(d.log)
        pick_up = platform.pick_up

        def pick_up_then_stop():  # type: ignore[no-untyped-def]
            pick_up()
            raise _Stop

        platform.pick_up = pick_up_then_stop  # type: ignore[method-assign]
        verdict_at = time.monotonic()
        vercel_before = len(calls)
        try:
            rollback.execute(loaded, provider, platform, prepared, Journal(state, "bench"), verdict_at=verdict_at)
        except _Stop:
            pass
        elapsed = time.monotonic() - verdict_at
        neon_calls = [f"neon {m} {p}" for m, p, _ in d.log[neon_before:]]
        vercel_calls = [c for _, c in calls[vercel_before:]]
        critical = neon_calls + vercel_calls
        rows = [{"call": c} for c in critical]
        save("control_plane", "Control-plane calls between the verdict and the platform restart (Neon + Vercel, "
             "200 ms latency each)", rows,
             f"{len(critical)} sequential call(s) between verdict and restart ({', '.join(critical)}); "
             f"{elapsed:.2f} s at {LATENCY * 1000:.0f} ms per call; prepare() made "
             f"{neon_before} Neon calls before the verdict", goal="at most 2")
    finally:
        d.stop()
        server.stop()


if __name__ == "__main__":
    main()
