"""`deploysafe init` and the drizzle.config.* reader: a starter that `config check` accepts."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from deploysafe.drizzle.app import normalise, read_app
from support.cli import run_cli_in_process

FIXTURE_APP = Path(__file__).resolve().parents[1] / "fixtures" / "drizzle-app"
PLATFORMS = ["dotenv", "command", "vercel", "render", "railway", "fly", "heroku"]
ENV = {
    "NEON_PROJECT_ID": "cool-darkness-123456",
    "DATABASE_URL": "postgres://app@127.0.0.1:5432/prod",
    "VERCEL_PROJECT_ID": "prj_abc",
    "VERCEL_ORG_ID": "team_abc",
}
_STAMP = re.compile(r"^\d\d:\d\d:\d\d (✗ |✓ )?", re.M)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixture Drizzle app (no node_modules needed: init only reads files)."""
    dest = tmp_path / "app"
    shutil.copytree(FIXTURE_APP, dest, ignore=shutil.ignore_patterns("node_modules", "drizzle", ".env"))
    monkeypatch.chdir(dest)
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return dest


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    r = run_cli_in_process(capsys, *args)
    return r.code, _STAMP.sub("", r.stdout), _STAMP.sub("", r.stderr)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("provider", ["neon", "local"])
def test_init_writes_a_config_that_config_check_accepts(
    app: Path, capsys: pytest.CaptureFixture[str], provider: str, platform: str
) -> None:
    code, out, err = _cli(capsys, "init", "--provider", provider, "--platform", platform)
    path = app / "deploysafe.toml"
    assert (code, err) == (0, "")
    assert out == "wrote deploysafe.toml; next: edit it, then run `deploysafe config check`\n"
    code, out, err = _cli(capsys, "--json", "config", "check")
    assert (code, err) == (0, ""), err
    assert json.loads(out) == {"ok": True, "path": str(path.resolve()), "app": {
        "workflow": "push", "commands": {"generate": "npm run db:generate", "push": "npm run db:push"},
        "database_env": ["DATABASE_URL"], "env_files": []}}


