"""generate/push with truth checks: real drizzle-kit output, the real fixture app, real PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from deploysafe import drizzle_patterns
from deploysafe.config import LoadedConfig, parse_config
from deploysafe.errors import LintBlocked, StepError, StepTimeout
from deploysafe.lint import enforce, lint_sql
from deploysafe.migrate import dry_check_command, generate, migrations_dir, push, schema_fingerprint
from deploysafe.redact import url_password

OUTPUT = Path(__file__).parent / "fixtures" / "drizzle-output"

USERS_SQL = (
    "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL, name text,"
    " created_at timestamp DEFAULT now() NOT NULL)"
)


def _captured(name: str) -> str:
    return (OUTPUT / f"{name}.txt").read_text(encoding="utf-8")


# --- patterns, on output captured from the fixture app (capture.py) ------------------------------

CASES = [
    ("generate_initial", []),
    ("generate_no_changes", []),
    ("push_applied", []),
    ("push_no_changes", []),
    ("generate_rename_prompt", ["rename-prompt", "tty-required", "uncaught-error"]),
    ("generate_rename_prompt_tty", ["rename-prompt"]),
    ("push_data_loss_prompt", ["data-loss-prompt", "tty-required", "uncaught-error"]),
    ("push_truncate_prompt", ["truncate-prompt", "tty-required", "uncaught-error"]),
    ("push_database_error_partial", ["database-error"]),
    ("push_verify_pending", ["tty-required", "uncaught-error"]),
    ("push_verify_pending_force", ["database-error"]),
    ("push_strict_prompt_tty", ["strict-approval"]),
]


@pytest.mark.parametrize(("name", "expected"), CASES)
def test_patterns_on_real_drizzle_kit_output(name: str, expected: list[str]) -> None:
    found = [m.pattern.name for m in drizzle_patterns.find(_captured(name))]
    assert found == expected


def test_every_pattern_is_matched_by_real_captured_output() -> None:
    covered = {name for _, expected in CASES for name in expected}
    assert covered == {p.name for p in drizzle_patterns.PATTERNS}
    assert {f.stem for f in OUTPUT.glob("*.txt")} == {n for n, _ in CASES}


@pytest.mark.parametrize("name", [n for n, e in CASES if e and not n.endswith("_tty")])
def test_every_failure_was_captured_with_exit_code_zero(name: str) -> None:
    # Why the patterns exist: drizzle-kit reports these failures with exit code 0.
    assert (OUTPUT / f"{name}.exit").read_text().strip() == "0"


def test_outcome_markers_on_real_output() -> None:
    assert drizzle_patterns.CHANGES_APPLIED.search(drizzle_patterns.clean(_captured("push_applied")))
    assert drizzle_patterns.NO_CHANGES.search(drizzle_patterns.clean(_captured("push_no_changes")))
    assert drizzle_patterns.NO_CHANGES.search(drizzle_patterns.clean(_captured("generate_no_changes")))
    assert not drizzle_patterns.NO_CHANGES.search(drizzle_patterns.clean(_captured("push_verify_pending")))


def test_describe_names_pattern_version_and_line() -> None:
    text = drizzle_patterns.describe(drizzle_patterns.find(_captured("push_data_loss_prompt")))
    assert "[data-loss-prompt, seen in drizzle-kit 0.31.11]" in text
    assert "THIS ACTION WILL CAUSE DATA LOSS" in text or "Do you still want to push changes?" in text


def test_dry_check_command_passes_flags_through_npm() -> None:
    assert dry_check_command("npm run db:push") == "npm run db:push -- --strict --verbose"
    assert dry_check_command("npx drizzle-kit push") == "npx drizzle-kit push --strict --verbose"
    assert dry_check_command("npm run db:push -- --config x.ts") == "npm run db:push -- --config x.ts --strict --verbose"


# --- real runs ----------------------------------------------------------------------------------


DIRECT = {"generate": "node_modules/.bin/drizzle-kit generate", "push": "node_modules/.bin/drizzle-kit push"}


def _loaded(app: Path, url: str, **app_keys: str) -> LoadedConfig:
    """Config for the app; tests pass DIRECT to skip npm's ~1 s start-up where npm is not the point."""
    keys = {"step_timeout": "60s", **app_keys}
    extra = "".join(f'{k} = "{v}"\n' for k, v in keys.items())
    text = (
        f'[app]\ndir = "."\n{extra}'
        '[provider]\ntype = "local"\ndatabase_url = "${DATABASE_URL}"\n'
        '[platform]\ntype = "dotenv"\nenv_file = ".env"\n'
    )
    return LoadedConfig(parse_config(text, env={"DATABASE_URL": url}), app / "deploysafe.toml")


