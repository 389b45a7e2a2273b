"""The deploysafe.toml contract: discovery, ${VAR}, validation messages with key paths, secrets."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from deploysafe.config import CONFIG_NAME, find_config, json_schema, load_config, parse_config
from deploysafe.errors import ConfigError
from support.cli import run_cli_in_process

ROOT = Path(__file__).resolve().parent.parent

LOCAL = """
[provider]
type = "local"
database_url = "${DATABASE_URL}"

[platform]
type = "dotenv"
env_file = ".env"
"""

NEON = """
[provider]
type = "neon"
project_id = "${NEON_PROJECT_ID}"
database = "neondb"
role = "neondb_owner"

[platform]
type = "vercel"
project = "prj_123"
"""

ENV = {"DATABASE_URL": "postgres://app@127.0.0.1:5432/prod", "NEON_PROJECT_ID": "cool-darkness-123456"}
_STAMP = re.compile(r"^\d\d:\d\d:\d\d (✗ )?", re.M)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    r = run_cli_in_process(capsys, *args)
    return r.code, r.stdout, _STAMP.sub("", r.stderr)  # non-TTY lines carry a UTC time stamp


# --- parsing --------------------------------------------------------------------------------


def test_minimal_local_config_gets_every_default() -> None:
    cfg = parse_config(LOCAL, env=ENV)
    assert cfg.provider.database_url == ENV["DATABASE_URL"]
    assert (cfg.app.generate, cfg.app.push, cfg.app.step_timeout) == ("npm run db:generate", "npm run db:push", 900)
    assert (cfg.provider.strategy, cfg.platform.var, cfg.lint.destructive, cfg.state.dir) == (
        "dump", "DATABASE_URL", "block", ".deploysafe"
    )
    assert (cfg.retention.pre_deploy, cfg.retention.daily, cfg.retention.weekly) == (7 * 86400, 30 * 86400, 90 * 86400)
    assert (cfg.probes.deadline, cfg.probes.interval) == (60, 2)


def test_interpolation_from_the_environment() -> None:
    text = NEON + '\n[app]\nenv = { GREETING = "hi ${WHO}, again ${WHO}" }\n[deploy]\napp_deploy = "deploy.sh ${NEON_PROJECT_ID}"\n'
    cfg = parse_config(text, env={**ENV, "WHO": "you"})
    assert cfg.provider.project_id == "cool-darkness-123456"
    assert cfg.app.env == {"GREETING": "hi you, again you"}
    # In a shell command ${VAR} stays a reference the shell expands from the child's environment.
    assert cfg.deploy.app_deploy == "deploy.sh ${NEON_PROJECT_ID}"
    # $VAR without braces and $${...} are left alone: only ${NAME} is interpolated.
    assert parse_config(NEON + '[deploy]\napp_deploy = "echo $HOME"\n', env=ENV).deploy.app_deploy == "echo $HOME"


def test_unset_variable_names_the_key() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(NEON, env={})
    assert str(e.value) == "provider.project_id: environment variable NEON_PROJECT_ID is not set; export it or edit the file"


def test_durations_parse_everywhere() -> None:
    cfg = parse_config(LOCAL + '[probes]\ndeadline = "90s"\ninterval = "500ms"\n[[probes.http]]\nname = "h"\nurl = "http://x/"\ntimeout = "2s"\n', env=ENV)
    assert (cfg.probes.deadline, cfg.probes.interval, cfg.probes.http[0].timeout) == (90, 0.5, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LOCAL.replace('"local"', '"nope"'), "provider.type: Input should be 'neon' or 'local'"),
        (LOCAL.replace('database_url = "${DATABASE_URL}"', ""),
         'provider.database_url: required key is missing when type = "local" (for example "${DATABASE_URL}")'),
        (NEON.replace('role = "neondb_owner"', ""), 'provider.role: required key is missing when type = "neon"'),
        (LOCAL.split("[platform]")[0], "platform: required key is missing"),
        (LOCAL + '[retention]\ndaily = "7 days"\n',
         "retention.daily: '7 days' is not a duration; write a number and a unit with no space: "
         "'500ms', '90s', '10m', '2h', '7d' or '1w'"),
        (LOCAL.replace('type = "local"', 'type = "local"\ncolour = "blue"'),
         "provider.colour: unknown key; check the spelling (see `deploysafe config schema`)"),
        (LOCAL + "[probes]\n[[probes.http]]\nname = \"h\"\n", "probes.http[0].url: required key is missing"),
        (LOCAL + '[[probes.http]]\nname = "h"\nurl = "localhost:3000"\n', "probes.http[0].url: must start with http:// or https://"),
        (LOCAL + '[lint]\ndestructive = "maybe"\n', "lint.destructive: Input should be 'block', 'warn' or 'allow'"),
        (LOCAL.replace("${DATABASE_URL}", "postgres://app:hunter22@db/prod"),
         'provider.database_url: the file holds a password; secrets come only from the environment: '
         'write database_url = "${DATABASE_URL}"'),
    ],
    ids=["unknown-provider", "missing-local-url", "missing-neon-role", "missing-platform", "7-days", "unknown-key",
         "missing-probe-url", "bad-probe-url", "bad-literal", "password-literal"],
)
def test_bad_config_names_the_key_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, env=ENV)
    assert str(e.value) == message


def test_every_problem_is_listed_on_its_own_line() -> None:
    text = LOCAL.replace('"local"', '"nope"') + '[retention]\ndaily = "7 days"\nhourly = "1h"\n'
    with pytest.raises(ConfigError) as e:
        parse_config(text, env=ENV)
    lines = str(e.value).splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["provider.type", "retention.daily", "retention.hourly"]


def test_password_in_the_environment_is_fine_and_registered() -> None:
    from deploysafe.redact import redact

    url = "postgres://app:s3cr3t-pw@db/prod"
    cfg = parse_config(LOCAL, env={"DATABASE_URL": url})
    assert cfg.provider.database_url == url
    assert "s3cr3t-pw" not in redact("password is s3cr3t-pw")


# --- discovery ------------------------------------------------------------------------------


def test_found_from_the_working_directory_upward(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text(LOCAL)
    deep = tmp_path / "apps" / "web" / "src"
    deep.mkdir(parents=True)
    assert find_config(cwd=deep) == (tmp_path / CONFIG_NAME).resolve()
    (tmp_path / "apps" / CONFIG_NAME).write_text(LOCAL)
    assert find_config(cwd=deep) == (tmp_path / "apps" / CONFIG_NAME).resolve()  # the nearest wins


def test_explicit_then_env_then_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / CONFIG_NAME).write_text(LOCAL)
    monkeypatch.chdir(tmp_path / "c")
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    assert find_config() == tmp_path / "c" / CONFIG_NAME
    monkeypatch.setenv("DEPLOYSAFE_CONFIG", str(tmp_path / "b" / CONFIG_NAME))
    assert find_config() == tmp_path / "b" / CONFIG_NAME
    assert find_config(str(tmp_path / "a" / CONFIG_NAME)) == tmp_path / "a" / CONFIG_NAME


def test_nothing_found_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    with pytest.raises(ConfigError) as e:
        find_config(cwd=tmp_path)
    assert str(e.value) == (
        f"no deploysafe.toml found in {tmp_path.resolve()} or any parent folder\n"
        "  fix: run `deploysafe init` in your app, or pass --config PATH"
    )


def test_loaded_config_resolves_paths_next_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", ENV["DATABASE_URL"])
    (tmp_path / CONFIG_NAME).write_text(LOCAL + '[app]\ndir = "web"\n[state]\ndir = "/var/lib/ds"\n')
    loaded = load_config(str(tmp_path / CONFIG_NAME))
    assert loaded.root == tmp_path.resolve()
    assert loaded.app_dir == tmp_path.resolve() / "web"
    assert loaded.state_dir == Path("/var/lib/ds")
    assert loaded.resolve(".env") == tmp_path.resolve() / ".env"


# --- the CLI: config check / show / schema ----------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LOCAL.replace('"local"', '"nope"'), "provider.type: Input should be 'neon' or 'local'"),
        (LOCAL.split("[platform]")[0], "platform: required key is missing"),
        (LOCAL + '[retention]\ndaily = "7 days"\n',
         "retention.daily: '7 days' is not a duration; write a number and a unit with no space: "
         "'500ms', '90s', '10m', '2h', '7d' or '1w'"),
        (LOCAL + "[app]\nfoo = 1\n", "app.foo: unknown key; check the spelling (see `deploysafe config schema`)"),
    ],
    ids=["unknown-provider", "missing-key", "7-days", "unknown-key"],
)
def test_config_check_exits_2_with_one_line(project: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    (project / CONFIG_NAME).write_text(text)
    code, out, err = _cli(capsys, "config", "check")
    assert (code, out, err) == (2, "", message + "\n")


def test_config_check_not_toml(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / CONFIG_NAME).write_text("[provider\ntype = 'local'\n")
    code, out, err = _cli(capsys, "config", "check")
    path = (project / CONFIG_NAME).resolve()
    assert (code, out) == (2, "")
    assert err == f"{path}: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 10)\n  fix: fix the syntax at the line shown\n"


def test_config_check_missing_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "--config", "nope.toml", "config", "check")
    assert (code, out) == (2, "")
    assert err == "config file nope.toml does not exist\n  fix: pass an existing file with --config, or run `deploysafe init`\n"


def test_config_check_not_utf8(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / CONFIG_NAME).write_bytes(b"\xff\xfe[provider]\n")
    code, _, err = _cli(capsys, "config", "check")
    assert code == 2
    assert err.startswith(f"cannot read {(project / CONFIG_NAME).resolve()}: 'utf-8' codec can't decode")
    assert "Traceback" not in err


def test_config_check_ok_and_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / CONFIG_NAME).write_text(LOCAL)
    code, out, err = _cli(capsys, "config", "check")
    assert code == 0 and err == ""
    assert _STAMP.sub("", out) == (f"✓ {project.resolve() / CONFIG_NAME} is valid\n"
                                   "  workflow push: generate `npm run db:generate`, push `npm run db:push`\n"
                                   "  each step gets DATABASE_URL set to its target database\n")
    code, out, err = _cli(capsys, "--json", "config", "check")
    assert code == 0 and {k: v for k, v in json.loads(out).items() if k != "app"} == {
        "ok": True, "path": str(project.resolve() / CONFIG_NAME)}


def test_deploysafe_config_env_is_used_by_the_cli(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = project / "ops" / "prod.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(LOCAL)
    monkeypatch.setenv("DEPLOYSAFE_CONFIG", str(elsewhere))
    code, out, _ = _cli(capsys, "--json", "config", "check")
    assert code == 0 and json.loads(out)["path"] == str(elsewhere.resolve())


SECRETS = {
    "NEON_API_KEY": "napi_k3yk3yk3yk3yk3yk3yk3y",
    "DATABASE_URL": "postgresql://app:Pa%24%24w0rd-xyz@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0000/B0000/abcdefghijklmnopqrstuvwx",
}
LEAKS = ["napi_k3yk3yk3yk3yk3yk3yk3y", "Pa%24%24w0rd-xyz", "Pa$$w0rd-xyz", "abcdefghijklmnopqrstuvwx"]
# Secrets deliberately routed into resolved values, so redaction (not absence) is what keeps them out.
LEAKY = LOCAL + """
[app]
env = { NEON_API_KEY = "${NEON_API_KEY}", HOOK = "${SLACK_WEBHOOK_URL}", DATABASE_URL = "${DATABASE_URL}" }

