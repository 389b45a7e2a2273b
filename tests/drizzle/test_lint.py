"""SQL lint: real squawk binary, real PostgreSQL parser, the `deploysafe lint` command."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.drizzle import lint
from deploysafe.drizzle.lint import enforce, lint_files, lint_sql, pending_migrations
from deploysafe.errors import LintBlocked, PreconditionError
from support.cli import run_cli_in_process

MIGRATIONS = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"


def _rows(report: lint.LintReport) -> list[tuple[int, str, str, bool]]:
    return [(f.line, f.severity, f.rule, f.allowed) for f in report.findings]


def _file(name: str) -> lint.LintReport:
    return lint_sql((MIGRATIONS / name).read_text(), name)


def test_safe_migrations_have_no_findings_even_with_fks_and_indexes_on_new_tables() -> None:
    assert _rows(_file("0000_init.sql")) == []
    assert _rows(_file("0001_add_nickname.sql")) == []


def test_drop_column_is_destructive_with_line_statement_and_link() -> None:
    [f] = _file("0002_drop_name.sql").findings
    assert (f.file, f.line, f.rule, f.severity, f.allowed) == ("0002_drop_name.sql", 1, "ban-drop-column", "destructive", False)
    assert f.statement == 'ALTER TABLE "users" DROP COLUMN "name"'
    assert f.url == "https://squawkhq.com/docs/ban-drop-column"


def test_locking_statements_across_drizzle_statement_breakpoints() -> None:
    assert _rows(_file("0003_locking.sql")) == [
        (1, "locking", "require-concurrent-index-creation", False),
        (2, "locking", "adding-not-nullable-field", False),
        (3, "locking", "constraint-missing-not-valid", False),
        (5, "locking", "validate-constraint", False),
    ]  # line 4 (NOT VALID) and line 6 (CONCURRENTLY) are safe


def test_destructive_statements_squawk_does_not_cover_and_trailing_allow_comment() -> None:
    assert _rows(_file("0005_destructive.sql")) == [
        (1, "destructive", "truncate", False),
        (2, "destructive", "ban-drop-schema", False),
        (3, "destructive", "ban-drop-index", False),
        (3, "locking", "require-concurrent-index-deletion", False),
        (4, "destructive", "ban-drop-constraint", False),
        (5, "destructive", "changing-column-type", True),
    ]


def test_allow_comment_covers_only_the_next_statement() -> None:
    assert _rows(_file("0004_allowed_drop.sql")) == [
        (3, "destructive", "ban-drop-table", True),
        (4, "destructive", "ban-drop-table", False),
    ]


def test_allow_comment_names_a_rule_and_all_allows_every_rule() -> None:
    other = lint_sql('-- deploysafe: allow truncate\nALTER TABLE "u" DROP COLUMN "x";')
    assert [f.allowed for f in other.findings] == [False]
    everything = lint_sql('-- deploysafe: allow all\nDROP INDEX "i";')
    assert {f.rule for f in everything.findings} == {"ban-drop-index", "require-concurrent-index-deletion"}
    assert all(f.allowed for f in everything.findings)


def test_squawk_findings_are_included_and_mapped() -> None:
    # squawk flags a unique constraint built under lock; pglast adds nothing twice.
    report = lint_sql('ALTER TABLE "users" ADD CONSTRAINT "u_email" UNIQUE("email");')
    rules = [f.rule for f in report.findings]
    assert "disallowed-unique-constraint" in rules
    assert "constraint-missing-not-valid" in rules  # from squawk only
    assert len(rules) == len(set(rules))
    assert all(f.severity == "locking" for f in report.findings)


def test_unparseable_sql_is_a_destructive_finding_at_the_bad_line() -> None:
    [f] = lint_sql("SELECT 1;\nALTER TABLE users DROPP COLUMN x;", "bad.sql").findings
    assert (f.rule, f.severity, f.line) == ("unparseable-sql", "destructive", 2)
    assert f.statement == "ALTER TABLE users DROPP COLUMN x;"
    assert 'syntax error at or near "DROPP"' in f.message


def test_statements_sharing_a_line_and_non_ascii_names_are_kept_apart() -> None:
    report = lint_sql('SELECT \'ééé\'; DROP TABLE "café"; TRUNCATE "t";')
    assert [(f.rule, f.statement) for f in report.findings] == [
        ("ban-drop-table", 'DROP TABLE "café"'),
        ("truncate", 'TRUNCATE "t"'),
    ]


def test_enforce_block_names_each_statement() -> None:
    report = lint_files([MIGRATIONS])
    with pytest.raises(LintBlocked) as exc:
        enforce(report, "block")
    msg = str(exc.value)
    assert exc.value.exit_code == 3
    assert f"{MIGRATIONS / '0002_drop_name.sql'}:1  ban-drop-column  ALTER TABLE \"users\" DROP COLUMN \"name\"" in msg
    assert f"{MIGRATIONS / '0004_allowed_drop.sql'}:4  ban-drop-table" in msg
    assert f"{MIGRATIONS / '0004_allowed_drop.sql'}:3" not in msg  # allowed by comment
    assert "changing-column-type" not in msg


def test_enforce_warn_allow_and_override() -> None:
    report = lint_files([MIGRATIONS / "0002_drop_name.sql", MIGRATIONS / "0003_locking.sql"])
    warned = enforce(report, "warn")
    assert [f.rule for f in warned] == [
        "ban-drop-column", "require-concurrent-index-creation", "adding-not-nullable-field",
        "constraint-missing-not-valid", "validate-constraint",
    ]
    assert enforce(report, "block", allow_destructive=True) == warned
    assert all(f.severity == "locking" for f in enforce(report, "allow"))
    assert len(enforce(report, "allow")) == 4
    assert enforce(lint_sql('ALTER TABLE "u" ADD COLUMN "n" text;'), "block") == []


def test_missing_squawk_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lint.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PreconditionError, match="squawk SQL linter is not installed") as exc:
        lint_sql("SELECT 1;")
    assert "squawk-cli" in (exc.value.hint or "")


# --- pending migrations -------------------------------------------------------------------------


def _loaded(root: Path, **app: str) -> LoadedConfig:
    extra = "".join(f'{k} = "{v}"\n' for k, v in app.items())
    text = (
        f"[app]\n{extra}[lint]\ndestructive = \"warn\"\n"
        '[provider]\ntype = "local"\ndatabase_url = "${DATABASE_URL}"\n'
        '[platform]\ntype = "dotenv"\nenv_file = ".env"\n'
    )
    (root / "deploysafe.toml").write_text(text)
    return LoadedConfig(parse_config(text, env={"DATABASE_URL": "postgresql://x@localhost/x"}), root / "deploysafe.toml")


def test_pending_migrations_uses_drizzles_journal_table(tmp_path: Path, make_db: Callable[..., str]) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name in ("0000_init.sql", "0001_add_nickname.sql", "0002_drop_name.sql"):
        (folder / name).write_bytes((MIGRATIONS / name).read_bytes())
    loaded = _loaded(tmp_path, migrations_dir="migrations")
    assert [p.name for p in pending_migrations(loaded, None)] == ["0000_init.sql", "0001_add_nickname.sql", "0002_drop_name.sql"]
    url = make_db()
    assert len(pending_migrations(loaded, url)) == 3  # no journal table yet
    with psycopg.connect(url, autocommit=True) as c:
        # The table drizzle-orm's migrator creates, with the hash it stores (sha256 of the file).
        c.execute("CREATE SCHEMA drizzle")
        c.execute("CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint)")
        for name in ("0000_init.sql", "0001_add_nickname.sql"):
            digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
            c.execute("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES (%s, 0)", (digest,))
    assert [p.name for p in pending_migrations(loaded, url)] == ["0002_drop_name.sql"]


# --- the command --------------------------------------------------------------------------------


def test_cli_lint_folder_prints_each_finding_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no deploysafe.toml here: policy "block"
    r = run_cli_in_process(capsys, "lint", str(MIGRATIONS / "0002_drop_name.sql"), str(MIGRATIONS / "0003_locking.sql"))
    out, err = r.stdout, r.stderr
    assert r.code == 3
    lines = out.splitlines()
    assert lines[0] == (
        f"{MIGRATIONS / '0002_drop_name.sql'}:1  destructive  ban-drop-column  Dropping a column deletes its data."
        "  https://squawkhq.com/docs/ban-drop-column"
    )
    assert lines[1].startswith(f"{MIGRATIONS / '0003_locking.sql'}:1  locking  require-concurrent-index-creation  ")
    assert lines[-1] == "2 file(s): 1 destructive, 4 locking, 0 info (policy 'block')"
    assert "blocked by [lint] destructive" in err and "0002_drop_name.sql:1  ban-drop-column" in err


def test_cli_lint_safe_folder_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    safe = tmp_path / "safe"
    safe.mkdir()
    (safe / "0001.sql").write_bytes((MIGRATIONS / "0001_add_nickname.sql").read_bytes())
    r = run_cli_in_process(capsys, "lint", str(safe))
    assert r.code == 0
    assert r.stdout.strip() == "1 file(s): 0 destructive, 0 locking, 0 info (policy 'block')"


def test_cli_lint_default_is_the_apps_pending_migrations_under_the_config_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], make_db: Callable[..., str]
) -> None:
    folder = tmp_path / "drizzle"
    folder.mkdir()
    (folder / "0002_drop_name.sql").write_bytes((MIGRATIONS / "0002_drop_name.sql").read_bytes())
    (tmp_path / "drizzle.config.ts").write_text('export default { dialect: "postgresql", out: "./drizzle" };\n')
    _loaded(tmp_path)  # writes deploysafe.toml with destructive = "warn"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    monkeypatch.setenv("DATABASE_URL", make_db())  # no journal table there yet: every file is pending
    r = run_cli_in_process(capsys, "--json", "lint")
    data = r.json
    assert r.code == 0
    assert data["policy"] == "warn" and data["blocked"] is False
    assert [Path(p).name for p in data["files"]] == ["0002_drop_name.sql"]
    assert [(f["line"], f["rule"], f["severity"]) for f in data["findings"]] == [(1, "ban-drop-column", "destructive")]


def test_cli_lint_without_paths_or_config_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    r = run_cli_in_process(capsys, "lint")
    assert r.code == 2
    assert "no PATH given and no deploysafe.toml found" in r.stderr


def test_cli_lint_missing_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    r = run_cli_in_process(capsys, "lint", "nope.sql")
    assert r.code == 2
    assert "nope.sql does not exist" in r.stderr


# --- what will be applied ------------------------------------------------------------

DROP_NAME = 'ALTER TABLE "users" DROP COLUMN "name";'


def test_lint_change_judges_the_planned_statements_when_no_file_holds_them(tmp_path: Path) -> None:
    # A migration committed before the deploy (or a re-run of a blocked deploy): generate wrote nothing.
    report = lint.lint_change([], DROP_NAME, folder=tmp_path / "drizzle", plan_name="<push plan>")
    assert [(f.file, f.rule, f.allowed) for f in report.findings] == [("<push plan>", "ban-drop-column", False)]
    with pytest.raises(LintBlocked, match="ban-drop-column"):
        enforce(report, "block")


def test_lint_change_reports_a_statement_once_under_its_file(tmp_path: Path) -> None:
    f = tmp_path / "0002_drop_name.sql"
    f.write_text(DROP_NAME + "\n")
    report = lint.lint_change([f], "  " + DROP_NAME.replace(" DROP", "\nDROP"), folder=tmp_path)
    assert [(x.file, x.rule) for x in report.findings] == [(str(f), "ban-drop-column")]


def test_an_allow_comment_in_a_committed_migration_covers_the_planned_statement(tmp_path: Path) -> None:
    folder = tmp_path / "drizzle"
    folder.mkdir()
    (folder / "0000_init.sql").write_text('CREATE TABLE "users" ("id" serial, "name" text);\n')
    (folder / "0001_drop.sql").write_text(
        "-- deploysafe: allow ban-drop-column\n" + DROP_NAME + "\n--> statement-breakpoint\n"
        'ALTER TABLE "users" DROP COLUMN "id";\n'
    )
    report = lint.lint_change([], DROP_NAME + '\nALTER TABLE "users" DROP COLUMN "id";', folder=folder)
    assert [(f.statement.split()[-1], f.allowed) for f in report.findings] == [('"name"', True), ('"id"', False)]
