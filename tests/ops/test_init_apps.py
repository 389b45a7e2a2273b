"""`deploysafe init` in apps laid out as real ones are: npm, pnpm, yarn, bun; single package and
workspace; `.env`, `.env.local`, dotenv-cli. The written config passes `config check` and `deploy --dry-run`
(against a real PostgreSQL), and names the variable, env file, commands and workflow the app really uses."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from deploysafe.envfile import write_var
from support.cli import run_cli_in_process

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps"
_STAMP = re.compile(r"^\d\d:\d\d:\d\d (✗ |✓ |→ |! )?", re.M)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    r = run_cli_in_process(capsys, *args)
    return r.code, _STAMP.sub("", r.stdout), _STAMP.sub("", r.stderr)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    for var in ("DATABASE_URL", "POSTGRES_URL", "DOTENV_CONFIG_OVERRIDE"):
        monkeypatch.delenv(var, raising=False)

    def make(name: str, app: str = ".") -> Path:
        root = tmp_path / name
        shutil.copytree(APPS / name, root)
        (root / ".git").mkdir()  # the repository's root: package manager detection stops here
        monkeypatch.chdir(root / app)
        return root / app

    return make


# name, app folder, expected [app] keys, env file for the dotenv platform, the variable
CASES = [
    ("saas-starter", ".", {"workflow": "migrate", "generate": "pnpm run db:generate", "migrate": "pnpm run db:migrate",
                           "database_env": ["POSTGRES_URL"], "env_files": [], "migrations_dir": "lib/db/migrations"},
     ".env", "POSTGRES_URL"),
    ("ai-chatbot", ".", {"workflow": "migrate", "generate": "pnpm run db:generate", "migrate": "pnpm run db:migrate",
                         "database_env": ["POSTGRES_URL"], "env_files": [".env.local"]},
     ".env.local", "POSTGRES_URL"),
    ("t3-turbo", "packages/db", {"workflow": "push", "generate": "pnpm exec drizzle-kit generate", "push": "pnpm run push",
                                 "database_env": ["POSTGRES_URL"], "env_files": ["../../.env"], "migrations_dir": "drizzle"},
     "../../.env", "POSTGRES_URL"),
    # the same, with init run at the workspace root: deploysafe.toml there, [app] dir names the package
    ("t3-turbo", ".", {"dir": "packages/db", "workflow": "push", "push": "pnpm run push",
                       "database_env": ["POSTGRES_URL"], "env_files": ["../../.env"]},
     ".env", "POSTGRES_URL"),
    ("yarn-app", ".", {"workflow": "push", "generate": "yarn db:generate", "push": "yarn db:push",
                       "database_env": ["DATABASE_URL"], "env_files": [".env"], "migrations_table": "my_migrations",
                       "migrations_schema": "public"},
     ".env", "DATABASE_URL"),
]


@pytest.mark.parametrize(("name", "app", "expected", "env_file", "var"), CASES,
                         ids=[f"{c[0]}@{c[1]}" for c in CASES])
def test_init_writes_what_the_app_uses_and_it_checks_and_plans(
    tree: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pg_url: str,
    name: str, app: str, expected: dict[str, Any], env_file: str, var: str,
) -> None:
    app_dir: Path = tree(name, app)
    code, out, err = _cli(capsys, "init", "--provider", "local", "--platform", "dotenv")
    assert (code, err) == (0, ""), err
    data = tomllib.loads((app_dir / "deploysafe.toml").read_text())
    assert {k: data["app"][k] for k in expected} == expected
    assert data["platform"]["env_file"] == env_file
    assert data["platform"].get("var", "DATABASE_URL") == var
    assert data["provider"]["database_url"] == "${" + var + "}"
    assert ".deploysafe/" in (app_dir / ".gitignore").read_text().splitlines()

    monkeypatch.setenv(var, pg_url)  # deploysafe reads production's URL from the same variable
    code, out, err = _cli(capsys, "--json", "config", "check")
    assert (code, err) == (0, ""), err
    described = json.loads(out)["app"]
    assert described["workflow"] == expected["workflow"] and described["database_env"] == [var]
    apply = expected["migrate"] if expected["workflow"] == "migrate" else expected["push"]
    assert described["commands"][expected["workflow"]] == apply

    write_var(app_dir / env_file, var, pg_url)  # the app's env file points at the same, real production
    code, out, err = _cli(capsys, "deploy", "--dry-run")
    assert code == 0, err
    loads = f", which {', '.join(expected['env_files'])} cannot override" if expected["env_files"] else ""
    assert f"run `{apply}` against production (with {var} set to it{loads})" in out
    assert ("verify the migrations table matches the journal" in out) == (expected["workflow"] == "migrate")


def test_init_follows_re_exported_schema_files_for_the_hook(tree: Any, capsys: pytest.CaptureFixture[str]) -> None:
    app_dir: Path = tree("ai-chatbot")
    assert _cli(capsys, "init", "--provider", "local")[0] == 0
    data = tomllib.loads((app_dir / "deploysafe.toml").read_text())
    assert data["hook"]["paths"] == ["lib/db/schema/index.ts", "lib/db/schema/chat.ts", "lib/db/schema/user.ts",
                                     "lib/db/migrations"]


def test_init_maps_host_user_password_fields_to_their_variables(tree: Any, capsys: pytest.CaptureFixture[str]) -> None:
    app_dir: Path = tree("bun-parts")
    assert _cli(capsys, "init", "--provider", "local")[0] == 0
    data = tomllib.loads((app_dir / "deploysafe.toml").read_text())
    assert (data["app"]["generate"], data["app"]["push"]) == ("bun run db:generate", "bun run db:push")
    assert data["app"]["database_env_parts"] == {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER",
                                                 "password": "PGPASSWORD", "database": "PGDATABASE"}


def test_an_env_file_loaded_with_override_is_refused_naming_the_flag(
    tree: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree("npm-override")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@127.0.0.1:5432/ov")
    assert _cli(capsys, "init", "--provider", "local")[0] == 0
    code, out, err = _cli(capsys, "config", "check")
    assert code == 2
    assert ("[app] push runs `dotenv -o -e .env.local -- drizzle-kit push`, whose dotenv-cli overrides the "
            "environment with .env.local") in err
    assert "fix: remove -o/--override" in err


def _init_edit_check(root: Path, capsys: pytest.CaptureFixture[str], edits: dict[str, str]) -> tuple[str, str]:
    """init, then edit what it wrote: `config check` must refuse (exit 2). Returns (what init wrote, stderr)."""
    assert _cli(capsys, "init", "--provider", "local")[0] == 0
    cfg = root / "deploysafe.toml"
    written = text = cfg.read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    cfg.write_text(text)
    code, _, err = _cli(capsys, "config", "check")
    assert code == 2, err
    return written, err


def test_a_variable_the_config_reads_but_deploysafe_does_not_set_is_refused_with_the_fix(
    tree: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTGRES_URL", "postgres://app:pw@127.0.0.1:5432/saas")
    _, err = _init_edit_check(tree("saas-starter"), capsys, {'database_env = ["POSTGRES_URL"]': 'database_env = ["DATABASE_URL"]'})
    assert "drizzle.config.ts reads POSTGRES_URL for its connection, which deploysafe does not set" in err
    assert 'fix: in deploysafe.toml [app]: database_env = ["DATABASE_URL", "POSTGRES_URL"]' in err


def test_a_hard_coded_url_is_refused_before_the_deploy(
    tree: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir: Path = tree("yarn-app")
    (app_dir / "drizzle.config.ts").write_text(
        'export default { dialect: "postgresql", schema: "./src/schema.ts",\n'
        '  dbCredentials: { url: "postgres://app:pw@db.example.com/prod" } };\n')
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@127.0.0.1:5432/yarn")
    assert _cli(capsys, "init", "--provider", "local")[0] == 0
    assert "# WARNING: dbCredentials.url is written as a literal" in (app_dir / "deploysafe.toml").read_text()
    code, out, err = _cli(capsys, "deploy", "--dry-run")
    assert code == 3
    assert "drizzle.config.ts writes dbCredentials.url as a literal" in err
    assert "fix: read it from the environment, e.g. `url: process.env.DATABASE_URL!`" in err
    assert "pw@" not in out + err


def test_a_step_run_through_turbo_is_refused_with_the_direct_script_as_the_fix(
    tree: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTGRES_URL", "postgres://app:pw@127.0.0.1:5432/acme")
    written, err = _init_edit_check(tree("t3-turbo"), capsys, {'dir = "packages/db"': 'dir = "."',
                                                               'push = "pnpm run push"': 'push = "pnpm run db:push"'})
    assert "# The Drizzle app is the workspace package in packages/db" in written
    assert "[app] push runs turbo (`turbo -F @acme/db push`): turbo refuses interactive tasks without a terminal" in err
    assert "fix: call the package's script directly: set [app] dir to the workspace package" in err
