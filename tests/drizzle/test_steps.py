"""generate/push with truth checks: real drizzle-kit output, the real fixture app, real PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from deploysafe import pg
from deploysafe.config import LoadedConfig, parse_config
from deploysafe.drizzle import output as drizzle_patterns
from deploysafe.drizzle.kit import kit_version, planned_statements
from deploysafe.drizzle.lint import enforce, lint_sql
from deploysafe.drizzle.steps import dry_check_command, generate, migrations_dir, plan_push, push, schema_fingerprint
from deploysafe.errors import LintBlocked, StepError, StepTimeout
from deploysafe.redact import url_password
from support.e2e import DRIZZLE_LINES, line_modules

OUTPUT = Path(__file__).resolve().parents[1] / "fixtures" / "drizzle-output"

USERS_SQL = (
    "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL, name text,"
    " created_at timestamp DEFAULT now() NOT NULL)"
)


def _captured(name: str, version: str = "0.31.11") -> str:
    return (OUTPUT / version / f"{name}.txt").read_text(encoding="utf-8")


# --- patterns, on output captured from the fixture app on each drizzle-kit line (capture.py) ------

_0X_OLD = {  # 0.25 and 0.30 draw the prompt and print no TTY error
    "generate_initial": [],
    "generate_no_changes": [],
    "push_applied": [],
    "push_no_changes": [],
    "generate_rename_prompt": ["rename-prompt"],
    "push_data_loss_prompt": ["data-loss-prompt"],
    "push_truncate_prompt": ["truncate-prompt"],
    "push_database_error_partial": ["data-loss-prompt"],  # 0.25/0.30 ask to truncate before a type change
    "push_verify_pending": ["strict-approval"],
    "push_verify_pending_force": ["database-error"],
}
CASES: dict[str, dict[str, list[str]]] = {
    "0.25.0": {**_0X_OLD, "push_long_fk_applied": [], "push_verify_nonconverging": ["strict-approval"]},
    "0.30.6": _0X_OLD,
    "0.31.11": {
        "generate_initial": [],
        "generate_no_changes": [],
        "push_applied": [],
        "push_no_changes": [],
        "generate_rename_prompt": ["rename-prompt", "tty-required", "uncaught-error"],
        "generate_rename_prompt_tty": ["rename-prompt"],
        "push_data_loss_prompt": ["data-loss-prompt", "tty-required", "uncaught-error"],
        "push_truncate_prompt": ["truncate-prompt", "tty-required", "uncaught-error"],
        "push_database_error_partial": ["database-error"],
        "push_verify_pending": ["tty-required", "uncaught-error"],
        "push_verify_pending_force": ["database-error"],
        "push_strict_prompt_tty": ["strict-approval"],
    },
    "1.0.0-rc.5": {
        "generate_initial": [],
        "generate_no_changes": [],
        "push_applied": [],
        "push_no_changes": [],
        "push_explain_no_changes": [],
        "push_strict_deprecated": [],
        "push_explain_pending": [],
        "generate_rename_prompt": ["rename-hint-missing"],
        "push_data_loss_prompt": ["data-loss-hint-missing"],
        "push_data_loss_force": ["data-loss-hint-missing"],
        "push_explain_data_loss": ["data-loss-hint-missing"],
        "push_unique_on_duplicates": ["database-error"],
        "generate_outdated_folder": ["outdated-migrations-folder"],
    },
}
ALL = [(v, n, e) for v, cases in CASES.items() for n, e in cases.items()]


def _exit(version: str, name: str) -> int:
    return int((OUTPUT / version / f"{name}.exit").read_text().strip())


@pytest.mark.parametrize(("version", "name", "expected"), ALL)
def test_patterns_on_real_drizzle_kit_output(version: str, name: str, expected: list[str]) -> None:
    found = [m.pattern.name for m in drizzle_patterns.find(_captured(name, version))]
    assert found == expected


def test_every_pattern_is_matched_by_real_captured_output_and_every_capture_is_checked() -> None:
    covered = {name for _, _, expected in ALL for name in expected}
    assert covered == {p.name for p in drizzle_patterns.PATTERNS}
    for version, cases in CASES.items():
        assert (OUTPUT / version / "VERSION").read_text().strip() == f"drizzle-kit {version}"
        assert {f.stem for f in (OUTPUT / version).glob("*.txt")} == set(cases)


@pytest.mark.parametrize(("version", "name"), [(v, n) for v, n, e in ALL if e and not v.startswith("1.") and not n.endswith("_tty")])
def test_every_0x_failure_was_captured_with_exit_code_zero(version: str, name: str) -> None:
    # Why the patterns exist: drizzle-kit 0.x reports these failures with exit code 0.
    assert _exit(version, name) == 0


def test_drizzle_kit_1_exits_2_on_missing_hints_and_1_on_errors() -> None:
    v = "1.0.0-rc.5"
    assert [_exit(v, n) for n in ("generate_rename_prompt", "push_data_loss_prompt", "push_data_loss_force")] == [2, 2, 2]
    assert _exit(v, "push_unique_on_duplicates") == 1 and _exit(v, "generate_outdated_folder") == 1


def _first_stop(text: str) -> str | None:
    """What run_step's watcher sees: every line, including an unfinished last one."""
    for line in drizzle_patterns.clean(text).split("\n"):
        reason = drizzle_patterns.stop_reason(line)
        if reason:
            return reason
    return None


