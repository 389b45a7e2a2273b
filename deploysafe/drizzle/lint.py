"""Classify every statement of migration SQL as destructive, locking or info.

Two real analysers, no regular expressions over SQL:

* **squawk** (the ``squawk-cli`` wheel's binary) runs with ``--reporter json``; its rule ids
  are mapped to a severity and linked to https://squawkhq.com/docs/<rule>;
* **pglast** (PostgreSQL's own parser) splits the text into statements (drizzle's
  ``--> statement-breakpoint`` separators are SQL comments to it), gives each its line, and
  classifies what squawk leaves out or only offers as opt-in: DROP SCHEMA/INDEX/CONSTRAINT,
  TRUNCATE, SET NOT NULL, ADD CONSTRAINT without NOT VALID, VALIDATE CONSTRAINT.
  Its findings reuse squawk's rule id where squawk has one, so the two never double-report.

Locking findings on a table created earlier in the same file are dropped: nobody else can
hold a lock on it yet (drizzle adds foreign keys to new tables with ALTER TABLE).

``-- deploysafe: allow <rule>[, <rule>...]`` on the lines just before a statement (or at the
end of its last line) allows that statement for those rules; ``allow all`` allows every rule.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from deploysafe.errors import LintBlocked, PreconditionError

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig

Severity = Literal["destructive", "locking", "info"]

SQUAWK_DOCS = "https://squawkhq.com/docs/"
PG_DOCS = "https://www.postgresql.org/docs/current/"

DESTRUCTIVE_RULES = frozenset({
    "ban-drop-column", "ban-drop-table", "ban-drop-database", "ban-drop-schema", "changing-column-type",
    "ban-truncate-cascade", "ban-drop-constraint", "ban-drop-index", "truncate", "unparseable-sql",
})
LOCKING_RULES = frozenset({
    "require-concurrent-index-creation", "require-concurrent-index-deletion", "adding-not-nullable-field",
    "constraint-missing-not-valid", "disallowed-unique-constraint", "adding-foreign-key-constraint",
    "adding-field-with-default", "adding-required-field", "adding-serial-primary-key-field",
    "adding-primary-key-constraint", "validate-constraint",
})
# Style rules that fire on every drizzle migration and say nothing about deploy safety.
EXCLUDED_SQUAWK_RULES = (
    "prefer-robust-stmts", "require-lock-timeout", "require-statement-timeout", "require-timeout-settings",
    "prefer-bigint-over-int", "prefer-bigint-over-smallint", "prefer-identity", "prefer-text-field",
    "prefer-timestamp-tz",
)
# Our own rules (no squawk equivalent): where to read about them.
_OWN_URLS = {
    "truncate": PG_DOCS + "sql-truncate.html",
    "validate-constraint": PG_DOCS + "sql-altertable.html#SQL-ALTERTABLE-DESC-VALIDATE-CONSTRAINT",
    "unparseable-sql": PG_DOCS + "sql-commands.html",
}

_ALLOW = re.compile(r"--\s*deploysafe:\s*allow\s+([A-Za-z0-9_, -]+)", re.I)


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    statement: str
    rule: str
    severity: str  # "destructive" | "locking" | "info"
    message: str
    url: str
    allowed: bool  # allowed by a `-- deploysafe: allow <rule>` comment

    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def short_statement(self, width: int = 120) -> str:
        one = " ".join(self.statement.split())
        return one if len(one) <= width else one[: width - 1] + "…"


@dataclass(frozen=True)
class LintReport:
    findings: list[Finding]

    @property
    def blocking_candidates(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "destructive" and not f.allowed]


def severity_of(rule: str) -> Severity:
    if rule in DESTRUCTIVE_RULES:
        return "destructive"
    if rule in LOCKING_RULES:
        return "locking"
    return "info"


def rule_url(rule: str) -> str:
    return _OWN_URLS.get(rule, SQUAWK_DOCS + rule)


# --- statements -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stmt:
    start: int  # character offsets in the text (pglast reports characters, not bytes)
    end: int
    line: int  # 1-based line of the first token
    end_line: int
    text: str
    node: Any
    allows: frozenset[str]


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _allows(comment_text: str) -> frozenset[str]:
    rules: set[str] = set()
    for m in _ALLOW.finditer(comment_text):
        rules.update(r.strip().lower() for r in re.split(r"[,\s]+", m.group(1)) if r.strip())
    return frozenset(rules)


def _statements(text: str) -> list[_Stmt]:
    """Split with PostgreSQL's parser; raises pglast.parser.ParseError on invalid SQL."""
    from pglast import parse_sql

    out: list[_Stmt] = []
    prev_end = 0
    for raw in parse_sql(text):
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(text)
        # The statement's own trailing comment: rest of the line after its end (past the ';').
        eol = text.find("\n", end)
        eol = len(text) if eol == -1 else eol
        out.append(
            _Stmt(
                start=start, end=end, line=_line_of(text, start), end_line=_line_of(text, end),
                text=text[start:end].strip(), node=raw.stmt,
                allows=_allows(text[prev_end:start]) | _allows(text[end:eol]),
            )
        )
        prev_end = eol
    return out


