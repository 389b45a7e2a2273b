"""CLI skeleton: global options, the error boundary, fast start-up, history, console output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from deploysafe import __version__
from deploysafe.console import Console
from deploysafe.errors import EXIT_CODES
from deploysafe.journal import JOURNAL_NAME, Journal
from support.cli import DEPLOYSAFE, run_cli, run_cli_in_process

ROOT = Path(__file__).resolve().parents[2]
_STAMP = re.compile(r"^\d\d:\d\d:\d\d (✗ |✓ )?", re.M)
HEAVY = ("httpx", "pydantic", "git", "psycopg", "pglast")

CONFIG = """
[provider]
type = "local"
database_url = "${DATABASE_URL}"

[platform]
type = "dotenv"
env_file = ".env"
"""
PASSWORD = "Sup3r-S3cret-pw"
TOKEN = "napi_journaltoken0123456789"
DB_URL = f"postgres://app:{PASSWORD}@db.internal:5432/prod"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    r = run_cli_in_process(capsys, *args)
    return r.code, r.stdout, _STAMP.sub("", r.stderr)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    monkeypatch.setenv("DATABASE_URL", DB_URL)
    monkeypatch.setenv("NEON_API_KEY", TOKEN)
    (tmp_path / "deploysafe.toml").write_text(CONFIG)
    return tmp_path


# --- start-up -------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["deploy", "--help"]])
def test_version_and_help_do_not_import_heavy_modules(args: list[str]) -> None:
    code = (
        "import sys\nfrom deploysafe.cli import run\ncode = run(sys.argv[1:])\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print('HEAVY', heavy, code, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    assert proc.stderr.strip().splitlines()[-1] == "HEAVY [] 0"
    if args == ["--version"]:
        assert proc.stdout == f"deploysafe, version {__version__}\n"


def test_console_script_and_python_m() -> None:
    for cmd in ([str(DEPLOYSAFE), "--version"], [sys.executable, "-m", "deploysafe", "--version"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert (proc.returncode, proc.stdout) == (0, f"deploysafe, version {__version__}\n")


def test_console_script_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "deploysafe.toml").write_text(CONFIG.replace('"local"', '"mysql"'))
    env = {k: v for k, v in os.environ.items() if k != "DEPLOYSAFE_CONFIG"} | {"DATABASE_URL": DB_URL}
    r = run_cli("config", "check", cwd=tmp_path, env=env)
    assert r.code == 2
    assert r.stdout == ""
    assert _STAMP.sub("", r.stderr) == "provider.type: Input should be 'neon' or 'local'\n"


def test_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "--help")
    assert code == 0
    assert "Exit codes:" in out
    for c, meaning in EXIT_CODES.items():
        assert re.search(rf"^\s+{c}\s+{re.escape(meaning[:40])}", out, re.M), c


# --- the error boundary ---------------------------------------------------------------------


def test_unknown_command_and_bad_option_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "frobnicate")
    assert (code, out) == (2, "")
    assert "No such command 'frobnicate'" in err
    code, _, err = _cli(capsys, "history", "--limit", "many")
    assert code == 2 and "'many' is not a valid integer" in err


def test_a_bug_exits_70_with_the_log_path_and_no_secret(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def boom(state_dir: Path) -> list[object]:
        raise RuntimeError(f"cannot talk to {DB_URL}")

    monkeypatch.setattr("deploysafe.journal.read_journal", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, out, err = _cli(capsys, "history")
    assert code == 70 and out == ""
    # Issue 17: the crash log is in the state folder, owner-only, under a unique name (no fixed /tmp file).
    m = re.fullmatch(
        r"internal error \(a bug in deploysafe\): RuntimeError: cannot talk to postgres://app:\*\*\*\*@db\.internal:5432/prod; "
        r"the traceback is in (\S+)\n", err)
    assert m, err
    log = Path(m.group(1))
    assert log.parent == project / ".deploysafe" and re.fullmatch(r"crash-\d{8}T\d{6}Z-\w+\.log", log.name)
    assert log.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "deploysafe-crash.log").exists()
    trace = log.read_text()
    assert "Traceback" in trace and "boom" in trace and PASSWORD not in trace
    code, _, err2 = _cli(capsys, "history")  # a second crash does not overwrite the first
    assert code == 70 and f"traceback is in {log}\n" not in err2 and "traceback is in " in err2


def test_ctrl_c_exits_130(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(state_dir: Path) -> list[object]:
        raise KeyboardInterrupt

    monkeypatch.setattr("deploysafe.journal.read_journal", interrupted)
    code, _, err = _cli(capsys, "history")
    assert (code, err.strip()) == (130, "interrupted")  # click moves past the ^C with a newline first


# --- history --------------------------------------------------------------------------------


def _journal_with_secrets(project: Path) -> None:
    from deploysafe.config import load_config

    state = project / ".deploysafe"
    load_config()  # registers the secrets, as every command does
    j = Journal(state, "deploy", run_id="20261125T100000Z-aaaaaa")
    with j.step("snapshot", target=DB_URL) as h:
        h.details["auth"] = f"Bearer {TOKEN}"
    j.write("push", "running", j_started(), None, {"url": DB_URL})  # killed during push
    # A line from an older version that did not redact: history must still not show it.
    raw = {"run_id": "20261124T090000Z-bbbbbb", "command": "rollback", "step": "set", "started_at": "2026-11-24T09:00:00.000Z",
           "ended_at": "2026-11-24T09:00:01.500Z", "duration_ms": 1500.0, "outcome": "ok", "details": {"url": DB_URL, "token": TOKEN}}
    with (state / JOURNAL_NAME).open("a") as f:
        f.write(json.dumps(raw) + "\n")


def j_started() -> object:
    from datetime import UTC, datetime

    return datetime(2026, 11, 25, 10, 0, 3, tzinfo=UTC)


def test_history_json_never_contains_a_secret(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _journal_with_secrets(project)
    assert PASSWORD not in (project / ".deploysafe" / JOURNAL_NAME).read_text().split("20261124T")[0]
    code, out, err = _cli(capsys, "--json", "history")
    assert code == 0
    assert PASSWORD not in out + err and TOKEN not in out + err
    runs = json.loads(out)
    assert [r["run_id"] for r in runs] == ["20261124T090000Z-bbbbbb", "20261125T100000Z-aaaaaa"]
    assert runs[1]["outcome"] == "cut off"
    assert runs[0]["steps"][0]["details"] == {"url": "postgres://app:****@db.internal:5432/prod", "token": "****"}


def test_history_text_shows_steps_and_durations(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _journal_with_secrets(project)
    code, out, _ = _cli(capsys, "history", "--limit", "1")
    assert code == 0
    lines = out.splitlines()
    assert re.match(r"^\S+Z\s+deploy\s+cut off\s+20261125T100000Z-aaaaaa$", lines[0])
    assert re.match(r"^    snapshot\s+ok\s+\d+\.\d\ds$", lines[1])
    assert re.match(r"^    push\s+running\s+\(cut off\)$", lines[2])
    assert len(lines) == 3


def test_history_without_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(capsys, "history") == (0, "no runs recorded yet\n", "")
    code, out, _ = _cli(capsys, "--json", "history")
    assert (code, json.loads(out)) == (0, [])


# --- console ----------------------------------------------------------------------------------


def test_no_color_env_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    c = Console()
    monkeypatch.delenv("NO_COLOR", raising=False)
    c.configure()
    assert c.color
    c.configure(no_color=True)
    assert not c.color
    monkeypatch.setenv("NO_COLOR", "1")
    c.configure()
    assert not c.color


def test_json_mode_keeps_stdout_for_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    c = Console()
    c.configure(json_mode=True)
    c.info("working")
    c.result({"ok": True})
    out, err = capsys.readouterr()
    assert json.loads(out) == {"ok": True}
    assert _STAMP.sub("", err) == "working\n"


def test_non_tty_lines_carry_a_utc_time(capsys: pytest.CaptureFixture[str]) -> None:
    c = Console()
    c.configure()
    c.info("one\ntwo")
    out, _ = capsys.readouterr()
    assert re.fullmatch(r"\d\d:\d\d:\d\d one\n\d\d:\d\d:\d\d two\n", out)


def test_github_actions_annotations_and_groups(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from deploysafe.redact import register_secret

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    register_secret(TOKEN)
    c = Console()
    c.configure()
    with c.group(f"push with {TOKEN}"):
        c.warn("lint: DROP COLUMN users.name\n50% of rows")
    c.error(f"probe failed at {DB_URL}")
    out, err = capsys.readouterr()
    gh = [ln for ln in out.splitlines() if ln.startswith("::")]
    assert gh == [
        "::group::push with ****",
        "::warning::lint: DROP COLUMN users.name%0A50%25 of rows",
        "::endgroup::",
        "::error::probe failed at postgres://app:****@db.internal:5432/prod",
    ]
    assert PASSWORD not in out + err and TOKEN not in out + err


def test_github_annotations_leave_stdout_to_the_json_result(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    c = Console()
    c.configure(json_mode=True)
    with c.group("push"):
        c.warn("destructive statement")
    c.error("probe failed")
    c.result({"outcome": "rolled back"})
    out, err = capsys.readouterr()
    assert json.loads(out) == {"outcome": "rolled back"}
    assert [ln for ln in err.splitlines() if ln.startswith("::")] == [
        "::group::push", "::warning::destructive statement", "::endgroup::", "::error::probe failed"
    ]