@pytest.mark.parametrize(("version", "name", "expected"), ALL)
def test_a_step_is_stopped_exactly_when_drizzle_kit_waits_for_an_answer(
    version: str, name: str, expected: list[str]
) -> None:
    waiting = [n for n in expected if n in {p.name for p in drizzle_patterns.PATTERNS if p.waits}]
    reason = _first_stop(_captured(name, version))
    if waiting:
        assert reason is not None and any(f"[{n}, seen in" in reason for n in waiting)
    else:
        assert reason is None


def test_outcome_markers_on_real_output() -> None:
    for version in CASES:
        assert drizzle_patterns.CHANGES_APPLIED.search(drizzle_patterns.clean(_captured("push_applied", version)))
        assert drizzle_patterns.NO_CHANGES.search(drizzle_patterns.clean(_captured("push_no_changes", version)))
        assert drizzle_patterns.NO_CHANGES.search(drizzle_patterns.clean(_captured("generate_no_changes", version)))
    assert not drizzle_patterns.NO_CHANGES.search(drizzle_patterns.clean(_captured("push_verify_pending")))
    v1 = "1.0.0-rc.5"
    assert drizzle_patterns.NO_CHANGES.search(drizzle_patterns.clean(_captured("push_explain_no_changes", v1)))
    # 1.0 ignores --strict: it prints a deprecation and no plan, not even "No changes detected", so push uses --explain.
    strict = drizzle_patterns.clean(_captured("push_strict_deprecated", v1))
    assert "Deprecated" in strict and not drizzle_patterns.NO_CHANGES.search(strict)
    assert planned_statements(strict) == []


def test_describe_names_pattern_version_and_line() -> None:
    text = drizzle_patterns.describe(drizzle_patterns.find(_captured("push_data_loss_prompt")))
    assert "[data-loss-prompt, seen in drizzle-kit 0.25.0, 0.30.6, 0.31.11]" in text
    assert "THIS ACTION WILL CAUSE DATA LOSS" in text or "Do you still want to push changes?" in text


NICK = 'ALTER TABLE "users" ADD COLUMN "nick" text;'
POSTS_BODY = '"posts" ( "id" serial PRIMARY KEY NOT NULL, "title" text NOT NULL );'


@pytest.mark.parametrize("version", ["0.25.0", "0.30.6", "0.31.11"])
def test_planned_statements_from_the_0x_dry_run(version: str) -> None:
    # 0.31 created "posts" in the scenario before (0.25/0.30 asked to truncate instead), so only "nick" is left
    for name in ("push_verify_pending", "push_verify_pending_force"):
        planned = planned_statements(_captured(name, version))
        assert planned[-1] == NICK
        if version == "0.31.11":
            assert planned == [NICK]
        else:  # 0.25 writes CREATE TABLE IF NOT EXISTS
            assert len(planned) == 2 and planned[0].startswith("CREATE TABLE") and planned[0].endswith(POSTS_BODY)
    assert planned_statements(_captured("push_no_changes", version)) == []


