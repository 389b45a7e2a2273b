"""Commands about the app and its config: config check/show/schema, init, lint, demo."""

from __future__ import annotations

from typing import Any

import click

from deploysafe import platforms, providers
from deploysafe.cli.context import Ctx, pass_ctx
from deploysafe.cli.options import json_option

# --- config -------------------------------------------------------------------------------


@click.group("config")
def config_group() -> None:
    """Validate, show and describe deploysafe.toml."""


@config_group.command("check")
@pass_ctx
def config_check(ctx: Ctx) -> None:
    """Validate deploysafe.toml and print each problem with its key path.

    Example: deploysafe config check --config app/deploysafe.toml

    Exits 0 when the file is valid and 2 when it is not.
    """
    from deploysafe.console import console
    from deploysafe.drizzle.target import describe, problems
    from deploysafe.errors import ConfigError

    loaded = ctx.load()
    found = problems(loaded)
    if found:
        raise ConfigError(f"{loaded.path}: " + "; ".join(p for p, _ in found), hint="; ".join(dict.fromkeys(f for _, f in found)))
    app = describe(loaded)
    if ctx.json:
        console.result({"ok": True, "path": str(loaded.path), "app": app})
    else:
        console.ok(f"{loaded.path} is valid")
        console.plain(f"  workflow {app['workflow']}: " + ", ".join(f"{k} `{c}`" for k, c in app["commands"].items()))
        console.plain(f"  each step gets {', '.join(app['database_env'])} set to its target database"
                      + (f"; env files the app loads: {', '.join(app['env_files'])}" if app["env_files"] else ""))


@config_group.command("show")
@pass_ctx
def config_show(ctx: Ctx) -> None:
    """Print the resolved config (defaults filled in, ${VAR} references as written, secrets redacted).

    Example: deploysafe config show --json
    """
    from deploysafe.config import shown
    from deploysafe.console import console

    loaded = ctx.load()
    data = shown(loaded)
    if ctx.json:
        console.result(data)
    else:
        console.plain(f"# {loaded.path}")
        console.plain(_toml_dump(data))


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of deploysafe.toml (for editor completion).

    Example: deploysafe config schema > deploysafe.schema.json
    """
    import json

    from deploysafe.config import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


INLINE_TABLES = ("env", "headers_env", "database_env_parts")  # maps printed as `key = { ... }`


def _toml_dump(data: dict[str, Any]) -> str:
    """The resolved config as TOML text (for `config show`; tomllib only reads)."""
    lines: list[str] = []
    for section, body in data.items():
        lines += _toml_table(section, body)
    return "\n".join(lines).strip()


def _toml_value(v: Any) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list) and not any(isinstance(x, dict) for x in v):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def _is_array_of_tables(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and isinstance(v[0], dict)


def _toml_pairs(d: dict[str, Any]) -> list[str]:
    return [f"{k} = {_toml_value(v)}" for k, v in d.items() if v is not None]


def _toml_table(prefix: str, d: dict[str, Any]) -> list[str]:
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and not _is_array_of_tables(v)}
    lines = [f"\n[{prefix}]", *_toml_pairs(scalars)]
    for k, v in d.items():
        if isinstance(v, dict) and k not in INLINE_TABLES:
            lines += _toml_table(f"{prefix}.{k}", v)
        elif isinstance(v, dict):
            lines.append(f"{k} = {_toml_value(v)}")
        elif _is_array_of_tables(v):
            for item in v:
                lines += [f"\n[[{prefix}.{k}]]", *_toml_pairs(item)]
    return lines


# --- init ---------------------------------------------------------------------------------


@click.command("init")
@click.option("--dir", "app_dir", default=".", show_default=True, type=click.Path(file_okay=False), help="The app folder (where package.json is).")
@click.option("--provider", type=click.Choice(providers.TYPES), default="neon", show_default=True, help="Snapshot backend.")
@click.option("--platform", type=click.Choice(platforms.TYPES), default="dotenv", show_default=True, help="Where the app runs.")
@click.option("--force", is_flag=True, help="Overwrite an existing deploysafe.toml.")
def init_cmd(app_dir: str, provider: str, platform: str, force: bool) -> None:
    """Write a commented starter deploysafe.toml after reading package.json and drizzle.config.*.

    Example: deploysafe init --provider neon --platform vercel

    Run it once in your app; then `deploysafe config check`.
    """
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.ops.init import write_starter

    path = write_starter(Path(app_dir), provider=provider, platform=platform, force=force)
    console.ok(f"wrote {path}; next: edit it, then run `deploysafe config check`")


# --- lint -------------------------------------------------------------------------


@click.command("lint")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@json_option("Print the findings as JSON on stdout.")
@pass_ctx
def lint_cmd(ctx: Ctx, paths: tuple[str, ...]) -> int:
    """Classify migration SQL as destructive, locking or info (squawk + PostgreSQL's parser).

    Example: deploysafe lint drizzle/

    Use it in CI or a git hook to stop a destructive migration before a deploy runs it.
    PATH may be .sql files or folders; without PATH it lints the app's migrations not yet
    applied (per drizzle's journal table when DATABASE_URL is set, else all of them). Each
    finding prints as `file:line  severity  rule  message  url`. Exits 3 when [lint]
    destructive = "block" (the default, also without a config) stops a statement; a
    `-- deploysafe: allow <rule>` comment above it allows that one statement.
    """
    from deploysafe.drizzle.lint import run_lint

    return run_lint(list(paths), config_path=ctx.config_path, as_json=ctx.json)


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Work here instead of a temporary folder.")
@click.option("--keep", is_flag=True, help="Leave the app and database running, and print how to stop them.")
def demo_cmd(directory: str | None, keep: bool) -> int:
    """Show the whole job on this machine: a good deploy, then a bad one caught and rolled back.

    Example: deploysafe demo

    Needs only Node >= 20 (PostgreSQL comes from this machine or the pgserver wheel).
    """
    from pathlib import Path

    from deploysafe.demo.run import run_demo

    return run_demo(Path(directory) if directory else None, keep)

