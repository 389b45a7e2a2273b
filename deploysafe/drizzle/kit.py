"""Which drizzle-kit an app runs, and how to ask it, read-only, what push would execute.

The dry run differs by line, both verified on real runs
(``tests/fixtures/drizzle-output/<version>/``):

* 0.x: ``push --strict --verbose`` lists the statements under "You are about to execute
  current statements" and then asks for approval; stdin is closed, so the question is
  refused (and the step stopped at once), and ``PGOPTIONS`` makes the session read-only in
  case a ``--force`` skips the question.
* 1.0: ``--strict`` is deprecated and does nothing at all (it prints a warning and exits 0,
  with no plan to check against); ``push --explain`` prints the plan
  after "--- Generated migration statements ---" (each statement, or a box per statement
  with its cause and ``│ <sql>`` lines) and data-loss statements after "There're potential
  data loss statements", or "No changes detected".
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from deploysafe.drizzle.output import clean


@dataclass(frozen=True)
class KitVersion:
    text: str  # e.g. "0.31.11", "1.0.0-rc.5"; "" when unknown
    major: int
    minor: int

    @property
    def has_explain(self) -> bool:
        """``push --explain`` exists (drizzle-kit 1.0)."""
        return self.major >= 1


UNKNOWN = KitVersion("", 0, 0)


def kit_version(app_dir: Path) -> KitVersion:
    """The drizzle-kit the app resolves (node_modules here or in a workspace root above)."""
    for d in (app_dir, *app_dir.resolve().parents):
        pkg = d / "node_modules" / "drizzle-kit" / "package.json"
        if pkg.is_file():
            try:
                text = str(json.loads(pkg.read_text(encoding="utf-8"))["version"])
            except (OSError, ValueError, KeyError, TypeError):
                return UNKNOWN
            m = re.match(r"(\d+)\.(\d+)", text)
            return KitVersion(text, int(m.group(1)), int(m.group(2))) if m else UNKNOWN
    return UNKNOWN


def dry_run_command(push_command: str, version: KitVersion = UNKNOWN) -> str:
    """The push command with the flags that make drizzle-kit list, not run, its statements."""
    from deploysafe.drizzle.pkgmanager import pass_args

    return pass_args(push_command, "--explain" if version.has_explain else "--strict --verbose")


_STOP = ("error:", "Error:", "Do you", "Warning", "❯", "[", "missing_hints", "Re-run with")


def planned_statements(output: str) -> list[str]:
    """The SQL a dry run listed, one string per printed statement line group, in order."""
    lines = clean(output).split("\n")
    for i, line in enumerate(lines):
        if "You are about to execute current statements" in line:
            return _group(_until_stop(lines[i + 1 :]))
        if "Generated migration statements" in line:
            return _explained(lines[i + 1 :])
    return []


def _until_stop(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        s = line.strip()
        if s.startswith(_STOP) or "I want to" in s:
            break
        out.append(s)
    return out


def _explained(lines: list[str]) -> list[str]:
    """1.0's explain text: plain statements, or boxes whose ``│ `` lines are the SQL; then data-loss statements."""
    out: list[str] = []
    in_cause = False
    for line in lines:
        s = line.strip()
        if s.startswith("There're potential data loss statements"):
            continue
        if s.startswith("┌"):
            in_cause = True
        elif s.startswith("├"):
            in_cause = False
        elif s.startswith("└"):
            out.append("")
        elif s.startswith("│"):
            out.append(s[1:].strip())
        elif s.startswith("·") or in_cause:
            continue
        elif s.startswith(("[", "missing_hints", "Re-run with", "error:", "Error:")):
            break
        else:
            out.append(s)
    return _group(out)


def _group(lines: list[str]) -> list[str]:
    """Join lines into statements: a statement ends with ``;`` at the end of a line (DO $$ ... END $$; spans lines)."""
    stmts: list[str] = []
    cur: list[str] = []
    for s in lines:
        if not s:
            continue
        cur.append(s)
        if s.endswith(";") and " ".join(cur).count("$$") % 2 == 0:  # a DO $$ ... $$; block holds inner ;
            stmts.append(" ".join(cur))
            cur = []
    if cur:
        stmts.append(" ".join(cur))
    return stmts


def same_statement(a: str, b: str) -> bool:
    return _norm(a) == _norm(b)


def _norm(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").strip()


def normalised(statements: list[str]) -> set[str]:
    return {_norm(s) for s in statements}


def data_loss_hints(output: str) -> list[dict[str, object]]:
    """The ``confirm_data_loss`` hints drizzle-kit 1.0 printed under "missing_hints" (one JSON object a line)."""
    hints: list[dict[str, object]] = []
    for line in clean(output).split("\n"):
        s = line.strip()
        if s.startswith("{") and '"confirm_data_loss"' in s:
            try:
                value = json.loads(s)
            except ValueError:
                continue
            if isinstance(value, dict):
                hints.append(value)
    return hints


def with_hints(command: str, hints: list[dict[str, object]]) -> str:
    """``command`` (a 1.0 dry run) with ``--hints`` confirming ``hints``, to list the statements behind them."""
    return f"{command} --hints {shlex.quote(json.dumps(hints))}"
