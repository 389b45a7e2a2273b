"""`deploysafe demo` end to end, and the app it ships staying in step with the test fixture app."""

from __future__ import annotations

import filecmp
import hashlib
import subprocess
from pathlib import Path

import pytest

from deploysafe.demo.run import TEMPLATE
from support.cli import run_cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "drizzle-app"


def test_the_shipped_demo_app_is_the_fixture_app() -> None:
    names = ["package.json", "package-lock.json", "drizzle.config.ts", "server.mjs", "restart.sh", "src/schema.ts"]
    for name in names:
        assert filecmp.cmp(TEMPLATE / name, FIXTURE / name, shallow=False), name


@pytest.mark.e2e
def test_demo_runs_both_deploys_and_leaves_nothing_behind(tmp_path: Path, node_modules: Path) -> None:
    # Pre-seed the demo's npm cache with the fixture's installed packages (same lockfile, same key).
    key = hashlib.sha256((TEMPLATE / "package-lock.json").read_bytes() + (TEMPLATE / "package.json").read_bytes())
    cached = tmp_path / "cache" / "deploysafe" / f"demo-app-{key.hexdigest()[:16]}"
    cached.mkdir(parents=True)
    (cached / "node_modules").symlink_to(node_modules)
    work = tmp_path / "demo"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "NO_COLOR": "1"}
    import os

    env["PATH"] = os.environ["PATH"]
    r = run_cli("demo", "--dir", str(work), cwd=tmp_path, env=env, timeout=600)
    out = r.output
    assert r.code == 0, out[-3000:]
    assert "safe migration: exit 0 (deployed)" in out
    assert "breaking migration: exit 1 (rolled back)" in out
    assert "rollback: unhealthy -> healthy on pre-deploy-" in out
    assert not work.exists()  # the database files and the app are gone
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(work) not in ps  # no app or postgres process of the demo is left


def test_demo_without_node_says_how_to_fix(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}  # no node, no npm
    r = run_cli("demo", "--dir", str(tmp_path / "d"), cwd=tmp_path, env=env, timeout=60)
    assert r.code == 3
    assert "node and npm not found" in r.stderr and "install Node.js 20" in r.stderr
    assert "Traceback" not in r.stderr
