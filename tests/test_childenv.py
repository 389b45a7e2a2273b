"""Secret by default, least privilege for children, nothing sensitive on a command line.

Children are real processes; what they got is read from /proc/<pid>/environ and /proc/<pid>/cmdline by a
stand-in that records its own (the kernel's view, which any local user's `ps e` could read).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from deploysafe import pg
from deploysafe.childenv import claimed, libpq_environment, user_environment
from deploysafe.config import CONFIG_NAME, LoadedConfig, parse_config
from deploysafe.errors import ConfigError, PlatformError
from deploysafe.platforms import make_platform
from deploysafe.providers.base import SnapshotKind
from deploysafe.providers.local import LocalProvider
from deploysafe.redact import redact
from support.cli import run_cli_in_process

TOKEN = "dht_9f8e7d6c5b4a3210hooktoken"
STRIPE = "sk_live_51Hstripe0123456789"
NEON_KEY = "napi_childenvtest0123456789abcdef"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/childenvwebhooksecret"


def record_script(out: Path) -> str:
    """A shell command that records the environ and argv of its own process, as the kernel shows them."""
    return f"cat /proc/$$/environ > {out}.env; cat /proc/$$/cmdline > {out}.argv"


def read_record(env_file: Path, argv_file: Path) -> tuple[dict[str, str], str]:
    """(environment, argv joined by spaces) as recorded: /proc files are NUL-separated."""
    env = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
    return env, argv_file.read_text().replace("\0", " ")


def recorded(out: Path) -> tuple[dict[str, str], str]:
    return read_record(out.with_suffix(".env"), out.with_suffix(".argv"))


CONFIG = """
[app]
env = {{ STRIPE_KEY = "${{STRIPE_KEY}}", STAGE = "${{STAGE:public}}" }}
pass_env = {pass_env}

[provider]
type = "neon"
project_id = "${{NEON_PROJECT_ID}}"
database = "neondb"
role = "neondb_owner"

[platform]
type = "command"
set_command = "true"
restart = "{restart}"