def _relname(node: Any) -> str | None:
    rel = getattr(node, "relation", None)
    return getattr(rel, "relname", None) if rel is not None else None


def _classify(node: Any, created: set[str]) -> list[tuple[str, str]]:
    """(rule, message) pairs for one parsed statement; ``created`` holds the tables made earlier in the same
    migration (empty, so their indexes and constraints lock nobody)."""
    from pglast import ast

    if isinstance(node, ast.DropStmt):
        return _drop_findings(node)
    if isinstance(node, ast.TruncateStmt):
        return [("truncate", "TRUNCATE deletes every row.")]
    if isinstance(node, ast.IndexStmt):
        if not node.concurrent and _relname(node) not in created:
            return [("require-concurrent-index-creation", "CREATE INDEX without CONCURRENTLY blocks writes while it builds.")]
        return []
    if isinstance(node, ast.AlterTableStmt):
        new_table = _relname(node) in created
        found = (_alter_table_finding(cmd, new_table) for cmd in node.cmds or ())
        return [f for f in found if f is not None]
    return []


def _drop_findings(node: Any) -> list[tuple[str, str]]:
    """DROP TABLE/SCHEMA/DATABASE/INDEX deletes data or what queries rely on; DROP INDEX without CONCURRENTLY locks."""
    from pglast.enums import ObjectType

    kinds = {
        ObjectType.OBJECT_TABLE: ("ban-drop-table", "Dropping a table deletes its data."),
        ObjectType.OBJECT_SCHEMA: ("ban-drop-schema", "Dropping a schema deletes every table in it."),
        ObjectType.OBJECT_DATABASE: ("ban-drop-database", "Dropping a database deletes all of it."),
        ObjectType.OBJECT_INDEX: ("ban-drop-index", "Dropping an index slows or breaks queries that rely on it."),
    }
    found: list[tuple[str, str]] = []
    if node.removeType in kinds:
        found.append(kinds[node.removeType])
    if node.removeType == ObjectType.OBJECT_INDEX and not node.concurrent:
        found.append(("require-concurrent-index-deletion", "DROP INDEX without CONCURRENTLY blocks reads and writes."))
    return found


def _alter_table_finding(cmd: Any, new_table: bool) -> tuple[str, str] | None:
    """The finding for one ALTER TABLE sub-command. Losing data counts on any table; locks and scans only on a
    table that existed before this migration."""
    from pglast import ast
    from pglast.enums import AlterTableType

    sub = cmd.subtype
    if sub == AlterTableType.AT_DropColumn:
        return ("ban-drop-column", "Dropping a column deletes its data.")
    if sub == AlterTableType.AT_AlterColumnType:
        return ("changing-column-type", "Changing a column type can lose data and rewrites the table.")
    if sub == AlterTableType.AT_DropConstraint:
        return ("ban-drop-constraint", "Dropping a constraint removes a guarantee the data relies on.")
    if new_table:
        return None
    if sub == AlterTableType.AT_SetNotNull:
        return ("adding-not-nullable-field", "SET NOT NULL scans the whole table under an exclusive lock.")
    if sub == AlterTableType.AT_ValidateConstraint:
        return ("validate-constraint", "VALIDATE CONSTRAINT scans the whole table (reads and writes go on).")
    if sub == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        return _add_constraint_finding(cmd.def_)
    return None