def test_init_reads_package_json_and_drizzle_config(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(capsys, "init", "--provider", "local")[0] == 0
    text = (app / "deploysafe.toml").read_text()
    assert text.splitlines()[1] == "# Package manager: npm (package-lock.json). Workflow: push (a db:push script)."
    assert text.splitlines()[2] == "# Read drizzle.config.ts: schema = ./src/schema.ts, out = ./drizzle"
    assert text.splitlines()[3] == "# Its dbCredentials read DATABASE_URL; every step gets them set to the database it must reach."
    data = tomllib.loads(text)
    assert data["app"] == {
        "dir": ".",
        "workflow": "push",
        "generate": "npm run db:generate",
        "push": "npm run db:push",
        "migrate": "npm run db:migrate",
        "database_env": ["DATABASE_URL"],
        "env_files": [],
        "step_timeout": "15m",
        "migrations_dir": "drizzle",
    }
    assert (app / ".gitignore").read_text().endswith("# deploysafe's state (journal, locks, reports)\n.deploysafe/\n")
    assert data["hook"]["paths"] == ["src/schema.ts", "drizzle"]
    assert data["provider"] == {"type": "local", "database_url": "${DATABASE_URL}", "strategy": "dump"}
    assert data["lint"]["destructive"] == "block"
    # A commented starter: every section explains itself.
    assert text.count("#") >= 8


def test_init_refuses_to_overwrite_without_force(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (app / "deploysafe.toml").write_text("# mine\n")
    code, out, err = _cli(capsys, "init")
    assert (code, out) == (2, "")
    assert err == "deploysafe.toml already exists\n  fix: edit it, or pass --force to overwrite it\n"
    assert (app / "deploysafe.toml").read_text() == "# mine\n"
    assert _cli(capsys, "init", "--force")[0] == 0
    assert (app / "deploysafe.toml").read_text().startswith("# deploysafe.toml: written by `deploysafe init`")


def test_init_without_package_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, "init")
    assert code == 3
    assert err == "no package.json in .\n  fix: run `deploysafe init` in your Node app's folder, or pass --dir\n"
    assert not (tmp_path / "deploysafe.toml").exists()


def test_init_without_db_scripts_uses_drizzle_kit(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"start": "node ."}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEON_PROJECT_ID", "p")
    assert _cli(capsys, "init", "--dir", str(tmp_path))[0] == 0
    data = tomllib.loads((tmp_path / "deploysafe.toml").read_text())
    assert (data["app"]["generate"], data["app"]["push"]) == ("npx drizzle-kit generate", "npx drizzle-kit push")
    assert data["app"]["migrations_dir"] == "drizzle"  # drizzle-kit's default out folder
    assert data["hook"]["paths"] == ["drizzle"]


def test_odd_paths_cannot_break_the_toml(tmp_path: Path) -> None:
    from deploysafe.ops.init import render_starter

    (tmp_path / "package.json").write_text("{}")
    (tmp_path / "drizzle.config.json").write_text(json.dumps({"schema": ['db/"quoted".ts', "db\\win.ts"], "out": "mig rations"}))
    data = tomllib.loads(render_starter(tmp_path, provider="local", platform="dotenv"))
    assert data["hook"]["paths"] == ['db/"quoted".ts', "db\\win.ts", "mig rations"]
    assert data["app"]["migrations_dir"] == "mig rations"


# --- reading drizzle.config.* without running it ------------------------------------------------


def test_reads_ts_config_ignoring_comments(tmp_path: Path) -> None:
    (tmp_path / "drizzle.config.ts").write_text(
        """import { defineConfig } from "drizzle-kit";
// out: "./not-this",
/* schema: "./nor-this.ts", */
export default defineConfig({
  dialect: 'postgresql',
  schema: ["./src/db/schema.ts", `./src/db/auth.ts`],
  out: "./migrations/",
  dbCredentials: { url: process.env.DATABASE_URL! },
});
"""
    )
    app = read_app(tmp_path)
    assert app.config_file == tmp_path / "drizzle.config.ts"
    assert (app.schema, app.out, app.dialect) == (["./src/db/schema.ts", "./src/db/auth.ts"], "./migrations/", "postgresql")
    assert app.scripts == {}


@pytest.mark.parametrize("name", ["drizzle.config.mjs", "drizzle.config.js", "drizzle.config.cjs", "drizzle.config.mts"])
def test_reads_js_variants(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("module.exports = { schema: './schema.js', out: './out' };\n")
    app = read_app(tmp_path)
    assert (app.config_file, app.schema, app.out) == (tmp_path / name, ["./schema.js"], "./out")


def test_reads_json_config_and_tolerates_broken_files(tmp_path: Path) -> None:
    (tmp_path / "drizzle.config.json").write_text('{"schema": "./s.ts", "out": "./o", "dialect": "postgresql"}')
    (tmp_path / "package.json").write_text('{"scripts": {"db:push": "drizzle-kit push"}}')
    app = read_app(tmp_path)
    assert (app.schema, app.out, app.dialect, app.scripts) == (["./s.ts"], "./o", "postgresql", {"db:push": "drizzle-kit push"})
    (tmp_path / "drizzle.config.json").write_text("{not json")
    (tmp_path / "package.json").write_text("[1, 2]")
    app = read_app(tmp_path)
    assert (app.schema, app.out, app.scripts) == ([], "drizzle", {})


def test_fixture_app_is_read_as_drizzle_kit_would() -> None:
    app = read_app(FIXTURE_APP)
    assert (app.schema, app.out, app.dialect) == (["./src/schema.ts"], "./drizzle", "postgresql")
    assert app.scripts["db:generate"] == "drizzle-kit generate" and app.scripts["db:push"] == "drizzle-kit push"


@pytest.mark.parametrize(("raw", "clean"), [("./drizzle/", "drizzle"), ("././a/b", "a/b"), (" src ", "src"), ("x", "x")])
def test_normalise(raw: str, clean: str) -> None:
    assert normalise(raw) == clean
