"""Command-line interface. Only click commands live here; each calls one function.

Heavy modules (httpx, pydantic adapters, gitpython, psycopg) are imported inside the
commands that need them, so ``deploysafe --version`` and the hook's no-op path stay fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from deploysafe import __version__
from deploysafe.errors import EXIT_CODES

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig

EXIT_TABLE = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())


class Ctx:
    def __init__(self, config_path: str | None, json_mode: bool) -> None:
        self.config_path = config_path
        self.json = json_mode
        self._loaded: LoadedConfig | None = None

    def load(self) -> LoadedConfig:
        if self._loaded is None:
            from deploysafe.config import load_config

            self._loaded = load_config(self.config_path)
        return self._loaded


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nExit codes:\n" + EXIT_TABLE,
)
@click.version_option(__version__, prog_name="deploysafe")
@click.option("--config", "config_path", metavar="PATH", help="deploysafe.toml to use (default: search upward; env DEPLOYSAFE_CONFIG).")
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable result on stdout; human logs go to stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Show more detail, including each command's output.")
@click.option("--no-color", is_flag=True, help="No ANSI colours (also honoured: NO_COLOR).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, json_mode: bool, verbose: bool, no_color: bool) -> None:
    """Safe database deploys for Drizzle ORM apps on Neon or PostgreSQL.

    Takes a snapshot of production, runs your own `npm run db:generate` and
    `npm run db:push`, probes the app, and rolls DATABASE_URL back to the
    snapshot when anything fails.
    """
    from deploysafe.console import console

    console.configure(json_mode=json_mode, verbose=verbose, no_color=no_color)
    ctx.obj = Ctx(config_path, json_mode)


# --- config -------------------------------------------------------------------------------


@cli.group("config")
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

    loaded = ctx.load()
    if ctx.json:
        console.result({"ok": True, "path": str(loaded.path)})
    else:
        console.ok(f"{loaded.path} is valid")


@config_group.command("show")
@pass_ctx
def config_show(ctx: Ctx) -> None:
    """Print the resolved config (defaults filled in, ${VAR} expanded, secrets redacted).

    Example: deploysafe config show --json
    """
    from deploysafe.console import console

    loaded = ctx.load()
    data = loaded.config.model_dump(mode="json")
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


def _toml_dump(data: dict[str, Any]) -> str:
    import json

    lines: list[str] = []

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, list) and not any(isinstance(x, dict) for x in v):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    def table(prefix: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if v is not None and not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        lines.append(f"\n[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {val(v)}")
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("env", "headers_env"):
                table(f"{prefix}.{k}", v)
            elif isinstance(v, dict):
                lines.append(f"{k} = {val(v)}")
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"\n[[{prefix}.{k}]]")
                    for ik, iv in item.items():
                        if iv is not None:
                            lines.append(f"{ik} = {val(iv)}")

    for section, body in data.items():
        table(section, body)
    return "\n".join(lines).strip()


# --- init ---------------------------------------------------------------------------------


@cli.command("init")
@click.option("--dir", "app_dir", default=".", show_default=True, type=click.Path(file_okay=False), help="The app folder (where package.json is).")
@click.option("--provider", type=click.Choice(["neon", "local"]), default="neon", show_default=True, help="Snapshot backend.")
@click.option("--platform", type=click.Choice(["dotenv", "command", "vercel", "render", "railway", "fly", "heroku"]), default="dotenv", show_default=True, help="Where the app runs.")
@click.option("--force", is_flag=True, help="Overwrite an existing deploysafe.toml.")
def init_cmd(app_dir: str, provider: str, platform: str, force: bool) -> None:
    """Write a commented starter deploysafe.toml after reading package.json and drizzle.config.*.

    Example: deploysafe init --provider neon --platform vercel

    Run it once in your app; then `deploysafe config check`.
    """
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.init import write_starter

    path = write_starter(Path(app_dir), provider=provider, platform=platform, force=force)
    console.ok(f"wrote {path}; next: edit it, then run `deploysafe config check`")


# --- history ------------------------------------------------------------------------------


@cli.command("history")
@click.option("--limit", default=10, show_default=True, help="How many recent runs.")
@pass_ctx
def history_cmd(ctx: Ctx, limit: int) -> None:
    """List recent runs with their steps and durations, from the journal.

    Example: deploysafe history --limit 3 --json
    """
    from deploysafe.console import console
    from deploysafe.journal import read_journal, runs

    loaded = ctx.load()
    recent = runs(read_journal(loaded.state_dir))[-limit:]
    if ctx.json:
        console.result(recent)
        return
    if not recent:
        console.plain("no runs recorded yet")
        return
    for run in recent:
        console.plain(f"{run['started_at']}  {run['command']:<10} {run['outcome']:<12} {run['run_id']}")
        for s in run["steps"]:
            dur = f"{s['duration_ms'] / 1000:.2f}s" if s["duration_ms"] is not None else "(cut off)"
            console.plain(f"    {s['step']:<24} {s['outcome']:<12} {dur}")


# --- git hooks (issue 7) ------------------------------------------------------------------
# `hook ...` runs inside `git push`: it imports only the standard library until it knows the
# push touches schema or migration paths (see deploysafe/prepush.py).


@cli.group("hook")
def hook_group() -> None:
    """Run a git hook (called by the installed hook script, not by hand)."""


@hook_group.command("pre-push")
@click.argument("remote")
@click.argument("url")
@click.option("--legacy", type=click.Path(dir_okay=False), help="The previous hook to run first (set by the hook script).")
@pass_ctx
def hook_pre_push(ctx: Ctx, remote: str, url: str, legacy: str | None) -> int:
    """Check a push to a deploy branch: migrations generated, new SQL linted, optional snapshot.

    Example: git push (the hook runs `deploysafe hook pre-push origin URL` with git's stdin)

    Reads git's `<local ref> <local sha> <remote ref> <remote sha>` lines on stdin. Pushes to other
    branches, tags and deletions pass at once and silently. DEPLOYSAFE_SKIP=1 skips the checks.
    """
    from pathlib import Path

    from deploysafe.errors import UsageError
    from deploysafe.prepush import run_pre_push

    if sys.stdin.isatty():
        raise UsageError("`deploysafe hook pre-push` reads git's push lines on stdin", hint="it is run by git; install it with `deploysafe hooks install`")
    stdin = sys.stdin.buffer.read()
    return run_pre_push(remote, url, stdin, repo_root=Path.cwd(), config=ctx.config_path, legacy=Path(legacy) if legacy else None)


@hook_group.command("pre-commit-pre-push")
@pass_ctx
def hook_pre_commit_pre_push(ctx: Ctx) -> int:
    """The same check, run from pre-commit's pre-push stage (refs come from PRE_COMMIT_* variables).

    Example (.pre-commit-config.yaml): hooks: [{id: deploysafe-pre-push}] with the deploysafe repo
    """
    import os
    from pathlib import Path

    from deploysafe.prepush import run_pre_push, stdin_from_pre_commit

    remote, url, stdin = stdin_from_pre_commit(dict(os.environ))
    return run_pre_push(remote, url, stdin, repo_root=Path.cwd(), config=ctx.config_path)


@cli.group("hooks")
def hooks_group() -> None:
    """Install or remove the git pre-push hook."""


@hooks_group.command("install")
@click.option("--force", is_flag=True, help="Also when pre-push.legacy exists: move it aside to pre-push.legacy.bak (nothing is deleted).")
@pass_ctx
def hooks_install(ctx: Ctx, force: bool) -> None:
    """Install the pre-push hook into this repository (core.hooksPath and worktrees respected).

    Example: deploysafe hooks install

    An existing pre-push hook is kept as pre-push.legacy and still runs first.
    """
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.hooks import install, missing_policy

    result = install(Path.cwd(), force=force, missing=missing_policy(Path.cwd(), ctx.config_path))
    for msg in result.messages:
        console.info(msg)
    console.ok(f"installed {result.path}; pushes to deploy branches are now checked")


@hooks_group.command("uninstall")
def hooks_uninstall() -> None:
    """Remove deploysafe's pre-push hook and restore the hook it replaced.

    Example: deploysafe hooks uninstall
    """
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.hooks import uninstall

    result = uninstall(Path.cwd())
    for msg in result.messages:
        console.ok(msg)


# --- error boundary -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run the CLI and map every error to its documented exit code."""
    code = run(argv)
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    from deploysafe.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, DeploysafeError

    try:
        rv = cli.main(args=argv, prog_name="deploysafe", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE
    except DeploysafeError as e:
        from deploysafe.console import console

        console.error(f"{type(e).__name__}: {e}" if e.exit_code == EXIT_INTERNAL else str(e))
        return e.exit_code
    except Exception as e:  # the one place a bug becomes exit 70 with a pointer to the log
        return _internal_error(e)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    return EXIT_INTERNAL  # unreachable; keeps mypy honest


def _internal_error(e: BaseException) -> int:
    import tempfile
    import traceback
    from pathlib import Path

    from deploysafe.errors import EXIT_INTERNAL
    from deploysafe.redact import redact

    log = Path(tempfile.gettempdir()) / "deploysafe-crash.log"
    try:
        log.write_text(redact("".join(traceback.format_exception(e))), encoding="utf-8")
        where = f"the traceback is in {log}"
    except OSError:
        where = "the traceback could not be saved"
    click.echo(redact(f"internal error (a bug in deploysafe): {type(e).__name__}: {e}; {where}"), err=True)
    return EXIT_INTERNAL