def test_planned_statements_from_the_1_0_explain() -> None:
    planned = planned_statements(_captured("push_explain_pending", "1.0.0-rc.5"))
    assert NICK in planned
    assert any(s.startswith('CREATE TABLE "posts"') for s in planned)
    assert planned_statements(_captured("push_explain_no_changes", "1.0.0-rc.5")) == []


def test_a_do_block_spanning_lines_is_one_statement() -> None:
    # drizzle-kit 0.25 drops the truncated foreign key and adds it again under its full name
    planned = planned_statements(_captured("push_verify_nonconverging", "0.25.0"))
    assert len(planned) == 2
    assert planned[0].startswith('ALTER TABLE "notification_preference_history_entries" DROP CONSTRAINT')
    assert planned[1].startswith("DO $$ BEGIN ALTER TABLE") and planned[1].endswith("END $$;")
    assert "_account_owner_identifier_users_id_fk" in planned[1]


def test_dry_check_command_passes_flags_through_npm() -> None:
    assert dry_check_command("npm run db:push") == "npm run db:push -- --strict --verbose"
    assert dry_check_command("npx drizzle-kit push") == "npx drizzle-kit push --strict --verbose"
    assert dry_check_command("npm run db:push -- --config x.ts") == "npm run db:push -- --config x.ts --strict --verbose"


def test_dry_check_on_drizzle_kit_1_uses_explain(tmp_path: Path) -> None:
    pkg = tmp_path / "node_modules" / "drizzle-kit"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text('{"name": "drizzle-kit", "version": "1.0.0-rc.5"}')
    app = tmp_path / "apps" / "web"  # a workspace: drizzle-kit hoisted to the root
    app.mkdir(parents=True)
    version = kit_version(app)
    assert (version.text, version.has_explain) == ("1.0.0-rc.5", True)
    assert dry_check_command("npm run db:push", version) == "npm run db:push -- --explain"


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


def _on_line(app: Path, line: str) -> None:
    """Run the copied app on another drizzle-kit line."""
    modules = line_modules(line)
    (app / "node_modules").unlink()
    (app / "node_modules").symlink_to(modules)


@pytest.mark.parametrize("line", list(DRIZZLE_LINES))
def test_refused_data_loss_prompt_is_a_failed_push_before_production_changed(
    drizzle_app: Path, make_db: Callable[..., str], line: str
) -> None:
    _on_line(drizzle_app, line)
    url = make_db()
    _sql(url, USERS_SQL)
    _sql(url, "INSERT INTO users (email, name) VALUES ('a@example.com', 'Ada')")
    loaded = _loaded(drizzle_app, url, **DIRECT, step_timeout="10m")
    _edit_schema(drizzle_app, '  name: text("name"),\n', "")
    with pytest.raises(StepError) as exc:
        push(loaded, url)
    err = exc.value
    assert err.production_changed is False and err.exit_code == 3 and err.step == "push"
    if line == "1.0":  # 1.0 asks nothing without a TTY: it lists the decision and exits 2
        assert "exited with code 2" in str(err) and "data-loss-hint-missing" in str(err)
    else:  # ended at the question, not at the step's timeout
        assert "stopped at a question" in str(err) and "push applied nothing" in str(err)
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
    assert "run `npx drizzle-kit generate` by hand, answer the rename question" in (exc.value.hint or "")
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
    loaded = _loaded(tmp_path, url, push=f"{sys.executable} {script}", step_timeout="10s")  # python + psycopg start slowly on a busy machine
    with pytest.raises(StepTimeout) as exc:
        push(loaded, url)
    assert exc.value.production_changed is changed
    assert exc.value.step == "push" and exc.value.context["output"] == "statement done"


# --- the fingerprint sees every kind of object a push can change -------------------------

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


LONG_FK = """
export const preferenceHistory = pgTable("notification_preference_history_entries", {
  id: serial("id").primaryKey(),
  accountOwnerIdentifier: integer("account_owner_identifier").references(() => users.id),
});
"""


