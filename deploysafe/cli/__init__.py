"""Command-line interface: the click group and ``main``/``run``, which go through the one error
boundary (:func:`deploysafe.crash.boundary`, shared with the pre-push hook).

The commands live in one module per group (``app``, ``hook``, ``snapshots``, ``deploy``, ``ops``),
each imported when one of its commands runs; each command calls one function and renders its result.
Heavy modules (httpx, pydantic adapters, gitpython, psycopg) are imported inside the commands that
need them, so ``deploysafe --version`` and the hook's no-op path stay fast.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

import click

from deploysafe import __version__
from deploysafe.cli.context import Ctx
from deploysafe.cli.options import config_option
from deploysafe.errors import EXIT_CODES, EXIT_USAGE

EXIT_TABLE = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())

# Every top-level command: the module of deploysafe.cli that defines it, and its name there.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("app", "config_group"), "init": ("app", "init_cmd"), "lint": ("app", "lint_cmd"), "demo": ("app", "demo_cmd"),
    "hook": ("hook", "hook_group"), "hooks": ("hook", "hooks_group"),
    "snapshot": ("snapshots", "snapshot_group"), "prune": ("snapshots", "prune_cmd"),
    "deploy": ("deploy", "deploy_cmd"), "rollback": ("deploy", "rollback_cmd"), "unlock": ("deploy", "unlock_cmd"),
    "promote": ("deploy", "promote_cmd"), "probe": ("deploy", "probe_cmd"), "status": ("deploy", "status_cmd"),
    "watch": ("deploy", "watch_cmd"), "history": ("deploy", "history_cmd"),
    "backup": ("ops", "backup_group"), "check": ("ops", "check_cmd"), "drill": ("ops", "drill_cmd"),
    "restore-table": ("ops", "restore_table_cmd"), "setup": ("ops", "setup_cmd"), "runbook": ("ops", "runbook_cmd"),
}


class _Commands(click.Group):
    """Imports a command's module only when that command runs or is listed, so `deploysafe --version`
    and one command do not pay for defining all the others."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(f"deploysafe.cli.{module}"), name)
        return command


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nExit codes:\n" + EXIT_TABLE,
)
@click.version_option(__version__, prog_name="deploysafe")
@config_option
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


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run the CLI and exit with the documented code."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; every error becomes its documented exit code in the one boundary (:mod:`deploysafe.crash`)."""
    from deploysafe.crash import boundary

    return boundary(lambda: _invoke(argv), show_error=_show_error)


def _invoke(argv: list[str] | None) -> int:
    """Parse and run one command; click's own outcomes (help, bad usage, ^C at a prompt) become exit codes."""
    try:
        rv = cli.main(args=argv, prog_name="deploysafe", standalone_mode=False)
    except click.exceptions.Abort:
        raise KeyboardInterrupt from None
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE
    return rv if isinstance(rv, int) else 0


def _show_error(message: str) -> None:
    from deploysafe.console import console

    console.error(message)
