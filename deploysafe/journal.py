"""Append-only run journal: ``<state dir>/journal.jsonl``, one JSON object per step event.

A step writes a ``running`` line when it starts and a final line (``ok``, ``failed``,
``skipped``) when it ends; both are fsynced, so a run killed mid-step leaves a record
that says which step it was in. Every line passes through :func:`redact_obj`.

A journal that cannot be written (disk full, read-only state dir) never stops a rollback:
once production may have changed the caller sets ``strict = False`` and every
line that cannot reach the file goes to stderr instead, after one warning. While ``strict``
(the default), a write failure is a :class:`~deploysafe.errors.PreconditionError` (exit 3)
naming the file, never an internal error.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deploysafe.console import console
from deploysafe.errors import Interrupted, PreconditionError
from deploysafe.redact import redact_obj

JOURNAL_NAME = "journal.jsonl"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    return utcnow().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


@dataclass
class StepHandle:
    """Details a step body may add to before the step's final line is written."""

    name: str
    details: dict[str, Any] = field(default_factory=dict)
    outcome: str = "ok"


class Journal:
    def __init__(self, state_dir: Path, command: str, run_id: str | None = None) -> None:
        self.path = state_dir / JOURNAL_NAME
        self.command = command
        self.run_id = run_id or new_run_id()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.strict = True  # False once production may have changed: a write failure then falls back to stderr
        self.failed: str | None = None  # why the file could not be written, once it could not
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._cannot_write(e, None)

    def write(self, step: str, outcome: str, started: datetime, ended: datetime | None, details: dict[str, Any]) -> None:
        rec: dict[str, Any] = {
            "run_id": self.run_id,
            "command": self.command,
            "step": step,
            "started_at": iso(started),
            "ended_at": iso(ended) if ended else None,
            "duration_ms": round((ended - started).total_seconds() * 1000, 1) if ended else None,
            "outcome": outcome,
            "details": redact_obj(details),
        }
        line = json.dumps(rec, default=str, ensure_ascii=False) + "\n"
        try:
            _append(self.path, line.encode("utf-8"))
        except OSError as e:
            self._cannot_write(e, line)

    def _cannot_write(self, e: OSError, line: str | None) -> None:
        """Strict: a clear exit-3 error. Otherwise: warn once, then carry the line on stderr."""
        why = e.strerror or type(e).__name__
        if self.strict:
            self.strict = False  # stop this run once; its last lines (the failure, the result) go to stderr
            raise PreconditionError(
                f"cannot write the journal {self.path}: {why}; nothing was changed",
                hint="free disk space or make the state dir writable (it is [state] dir in deploysafe.toml)",
            ) from None
        if self.failed is None:
            self.failed = why
            print(f"deploysafe: WARNING: cannot write the journal {self.path} ({why}); the run goes on and its "
                  "journal lines follow on stderr, prefixed 'deploysafe journal:'", file=sys.stderr, flush=True)
        if line is not None:
            print("deploysafe journal: " + line, end="", file=sys.stderr, flush=True)

    def event(self, step: str, outcome: str = "ok", /, **details: Any) -> None:
        now = utcnow()
        self.write(step, outcome, now, now, details)

    @contextmanager
    def step(self, name: str, /, **details: Any) -> Iterator[StepHandle]:  # '/': details may hold a "name"
        handle = StepHandle(name, dict(details))
        started = utcnow()
        t0 = time.monotonic()
        self.write(name, "running", started, None, handle.details)
        try:
            yield handle
        except BaseException as e:
            handle.details.setdefault("error", str(e) or type(e).__name__)
            ended = started + timedelta(seconds=time.monotonic() - t0)

            stopped = isinstance(e, (KeyboardInterrupt, Interrupted))  # Ctrl-C, SIGTERM, SIGHUP
            self.write(name, "interrupted" if stopped else "failed", started, ended, handle.details)
            raise
        ended = started + timedelta(seconds=time.monotonic() - t0)
        self.write(name, handle.outcome, started, ended, handle.details)


def _append(path: Path, data: bytes) -> None:
    """Append and fsync one whole line (the single file-write boundary of the journal)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(28, "short write (No space left on device?)")
        os.fsync(fd)
    finally:
        os.close(fd)


# the keys every reader of a journal line relies on (runs(), status, prune)
_REQUIRED = ("run_id", "step", "started_at", "outcome")
_warned: set[Path] = set()


def read_journal(state_dir: Path) -> list[dict[str, Any]]:
    """All parseable journal lines; a torn last line (killed mid-write) is skipped. A line that is JSON
    but not a step event (``1``, ``[1]``, an object without run_id/step/started_at/outcome: edited
    by hand, or another tool's file) is skipped too, with one warning per journal."""
    path = state_dir / JOURNAL_NAME
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    foreign: list[int] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if _is_event(rec):
                rec.setdefault("details", {})
                rec.setdefault("ended_at", None)
                out.append(rec)
            else:
                foreign.append(number)
    if foreign and path not in _warned:
        _warned.add(path)
        lines = ", ".join(map(str, foreign[:5])) + (" ..." if len(foreign) > 5 else "")
        console.warn(f"{path}: skipped {len(foreign)} line(s) that are not journal events (line {lines})")
    return out


def _is_event(rec: Any) -> bool:
    return (
        isinstance(rec, dict)
        and all(isinstance(rec.get(k), str) for k in _REQUIRED)
        and isinstance(rec.get("details", {}), dict)
        and isinstance(rec.get("ended_at"), str | None)
    )


def runs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group journal lines into runs: each step's last line wins (a 'running' line with no end = cut off)."""
    by_run: dict[str, dict[str, Any]] = {}
    open_steps: dict[tuple[str, str, str], int] = {}  # (run, step, started_at) of a "running" line -> index
    for rec in records:
        run = by_run.setdefault(
            rec["run_id"],
            {"run_id": rec["run_id"], "command": rec.get("command"), "started_at": rec["started_at"], "steps": []},
        )
        key = (rec["run_id"], rec["step"], rec["started_at"])
        if rec["outcome"] != "running" and key in open_steps:
            run["steps"][open_steps.pop(key)] = rec  # the end line replaces its start line
        else:
            # Two events of one name in the same millisecond are both kept.
            if rec["outcome"] == "running":
                open_steps[key] = len(run["steps"])
            run["steps"].append(rec)
    result = []
    for run in by_run.values():
        steps = run["steps"]
        run["ended_at"] = max((s["ended_at"] or s["started_at"] for s in steps), default=run["started_at"])
        outcome = "ok"
        for s in steps:
            if s["outcome"] == "running":
                outcome = "cut off"
            elif s["outcome"] in ("failed", "interrupted") and outcome == "ok":
                outcome = "failed"
        final = [s for s in steps if s["step"] == "result"]
        if final:
            outcome = final[-1]["details"].get("outcome", outcome)
        run["outcome"] = outcome
        result.append(run)
    result.sort(key=lambda r: r["started_at"])
    return result
