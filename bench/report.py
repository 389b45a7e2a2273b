"""Build BENCHMARKS.md from bench/results/*.json (each benchmark script writes its own file).

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ["rollback", "control_plane", "deploy_overhead", "startup", "hook", "snapshot_local", "prune_neon"]
SCRIPTS = {
    "rollback": "bench_rollback.py",
    "deploy_overhead": "bench_rollback.py",
    "control_plane": "bench_control_plane.py",
    "startup": "bench_startup.py",
    "hook": "bench_hook.py",
    "snapshot_local": "bench_snapshot_local.py",
    "prune_neon": "bench_prune_neon.py",
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
            "",
            *table(r["rows"]),
        ]
    (HERE.parent / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
