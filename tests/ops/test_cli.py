"""The operations commands through the CLI: exit codes, output, journal, against real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from deploysafe.journal import read_journal, runs
from deploysafe.redact import url_password
from support.cli import CliResult, run_cli_in_process
from support.ops_helpers import Hook, rows


def cli(capsys: pytest.CaptureFixture[str], loaded: Any, *args: str) -> CliResult:
    return run_cli_in_process(capsys, "--config", str(loaded.path), *args)


def test_backup_then_check_exit_codes_and_notify(local_setup: Callable[..., Any], hook: Hook,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    loaded, prov = local_setup('[notify]\nwebhook_env = "OPS_WEBHOOK"\n')
    r = cli(capsys, loaded, "check")
    assert r.code == 7  # no backup yet
    assert hook.bodies and hook.bodies[-1]["text"].startswith(f"deploysafe check ({loaded.root.name}): FAIL")
    r = cli(capsys, loaded, "backup", "--kind", "daily")
    assert r.code == 0 and "created" in r.stdout
    r = cli(capsys, loaded, "backup", "--kind", "daily")
    assert r.code == 0 and "already exists; nothing created" in r.stdout
    r = cli(capsys, loaded, "check", "--json")
    assert r.code == 6  # weekly backup and drill missing: warnings only
    data = r.json
    assert data["status"] == "warn" and data["exit_code"] == 6
    assert {c["name"]: c["status"] for c in data["checks"]}["daily-backup"] == "ok"
    r = cli(capsys, loaded, "check", "--warn-ok")
    assert r.code == 0
    assert [r["command"] for r in runs(read_journal(loaded.state_dir))].count("backup") == 2
    # a drill from that backup, then its history
    r = cli(capsys, loaded, "drill", "--age", "0s")
    assert r.code == 0
    out = r.stdout
    assert "drill passed" in out and "branch" in out
    assert list((loaded.state_dir / "drills").glob("drill-*.md"))
    r = cli(capsys, loaded, "drill", "--history")
    assert r.code == 0
    assert " passed " in r.stdout
    r = cli(capsys, loaded, "drill", "--age", "soon")
    assert r.code == 2
    assert "--age" in r.stderr


def test_restore_table_cli(local_setup: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    loaded, prov = local_setup()
    before = rows(prov.url)
    r = cli(capsys, loaded, "backup", "--no-prune")
    assert r.code == 0
    snap = next(s.name for s in prov.list_snapshots() if s.ours)
    with psycopg.connect(prov.url, autocommit=True) as c:
        c.execute("DELETE FROM users WHERE id > 20")
    r = cli(capsys, loaded, "restore-table", "--from", snap, "--table", "users", "--into", "production", "--dry-run")
    assert r.code == 0
    out = r.stdout
    assert "10 row(s) only in the source" in out and "would insert the missing rows into users" in out
    # no terminal and no --yes: refused, nothing changed
    r = cli(capsys, loaded, "restore-table", "--from", snap, "--table", "users", "--into", "production")
    assert r.code == 2
    assert len(rows(prov.url)) == 20
    r = cli(capsys, loaded, "restore-table", "--from", snap, "--table", "users", "--into", "production", "--yes")
    assert r.code == 0
    out = r.stdout
    assert "about to insert the missing rows into users" in out and "10 row(s) restored" in out
    assert rows(prov.url) == before
    r = cli(capsys, loaded, "restore-table", "--table", "users")
    assert r.code == 2 and "Traceback" not in r.stderr
    r = cli(capsys, loaded, "restore-table", "--at", "yesterday", "--table", "users")
    assert r.code == 2
    assert "Traceback" not in r.stderr


def test_setup_runbook_and_schedule_on_local(local_setup: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    loaded, prov = local_setup(seed=False)
    r = cli(capsys, loaded, "setup")
    assert r.code == 0
    out = r.stdout
    assert "nothing to set up" in out and "daily-backup" in out and "history-window" not in out
    r = cli(capsys, loaded, "runbook")
    assert r.code == 0
    book = r.stdout
    assert book.startswith(f"# Recovery runbook: `{prov.production_db}`")
    assert "restore-table --from backup-YYYY-MM-DD" in book and "dotenv" in book
    password = url_password(prov.url)
    assert not password or password not in book
    r = cli(capsys, loaded, "backup", "schedule", "show")
    assert r.code == 3
    assert "Neon feature" in r.stderr
    r = cli(capsys, loaded, "backup", "schedule", "set")
    assert r.code == 2
