"""Journal: one fsynced JSON line per step event, millisecond UTC times, readable after a kill."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploysafe.journal import JOURNAL_NAME, Journal, read_journal, runs
from deploysafe.redact import register_secret

ISO_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _lines(state: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (state / JOURNAL_NAME).read_text().splitlines()]


def test_each_step_writes_a_start_and_an_end_line(tmp_path: Path) -> None:
    j = Journal(tmp_path / "state", "deploy", run_id="r1")
    with j.step("snapshot", name="pre-deploy-x") as h:
        h.details["branch_id"] = "br-1"
    j.event("result", outcome="deployed")
    lines = _lines(tmp_path / "state")
    assert [(rec["step"], rec["outcome"]) for rec in lines] == [("snapshot", "running"), ("snapshot", "ok"), ("result", "ok")]
    for rec in lines:
        assert set(rec) == {"run_id", "command", "step", "started_at", "ended_at", "duration_ms", "outcome", "details"}
        assert rec["run_id"] == "r1" and rec["command"] == "deploy"
        assert ISO_MS_UTC.match(str(rec["started_at"]))
    assert lines[0]["ended_at"] is None and lines[0]["duration_ms"] is None
    assert ISO_MS_UTC.match(str(lines[1]["ended_at"]))
    assert lines[1]["started_at"] == lines[0]["started_at"]
    assert lines[1]["details"] == {"name": "pre-deploy-x", "branch_id": "br-1"}
    assert lines[2]["details"] == {"outcome": "deployed"}


def test_every_line_is_fsynced_as_it_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        # At fsync time the line must already be in the file (written, not buffered in Python).
        synced.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    j = Journal(tmp_path, "deploy")
    with j.step("push"):
        assert len(synced) == 1  # the "running" line is on disk before the step body runs
    j.event("result")
    sizes = [len(line) + 1 for line in (tmp_path / JOURNAL_NAME).read_bytes().decode().splitlines()]
    assert synced == [sum(sizes[:1]), sum(sizes[:2]), sum(sizes[:3])]


def test_journal_file_is_private(tmp_path: Path) -> None:
    Journal(tmp_path, "deploy").event("x")
    assert (tmp_path / JOURNAL_NAME).stat().st_mode & 0o077 == 0


def test_failed_and_interrupted_steps_record_the_error(tmp_path: Path) -> None:
    j = Journal(tmp_path, "deploy")
    with pytest.raises(RuntimeError):
        with j.step("push"):
            raise RuntimeError("drizzle-kit exited 1")
    with pytest.raises(KeyboardInterrupt):
        with j.step("probe"):
            raise KeyboardInterrupt
    lines = _lines(tmp_path)
    assert [(r["step"], r["outcome"]) for r in lines] == [("push", "running"), ("push", "failed"), ("probe", "running"), ("probe", "interrupted")]
    assert lines[1]["details"] == {"error": "drizzle-kit exited 1"}
    assert lines[3]["details"] == {"error": "KeyboardInterrupt"}
    (run,) = runs(read_journal(tmp_path))
    assert run["outcome"] == "failed"


def test_details_are_redacted(tmp_path: Path) -> None:
    register_secret("napi_SECRETTOKEN123")
    j = Journal(tmp_path, "deploy")
    j.event("snapshot", url="postgres://app:hunter2pw@ep-x.neon.tech/db", nested={"auth": "Bearer napi_SECRETTOKEN123"})
    raw = (tmp_path / JOURNAL_NAME).read_text()
    assert "hunter2pw" not in raw and "napi_SECRETTOKEN123" not in raw
    assert _lines(tmp_path)[0]["details"] == {"url": "postgres://app:****@ep-x.neon.tech/db", "nested": {"auth": "Bearer ****"}}


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    j = Journal(tmp_path, "deploy", run_id="r1")
    j.event("lock")
    with (tmp_path / JOURNAL_NAME).open("a") as f:
        f.write('{"run_id": "r1", "command": "deploy", "step": "push", "started_at": "2026-11-')  # killed mid-write
    recs = read_journal(tmp_path)
    assert [r["step"] for r in recs] == ["lock"]
    # The next run appends after the torn line and is read normally.
    Journal(tmp_path, "deploy", run_id="r2").event("lock")
    assert [r["run_id"] for r in read_journal(tmp_path)] == ["r1"]  # the new line shares the torn line
    Journal(tmp_path, "deploy", run_id="r3").event("lock")
    assert [r["run_id"] for r in read_journal(tmp_path)] == ["r1", "r3"]


def test_missing_journal_reads_empty(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "nowhere") == []
    assert runs([]) == []


def test_runs_marks_a_step_with_no_end_as_cut_off(tmp_path: Path) -> None:
    j = Journal(tmp_path, "deploy", run_id="20261125T100000Z-aaaaaa")
    with j.step("snapshot"):
        pass
    # A SIGKILL inside push: only its "running" line exists.
    j.write("push", "running", datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC), None, {})
    later = Journal(tmp_path, "rollback", run_id="20261125T100100Z-bbbbbb")
    later.event("result", "ok", outcome="rolled back")
    (first, second) = runs(read_journal(tmp_path))
    assert first["run_id"] == "20261125T100000Z-aaaaaa"
    assert first["outcome"] == "cut off"
    assert [(s["step"], s["outcome"], s["duration_ms"] is None) for s in first["steps"]] == [
        ("snapshot", "ok", False),
        ("push", "running", True),
    ]
    assert second["command"] == "rollback" and second["outcome"] == "rolled back"


def test_runs_are_sorted_by_start_and_steps_keep_their_order(tmp_path: Path) -> None:
    Journal(tmp_path, "prune", run_id="b").event("delete")
    Journal(tmp_path, "deploy", run_id="a").event("lock")
    recs = read_journal(tmp_path)
    recs[1]["started_at"] = "2000-01-01T00:00:00.000Z"
    assert [r["run_id"] for r in runs(recs)] == ["a", "b"]


def test_events_of_one_name_in_the_same_millisecond_are_all_kept(tmp_path: Path) -> None:
    j = Journal(tmp_path, "deploy", run_id="r")
    at = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    for n in range(3):
        j.write("probe.attempt", "failed", at, at, {"n": n})
    j.write("push", "running", at, None, {})
    j.write("push", "ok", at, at, {"done": True})
    (run,) = runs(read_journal(tmp_path))
    assert [(s["step"], s["outcome"], s["details"]) for s in run["steps"]] == [
        ("probe.attempt", "failed", {"n": 0}),
        ("probe.attempt", "failed", {"n": 1}),
        ("probe.attempt", "failed", {"n": 2}),
        ("push", "ok", {"done": True}),
    ]


@pytest.mark.parametrize("foreign", ["1", "[1]", '"text"', "null", '{"run_id": 1}', '{"hello": "world"}',
                                     '{"run_id": "r9", "step": "x", "started_at": "t", "outcome": "ok", "details": 3}'])
def test_lines_that_are_json_but_not_events_are_skipped_with_one_warning(
    tmp_path: Path, foreign: str, capsys: pytest.CaptureFixture[str]
) -> None:
    j = Journal(tmp_path, command="deploy", run_id="r1")
    with j.step("snapshot"):
        pass
    path = tmp_path / JOURNAL_NAME
    with path.open("a") as f:
        f.write(foreign + "\n" + foreign + "\n")
    j2 = Journal(tmp_path, command="deploy", run_id="r2")
    j2.event("result", "ok")
    recs = read_journal(tmp_path)
    assert [r["run_id"] for r in recs] == ["r1", "r1", "r2"]
    assert [r["run_id"] for r in runs(recs)] == ["r1", "r2"]
    read_journal(tmp_path)  # read again: still one warning
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("not journal events") == 1 and "skipped 2 line(s)" in text and "line 3, 4" in text
