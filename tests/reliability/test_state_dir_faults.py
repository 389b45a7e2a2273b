"""A full disk or an unwritable state dir after production changed never stops the rollback.

The real CLI deploys a breaking migration; while ``db:push`` runs, the test swaps the journal for a
symlink to ``/dev/full``, so every later journal write fails in the kernel with ENOSPC (a real "disk
full", which root cannot bypass the way it bypasses a chmod). The deploy must still probe, roll back
and exit 1 (or 4), never 70, and carry its journal lines on stderr.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from deploysafe.errors import PreconditionError
from deploysafe.journal import Journal, read_journal
from deploysafe.providers.local import LocalProvider
from support.cli import DEPLOYSAFE
from support.e2e import env_url, healthy
from support.reliability_kit import BREAKING, journal_records, kill_tools, prepare_app, set_change, set_faults

STATE = ".deploysafe"


def _wait_for_step(state: Path, step: str, proc: subprocess.Popen[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r["step"] == step and r["outcome"] == "running" for r in journal_records(state)):
            return
        assert proc.poll() is None, f"deploy ended (exit {proc.returncode}) before {step} started"
        time.sleep(0.02)
    raise AssertionError(f"{step} never started")


@pytest.mark.e2e
def test_disk_full_after_push_still_rolls_back(live_app: Any, tmp_path: Path) -> None:
    app = live_app
    prepare_app(app, step_timeout="60s")
    set_change(app.root, BREAKING)
    set_faults(app.root, push="slow:2")  # holds push long enough to swap the journal under it
    state = app.root / STATE
    err = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen([str(DEPLOYSAFE), "deploy"], cwd=app.root, env=app.env,
                            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, text=True)
    try:
        _wait_for_step(state, "push", proc)
        full = state / "journal.full"
        os.symlink("/dev/full", full)
        os.replace(full, state / "journal.jsonl")  # every later append fails with ENOSPC
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_tools(app.root)
        set_faults(app.root)
    err.seek(0)
    stderr = err.read()
    assert code in (1, 4), stderr
    assert code == 1, stderr  # the platform is healthy: the rollback completes
    assert "cannot write the journal" in stderr and "No space left on device" in stderr
    assert "deploysafe journal: " in stderr and '"step": "result"' in stderr  # the lines went to stderr
    assert "internal error" not in stderr
    snaps = [s for s in LocalProvider(app.production_url).list_snapshots() if s.ours]
    assert env_url(app) == LocalProvider(app.production_url).connection_url(snaps[0].name)
    assert healthy(app)


def test_strict_journal_write_failure_is_exit_3_then_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Before production changed a write failure stops the run with a clear exit-3 error naming the file;
    after (``strict = False``) every line goes to stderr and nothing raises."""
    import deploysafe.journal as jmod

    def read_only(path: Path, data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    j = Journal(tmp_path, "deploy")
    j.event("preflight", "ok")
    monkeypatch.setattr(jmod, "_append", read_only)
    with pytest.raises(PreconditionError) as e:
        j.event("snapshot", "ok")
    assert e.value.exit_code == 3 and str(tmp_path / "journal.jsonl") in e.value.message
    assert "Read-only file system" in e.value.message
    j2 = Journal(tmp_path, "deploy")
    j2.strict = False
    with j2.step("push"):
        pass
    j2.event("result", "ok", outcome="rolled back")
    err = capsys.readouterr().err
    assert err.count("cannot write the journal") == 1  # one warning, then the lines
    assert err.count("deploysafe journal: ") == 3
    assert [r["step"] for r in read_journal(tmp_path)] == ["preflight"]
