"""Which database the app's tooling really reaches, and whether deploysafe can choose it.

deploysafe runs the app's own generate/push/migrate commands and must point each one at
a database of its choosing (production, or the throwaway rehearsal copy). Those commands
read their connection from the variables named in ``drizzle.config.*``'s ``dbCredentials``,
possibly loaded from env files. So each step gets those variables set to the intended URL
(:func:`step_env`), and before a deploy :func:`check` refuses the cases where that cannot
work: a URL written into the config, a variable deploysafe was not told about, an env file
loaded with override (dotenv's ``override: true``, ``dotenv -o``, env-cmd without
``--no-override``) that would replace what deploysafe set.

The check reads files; it cannot see every way a config could build its URL. The deploy
therefore also proves the target at run time: production's schema fingerprint must not
change during the steps that must not touch it (see :mod:`deploysafe.deploy.run`).
"""

from __future__ import annotations

import re
import shlex
from typing import Any
from urllib.parse import unquote, urlsplit

from deploysafe.config import LoadedConfig
from deploysafe.drizzle.app import read_app, script_env
from deploysafe.drizzle.pkgmanager import script_of
from deploysafe.errors import PreconditionError
from deploysafe.redact import register_secret, url_password


def url_parts(url: str) -> dict[str, str]:
    """host, port, user, password, database of a postgres:// URL (decoded)."""
    u = urlsplit(url)
    parts = {
        "host": u.hostname or "",
        "port": str(u.port or 5432),
        "user": unquote(u.username or ""),
        "password": unquote(u.password or ""),
        "database": unquote(u.path.lstrip("/")),
    }
    return parts


def step_env(loaded: LoadedConfig, database_url: str) -> dict[str, str]:
    """The extra environment of a step that must reach ``database_url``."""
    app = loaded.config.app
    register_secret(url_password(database_url))
    env = dict(app.env)
    for name in app.database_env:
        env[name] = database_url
    if app.database_env_parts:
        parts = url_parts(database_url)
        register_secret(parts["password"])
        for part, name in app.database_env_parts.items():
            env[name] = parts[part]
    # dotenv (also bundled in drizzle-kit, which loads .env) overrides set variables when this says so
    env["DOTENV_CONFIG_OVERRIDE"] = ""
    return env


def commands(loaded: LoadedConfig) -> list[tuple[str, str]]:
    """(key, command) of every step that talks to a database in the configured workflow."""
    app = loaded.config.app
    out = [("generate", app.generate)] if app.generate else []
    out.append(("migrate", app.migrate) if app.workflow == "migrate" else ("push", app.push))
    return out


def problems(loaded: LoadedConfig) -> list[tuple[str, str]]:
    """(problem, fix) for each way a step could reach a database other than the one deploysafe sets."""
    app_cfg = loaded.config.app
    app = read_app(loaded.app_dir)
    found: list[tuple[str, str]] = []
    set_vars = set(app_cfg.database_env) | set(app_cfg.database_env_parts.values())
    if app.config_file is not None:
        cfg = app.config_file.name
        for key in app.hard_coded:
            found.append((
                f"{cfg} writes dbCredentials.{key} as a literal, so no step can be pointed at the snapshot or the "
                "rehearsal copy",
                f"read it from the environment, e.g. `{key}: process.env.DATABASE_URL!`, and name that variable in "
                "[app] database_env",
            ))
        missing_urls = [v for v in app.url_vars if v not in set_vars]
        missing_parts = {p: v for p, v in app.part_vars.items() if v not in set_vars}
        if missing_urls or missing_parts:
            fixes = []
            if missing_urls:
                fixes.append(f"database_env = {_toml_list(app_cfg.database_env + missing_urls)}")
            if missing_parts:
                fixes.append("database_env_parts = { " + ", ".join(f'{p} = "{v}"' for p, v in missing_parts.items()) + " }")
            found.append((
                f"{cfg} reads {', '.join([*missing_urls, *missing_parts.values()])} for its connection, which deploysafe "
                "does not set for its steps; they would reach whatever the app's environment or env files say",
                "in deploysafe.toml [app]: " + "; ".join(fixes),
            ))
        if app.env_override:
            found.append((
                f"{cfg} loads an env file with `override: true`, which replaces the URL deploysafe sets",
                "drop `override: true` (dotenv then keeps variables that are already set)",
            ))
    for key, command in commands(loaded):
        text = command
        try:
            argv = shlex.split(command)
        except ValueError:
            argv = []
        run = script_of(argv)
        if run and run[1] in app.scripts:
            text = app.scripts[run[1]]
        if re.search(r"(?:^|[\s;&|])turbo\s", text + " "):
            found.append((
                f"[app] {key} runs turbo (`{text}`): turbo refuses interactive tasks without a terminal and may "
                "replay a cached run instead of running the step",
                "call the package's script directly: set [app] dir to the workspace package that holds "
                "drizzle.config.* and the command to its own script (e.g. `pnpm run push`); `deploysafe init` "
                "at the workspace root writes that",
            ))
        senv = script_env(text, app.scripts)
        if senv.override:
            found.append((
                f"[app] {key} runs `{text}`, whose {senv.tool} overrides the environment with "
                f"{', '.join(senv.files)}, replacing the URL deploysafe sets",
                "remove -o/--override (dotenv-cli, dotenvx --overload) or add --no-override (env-cmd)",
            ))
    return found


def describe(loaded: LoadedConfig) -> dict[str, Any]:
    """What the steps run and which variables point them: for `config check` and the plan."""
    app = loaded.config.app
    return {
        "workflow": app.workflow,
        "commands": dict(commands(loaded)),
        "database_env": [*app.database_env, *app.database_env_parts.values()],
        "env_files": list(dict.fromkeys([*app.env_files, *read_app(loaded.app_dir).env_files])),
    }


def check(loaded: LoadedConfig) -> None:
    """Refuse, before anything runs, a deploy whose steps deploysafe could not point at its target."""
    found = problems(loaded)
    if found:
        raise PreconditionError(
            "cannot direct the app's database steps: " + "; ".join(p for p, _ in found),
            hint="; ".join(dict.fromkeys(f for _, f in found)),
        )


def _toml_list(names: list[str]) -> str:
    return "[" + ", ".join(f'"{n}"' for n in dict.fromkeys(names)) + "]"