def _add_constraint_finding(con: Any) -> tuple[str, str] | None:
    """ADD CONSTRAINT on an existing table: a unique/primary/exclusion constraint builds its index under lock
    (unless it adopts one with USING INDEX); a check or foreign key without NOT VALID scans the table under lock."""
    from pglast.enums import ConstrType

    if con.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_EXCLUSION):
        if not con.indexname:
            return ("disallowed-unique-constraint", "Adding this constraint builds an index under an exclusive lock.")
        return None
    if con.contype in (ConstrType.CONSTR_CHECK, ConstrType.CONSTR_FOREIGN) and not con.skip_validation:
        return ("constraint-missing-not-valid", "ADD CONSTRAINT without NOT VALID scans the table under lock.")
    return None


# --- squawk -----------------------------------------------------------------------------


def squawk_binary() -> str:
    """squawk next to this Python (the venv's bin), else on PATH."""
    here = Path(sys.executable).parent / "squawk"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("squawk")
    if found:
        return found
    raise PreconditionError(
        "the squawk SQL linter is not installed (looked next to the Python interpreter and on PATH)",
        hint="pip install squawk-cli (it is a dependency of deploysafe; reinstall deploysafe)",
    )


def _run_squawk(text: str, file: str) -> list[dict[str, Any]]:
    argv = [squawk_binary(), "--reporter", "json", "--stdin-filepath", file]
    argv += [f"--exclude={','.join(EXCLUDED_SQUAWK_RULES)}"]
    try:
        from deploysafe.childenv import user_environment

        proc = subprocess.run(argv, input=text.encode("utf-8"), capture_output=True, timeout=60, check=False,
                              env=user_environment())  # a linter needs none of deploysafe's credentials
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PreconditionError(f"squawk failed to run: {e}", hint="reinstall squawk-cli") from None
    try:
        data = json.loads(proc.stdout.decode("utf-8") or "[]")
    except ValueError:
        raise PreconditionError(
            f"squawk gave no JSON (exit {proc.returncode}): {proc.stderr.decode(errors='replace').strip()[:300]}",
            hint="run `squawk --reporter json <file>` by hand; upgrade squawk-cli if it is old",
        ) from None
    return data if isinstance(data, list) else []


# --- public API --------------------------------------------------------------------------


def lint_sql(text: str, file: str = "<sql>") -> LintReport:
    """Every finding in ``text``, in statement order (squawk + pglast, merged per statement)."""
    from pglast.parser import ParseError

    try:
        stmts = _statements(text)
    except ParseError as e:
        where = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], int) else 0  # character index
        where = max(0, min(where, len(text)))
        line = _line_of(text, where)
        bad_line = text.split("\n")[line - 1].strip()
        rule = "unparseable-sql"
        return LintReport([Finding(file, line, bad_line, rule, "destructive",
                                   f"The SQL cannot be parsed ({e.args[0]}), so it cannot be checked.", rule_url(rule),
                                   rule in _allows(text) or "all" in _allows(text))])
    created_before = _created_before(stmts)
    per_stmt = [_classify(st.node, created) for st, created in zip(stmts, created_before, strict=True)]
    for item in _run_squawk(text, file):
        rule = str(item.get("rule_name", ""))
        idx = _stmt_index(stmts, text, int(item.get("line", 0)), int(item.get("column", 0)))
        if idx is None or not rule:
            continue
        if severity_of(rule) == "locking" and _relname(stmts[idx].node) in created_before[idx]:
            continue
        if all(r != rule for r, _ in per_stmt[idx]):
            message = str(item.get("message") or rule)
            if item.get("help"):
                message += f" {item['help']}"
            per_stmt[idx].append((rule, message))
    findings: list[Finding] = []
    for st, rules in zip(stmts, per_stmt, strict=True):
        for rule, message in rules:
            findings.append(Finding(
                file=file, line=st.line, statement=st.text, rule=rule, severity=severity_of(rule),
                message=message, url=rule_url(rule), allowed=rule in st.allows or "all" in st.allows,
            ))
    return LintReport(findings)


