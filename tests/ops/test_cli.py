"""The operations commands through the CLI: exit codes, output, journal, against real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from deploysafe.cli import run
from deploysafe.journal import read_journal, runs
from deploysafe.redact import url_password
from support.ops_helpers import Hook, rows


def cli(loaded: Any, *args: str) -> int:
    return run(["--config", str(loaded.path), *args])


def test_backup_then_check_exit_codes_and_notify(local_setup: Callable[..., Any], hook: Hook,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    loaded, prov = local_setup('[notify]\nwebhook_env = "OPS_WEBHOOK"\n')
    assert cli(loaded, "check") == 7  # no backup yet
    assert hook.bodies and hook.bodies[-1]["text"].startswith(f"deploysafe check ({loaded.root.name}): FAIL")
    capsys.readouterr()
    assert cli(loaded, "backup", "--kind", "daily") == 0
    assert cli(loaded, "backup", "--kind", "daily") == 0
    out = capsys.readouterr().out
    assert "created" in out and "already exists; nothing created" in out
    assert cli(loaded, "check", "--json") == 6  # weekly backup and drill missing: warnings only
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "warn" and data["exit_code"] == 6
    assert {c["name"]: c["status"] for c in data["checks"]}["daily-backup"] == "ok"
    assert cli(loaded, "check", "--warn-ok") == 0
    assert [r["command"] for r in runs(read_journal(loaded.state_dir))].count("backup") == 2
    # a drill from that backup, then its history
    assert cli(loaded, "drill", "--age", "0s") == 0
    out = capsys.readouterr().out
    assert "drill passed" in out and "branch" in out
    assert list((loaded.state_dir / "drills").glob("drill-*.md"))
    assert cli(loaded, "drill", "--history") == 0
    assert " passed " in capsys.readouterr().out
    assert cli(loaded, "drill", "--age", "soon") == 2
    assert "--age" in capsys.readouterr().err


def test_restore_table_cli(local_setup: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    loaded, prov = local_setup()
    before = rows(prov.url)
    assert cli(loaded, "backup", "--no-prune") == 0
    snap = next(s.name for s in prov.list_snapshots() if s.ours)
    with psycopg.connect(prov.url, autocommit=True) as c:
        c.execute("DELETE FROM users WHERE id > 20")
    capsys.readouterr()
    assert cli(loaded, "restore-table", "--from", snap, "--table", "users", "--into", "production", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "10 row(s) only in the source" in out and "would insert the missing rows into users" in out
    # no terminal and no --yes: refused, nothing changed
    assert cli(loaded, "restore-table", "--from", snap, "--table", "users", "--into", "production") == 2
    assert len(rows(prov.url)) == 20
    capsys.readouterr()
    assert cli(loaded, "restore-table", "--from", snap, "--table", "users", "--into", "production", "--yes") == 0
    out = capsys.readouterr().out
    assert "about to insert the missing rows into users" in out and "10 row(s) restored" in out
    assert rows(prov.url) == before
    assert cli(loaded, "restore-table", "--table", "users") == 2
    assert cli(loaded, "restore-table", "--at", "yesterday", "--table", "users") == 2
    assert "Traceback" not in capsys.readouterr().err


def test_setup_runbook_and_schedule_on_local(local_setup: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    loaded, prov = local_setup(seed=False)
    assert cli(loaded, "setup") == 0
    out = capsys.readouterr().out
    assert "nothing to set up" in out and "daily-backup" in out and "history-window" not in out
    assert cli(loaded, "runbook") == 0
    book = capsys.readouterr().out
    assert book.startswith(f"# Recovery runbook: `{prov.production_db}`")
    assert "restore-table --from backup-YYYY-MM-DD" in book and "dotenv" in book
    password = url_password(prov.url)
    assert not password or password not in book
    assert cli(loaded, "backup", "schedule", "show") == 3
    assert "Neon feature" in capsys.readouterr().err
    assert cli(loaded, "backup", "schedule", "set") == 2
