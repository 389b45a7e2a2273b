"""Benchmark: what the pre-push hook adds to `git push` of an unrelated commit.

Goal: under 100 ms added (median) on a 2-core machine. Runs `git push` to a local bare remote
with and without the hook installed, alternating, each push sending one fresh commit that touches
no schema path (the commit is made outside the timed part). Prints medians; also times
`python -c pass` and `deploysafe --version` for scale.

    .venv/bin/python bench/bench_hook.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
DEPLOYSAFE = BIN / "deploysafe"
FIXTURE_APP = ROOT / "tests" / "fixtures" / "drizzle-app"


def sh(cwd: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run(list(args), cwd=cwd, env=env, check=True, capture_output=True)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cwd: Path, args: list[str], env: dict[str, str], stdin: str = "", cpu: list[float] | None = None) -> float:
    """Wall-clock ms; also appends the CPU ms of the process tree to ``cpu`` (less sensitive to a
    busy machine than wall-clock time, which waits for the scheduler)."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, input=stdin.encode(), check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.decode()}")
    if cpu is not None:
        cpu.append((_children_cpu() - cpu_before) * 1000)
    return elapsed * 1000


def make_clone(base: Path, name: str, env: dict[str, str]) -> Path:
    remote = base / f"{name}.git"
    sh(base, "git", "init", "-q", "--bare", str(remote), env=env)
    repo = base / name
    repo.mkdir()
    sh(repo, "git", "init", "-q", env=env)
    for f in ("drizzle.config.ts", "package.json"):
        shutil.copy(FIXTURE_APP / f, repo / f)
    shutil.copytree(FIXTURE_APP / "src", repo / "src")
    (repo / "deploysafe.toml").write_text('[hook]\nbranches = ["main", "production"]\n')
    sh(repo, "git", "add", ".", env=env)
    sh(repo, "git", "commit", "-q", "-m", "app", env=env)
    sh(repo, "git", "remote", "add", "origin", str(remote), env=env)
    sh(repo, "git", "push", "-q", "origin", "main", env=env)
    return repo


def push_once(repo: Path, i: int, env: dict[str, str], cpu: list[float] | None = None) -> float:
    (repo / "README.md").write_text(f"run {i}\n")
    sh(repo, "git", "add", "README.md", env=env)
    sh(repo, "git", "commit", "-q", "-m", f"docs {i}", env=env)
    return timed(repo, ["git", "push", "-q", "origin", "main"], env, cpu=cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    runs = ap.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="deploysafe-bench-") as tmp:
        base = Path(tmp)
        (base / "template").mkdir()
        (base / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
            "GIT_CONFIG_GLOBAL": str(base / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TEMPLATE_DIR": str(base / "template"),
            # as on a user's machine: bytecode cached (this sandbox sets PYTHONDONTWRITEBYTECODE=1,
            # which recompiles every deploysafe module on each start); kept out of the checkout
            "PYTHONPYCACHEPREFIX": str(base / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        plain = make_clone(base, "plain", env)
        hooked = make_clone(base, "hooked", env)
        sh(hooked, str(DEPLOYSAFE), "hooks", "install", env=env)
        push_once(plain, -1, env)  # warm the page cache for both
        push_once(hooked, -1, env)
        without, with_hook = [], []
        cpu_without: list[float] = []
        cpu_with: list[float] = []
        cpu_py: list[float] = []
        for i in range(runs):
            without.append(push_once(plain, i, env, cpu_without))
            with_hook.append(push_once(hooked, i, env, cpu_with))
        py = [timed(base, [sys.executable, "-c", "pass"], env, cpu=cpu_py) for _ in range(runs)]
        version = [timed(base, [str(DEPLOYSAFE), "--version"], env) for _ in range(runs)]
        # the hook process alone, on the same no-op input: through click, and (for comparison)
        # calling deploysafe.hook.prepush directly, which is what skipping click would save
        head = subprocess.run(["git", "rev-parse", "HEAD", "HEAD~1"], cwd=hooked, env=env, capture_output=True, text=True)
        new, old = head.stdout.split()
        line = f"refs/heads/main {new} refs/heads/main {old}\n"
        direct = "import sys,pathlib;from deploysafe.hook.prepush import run_pre_push as r;" \
                 "sys.exit(r('origin','u',sys.stdin.buffer.read(),repo_root=pathlib.Path.cwd()))"
        via_click = [timed(hooked, [str(DEPLOYSAFE), "hook", "pre-push", "origin", "u"], env, line) for _ in range(runs)]
        no_click = [timed(hooked, [sys.executable, "-c", direct], env, line) for _ in range(runs)]

    m_without, m_with = statistics.median(without), statistics.median(with_hook)
    print(f"cpus: {os.cpu_count()}, runs: {runs} each")
    print(f"git push without hook      median {m_without:7.1f} ms  (min {min(without):.1f}, max {max(without):.1f})")
    print(f"git push with hook         median {m_with:7.1f} ms  (min {min(with_hook):.1f}, max {max(with_hook):.1f})")
    print(f"added by the hook          median {m_with - m_without:7.1f} ms  (goal < 100 ms)")
    c_without, c_with = statistics.median(cpu_without), statistics.median(cpu_with)
    print(f"CPU time of git push: without {c_without:.1f} ms, with hook {c_with:.1f} ms, added {c_with - c_without:.1f} ms")
    print(f"python -c pass             median {statistics.median(py):7.1f} ms  (CPU {statistics.median(cpu_py):.1f} ms)")
    print(f"deploysafe --version       median {statistics.median(version):7.1f} ms")
    print(f"hook process (via click)   median {statistics.median(via_click):7.1f} ms")
    print(f"hook logic without click   median {statistics.median(no_click):7.1f} ms  (for comparison only)")
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import save

    save("hook", "git push of an unrelated commit to a local bare remote, with and without the pre-push hook",
         [{"what": "git push without hook", "median_ms": round(m_without, 1)},
          {"what": "git push with hook", "median_ms": round(m_with, 1)},
          {"what": "python -c pass", "median_ms": round(statistics.median(py), 1)}],
         f"the hook adds {m_with - m_without:.0f} ms (median of {runs}) to a {m_without:.0f} ms push",
         goal="< 100 ms added")


if __name__ == "__main__":
    main()
