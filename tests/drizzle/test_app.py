"""The pieces of app discovery: package manager detection, what drizzle.config.* and package.json scripts say about
the database, the step environment, the migrate workflow's bookkeeping (checked against drizzle-orm's own
migrator code from the fixture app's node_modules), and the config keys."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.deploy.plan import plan_deploy
from deploysafe.drizzle import pkgmanager
from deploysafe.drizzle.app import read_app, script_env
from deploysafe.drizzle.migrator import Entry, State, read_journal, refuse_unappliable
from deploysafe.drizzle.target import step_env
from deploysafe.errors import ConfigError, PreconditionError

FIXTURE_APP = Path(__file__).resolve().parents[1] / "fixtures" / "drizzle-app"
BASE = """
[provider]
type = "local"
database_url = "postgresql://app@127.0.0.1:5432/prod"
[platform]
type = "dotenv"
env_file = ".env"
"""


def loaded(tmp_path: Path, app: str = "") -> LoadedConfig:
    return LoadedConfig(parse_config("[app]\n" + app + BASE, env={}), tmp_path / "deploysafe.toml")


# --- package managers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("files", "name", "run", "exec_"), [
    ({"package-lock.json": "{}"}, "npm", "npm run db:push", "npx drizzle-kit"),
    ({"pnpm-lock.yaml": ""}, "pnpm", "pnpm run db:push", "pnpm exec drizzle-kit"),
    ({"yarn.lock": ""}, "yarn", "yarn db:push", "yarn drizzle-kit"),
    ({"bun.lockb": ""}, "bun", "bun run db:push", "bunx drizzle-kit"),
    ({"bun.lock": ""}, "bun", "bun run db:push", "bunx drizzle-kit"),
    ({}, "npm", "npm run db:push", "npx drizzle-kit"),
])
def test_package_manager_from_the_lockfile(tmp_path: Path, files: dict[str, str], name: str, run: str, exec_: str) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "package.json").write_text("{}")
    for f, text in files.items():
        (tmp_path / f).write_text(text)
    pm = pkgmanager.detect(tmp_path)
    assert (pm.name, pm.run("db:push"), pm.exec("drizzle-kit")) == (name, run, exec_)


def test_package_manager_field_wins_and_a_workspace_package_inherits_the_root_s(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "package.json").write_text(json.dumps({"packageManager": "pnpm@9.1.0+sha256.abc"}))
    (tmp_path / "package-lock.json").write_text("{}")  # a stray lockfile does not outvote the declared manager
    pkg = tmp_path / "packages" / "db"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({"name": "@acme/db"}))
    pm = pkgmanager.detect(pkg)
    assert (pm.name, pm.root, pm.install()) == ("pnpm", tmp_path.resolve(), "pnpm install --frozen-lockfile")


def test_detection_stops_at_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / "yarn.lock").write_text("")  # someone else's, above the repository
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert pkgmanager.detect(repo).name == "npm"


@pytest.mark.parametrize(("command", "expected"), [
    ("npm run db:push", "npm run db:push -- --strict --verbose"),
    ("npm run db:push -- --force", "npm run db:push -- --force --strict --verbose"),
    ("pnpm run db:push", "pnpm run db:push --strict --verbose"),
    ("yarn db:push", "yarn db:push --strict --verbose"),
    ("bun run db:push", "bun run db:push --strict --verbose"),
    ("npx drizzle-kit push", "npx drizzle-kit push --strict --verbose"),
])
def test_flags_pass_through_each_manager_s_script_runner(command: str, expected: str) -> None:
    assert pkgmanager.pass_args(command, "--strict --verbose") == expected


def test_a_missing_install_is_reported_in_the_app_s_manager_s_terms(tmp_path: Path) -> None:
    from deploysafe.errors import StepError
    from deploysafe.process import check_runnable

    if shutil.which("npm") is None:
        pytest.skip("npm not installed")
    (tmp_path / ".git").mkdir()
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"db:push": "drizzle-kit push"}}))
    (tmp_path / "yarn.lock").write_text("")
    with pytest.raises(StepError) as e:
        check_runnable("npm run db:push", tmp_path, {"PATH": shutil.which("npm").rsplit("/", 1)[0]})  # type: ignore[union-attr]
    assert e.value.hint == f"run `yarn install --immutable` in {tmp_path.resolve()}"


# --- drizzle.config.* and scripts ---------------------------------------------------------------------


def test_url_variables_env_files_filters_and_migrations_table(tmp_path: Path) -> None:
    (tmp_path / "drizzle.config.ts").write_text("""