def _edit_schema(app: Path, old: str, new: str) -> None:
    p = app / "src" / "schema.ts"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


def _columns(url: str, table: str = "users") -> list[str]:
    with psycopg.connect(url) as c:
        rows = c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position", (table,)
        ).fetchall()
    return [r[0] for r in rows]


def _sql(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(statement)


def test_safe_change_generates_and_pushes_and_reports_files_and_statements(
    drizzle_app: Path, make_db: Callable[..., str]
) -> None:
    url = make_db()
    setup = _loaded(drizzle_app, url, **DIRECT)
    first = generate(setup, url)
    assert [p.name for p in first.new_files] == [p.name for p in sorted(migrations_dir(setup).glob("0000_*.sql"))]
    assert 'CREATE TABLE "users"' in first.sql
    initial = push(setup, url)
    assert initial.statements_applied and initial.verified

    loaded = _loaded(drizzle_app, url)  # the default commands: npm run db:generate / db:push
    _edit_schema(drizzle_app, '  name: text("name"),', '  name: text("name"),\n  nickname: text("nickname"),')
    lines: list[str] = []
    gen = generate(loaded, url, on_line=lines.append)
    assert len(gen.new_files) == 1 and gen.new_files[0].name.startswith("0001_")
    assert gen.sql.strip() == 'ALTER TABLE "users" ADD COLUMN "nickname" text;'
    assert any("Your SQL migration file" in line for line in lines)
    assert enforce(lint_sql(gen.sql), "block") == []

    before = schema_fingerprint(url)
    result = push(loaded, url)
    assert result.statements_applied and result.verified
    assert result.step.exit_code == 0 and "Changes applied" in result.step.output
    assert "nickname" in _columns(url)
    assert schema_fingerprint(url) != before
    password = url_password(url)
    assert password and password not in result.step.output

    again = push(setup, url)  # nothing left to do: "No changes detected", no second run needed
    assert not again.statements_applied and again.verified


def test_column_drop_is_blocked_before_push_and_production_is_untouched(
    drizzle_app: Path, make_db: Callable[..., str]
) -> None:
    url = make_db()
    loaded = _loaded(drizzle_app, url, **DIRECT)
    generate(loaded, url)
    _sql(url, USERS_SQL)
    _sql(url, "INSERT INTO users (email, name) VALUES ('a@example.com', 'Ada')")
    before = schema_fingerprint(url)
    _edit_schema(drizzle_app, '  name: text("name"),\n', "")
    gen = generate(loaded, url)
    assert 'DROP COLUMN "name"' in gen.sql
    with pytest.raises(LintBlocked) as exc:
        enforce(lint_sql(gen.sql, str(gen.new_files[0])), loaded.config.lint.destructive)
    assert exc.value.exit_code == 3
    assert f"{gen.new_files[0]}:1" in str(exc.value) and "DROP COLUMN" in str(exc.value)
    assert schema_fingerprint(url) == before
    assert "name" in _columns(url)


def test_refused_data_loss_prompt_is_a_failed_push_before_production_changed(
    drizzle_app: Path, make_db: Callable[..., str]
) -> None:
    url = make_db()
    _sql(url, USERS_SQL)
    _sql(url, "INSERT INTO users (email, name) VALUES ('a@example.com', 'Ada')")
    loaded = _loaded(drizzle_app, url, **DIRECT)
    _edit_schema(drizzle_app, '  name: text("name"),\n', "")
    with pytest.raises(StepError) as exc:
        push(loaded, url)
    err = exc.value
    assert err.production_changed is False and err.exit_code == 3 and err.step == "push"
    assert "push applied nothing, although it exited 0" in str(err)
    assert "data-loss-prompt" in str(err)
    assert "name" in _columns(url)


def test_partially_applied_push_reports_production_changed(drizzle_app: Path, make_db: Callable[..., str]) -> None:
    url = make_db()
    _sql(url, USERS_SQL)
    _sql(url, "INSERT INTO users (email, name) VALUES ('a@example.com', 'Ada')")
    loaded = _loaded(drizzle_app, url, **DIRECT)
    # posts is created first, then the type change fails on 'Ada'; drizzle-kit still exits 0.
    _edit_schema(drizzle_app, "serial, text,", "serial, text, integer,")
    _edit_schema(drizzle_app, '  name: text("name"),', '  name: integer("name"),')
    (drizzle_app / "src" / "schema.ts").write_text(
        (drizzle_app / "src" / "schema.ts").read_text()
        + '\nexport const posts = pgTable("posts", { id: serial("id").primaryKey() });\n'
    )
    with pytest.raises(StepError) as exc:
        push(loaded, url)
    assert exc.value.production_changed is True
    assert "applied part of its statements" in str(exc.value)
    assert "cannot be cast automatically" in str(exc.value)
    assert "posts" in {t for t in _tables(url)}


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as c:
        return [r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]


def test_push_that_claims_success_without_applying_is_caught_by_the_dry_check(
    drizzle_app: Path, make_db: Callable[..., str]
) -> None:
    url = make_db()
    _sql(url, USERS_SQL)
    # A push command that lies; the dry check (same command + --strict) runs the real drizzle-kit.
    fake = drizzle_app / "fakepush.sh"
    fake.write_text(
        '#!/bin/sh\ncase "$*" in *--strict*) exec node_modules/.bin/drizzle-kit push "$@";; esac\n'
        'echo "[✓] Changes applied"\n'
    )
    fake.chmod(0o755)
    loaded = _loaded(drizzle_app, url, push="./fakepush.sh")
    _edit_schema(drizzle_app, '  name: text("name"),', '  name: text("name"),\n  nickname: text("nickname"),')
    with pytest.raises(StepError) as exc:
        push(loaded, url)
    assert exc.value.production_changed is False
    msg = str(exc.value)
    assert "does not match the schema" in msg and "nothing was applied" in msg
    assert 'ALTER TABLE "users" ADD COLUMN "nickname" text;' in msg
    assert "nickname" not in _columns(url)  # the read-only dry check applied nothing


def test_generate_that_needs_a_rename_answer_fails(drizzle_app: Path, make_db: Callable[..., str]) -> None:
    url = make_db()
    loaded = _loaded(drizzle_app, url, **DIRECT)
    generate(loaded, url)
    _edit_schema(drizzle_app, '  name: text("name"),', '  fullName: text("full_name"),')
    with pytest.raises(StepError) as exc:
        generate(loaded, url)
    assert "rename-prompt" in str(exc.value) and exc.value.production_changed is False
    assert "answer the rename question" in (exc.value.hint or "")
    assert [p.name for p in migrations_dir(loaded).glob("*.sql")] == [
        p.name for p in migrations_dir(loaded).glob("0000_*.sql")
    ]


def test_schema_fingerprint_tracks_shape_not_data(make_db: Callable[..., str]) -> None:
    url = make_db()
    _sql(url, USERS_SQL)
    fp = schema_fingerprint(url)
    assert fp == schema_fingerprint(url)
    _sql(url, "INSERT INTO users (email) VALUES ('x@example.com')")
    assert schema_fingerprint(url) == fp
    _sql(url, "ALTER TABLE users ALTER COLUMN name SET DEFAULT 'anon'")
    fp2 = schema_fingerprint(url)
    assert fp2 != fp
    _sql(url, "CREATE INDEX users_email_idx ON users (email)")
    assert schema_fingerprint(url) != fp2


def test_schema_fingerprint_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(StepError, match="cannot read the database schema") as exc:
        schema_fingerprint("postgresql://u:hunter2hunter2@127.0.0.1:1/x")
    assert "hunter2hunter2" not in str(exc.value)


def test_generate_past_its_timeout_is_killed_and_reported_with_app_env(tmp_path: Path) -> None:
    text = (
        '[app]\ngenerate = "echo \\"region=$APP_REGION\\"; sleep 30"\nstep_timeout = "1s"\n'
        'env = { APP_REGION = "eu-west" }\n'
        '[provider]\ntype = "local"\ndatabase_url = "${DATABASE_URL}"\n'
        '[platform]\ntype = "dotenv"\nenv_file = ".env"\n'
    )
    url = "postgresql://app:pw-never-shown@127.0.0.1:1/prod"
    loaded = LoadedConfig(parse_config(text, env={"DATABASE_URL": url}), tmp_path / "deploysafe.toml")
    lines: list[str] = []
    with pytest.raises(StepTimeout) as exc:
        generate(loaded, url, on_line=lines.append)
    assert exc.value.step == "generate" and "timeout of 1s" in str(exc.value)
    assert lines == ["region=eu-west"]


@pytest.mark.parametrize(("sql", "changed"), [("CREATE TABLE half_done (id int)", True), ("SELECT 1", False)])
def test_push_killed_at_its_timeout_reports_whether_production_changed(
    tmp_path: Path, make_db: Callable[..., str], sql: str, changed: bool
) -> None:
    url = make_db()
    script = tmp_path / "slow_push.py"
    script.write_text(
        "import os, time, psycopg\n"
        "with psycopg.connect(os.environ['DATABASE_URL'], autocommit=True) as c:\n"
        f"    c.execute({sql!r})\n"
        "print('statement done', flush=True)\n"
        "time.sleep(60)\n"
    )
    loaded = _loaded(tmp_path, url, push=f"{sys.executable} {script}", step_timeout="2s")
    with pytest.raises(StepTimeout) as exc:
        push(loaded, url)
    assert exc.value.production_changed is changed
    assert exc.value.step == "push" and exc.value.context["output"] == "statement done"


# --- the fingerprint sees every kind of object a push can change (issue 15) -------------------------

_TOUCH = "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$"
_COUNT = "CREATE FUNCTION n_users() RETURNS bigint LANGUAGE sql AS 'select count(*) from users'"
_TRIGGER = "CREATE TRIGGER touch_users BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION touch()"
# kind: (set-up statements, the one change a partial push made)
OBJECT_KINDS: dict[str, tuple[list[str], str]] = {
    "row-level security": ([], "ALTER TABLE users ENABLE ROW LEVEL SECURITY"),
    "forced row-level security": (["ALTER TABLE users ENABLE ROW LEVEL SECURITY"],
                                  "ALTER TABLE users FORCE ROW LEVEL SECURITY"),
    "policy": ([], "CREATE POLICY nobody ON users USING (false)"),
    "policy expression": (["CREATE POLICY nobody ON users USING (false)"], "ALTER POLICY nobody ON users USING (id > 0)"),
    "table grant": ([], "GRANT SELECT ON users TO PUBLIC"),
    "column grant": ([], "GRANT UPDATE (email) ON users TO PUBLIC"),
    "schema grant": ([], "GRANT CREATE ON SCHEMA public TO PUBLIC"),
    "sequence grant": ([], "GRANT USAGE ON SEQUENCE users_id_seq TO PUBLIC"),
    "default privileges": ([], "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC"),
    "function": ([], _COUNT),
    "function body": ([_COUNT], "CREATE OR REPLACE FUNCTION n_users() RETURNS bigint LANGUAGE sql AS 'select 0::bigint'"),
    "function security": ([_COUNT], "ALTER FUNCTION n_users() SECURITY DEFINER"),
    "function grant": ([_COUNT], "REVOKE EXECUTE ON FUNCTION n_users() FROM PUBLIC"),
    "procedure": ([], "CREATE PROCEDURE noop() LANGUAGE sql AS 'select 1'"),
    "trigger": ([_TOUCH], _TRIGGER),
    "trigger disabled": ([_TOUCH, _TRIGGER], "ALTER TABLE users DISABLE TRIGGER touch_users"),
    "rule": ([], "CREATE RULE keep_users AS ON DELETE TO users DO INSTEAD NOTHING"),
    "extension": ([], "CREATE EXTENSION citext"),
    "sequence ownership": (["CREATE SEQUENCE loose_seq"], "ALTER SEQUENCE loose_seq OWNED BY users.id"),
    "sequence parameters": ([], "ALTER SEQUENCE users_id_seq INCREMENT BY 2"),
    "domain": ([], "CREATE DOMAIN email_address AS text CHECK (VALUE LIKE '%@%')"),
    "domain constraint": (["CREATE DOMAIN email_address AS text"],
                          "ALTER DOMAIN email_address ADD CONSTRAINT has_at CHECK (VALUE LIKE '%@%')"),
    "composite type": ([], "CREATE TYPE pair AS (a int, b int)"),
    "unlogged table": ([], "ALTER TABLE users SET UNLOGGED"),
    "storage options": ([], "ALTER TABLE users SET (fillfactor = 70)"),
    "extended statistics": ([], "CREATE STATISTICS users_stats ON email, name FROM users"),
    "table comment": ([], "COMMENT ON TABLE users IS 'the people'"),
    "column comment": ([], "COMMENT ON COLUMN users.email IS 'where we write'"),
}


@pytest.mark.parametrize("kind", sorted(OBJECT_KINDS))
def test_schema_fingerprint_sees_every_object_kind_a_push_can_change(kind: str, make_db: Callable[..., str]) -> None:
    url = make_db()
    setup, change = OBJECT_KINDS[kind]
    for statement in [USERS_SQL, *setup]:
        _sql(url, statement)
    before = schema_fingerprint(url)
    _sql(url, "INSERT INTO users (email) VALUES ('x@example.com')")  # data is not shape
    assert schema_fingerprint(url) == before
    _sql(url, change)
    after = schema_fingerprint(url)
    assert after != before, f"a change of {kind} is invisible to the fingerprint"
    assert schema_fingerprint(url) == after  # stable


# A push that changed only this and then failed: production changed (the deploy rolls back), not exit 3.
PARTIAL_PUSHES = {
    "row-level security and a policy": "ALTER TABLE users ENABLE ROW LEVEL SECURITY;"
                                       " ALTER TABLE users FORCE ROW LEVEL SECURITY;"
                                       " CREATE POLICY nobody ON users USING (false)",
    "grants": "REVOKE ALL ON users FROM PUBLIC; GRANT SELECT ON users TO PUBLIC",
    "functions": _COUNT,
    "triggers": _TRIGGER,
}


@pytest.mark.parametrize("kind", sorted(PARTIAL_PUSHES))
def test_a_failed_push_that_changed_only_one_object_kind_reports_production_changed(
    kind: str, tmp_path: Path, make_db: Callable[..., str]
) -> None:
    from deploysafe import pg

    url = make_db()
    for statement in [USERS_SQL, _TOUCH]:
        _sql(url, statement)
    (tmp_path / "change.sql").write_text(PARTIAL_PUSHES[kind] + ";\n")
    (tmp_path / "push.sh").write_text(
        f'"{pg.find_tool("psql", 14)}" -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f change.sql\n'
        'echo "error: the next statement failed"; exit 1\n'
    )
    with pytest.raises(StepError) as exc:
        push(_loaded(tmp_path, url, push="sh push.sh"), url)
    assert exc.value.production_changed is True, f"a push that changed only {kind} was called 'nothing changed'"
