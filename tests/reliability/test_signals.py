"""Real signals to the real CLI ``deploy``: a cancelled CI job (SIGTERM), a closed terminal
(SIGHUP) and a SIGKILL never leave a step process running, never let a stopped push change production
afterwards, and roll back when production had changed.

The stand-in commands (``reliability/tool.sh``) write their pid when they start; each runs as the
leader of the process group deploysafe made for its step, so "no step process survives" is checked
by scanning /proc for any live (non-zombie) process in that group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from deploysafe.demo.run import DemoApp
from deploysafe.providers.local import LocalProvider
from support.cli import DEPLOYSAFE
from support.e2e import ds, env_url, healthy
from support.reliability_kit import BREAKING, journal_records, kill_tools, prepare_app, set_change, set_faults

pytestmark = pytest.mark.e2e

STATE = ".deploysafe"
APP_DEPLOY = '[deploy]\napp_deploy = "sh tool.sh appdeploy"\n'


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def _start(app: DemoApp, *args: str) -> subprocess.Popen[str]:
    err = (app.root / "deploy.stderr").open("w")  # a file, not a pipe: a full pipe would block deploysafe
    return subprocess.Popen([str(DEPLOYSAFE), "deploy", *args], cwd=app.root, env=app.env,
                            stdout=err, stderr=err, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def _stderr(app: DemoApp) -> str:
    return (app.root / "deploy.stderr").read_text()


def _wait_running(app: DemoApp, step: str, tool: str, proc: subprocess.Popen[str], timeout: float = 90) -> int:
    """Wait until ``step`` is running and its stand-in command has started; the step's process group id."""
    pid_file = app.root / f"{tool}.pid"
    pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = any(r["step"] == step and r["outcome"] == "running" for r in journal_records(app.root / STATE))
        pid = pid_file.read_text().strip() if pid_file.exists() else ""  # read once: the tool may be writing it
        if running and pid:
            try:
                pgid = os.getpgid(int(pid))  # the shell deploysafe started leads the group
            except ProcessLookupError:
                pgid = 0
            if pgid and pgid != os.getpgid(0):
                return pgid
        assert proc.poll() is None, f"deploy ended (exit {proc.returncode}) before {step} started: {_stderr(app)}"
        time.sleep(0.02)
    raise AssertionError(f"{step} never started")


def _column_exists(url: str) -> bool:
    with psycopg.connect(url) as c:
        row = c.execute("select count(*) from information_schema.columns "
                        "where table_name = 'users' and column_name = 'name'").fetchone()
    return row == (1,)


def _cleanup(app: DemoApp, proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    kill_tools(app.root)
    set_faults(app.root)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_during_push_ends_the_push_and_changes_nothing(live_app: DemoApp, sig: signal.Signals) -> None:
    app = live_app
    prepare_app(app, step_timeout="60s")
    set_change(app.root, BREAKING)
    set_faults(app.root, push="slow:8")  # the push sleeps, then drops the column
    proc = _start(app)
    try:
        pgid = _wait_running(app, "push", "push", proc)
        os.kill(proc.pid, sig)  # deploysafe alone, as a cancelled job's runner would
        code = proc.wait(timeout=60)
        stderr = _stderr(app)
        assert code == 130, stderr
        assert _group_members(pgid) == [], "the push outlived deploysafe"
        time.sleep(5)  # the push would have applied its change by now, had it survived
        assert _column_exists(app.production_url), "production changed after deploysafe exited"
    finally:
        _cleanup(app, proc)
    assert f"{sig.name} received" in stderr and "nothing was changed" in stderr
    recs = journal_records(app.root / STATE)
    push = [r for r in recs if r["step"] == "push"]
    assert push[-1]["outcome"] == "interrupted"
    result = [r for r in recs if r["step"] == "result"][-1]
    assert result["details"]["outcome"] == "failed before production changed"
    assert result["details"]["exit_code"] == 130
    assert env_url(app) == app.production_url and healthy(app)
    st = ds(app, "status")
    assert "production may have changed: no" in st.stdout


def test_sigterm_after_push_rolls_back(live_app: DemoApp) -> None:
    app = live_app
    prepare_app(app, step_timeout="60s", extra=APP_DEPLOY)
    set_change(app.root, BREAKING)
    set_faults(app.root, appdeploy="slow:60")  # production changed; the app deploy step is running
    proc = _start(app)
    try:
        pgid = _wait_running(app, "app", "appdeploy", proc)
        assert not _column_exists(app.production_url)  # the breaking push is in
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
        took = time.monotonic() - t0
        stderr = _stderr(app)
        assert code == 1, stderr
        assert _group_members(pgid) == [], "the app deploy step outlived deploysafe"
    finally:
        _cleanup(app, proc)
    recs = journal_records(app.root / STATE)
    result = [r for r in recs if r["step"] == "result"][-1]
    assert result["details"]["outcome"] == "rolled back", took
    snap = next(r["details"]["snapshot"] for r in recs if r["step"] == "snapshot" and r["outcome"] == "ok")
    assert env_url(app) == LocalProvider(app.production_url).connection_url(snap)
    assert healthy(app)
    assert "SIGTERM" in result["details"]["rollback"]["reason"]


def test_sigterm_then_sigkill_mid_rollback_leaves_no_step_and_status_says_how_to_finish(live_app: DemoApp) -> None:
    """The platform is slow (the restart sleeps): the rollback cannot finish before the runner's SIGKILL.
    The restart's group dies with deploysafe, and ``status`` names where it stopped and the command to finish."""
    app = live_app
    prepare_app(app, step_timeout="60s", ready_timeout="60s", extra=APP_DEPLOY)
    set_change(app.root, BREAKING)
    set_faults(app.root, appdeploy="slow:60", restart="slow:60")
    proc = _start(app)
    try:
        _wait_running(app, "app", "appdeploy", proc)
        os.kill(proc.pid, signal.SIGTERM)
        restart = _wait_running(app, "rollback.pick_up", "restart", proc)
        os.kill(proc.pid, signal.SIGTERM)  # a second signal does not cut the rollback short
        time.sleep(0.5)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)  # GitHub's last word; deploysafe alone, not its group
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _group_members(restart) and time.monotonic() < deadline:  # the watchdog acts at once
            time.sleep(0.05)
        assert _group_members(restart) == [], "the restart outlived a SIGKILLed deploysafe"
    finally:
        _cleanup(app, proc)
    st = ds(app, "--json", "status")
    assert st.code == 0, st.stderr
    lr = st.json["last_run"]
    assert lr["outcome"] == "cut off" and "rollback.pick_up" in lr["cut_off_in"]
    finish = f"deploysafe rollback --to {lr['snapshot']} --yes"
    assert any(finish in a for a in st.json["advice"]), st.json["advice"]
    rb = ds(app, "rollback", "--yes", "--to", lr["snapshot"])
    assert rb.code == 0, rb.stderr
    assert healthy(app)


def test_sigkill_during_push_leaves_no_push_running(live_app: DemoApp) -> None:
    app = live_app
    prepare_app(app, step_timeout="60s")
    set_change(app.root, BREAKING)
    set_faults(app.root, push="slow:4")
    proc = _start(app)
    try:
        pgid = _wait_running(app, "push", "push", proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group_members(pgid) == [], "the push outlived a SIGKILLed deploysafe"
        time.sleep(5)  # past the push's sleep: had it survived, the column would be gone
        assert _column_exists(app.production_url)
    finally:
        _cleanup(app, proc)
