"""Benchmark: a Neon rollback's verdict-to-healthy time, restore in place vs repoint + redeploy.

Every control-plane call gets 200 ms of latency: the Neon API double (real HTTP, branches are real
databases) and Vercel (respx with the recorded fixtures; its redeploy is READY at the first read).
The clock starts at the "unhealthy" verdict and stops when the probes pass (an SQL probe against the
database the app then uses). Both runs start from the same state: a pre-deploy snapshot made and
``rollback.prepare`` done before the verdict, as a deploy does.

- restore: ``[rollback] strategy = "auto"``: POST restore on production (own history at the snapshot's
  LSN), its operation, production ready; DATABASE_URL is not touched, so nothing is written to the
  platform. With ``[rollback] app = "auto"`` (the default) and a platform that can bring code back
  (Vercel here), one platform read asks whether the app's live release changed during the deploy.
- repoint: ``strategy = "repoint"``: clear the snapshot's expiry, PATCH the variable on Vercel, redeploy,
  wait until the deployment is live.

    .venv/bin/python bench/bench_rollback_neon.py [--runs 3]

It is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import respx  # noqa: E402
from _common import median, save  # noqa: E402

from deploysafe.config import LoadedConfig, parse_config  # noqa: E402
from deploysafe.demo import embedded  # noqa: E402
from deploysafe.deploy import probes, rollback  # noqa: E402
from deploysafe.http import RetryPolicy  # noqa: E402
from deploysafe.journal import Journal  # noqa: E402
from deploysafe.platforms import make_platform  # noqa: E402
from deploysafe.providers import make_provider  # noqa: E402
from deploysafe.providers.base import SnapshotKind  # noqa: E402
from support.neon_double import NeonDouble, make_double, seed_production  # noqa: E402

LATENCY = 0.2
VERCEL = ROOT / "tests" / "fixtures" / "vercel"
PROJECT = "prj_XLKmu1DyR1eY7zq8UgeRKbA7yVLA"
ENV_ID = "aBcD1234efGH5678"


def fx(name: str) -> httpx.Response:
    time.sleep(LATENCY)
    return httpx.Response(200, json=json.loads((VERCEL / f"{name}.json").read_text()))


def one(d: NeonDouble, strategy: str, run: int) -> dict[str, object]:
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
strategy = "{strategy}"
[probes]
interval = "100ms"
[[probes.sql]]
name = "users"
query = "select count(*) from users"
"""
    state = Path(tempfile.mkdtemp())
    loaded = LoadedConfig(parse_config(text), state / "deploysafe.toml")
    vercel: list[str] = []

    def rec(name: str):  # type: ignore[no-untyped-def]
        def handler(request: httpx.Request) -> httpx.Response:
            vercel.append(f"vercel {request.method} {request.url.path}")
            return fx(name)
        return handler

    router = respx.MockRouter(base_url="https://api.vercel.com", assert_all_called=False)
    router.get(f"/v10/projects/{PROJECT}/env").mock(side_effect=rec("env_list_encrypted"))
    router.get(f"/v1/projects/{PROJECT}/env/{ENV_ID}").mock(side_effect=rec("env_get_decrypted"))
    router.patch(f"/v9/projects/{PROJECT}/env/{ENV_ID}").mock(side_effect=rec("env_patch_ok"))
    router.get(f"/v9/projects/{PROJECT}").mock(side_effect=rec("project_get_ok"))
    router.post("/v13/deployments").mock(side_effect=rec("deployments_create_ok"))
    router.get(path__regex=r"^/v13/deployments/").mock(side_effect=rec("deployments_get_ready"))
    provider = make_provider(loaded, policy=RetryPolicy(attempts=3), poll_interval=0.05)
    platform = make_platform(loaded, transport=httpx.MockTransport(router.handler))
    name = f"pre-deploy-bench-{strategy}-{run}"
    provider.create_snapshot(name, SnapshotKind.PRE_DEPLOY, serve=True)
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.execute("INSERT INTO users (email) VALUES ('after-snapshot')")
    prepared = rollback.prepare(loaded, provider, platform, name)
    neon_before, vercel_before = len(d.log), len(vercel)
    # the critical path ends when the probes pass: calls made after (recording where the app points) are not on it
    healthy_at: dict[str, int] = {}
    real_analyse = probes.analyse

    def analyse(*args: Any, **kwargs: Any) -> Any:
        verdict = real_analyse(*args, **kwargs)
        healthy_at.update(neon=len(d.log), vercel=len(vercel))
        return verdict

    probes.analyse = analyse  # type: ignore[assignment]
    verdict_at = time.monotonic()
    try:
        outcome = rollback.execute(loaded, provider, platform, prepared, Journal(state, "bench"), verdict_at=verdict_at)
    finally:
        probes.analyse = real_analyse  # type: ignore[assignment]
    assert outcome.healthy
    calls = ([f"neon {m} {p.split('?')[0]}" for m, p, _ in d.log[neon_before:healthy_at["neon"]]]
             + vercel[vercel_before:healthy_at["vercel"]])
    platform_calls = healthy_at["vercel"] - vercel_before
    provider.close()
    platform.close()
    return {"strategy": strategy, "verdict_to_healthy_s": round(outcome.timings["verdict_to_healthy"], 3),
            "control_plane_calls": len(calls), "platform_calls": platform_calls, "calls": ", ".join(calls)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    server = embedded.start()
    d = make_double(server, latency=LATENCY, root_branches_limit=None, branches_limit=None)
    os.environ.update({"NEON_API_KEY": d.api_key, "VERCEL_TOKEN": "vcp_bench"})
    try:
        seed_production(d)
        with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
            c.execute("CREATE TABLE users (id serial PRIMARY KEY, email text)")
            c.execute("INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 1000) g")
        rows = []
        for run in range(args.runs):
            for strategy in ("auto", "repoint"):
                rows.append(one(d, strategy, run))
        by = {s: [r for r in rows if r["strategy"] == s] for s in ("auto", "repoint")}
        t = {s: median([float(r["verdict_to_healthy_s"]) for r in v]) for s, v in by.items()}  # type: ignore[arg-type]
        calls = {s: int(v[0]["control_plane_calls"]) for s, v in by.items()}  # type: ignore[call-overload]
        summary = (f"restore in place {t['auto']:.2f} s ({calls['auto']} control-plane calls on the critical path, "
                   f"{by['auto'][0]['platform_calls']} to the platform; latency floor {calls['auto'] * LATENCY:.1f} s) vs "
                   f"repoint + redeploy {t['repoint']:.2f} s ({calls['repoint']} calls, {by['repoint'][0]['platform_calls']} "
                   f"to the platform; floor {calls['repoint'] * LATENCY:.1f} s plus the real redeploy), verdict to healthy, "
                   f"median of {args.runs}, {LATENCY * 1000:.0f} ms per call")
        save("rollback_neon", "Neon rollback: restore in place vs repoint + redeploy (200 ms per control-plane call)",
             rows, summary, goal="no platform write on the restore path (one read: did the code change?)")
    finally:
        d.stop()
        server.stop()


if __name__ == "__main__":
    main()
