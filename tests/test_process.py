"""The step runner: real subprocesses, real process groups, real timeouts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from deploysafe.errors import StepError, StepTimeout
from deploysafe.process import run_step


def _gone(pid: int) -> bool:
    """True when the process no longer runs (absent, or a zombie waiting for a reaper)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def _wait_gone(pid: int, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _gone(pid)


def test_captures_stdout_and_stderr_in_order_and_streams_lines(tmp_path: Path) -> None:
    seen: list[str] = []
    r = run_step("demo", "echo one; echo two >&2; printf 'three'", cwd=tmp_path, env={}, timeout=10, on_line=seen.append)
    assert r.exit_code == 0
    assert r.output == "one\ntwo\nthree"
    assert seen == ["one", "two", "three"]
    assert r.name == "demo" and r.duration < 5


def test_reports_the_exit_code_and_closes_stdin(tmp_path: Path) -> None:
    # `read` gets EOF at once from a closed stdin, instead of waiting for an answer.
    r = run_step("ask", "read answer; echo got=$?; exit 7", cwd=tmp_path, env={}, timeout=10)
    assert r.exit_code == 7
    assert r.output == "got=1"


def test_env_is_added_and_database_password_is_redacted(tmp_path: Path) -> None:
    url = "postgresql://app:s3cr3t-Pa55@db.example.com:5432/prod"
    seen: list[str] = []
    r = run_step("push", 'echo "connecting to $DATABASE_URL"; echo "pw is s3cr3t-Pa55"', cwd=tmp_path,
                 env={"DATABASE_URL": url}, timeout=10, on_line=seen.append)
    assert "s3cr3t-Pa55" not in r.output
    assert "s3cr3t-Pa55" not in "".join(seen)
    assert r.output == "connecting to postgresql://app:****@db.example.com:5432/prod\npw is ****"


def test_ansi_escapes_and_spinner_redraws_are_removed(tmp_path: Path) -> None:
    r = run_step("x", r"printf '[~] Pulling\033[2K\033[1G[v] Pulled\n\033[32mok\033[39m\n'", cwd=tmp_path, env={}, timeout=10)
    assert r.output == "[~] Pulling[v] Pulled\nok"


def test_timeout_kills_the_whole_process_group_including_grandchildren(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    # The grandchild ignores SIGTERM, so only the SIGKILL to the group stops it.
    cmd = f"sh -c 'trap \"\" TERM; echo $$ > {pidfile}; sleep 60' & echo started; sleep 60"
    t0 = time.monotonic()
    with pytest.raises(StepTimeout) as exc:
        run_step("db:push", cmd, cwd=tmp_path, env={}, timeout=1.0)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0 + 2.0 + 1.5  # timeout + SIGTERM grace + slack
    assert "db:push" in str(exc.value) and "timeout of 1s" in str(exc.value)
    assert exc.value.step == "db:push" and exc.value.production_changed is False
    assert exc.value.context["output"] == "started"
    assert _wait_gone(int(pidfile.read_text()))


def test_a_background_child_holding_the_pipe_does_not_hang_the_step(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    t0 = time.monotonic()
    r = run_step("gen", f"sleep 60 & echo $! > {pidfile}; echo done", cwd=tmp_path, env={}, timeout=30)
    assert time.monotonic() - t0 < 5
    assert r.exit_code == 0 and r.output == "done"
    assert _wait_gone(int(pidfile.read_text()))  # the orphan was killed with its group


def _app(tmp_path: Path, scripts: dict[str, str], node_modules: bool = True) -> Path:
    (tmp_path / "package.json").write_text(json.dumps({"name": "x", "scripts": scripts}))
    if node_modules:
        (tmp_path / "node_modules").mkdir()
    return tmp_path


def test_missing_npm_script_fails_before_running(tmp_path: Path) -> None:
    app = _app(tmp_path, {"db:generate": "drizzle-kit generate"})
    with pytest.raises(StepError, match=r"package.json in .* has no script 'db:push'") as exc:
        run_step("push", "npm run db:push", cwd=app, env={}, timeout=10)
    assert "db:push" in (exc.value.hint or "")


def test_missing_node_modules_says_to_run_npm_ci(tmp_path: Path) -> None:
    app = _app(tmp_path, {"db:push": "drizzle-kit push"}, node_modules=False)
    with pytest.raises(StepError, match="node_modules is missing") as exc:
        run_step("push", "npm run db:push", cwd=app, env={}, timeout=10)
    assert exc.value.hint == f"run `npm ci` in {app}"


def test_missing_npm_binary(tmp_path: Path) -> None:
    app = _app(tmp_path, {"db:push": "drizzle-kit push"})
    with pytest.raises(StepError, match="`npm` is not installed or not on PATH"):
        run_step("push", "npm run db:push", cwd=app, env={"PATH": str(tmp_path / "empty")}, timeout=10)


def test_a_failing_line_handler_stops_the_step_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "step.pid"

    def explode(line: str) -> None:
        raise RuntimeError("log sink broke")

    with pytest.raises(RuntimeError, match="log sink broke"):
        run_step("x", f"echo $$ > {pidfile}; echo hello; sleep 60", cwd=tmp_path, env={}, timeout=30, on_line=explode)
    assert _wait_gone(int(pidfile.read_text()))


def test_stop_when_ends_the_step_at_the_line_not_at_the_timeout(tmp_path: Path) -> None:
    # A prompt drawn without a newline, then silence: the watcher sees the unfinished line too.
    started = time.monotonic()
    r = run_step(
        "push", "echo 'Do you still want to push changes?'; printf 'No, abort'; sleep 30; echo after",
        cwd=tmp_path, env={}, timeout=60,
        stop_when=lambda line: "asked" if line == "No, abort" else None,
    )
    assert time.monotonic() - started < 10
    assert r.stopped_at == "asked"
    assert r.output.splitlines()[:2] == ["Do you still want to push changes?", "No, abort"]
    assert "after" not in r.output


def test_stop_when_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    r = run_step("x", f"(sleep 30 & echo $! > {pidfile}; wait) & echo 'QUESTION'; sleep 30",
                 cwd=tmp_path, env={}, timeout=60, stop_when=lambda line: line if line == "QUESTION" else None)
    assert r.stopped_at == "QUESTION"
    deadline = time.monotonic() + 2
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _wait_gone(int(pidfile.read_text()))


def test_without_a_match_the_step_runs_to_its_end(tmp_path: Path) -> None:
    r = run_step("x", "echo one; echo two", cwd=tmp_path, env={}, timeout=10, stop_when=lambda line: None)
    assert r.stopped_at is None and r.exit_code == 0 and r.output == "one\ntwo"
