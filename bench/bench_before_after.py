"""Start-up before and after a change: `deploysafe --version` and the pre-push hook's no-op path, interleaved.

Compares this checkout with another one (for example the commit before a restructuring), each with its own
`.venv`, by running the two alternately so that a busy machine slows both alike. The hook is run the way git runs
it (`deploysafe hook pre-push origin <url>`, the pushed ref on stdin) for a commit that touches no schema path.

    git worktree add ../before <commit> && (cd ../before && python3 -m venv .venv && .venv/bin/pip install -e .)
    .venv/bin/python bench/bench_before_after.py --before ../before [--rounds 41]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402
from bench_hook import make_clone, push_once, timed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def git_env(base: Path) -> dict[str, str]:
    (base / "template").mkdir()
    (base / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
        "GIT_CONFIG_GLOBAL": str(base / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TEMPLATE_DIR": str(base / "template"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a user's machine: bytecode cached
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="the other checkout, with its own .venv")
    ap.add_argument("--rounds", type=int, default=41)
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": ROOT}
    commits = {k: subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=t, capture_output=True, text=True,
                                 check=True).stdout.strip() for k, t in trees.items()}
    with tempfile.TemporaryDirectory(prefix="deploysafe-bench-") as tmp:
        base = Path(tmp)
        env = git_env(base)
        repo = make_clone(base, "app", env)
        push_once(repo, 0, env)
        head = subprocess.run(["git", "rev-parse", "HEAD", "HEAD~1"], cwd=repo, env=env, capture_output=True, text=True)
        new, old = head.stdout.split()
        line = f"refs/heads/main {new} refs/heads/main {old}\n"
        envs = {k: {**env, "PYTHONPYCACHEPREFIX": str(base / f"pycache-{k}")} for k in trees}
        exe = {k: str(t / ".venv" / "bin" / "deploysafe") for k, t in trees.items()}
        wall: dict[tuple[str, str], list[float]] = {(k, w): [] for k in trees for w in ("version", "hook")}
        cpu: dict[tuple[str, str], list[float]] = {(k, w): [] for k in trees for w in ("version", "hook")}
        for k in trees:  # warm the bytecode caches
            timed(repo, [exe[k], "--version"], envs[k])
            timed(repo, [exe[k], "hook", "pre-push", "origin", "u"], envs[k], line)
        for _ in range(args.rounds):
            for k in trees:
                wall[k, "version"].append(timed(repo, [exe[k], "--version"], envs[k], cpu=cpu[k, "version"]))
                wall[k, "hook"].append(timed(repo, [exe[k], "hook", "pre-push", "origin", "u"], envs[k], line,
                                             cpu=cpu[k, "hook"]))
    rows = []
    for w, label in (("version", "deploysafe --version"), ("hook", "hook pre-push, no-op path")):
        for k in trees:
            rows.append({"what": label, "tree": f"{k} ({commits[k]})",
                         "median_ms": round(statistics.median(wall[k, w]), 1),
                         "cpu_median_ms": round(statistics.median(cpu[k, w]), 1)})
    for r in rows:
        print(f"{r['what']:<28} {r['tree']:<18} wall {r['median_ms']:7.1f} ms   CPU {r['cpu_median_ms']:7.1f} ms")

    def delta(w: str) -> float:
        return statistics.median(cpu["after", w]) - statistics.median(cpu["before", w])

    summary = (f"after vs before ({commits['before']}), CPU medians of {args.rounds} interleaved runs: "
               f"--version {delta('version'):+.0f} ms, hook no-op path {delta('hook'):+.0f} ms")
    print(summary)
    save("before_after", "Start-up before and after the restructuring (issue 13): --version and the hook's no-op path",
         rows, summary, goal="after no slower than before")


if __name__ == "__main__":
    main()