[notify]
webhook_env = "HOOK_URL"
"""

ENV = {"STRIPE_KEY": STRIPE, "STAGE": "production-eu", "NEON_PROJECT_ID": "cool-darkness-123456",
       "DEPLOY_HOOK_TOKEN": TOKEN, "NEON_API_KEY": NEON_KEY, "HOOK_URL": WEBHOOK}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("UNRELATED_USER_VAR", "kept")
    return ENV


def config_text(restart: str = 'curl -fsS -H \\"Authorization: Bearer ${DEPLOY_HOOK_TOKEN}\\" https://hooks.example',
                pass_env: str = "[]") -> str:
    return CONFIG.format(restart=restart, pass_env=pass_env)


# --- secret by default --------------------------------------------------------------------------------


def test_every_interpolated_value_is_secret_unless_public(environ: dict[str, str]) -> None:
    cfg = parse_config(config_text(), env=environ)
    assert redact(f"{TOKEN} {STRIPE}") == "**** ****"
    # public by key (a project id) or marked ${VAR:public}: readable
    assert redact("cool-darkness-123456 production-eu") == "cool-darkness-123456 production-eu"
    assert cfg.app.env == {"STRIPE_KEY": STRIPE, "STAGE": "production-eu"}
    # A shell command keeps the reference: the shell expands it from the child's environment.
    assert cfg.platform.restart == 'curl -fsS -H "Authorization: Bearer ${DEPLOY_HOOK_TOKEN}" https://hooks.example'
    # deploysafe's own: the restart's token, the Neon key, the webhook; not the app's STRIPE_KEY
    assert {"DEPLOY_HOOK_TOKEN", "NEON_API_KEY", "HOOK_URL", "RENDER_API_KEY"} <= claimed()
    assert "STRIPE_KEY" not in claimed() and "NEON_PROJECT_ID" not in claimed()


def test_reference_inside_single_quotes_is_refused_with_the_fix(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(config_text(restart=r'''curl -d 'token=${DEPLOY_HOOK_TOKEN}' x; echo \"'${DEPLOY_HOOK_TOKEN}' ok\"'''),
                     env=environ)
    # once: the second reference is inside double quotes, where the shell expands it
    assert str(e.value).count("is inside single quotes") == 1
    assert "platform.restart: ${DEPLOY_HOOK_TOKEN} is inside single quotes" in str(e.value)
    assert "'...'\"${DEPLOY_HOOK_TOKEN}\"'...'" in str(e.value)


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_config_show_prints_references_not_values(
    environ: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    json_flag: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    (tmp_path / CONFIG_NAME).write_text(config_text())
    r = run_cli_in_process(capsys, *json_flag, "config", "show")
    assert r.code == 0
    out, err = r.stdout, r.stderr
    for value in (TOKEN, STRIPE, NEON_KEY, WEBHOOK, "cool-darkness-123456"):
        assert value not in out + err
    if json_flag:
        shown = json.loads(out)
        assert shown["app"]["env"] == {"STRIPE_KEY": "${STRIPE_KEY}", "STAGE": "${STAGE:public}"}
        assert shown["provider"]["project_id"] == "${NEON_PROJECT_ID}"
        assert "${DEPLOY_HOOK_TOKEN}" in shown["platform"]["restart"]
    else:
        assert '"STRIPE_KEY" = "${STRIPE_KEY}"' in out and 'project_id = "${NEON_PROJECT_ID}"' in out
        assert "Bearer ${DEPLOY_HOOK_TOKEN}" in out


# --- least privilege for children -----------------------------------------------------------------------


def test_restart_gets_its_token_in_its_environment_never_on_argv(environ: dict[str, str], tmp_path: Path) -> None:
    rec = tmp_path / "restart"
    text = config_text(restart=f"{record_script(rec)}; test -n ${{DEPLOY_HOOK_TOKEN}}")
    platform = make_platform(LoadedConfig(parse_config(text, env=environ), tmp_path / CONFIG_NAME))
    platform.set_url("postgresql://app:snap-pw-1234@db.internal/snap")
    platform.pick_up()
    env, argv = recorded(rec)
    assert TOKEN not in argv and "${DEPLOY_HOOK_TOKEN}" in argv
    assert env["DEPLOY_HOOK_TOKEN"] == TOKEN  # the command names it: it gets it
    assert "snap-pw-1234" not in argv and env["DEPLOYSAFE_NEW_URL"].endswith("@db.internal/snap")
    for own in ("NEON_API_KEY", "HOOK_URL"):
        assert own not in env
    assert env["UNRELATED_USER_VAR"] == "kept" and env["STRIPE_KEY"] == STRIPE  # the user's own environment


def test_failing_restart_prints_the_reference_not_the_token(environ: dict[str, str], tmp_path: Path) -> None:
    text = config_text(restart='echo calling hook with ${DEPLOY_HOOK_TOKEN}; exit 3')
    platform = make_platform(LoadedConfig(parse_config(text, env=environ), tmp_path / CONFIG_NAME))
    with pytest.raises(PlatformError) as e:
        platform.pick_up()
    assert TOKEN not in str(e.value) + (e.value.hint or "")
    assert "calling hook with ****" in str(e.value) and "${DEPLOY_HOOK_TOKEN}" in (e.value.hint or "")


def test_app_steps_get_the_users_environment_without_deploysafes_credentials(
    environ: dict[str, str], tmp_path: Path
) -> None:
    from deploysafe.process import run_step

    parse_config(config_text(), env=environ)
    rec = tmp_path / "push"
    run_step("push", record_script(rec), cwd=tmp_path, env={"DATABASE_URL": "postgresql://app:pw-abcdef@h/db"}, timeout=10)
    env, _ = recorded(rec)
    assert env["DATABASE_URL"] == "postgresql://app:pw-abcdef@h/db" and env["UNRELATED_USER_VAR"] == "kept"
    for own in ("NEON_API_KEY", "HOOK_URL", "DEPLOY_HOOK_TOKEN"):
        assert own not in env, own
    # [app] pass_env hands one over on purpose
    rec2 = tmp_path / "push2"
    run_step("push", record_script(rec2), cwd=tmp_path, env={}, timeout=10, pass_env=["NEON_API_KEY"])
    assert recorded(rec2)[0]["NEON_API_KEY"] == NEON_KEY


def test_pass_env_is_read_from_the_config(environ: dict[str, str]) -> None:
    cfg = parse_config(config_text(pass_env='["NEON_API_KEY"]'), env=environ)
    assert cfg.app.pass_env == ["NEON_API_KEY"]
    env = user_environment("npm run db:push", pass_env=cfg.app.pass_env)
    assert env["NEON_API_KEY"] == NEON_KEY and "HOOK_URL" not in env


def test_libpq_children_get_only_libpq_and_system_settings(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "require")
    monkeypatch.setenv("PGDATABASE", "elsewhere")
    env = libpq_environment("s3cret-pw")
    assert env["PGPASSWORD"] == "s3cret-pw" and env["PGSSLMODE"] == "require" and env["PATH"] == os.environ["PATH"]
    assert "PGDATABASE" not in env and "UNRELATED_USER_VAR" not in env and "NEON_API_KEY" not in env


def _query_password_url(url: str) -> str:
    """The same URL with its password moved to a ?password= query parameter."""
    parts = urlsplit(url)
    assert parts.password
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, f"sslmode=disable&password={quote(parts.password, safe='')}", ""))


def test_pg_dump_and_pg_restore_never_see_a_password_on_argv(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    # Wrappers that record what the kernel shows for them, then run the real tool.
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        real = pg.find_tool(tool, 14)
        (wrappers / tool).write_text(
            f'#!/bin/sh\n[ "$1" = --version ] || {{ {record_script(tmp_path / tool)}; }}\n'
            f'exec {shlex.quote(real)} "$@"\n'
        )
        (wrappers / tool).chmod(0o755)
    monkeypatch.setenv("DEPLOYSAFE_PG_BIN", str(wrappers))
    pg.find_tool.cache_clear()
    password = urlsplit(pg_url).password
    assert password
    try:
        prov = LocalProvider(_query_password_url(pg_url), strategy="dump", retention={})
        prov.create_snapshot("pre-deploy-20261125T100000Z-childenv", SnapshotKind.PRE_DEPLOY)
        prov.delete("pre-deploy-20261125T100000Z-childenv")
    finally:
        pg.find_tool.cache_clear()
    seen = sorted(p.name.split(".")[0] for p in tmp_path.glob("*.argv"))
    assert seen == ["pg_dump", "pg_restore"]
    for argv_file in tmp_path.glob("*.argv"):
        env, argv = read_record(argv_file.with_suffix(".env"), argv_file)
        assert password not in argv and quote(password, safe="") not in argv and "password=" not in argv, argv
        assert re.search(r"--dbname=postgresql://\w+@", argv)
        assert env["PGPASSWORD"] == password
        for own in ("NEON_API_KEY", "HOOK_URL", "DEPLOY_HOOK_TOKEN", "STRIPE_KEY", "UNRELATED_USER_VAR"):
            assert own not in env, (argv_file.name, own)
