"""Ten deploys started at once against one production database: exactly one proceeds, the
others exit 5 naming the holder, and nothing is left locked afterwards.

Each run has its own folder and state dir, like ten CI machines: only the PostgreSQL advisory lock on the
production server stands between them (the local file lock cannot see across machines)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg

from support.cli import DEPLOYSAFE
from support.reliability_kit import SAFE, scratch_app, seed_users, set_change, set_faults

N = 10


def _deploy(root: Path, url: str) -> subprocess.Popen[str]:
    env = {**__import__("os").environ, "DATABASE_URL": url, "NO_COLOR": "1"}
    return subprocess.Popen([str(DEPLOYSAFE), "--json", "deploy", "--sha", root.name],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def test_ten_deploys_at_once_exactly_one_proceeds(tmp_path: Path, make_db: Callable[..., str]) -> None:
    url = make_db("conc")
    seed_users(url)
    roots = []
    for i in range(N):
        root = tmp_path / f"machine{i:02d}"
        scratch_app(root, url, step_timeout="30s")
        set_change(root, SAFE)
        set_faults(root, generate="slow:6")  # the winner holds the lock long enough for every other to arrive
        roots.append(root)
    procs = [_deploy(r, url) for r in roots]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=150)
        results.append((p.returncode, out, err))
    codes = sorted(c for c, _, _ in results)
    assert codes == [0] + [5] * (N - 1), [(c, e[-300:]) for c, _, e in results]
    winner = next(i for i, (c, _, _) in enumerate(results) if c == 0)
    summary = json.loads(results[winner][1][results[winner][1].index("{"):])
    assert summary["outcome"] == "deployed"
    for c, _, err in results:
        if c == 5:
            assert "holds the production lock" in err, err
            assert summary["run_id"] in err and "deploy run" in err  # names the holder: command and run id
            assert "since" in err
    with psycopg.connect(url) as conn:  # the change was applied exactly once, and the rows are all there
        assert conn.execute("select count(*) from users").fetchone() == (25,)
        assert conn.execute("select count(*) from pg_locks where locktype = 'advisory'").fetchone() == (0,)
    # nothing is left locked: another machine deploys at once
    nxt = roots[(winner + 1) % N]
    set_faults(nxt)
    set_change(nxt, None)
    r = _deploy(nxt, url)
    out, err = r.communicate(timeout=120)
    assert r.returncode == 0, err
