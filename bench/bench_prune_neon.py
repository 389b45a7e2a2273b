"""Benchmark: delete 1,000 snapshot branches through the Neon API double under Neon's rate limit.

Neon allows 700 requests/minute per account (bursts of 40/s per route) and answers 429 beyond it.
The double enforces that limit; the floor is what the limit alone allows for the deletes:
``count * 60 / 700`` seconds. The ratio measured/floor says how close the provider gets.
Branches here have no databases (the API is what is measured, not PostgreSQL).

    .venv/bin/python bench/bench_prune_neon.py [--count 1000] [--no-pacer] [--op-polls 0] [--latency 0]

It is a script, not a test: it takes about count * 0.086 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from deploysafe.http import RetryPolicy  # noqa: E402
from deploysafe.providers.neon.provider import NeonProvider  # noqa: E402
from support.neon_double import NeonDouble, seed_production  # noqa: E402

LIMIT_PER_MINUTE = 700.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000, help="branches to delete")
    ap.add_argument("--no-pacer", action="store_true", help="disable the provider's client-side rate pacing")
    ap.add_argument("--op-polls", type=int, default=0, help="polls each delete operation stays running")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds of server latency per request")
    ap.add_argument("--page-size", type=int, default=100, help="branches per list page")
    ap.add_argument("--no-validate", action="store_true", help="skip spec validation in the double")
    args = ap.parse_args()

    d = NeonDouble(
        server_url=None, page_size=args.page_size, op_polls=args.op_polls, branches_limit=None,
        rate_per_minute=LIMIT_PER_MINUTE, latency=args.latency, validate=not args.no_validate,
    ).start()
    try:
        seed_production(d)
        for i in range(args.count):
            d.add_branch(f"pre-deploy-bench-{i:05d}", parent="production", database=False,
                         annotation={"deploysafe": "pre-deploy", "created_by": "deploysafe", "source": "production"})
        d._tokens = d.rate_burst  # seeding went around the API: start with a full bucket
        provider = NeonProvider(
            project_id=d.project_id, api_key=d.api_key, production_branch="production", database=d.database,
            role=d.role, api_url=d.base_url, policy=RetryPolicy(attempts=30), poll_interval=0.2,
            rate_per_minute=0.0 if args.no_pacer else LIMIT_PER_MINUTE,
        )
        start = time.monotonic()
        snaps = [s for s in provider.list_snapshots() if s.ours and not s.has_children]
        listed = time.monotonic()
        for s in snaps:
            provider.delete(s.name)
        elapsed = time.monotonic() - start
        provider.close()
        left = len(d.branches) - 1
        floor = args.count * 60.0 / LIMIT_PER_MINUTE
        requests = len(d.log)
        print(f"prune of {args.count} Neon branches through the API double (limit {LIMIT_PER_MINUTE:.0f} req/min, "
              f"burst {d.rate_burst:.0f}; client pacer {'off' if args.no_pacer else 'on'}; op polls {args.op_polls})")
        print(f"  listed {len(snaps)} snapshots in {listed - start:.2f}s; branches left: {left}")
        print(f"  requests: {requests} ({d.count('DELETE', '/branches/')} deletes, "
              f"{d.count('GET', '/branches')} lists, {d.count('GET', '/operations/')} operation polls); "
              f"429 answers: {d.rate_limited}; spec problems: {len(d.spec_problems)}")
        print(f"  measured: {elapsed:.1f}s   floor ({args.count} x 60/{LIMIT_PER_MINUTE:.0f}): {floor:.1f}s   "
              f"ratio: {elapsed / floor:.3f}")
        sys.path.insert(0, str(Path(__file__).parent))
        from _common import save

        save("prune_neon", f"Prune of {args.count} Neon branches through the API double at {LIMIT_PER_MINUTE:.0f} req/min",
             [{"measured_s": round(elapsed, 1), "floor_s": round(floor, 1), "ratio": round(elapsed / floor, 3),
               "requests": requests, "pacer": not args.no_pacer}],
             f"{args.count} deletes in {elapsed:.1f} s against a floor of {floor:.1f} s set by the rate limit: "
             f"ratio {elapsed / floor:.3f}")
        return 0 if left == 0 and not d.spec_problems else 1
    finally:
        d.stop()


if __name__ == "__main__":
    raise SystemExit(main())