def _created_before(stmts: list[_Stmt]) -> list[set[str]]:
    from pglast import ast

    out: list[set[str]] = []
    seen: set[str] = set()
    for st in stmts:
        out.append(set(seen))
        if isinstance(st.node, ast.CreateStmt) and _relname(st.node):
            seen.add(str(_relname(st.node)))
    return out


def _stmt_index(stmts: list[_Stmt], text: str, line: int, column: int) -> int | None:
    """The statement holding squawk's 0-based (line, column)."""
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        return None
    offset = sum(len(x) + 1 for x in lines[:line]) + column
    for i, st in enumerate(stmts):
        if st.start <= offset <= st.end:
            return i
    # squawk may point at leading trivia; fall back to the first statement on that line.
    return next((i for i, st in enumerate(stmts) if st.line <= line + 1 <= st.end_line), None)


def lint_files(paths: list[Path]) -> LintReport:
    """Lint each file (folders: their *.sql files, sorted)."""
    findings: list[Finding] = []
    for path in _expand(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise PreconditionError(f"cannot read {path}: {e}", hint="pass readable UTF-8 .sql files") from None
        findings += lint_sql(text, str(path)).findings
    return LintReport(findings)


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(p.rglob("*.sql"))
        elif p.is_file():
            out.append(p)
        else:
            from deploysafe.errors import UsageError

            raise UsageError(f"{p} does not exist", hint="pass .sql files or folders holding them")
    return out


def enforce(report: LintReport, policy: str, allow_destructive: bool = False) -> list[Finding]:
    """Apply ``[lint] destructive``: raise LintBlocked, or return the findings to warn about."""
    if policy not in ("block", "warn", "allow"):
        raise PreconditionError(f"unknown lint policy {policy!r}", hint='use "block", "warn" or "allow"')
    destructive = report.blocking_candidates
    if policy == "block" and not allow_destructive and destructive:
        lines = [f"  {f.location()}  {f.rule}  {f.short_statement()}" for f in destructive]
        raise LintBlocked(
            f"{len(destructive)} destructive statement(s) blocked by [lint] destructive = \"block\":\n" + "\n".join(lines),
            hint="make the change non-destructive; or, after checking, add `-- deploysafe: allow <rule>` above the "
                 "statement, or run once with --allow-destructive",
            findings=destructive,
        )
    warn = {"locking"} if policy == "allow" else {"locking", "destructive"}
    return [f for f in report.findings if f.severity in warn and not f.allowed]


def lint_change(files: list[Path], planned_sql: str, *, folder: Path | None = None,
                plan_name: str = "<push plan>") -> LintReport:
    """Lint what will be applied: ``files`` plus the statements push would run.

    A planned statement already judged in ``files`` is not reported twice. One that is not
    (a migration committed earlier, a re-run of a blocked deploy, a push without files) is
    reported under ``plan_name``, allowed when a migration in ``folder`` carries a
    ``-- deploysafe: allow`` comment for it.
    """
    report = lint_files(files)
    if not planned_sql.strip():
        return report
    seen = {(f.rule, _norm(f.statement)) for f in report.findings}
    allows = _allows_in(folder)
    extra: list[Finding] = []
    for f in lint_sql(planned_sql, plan_name).findings:
        if (f.rule, _norm(f.statement)) in seen:
            continue
        rules = allows.get(_norm(f.statement), frozenset())
        extra.append(Finding(f.file, f.line, f.statement, f.rule, f.severity, f.message, f.url,
                             f.allowed or f.rule in rules or "all" in rules))
    return LintReport(report.findings + extra)


def _norm(sql: str) -> str:
    """One statement compared as text: comments (drizzle's ``--> statement-breakpoint``) and spacing ignored."""
    return " ".join(re.sub(r"--[^\n]*", " ", sql).split()).rstrip(";").strip()


def _allows_in(folder: Path | None) -> dict[str, frozenset[str]]:
    """Statement (normalised) -> rules allowed for it by comments, over every migration in ``folder``."""
    from pglast.parser import ParseError

    from deploysafe.drizzle import layout as drizzle_layout

    out: dict[str, frozenset[str]] = {}
    for m in drizzle_layout.migrations(folder) if folder is not None else []:
        try:
            stmts = _statements(m.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ParseError):
            continue
        for st in stmts:
            if st.allows:
                out[_norm(st.text)] = out.get(_norm(st.text), frozenset()) | st.allows
    return out


def pending_migrations(loaded: LoadedConfig, database_url: str | None) -> list[Path]:
    """Migration files (either layout) not yet recorded in drizzle.__drizzle_migrations; all without a URL."""
    from deploysafe.drizzle import layout as drizzle_layout
    from deploysafe.drizzle.steps import migrations_dir

    folder = migrations_dir(loaded)
    applied = _applied_hashes(database_url) if database_url is not None else set()
    return [m.path for m in drizzle_layout.pending_migrations(folder, applied)]


def _applied_hashes(database_url: str) -> set[str]:
    import psycopg

    from deploysafe.redact import redact, register_secret, url_password

    register_secret(url_password(database_url))
    try:
        with psycopg.connect(database_url, connect_timeout=15) as conn:
            exists = conn.execute("SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return set()
            return {str(r[0]) for r in conn.execute("SELECT hash FROM drizzle.__drizzle_migrations").fetchall()}
    except psycopg.Error as e:
        raise PreconditionError(
            f"cannot read applied migrations: {redact(str(e)).strip()}",
            hint="check DATABASE_URL, or pass the migration files to lint explicitly",
        ) from None


# --- `deploysafe lint` -------------------------------------------------------------------


def _optional_config(config_path: str | None) -> LoadedConfig | None:
    """The config when one is found; None when none exists and none was asked for explicitly."""
    from deploysafe.config import ENV_CONFIG, load_config
    from deploysafe.errors import ConfigError

    try:
        return load_config(config_path)
    except ConfigError:
        if config_path or os.environ.get(ENV_CONFIG):
            raise
        from deploysafe.config import CONFIG_NAME

        if any((d / CONFIG_NAME).is_file() for d in (Path.cwd(), *Path.cwd().parents)):
            raise  # found but invalid: say so rather than lint with a default policy
        return None


def format_finding(f: Finding) -> str:
    allowed = " (allowed by comment)" if f.allowed else ""
    return f"{f.location()}  {f.severity}  {f.rule}  {f.message}{allowed}  {f.url}"


def run_lint(paths: list[str], *, config_path: str | None, as_json: bool) -> int:
    """The `deploysafe lint` command: print findings; exit 3 when the policy blocks one."""
    from deploysafe.console import console
    from deploysafe.errors import UsageError

    loaded = _optional_config(config_path)
    policy = loaded.config.lint.destructive if loaded else "block"
    if paths:
        files = _expand([Path(p) for p in paths])
    elif loaded is not None:
        files = pending_migrations(loaded, os.environ.get("DATABASE_URL") or None)
    else:
        raise UsageError(
            "no PATH given and no deploysafe.toml found to locate the migrations",
            hint="pass the migration files or folder (e.g. `deploysafe lint drizzle/`), or run `deploysafe init`",
        )
    report = lint_files(files)
    blocked: LintBlocked | None = None
    try:
        enforce(report, policy)
    except LintBlocked as e:
        blocked = e
    if as_json:
        console.result({
            "policy": policy,
            "files": [str(p) for p in files],
            "blocked": blocked is not None,
            "findings": [f.__dict__ for f in report.findings],
        })
    else:
        for f in report.findings:
            console.plain(format_finding(f))
        counts = {s: sum(1 for f in report.findings if f.severity == s) for s in ("destructive", "locking", "info")}
        console.plain(
            f"{len(files)} file(s): {counts['destructive']} destructive, {counts['locking']} locking, "
            f"{counts['info']} info (policy {policy!r})"
        )
    if blocked is not None:
        raise blocked
    return 0