import * as dotenv from "dotenv";
dotenv.config({ path: [".env.local", ".env"] });
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/schema.ts",
  dbCredentials: { url: process.env["DIRECT_URL"] ?? process.env.DATABASE_URL! },
  casing: "snake_case",
  schemaFilter: ["public"],
  tablesFilter: ["app_*"],
  migrations: { table: "journal", schema: "ops" },
});
""")
    app = read_app(tmp_path)
    assert app.url_vars == ["DIRECT_URL", "DATABASE_URL"] and app.hard_coded == [] and not app.env_override
    assert app.env_files == [".env.local", ".env"]
    assert (app.casing, app.schema_filter, app.tables_filter) == ("snake_case", ["public"], ["app_*"])
    assert (app.migrations_table, app.migrations_schema) == ("journal", "ops")


def test_override_true_and_next_env_are_seen(tmp_path: Path) -> None:
    (tmp_path / "drizzle.config.ts").write_text("""
import { loadEnvConfig } from "@next/env";
import { config } from "dotenv";
loadEnvConfig(process.cwd());
config({ path: ".env.production", override: true });
export default { dbCredentials: { url: process.env.POSTGRES_URL_NON_POOLING! } };
""")
    app = read_app(tmp_path)
    assert app.env_override and app.url_vars == ["POSTGRES_URL_NON_POOLING"]
    assert app.env_files[0] == ".env.production" and ".env.local" in app.env_files


@pytest.mark.parametrize(("script", "files", "override"), [
    ("dotenv -e ../../.env -- drizzle-kit push", ("../../.env",), False),
    ("dotenv -e .env.local -e .env -- drizzle-kit migrate", (".env.local", ".env"), False),
    ("dotenv -o -e .env.local -- drizzle-kit push", (".env.local",), True),
    ("dotenv -c production -- drizzle-kit push",
     (".env.production.local", ".env.local", ".env.production", ".env"), False),
    ("env-cmd -f .env.local drizzle-kit push", (".env.local",), True),
    ("env-cmd --no-override -f .env.local drizzle-kit push", (".env.local",), False),
    ("node --env-file=.env.local node_modules/.bin/drizzle-kit push", (".env.local",), False),
    ("drizzle-kit push", (), False),
])
def test_env_files_loaded_by_a_script(script: str, files: tuple[str, ...], override: bool) -> None:
    got = script_env(script)
    assert (got.files, got.override) == (files, override)


# --- the step environment -----------------------------------------------------------------------------


def test_each_step_gets_the_app_s_variables_and_no_dotenv_override(tmp_path: Path) -> None:
    cfg = loaded(tmp_path, 'database_env = ["POSTGRES_URL", "POSTGRES_URL_NON_POOLING"]\n'
                           'database_env_parts = { host = "PGHOST", password = "PGPASSWORD", database = "PGDATABASE" }\n'
                           'env = { NODE_ENV = "production" }\n')
    env = step_env(cfg, "postgresql://app:s%40cret@db.internal:6543/shop")
    assert env == {
        "NODE_ENV": "production",
        "POSTGRES_URL": "postgresql://app:s%40cret@db.internal:6543/shop",
        "POSTGRES_URL_NON_POOLING": "postgresql://app:s%40cret@db.internal:6543/shop",
        "PGHOST": "db.internal", "PGPASSWORD": "s@cret", "PGDATABASE": "shop",
        "DOTENV_CONFIG_OVERRIDE": "",
    }
    from deploysafe.redact import redact

    assert "s@cret" not in redact("password s@cret")


def test_config_keys_of_the_workflows(tmp_path: Path) -> None:
    assert loaded(tmp_path, "generate = false\n").config.app.generate == ""
    assert loaded(tmp_path, 'generate = ""\n').config.app.generate == ""
    with pytest.raises(ConfigError, match="app.generate"):
        loaded(tmp_path, "generate = true\n")
    with pytest.raises(ConfigError, match=r"app.workflow: Input should be 'push' or 'migrate'"):
        loaded(tmp_path, 'workflow = "deploy"\n')
    with pytest.raises(ConfigError, match=r"app.database_env: not a variable name: postgres://x"):
        loaded(tmp_path, 'database_env = ["postgres://x"]\n')


def test_the_plan_of_a_migrate_app_without_generate(tmp_path: Path) -> None:
    cfg = loaded(tmp_path, 'workflow = "migrate"\ngenerate = false\nmigrate = "pnpm run db:migrate"\n'
                           'database_env = ["POSTGRES_URL"]\n').config
    plan = plan_deploy(cfg, snapshot="s", production="p", app_points_at=None, caveats=[], prune=[], rehearse=True,
                       no_rollback=False, allow_destructive=False)
    text = plan.render()
    assert "generate   no generate step ([app] generate is empty)" in text
    assert ("push       run `pnpm run db:migrate` against production (with POSTGRES_URL set to it) and verify the "
            "migrations table matches the journal") in text
    assert "rehearse   run `pnpm run db:migrate` against a throwaway copy first (with POSTGRES_URL set to it)" in text


def test_no_generate_step_runs_nothing(tmp_path: Path) -> None:
    from deploysafe.drizzle.steps import generate

    result = generate(loaded(tmp_path, "generate = false\n"), "postgresql://app@127.0.0.1:1/none")
    assert (result.new_files, result.sql, result.step.command) == ([], "", "")


# --- the migrate workflow's bookkeeping ---------------------------------------------------------------


def _migrations(tmp_path: Path, entries: list[tuple[str, int, str]]) -> Path:
    folder = tmp_path / "drizzle"
    (folder / "meta").mkdir(parents=True)
    for tag, _, sql in entries:
        (folder / f"{tag}.sql").write_text(sql, encoding="utf-8")
    journal = {"version": "7", "dialect": "postgresql",
               "entries": [{"idx": i, "version": "7", "when": w, "tag": t, "breakpoints": True}
                           for i, (t, w, _) in enumerate(entries)]}
    (folder / "meta" / "_journal.json").write_text(json.dumps(journal))
    return folder


def test_journal_hashes_are_the_ones_drizzle_orm_s_migrator_records(tmp_path: Path) -> None:
    if shutil.which("node") is None or not (FIXTURE_APP / "node_modules" / "drizzle-orm").is_dir():
        pytest.skip("node or the fixture app's node_modules missing")
    folder = _migrations(tmp_path, [
        ("0000_init", 1700000000000, 'CREATE TABLE "users" ("id" serial PRIMARY KEY);\n'),
        ("0001_émoji", 1700000001000, "ALTER TABLE users ADD note text; -- ünïcode ✓\n--> statement-breakpoint\nSELECT 1;"),
    ])
    script = ("import { readMigrationFiles } from 'drizzle-orm/migrator';"
              f"console.log(JSON.stringify(readMigrationFiles({{ migrationsFolder: {json.dumps(str(folder))} }})"
              ".map(m => [m.folderMillis, m.hash])));")
    r = subprocess.run(["node", "--input-type=module", "-e", script], cwd=FIXTURE_APP, capture_output=True, text=True,
                       timeout=60, check=True)
    assert [[e.when, e.hash] for e in read_journal(folder)] == json.loads(r.stdout)


def test_a_journal_entry_without_its_file_is_refused(tmp_path: Path) -> None:
    folder = _migrations(tmp_path, [("0000_init", 1, "SELECT 1;")])
    (folder / "0000_init.sql").unlink()
    with pytest.raises(PreconditionError, match="lists 0000_init, but .* does not exist"):
        read_journal(folder)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_mismatches_name_each_difference() -> None:
    journal = [Entry("0000_a", 1, _h("a")), Entry("0001_b", 2, _h("b"))]
    assert State(journal, {1: _h("a"), 2: _h("b")}).mismatches() == []
    assert State(journal, {1: _h("a")}).mismatches() == ["0001_b is not recorded as applied"]
    assert State(journal, {1: _h("x"), 2: _h("b"), 3: _h("c")}).mismatches() == [
        "0000_a was applied with a different content (hash) than the file has now",
        "the table records a migration (created_at 3) that the journal does not list",
    ]


def test_what_drizzle_s_migrator_would_silently_get_wrong_is_refused_before_it_runs() -> None:
    journal = [Entry("0000_a", 1, _h("a")), Entry("0001_b", 2, _h("b")), Entry("0002_c", 3, _h("c"))]
    refuse_unappliable(State(journal, {1: _h("a")}), "production")  # pending after the newest: fine
    refuse_unappliable(State(journal, {}), "production")  # a fresh database: fine
    with pytest.raises(PreconditionError, match="0000_a: applied to production already, but the file was edited"):
        refuse_unappliable(State(journal, {1: _h("edited")}), "production")
    with pytest.raises(PreconditionError, match="0001_b: pending, but older than the newest applied migration"):
        refuse_unappliable(State(journal, {1: _h("a"), 3: _h("c")}), "production")