def test_a_push_that_never_converges_is_named_not_timed_out(drizzle_app: Path, make_db: Callable[..., str]) -> None:
    # drizzle-kit 0.25 names this foreign key with 76 characters; PostgreSQL keeps 63, so every
    # push drops and re-adds it.
    _on_line(drizzle_app, "0.25")
    url = make_db()
    _sql(url, USERS_SQL)
    loaded = _loaded(drizzle_app, url, **DIRECT)
    _edit_schema(drizzle_app, "serial, text,", "serial, text, integer,")
    (drizzle_app / "src" / "schema.ts").write_text((drizzle_app / "src" / "schema.ts").read_text() + LONG_FK)
    plan = plan_push(loaded, url)
    assert plan.failure is None and any("ADD CONSTRAINT" in s for s in plan.statements)
    with pytest.raises(StepError) as exc:
        push(loaded, url, planned=plan.statements)
    msg = str(exc.value)
    assert "push does not converge" in msg and "notification_preference_history_entries_account_owner" in msg
    assert exc.value.production_changed is True and "63 characters" in (exc.value.hint or "")
    assert "notification_preference_history_entries" in _tables(url)


def _fake_push(app: Path, check: str) -> str:
    """A push that applies a real statement; its dry run (``--strict``) runs ``check``."""
    script = app / "push.sh"
    script.write_text(
        '#!/bin/sh\ncase "$*" in *--strict*) ' + check + ";; esac\n"
        f'"{pg.find_tool("psql", 14)}" -X "$DATABASE_URL" -qc "CREATE TABLE IF NOT EXISTS applied (id int)"\necho "[✓] Changes applied"\n'
    )
    script.chmod(0o755)
    return "./push.sh"


def test_a_post_push_check_that_hangs_leaves_a_good_push_unverified_not_failed(
    tmp_path: Path, make_db: Callable[..., str]
) -> None:
    url = make_db()
    loaded = _loaded(tmp_path, url, push=_fake_push(tmp_path, "exec sleep 60"), step_timeout="8s")
    result = push(loaded, url)
    assert result.statements_applied and not result.verified
    assert result.unverified_reason and "did not finish" in result.unverified_reason
    assert "applied" in _tables(url)


def test_drizzle_kit_1_refusing_a_0x_migrations_folder_is_exit_3_with_the_fix(
    drizzle_app: Path, make_db: Callable[..., str]
) -> None:
    _on_line(drizzle_app, "1.0")
    url = make_db()
    folder = drizzle_app / "drizzle"
    (folder / "meta").mkdir(parents=True)
    (folder / "0000_initial.sql").write_text('CREATE TABLE "users" ("id" serial PRIMARY KEY NOT NULL);\n')
    (folder / "meta" / "_journal.json").write_text(
        '{"version": "7", "dialect": "postgresql", "entries": [{"idx": 0, "version": "7", "when": 1700000000000,'
        ' "tag": "0000_initial", "breakpoints": true}]}'
    )
    with pytest.raises(StepError) as exc:
        generate(_loaded(drizzle_app, url, **DIRECT), url)
    assert exc.value.exit_code == 3 and exc.value.production_changed is False
    assert "outdated-migrations-folder" in str(exc.value) and "drizzle-kit up" in (exc.value.hint or "")


def test_drizzle_kit_1_generate_writes_a_folder_per_migration_and_the_first_is_a_baseline(
    drizzle_app: Path, make_db: Callable[..., str]
) -> None:
    _on_line(drizzle_app, "1.0")
    url = make_db()
    loaded = _loaded(drizzle_app, url, **DIRECT)
    first = generate(loaded, url)
    assert first.baseline and len(first.new_files) == 1 and first.new_files[0].name == "migration.sql"
    assert (first.new_files[0].parent / "snapshot.json").is_file()
    _edit_schema(drizzle_app, '  name: text("name"),', '  name: text("name"),\n  nickname: text("nickname"),')
    second = generate(loaded, url)
    assert not second.baseline and second.sql.strip() == 'ALTER TABLE "users" ADD COLUMN "nickname" text;'
    from deploysafe.drizzle.layout import migrations

    assert [m.path for m in migrations(migrations_dir(loaded))] == [first.new_files[0], second.new_files[0]]