[notify]
webhook_env = "SLACK_WEBHOOK_URL"
"""


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_config_show_never_prints_a_secret(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, json_flag: list[str]) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    (project / CONFIG_NAME).write_text(LEAKY)
    code, out, err = _cli(capsys, *json_flag, "config", "show")
    assert code == 0
    for leak in LEAKS:
        assert leak not in out + err
    # Interpolated values are shown as the references the file holds, not their values.
    if json_flag:
        shown = json.loads(out)
        assert shown["app"]["env"] == {"NEON_API_KEY": "${NEON_API_KEY}", "HOOK": "${SLACK_WEBHOOK_URL}",
                                       "DATABASE_URL": "${DATABASE_URL}"}
        assert shown["provider"]["database_url"] == "${DATABASE_URL}"
        assert shown["retention"]["pre_deploy"] == "1w"
    else:
        assert tomllib.loads(out.split("\n", 1)[1])["notify"]["webhook_env"] == "SLACK_WEBHOOK_URL"


def test_config_schema_is_valid_and_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "config", "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema == json_schema()
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    validator.validate(tomllib.loads(LOCAL))
    validator.validate(tomllib.loads(NEON))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"```toml\n(.*?)```", readme, re.S):
        validator.validate(tomllib.loads(block))
    # The schema rejects what the loader rejects.
    bad = tomllib.loads(LOCAL + '[retention]\ndaily = "7 days"\n')
    assert not validator.is_valid(bad)
    assert not validator.is_valid(tomllib.loads(LOCAL + "[app]\nfoo = 1\n"))


def test_config_show_output_is_the_same_config(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # What `config show` prints is itself a valid deploysafe.toml that means the same thing.
    rich = NEON + """
[app]
env = { NODE_ENV = "production" }
[probes]
deadline = "90s"
[[probes.http]]
name = "health"
url = "http://127.0.0.1:3000/health"
headers_env = { Authorization = "HEALTH_TOKEN" }
[[probes.sql]]
name = "users"
query = "select 1 from users limit 1"
[drill.targets]
total = "20m"
[[drill.checks]]
name = "users"
query = "select count(*) from users"
min = 1
[hook]
branches = ["main", "release/*"]
"""
    (project / CONFIG_NAME).write_text(rich)
    code, out, _ = _cli(capsys, "config", "show")
    assert code == 0
    assert parse_config(out, env=ENV) == parse_config(rich, env=ENV)
