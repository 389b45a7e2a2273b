"""SIGKILL at each step boundary: the real CLI ``deploy`` is killed when the journal shows step X
started; afterwards the journal parses, ``status`` says where it was cut off and whether the push ran, no
lock is left behind, and ``rollback --yes`` recovers where production changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from deploysafe.demo.run import DemoApp
from deploysafe.providers.local import LocalProvider
from support.cli import DEPLOYSAFE
from support.e2e import ds, env_url, healthy
from support.reliability_kit import BREAKING, SAFE, journal_records, kill_tools, prepare_app, set_change, set_faults

pytestmark = pytest.mark.e2e

STATE = ".deploysafe"


def _start(app: DemoApp) -> subprocess.Popen[str]:
    return subprocess.Popen([str(DEPLOYSAFE), "deploy"], cwd=app.root, env=app.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def _wait_for(app: DemoApp, pred: Callable[[dict[str, Any]], bool], proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(pred(r) for r in journal_records(app.root / STATE)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"deploy ended (exit {proc.returncode}) before the step started")
        time.sleep(0.02)
    raise AssertionError("the journal never showed the step")


class _HeldTable:
    """An open transaction holding ACCESS EXCLUSIVE on users: pg_dump waits on it, so the snapshot step stays running."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)
        self.conn.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


# step -> (schema change, faults that hold the run inside that step, whether production changed by then)
CASES: dict[str, tuple[dict[str, str], dict[str, str], bool]] = {
    "snapshot": (SAFE, {}, False),
    "generate": (SAFE, {"generate": "slow:30"}, False),
    "lint": (SAFE, {"generate": "lint-bulk"}, False),
    "push": (BREAKING, {"push": "slow:30"}, False),
    "probes": (BREAKING, {}, True),
    "rollback": (BREAKING, {"restart": "slow:30"}, True),
}


@pytest.mark.parametrize("step", list(CASES))
def test_sigkill_at_step(live_app: DemoApp, step: str) -> None:
    app = live_app
    change, faults, changed = CASES[step]
    proxy_url = None
    silent = None
    if step == "probes":
        # a health URL that accepts and never answers: every probe attempt waits its full timeout
        import socket

        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        proxy_url = f"http://127.0.0.1:{silent.getsockname()[1]}/health"
    prepare_app(app, probe_url=proxy_url, step_timeout="60s", ready_timeout="60s")
    set_change(app.root, change)
    set_faults(app.root, **faults)
    held = _HeldTable(app.production_url) if step == "snapshot" else None
    proc = _start(app)
    try:
        _wait_for(app, lambda r: r["step"] == step and r["outcome"] == "running", proc)
        if step == "rollback":
            _wait_for(app, lambda r: r["step"] == "rollback.pick_up" and r["outcome"] == "running", proc)
        if step == "snapshot":  # kill it mid-copy: once the copy's database exists (pg_dump waits on the lock)
            deadline = time.monotonic() + 60
            while not any(s.state == "copying" for s in LocalProvider(app.production_url).list_snapshots()):
                assert time.monotonic() < deadline and proc.poll() is None, "the copy never started"
                time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if held:
            held.release()
        if silent:
            silent.close()
        kill_tools(app.root)
        set_faults(app.root)
        prepare_app(app)  # the real health URL again, for what follows
    recs = journal_records(app.root / STATE)  # parses, line by line
    assert recs[-1]["outcome"] == "running" or any(r["step"] == step for r in recs)
    st = ds(app, "--json", "status")
    assert st.code == 0, st.stderr
    report = st.json
    lr = report["last_run"]
    assert lr["outcome"] == "cut off"
    assert step in lr["cut_off_in"]
    assert lr["push_ran"] is (step in ("push", "probes", "rollback"))
    assert lr["production_may_have_changed"] is (step in ("push", "probes", "rollback"))
    human = ds(app, "status")
    assert "cut off" in human.stdout and step in human.stdout
    snap = lr["snapshot"]
    prov = LocalProvider(app.production_url)
    killed_copy = None
    if step == "snapshot":
        assert snap is None  # the step never finished
        # the copy was marked as deploysafe's before it started: it is found, listed incomplete, never served
        deadline = time.monotonic() + 30
        while (unfinished := [(s.name, s.state) for s in prov.list_snapshots() if s.ours and s.state != "ready"]) \
                != [(unfinished[0][0] if unfinished else "", "incomplete")]:
            assert unfinished, "the killed copy is not listed: prune could never clean it"
            assert time.monotonic() < deadline, f"the killed copy still reads {unfinished}"
            time.sleep(0.2)
        killed_copy = unfinished[0][0]
        listed = ds(app, "snapshot", "list")
        assert "pre-deploy (incomplete)" in listed.stdout, listed.stdout
    else:
        assert snap in report["snapshots"]
    if changed or step == "push":
        assert snap and any(f"rollback --to {snap}" in a for a in report["advice"]) or step == "rollback"
        rb = ds(app, "rollback", "--yes", "--to", snap)  # also proves no lock was left: a held lock is exit 5
        assert rb.code == 0, rb.stderr
        assert env_url(app) == prov.connection_url(snap)
        assert healthy(app)
        with psycopg.connect(app.production_url) as c:  # the failed state is kept with its rows
            assert c.execute("select count(*) from users").fetchone() == (25,)
    else:
        assert any("before production changed" in a for a in report["advice"])
        assert env_url(app) == app.production_url and healthy(app)
        set_change(app.root, SAFE)
        again = ds(app, "--json", "deploy")  # no lock left behind: not refused with 5
        assert again.code == 0, again.stderr
        assert json.loads(again.stdout[again.stdout.index("{"):])["outcome"] == "deployed"
        if killed_copy:  # the deploy's prune cleaned the killed copy
            assert killed_copy not in {s.name for s in prov.list_snapshots()}
