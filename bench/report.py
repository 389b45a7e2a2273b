"""Build BENCHMARKS.md from bench/results/*.json (each benchmark script writes its own file).

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ["rollback", "rollback_neon", "control_plane", "deploy_overhead", "startup", "hook", "before_after", "snapshot_local", "prune_neon"]
SCRIPTS = {
    "rollback": "bench_rollback.py",
    "deploy_overhead": "bench_rollback.py",
    "control_plane": "bench_control_plane.py",
    "rollback_neon": "bench_rollback_neon.py",
    "startup": "bench_startup.py",
    "hook": "bench_hook.py",
    "before_after": "bench_before_after.py",
    "snapshot_local": "bench_snapshot_local.py",
    "prune_neon": "bench_prune_neon.py",
}

NOTES = {
    "before_after": "Both trees run alternately on the same machine, each with its own virtualenv and bytecode cache, so "
    "load slows both alike; CPU time is the steadier measure. `before` is the last commit before the restructuring "
    "into packages by concern (issue 13). The CLI now imports a command's module only when that command runs, and "
    "the hook reaches the shared error boundary (`crash.py`, standard library only) without click.",
    "hook": "On 2026-12-02 this machine ran everything about twice as slowly as on 2026-11-25: `python -c pass` "
    "took 53 ms (28.7 ms then) and a push without the hook 39 ms (18.8 ms then). The hook added 62 ms then and 137 ms "
    "now, and the commit before the restructuring is as slow as the one after it (see the before/after table). On "
    "this day's machine the goal of < 100 ms is not met.",
    "snapshot_local": "The floor is `cp -r` of the database's folder, measured in the same run. `template` beats it "
    "because PostgreSQL's FILE_COPY copies each relation file inside the server right after a checkpoint, without "
    "cp's per-file work; so the floor is a reference point, not a hard lower bound. `dump` pays for rebuilding "
    "indexes and is the price of copying online while the app stays connected.",
    "prune_neon": "The Neon API double enforces 700 requests/minute with bursts of 40 and answers 429 beyond it; "
    "the provider paces itself at 97% of the limit, so it gets no 429 at all.",
    "rollback_neon": "Restore in place writes nothing to the platform: the app's DATABASE_URL stays, Neon moves the "
    "compute to the restored timeline and the app's connections reconnect. Its one platform call is a read: with "
    "[rollback] app = \"auto\" it asks whether the app's live release changed during the deploy (then the old code "
    "comes back too); app = \"keep\" makes it zero. Recording where the app points happens after the probes pass, "
    "off the critical path. Repoint pays for clearing the snapshot's expiry, "
    "the variable, the redeploy and its readiness; a real redeploy takes far longer than this fixture's instant READY. "
    "The double's restore copies a real database (CREATE DATABASE ... TEMPLATE) inside the request, where Neon "
    "switches a copy-on-write timeline in seconds: the measured restore time is mostly that copy, so compare the "
    "calls and the latency floors as much as the seconds.",
    "rollback": "deploysafe's own part is everything between the verdict and healthy except the platform's restart "
    "command: setting the variable, waiting for the release, and the probes that prove health.",
}


def table(rows: list[dict[str, object]]) -> list[str]:
    if not rows:
        return []
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return out


def main() -> None:
    results = {p.stem: json.loads(p.read_text()) for p in sorted((HERE / "results").glob("*.json"))}
    lines = [
        "# Benchmarks",
        "",
        "Measured by the scripts in `bench/` (not by timed tests); each writes `bench/results/<name>.json`,",
        "and `python bench/report.py` writes this file. Every result keeps the date and machine it ran on.",
        "These were run one after another on an otherwise idle machine (numbers taken while the test suite ran",
        "alongside were 2-4x slower).",
        "",
        "## Summary",
        "",
        "| benchmark | result | goal | date |",
        "|---|---|---|---|",
    ]
    names = [n for n in ORDER if n in results] + [n for n in results if n not in ORDER]
    for name in names:
        r = results[name]
        lines.append(f"| {r['title']} | {r['summary']} | {r.get('goal') or '-'} | {r['date'][:10]} |")
    for name in names:
        r = results[name]
        m = r["machine"]
        lines += [
            "",
            f"## {r['title']}",
            "",
            f"Script: `bench/{SCRIPTS.get(name, name + '.py')}`. Run {r['date']} on {m['cores']} cores, {m['cpu']}, "
            f"{m['memory']}, {m['os']}, Python {m['python']}, Node {m['node']}.",
            "",
            r["summary"] + (f" Goal: {r['goal']}." if r.get("goal") else ""),
            *(["", NOTES[name]] if name in NOTES else []),
            "",
            *table(r["rows"]),
        ]
    (HERE.parent / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
