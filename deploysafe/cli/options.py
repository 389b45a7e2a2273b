"""Options shared by several commands, as decorators (each keeps its command's own help text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from deploysafe.cli.context import Ctx

F = TypeVar("F", bound=Callable[..., Any])

YES_HELP = "Do not ask for confirmation (required without a terminal)."


def config_option(f: F) -> F:
    """The global ``--config PATH``."""
    return click.option(
        "--config", "config_path", metavar="PATH", help="deploysafe.toml to use (default: search upward; env DEPLOYSAFE_CONFIG)."
    )(f)


def json_option(help: str) -> Callable[[F], F]:
    """A command's own ``--json``: the same as the global ``deploysafe --json`` (the command reads ``ctx.json``).

    The result goes to stdout as JSON; logs and warnings go to stderr so stdout stays parseable.
    """
    return click.option("--json", is_flag=True, expose_value=False, callback=_json_mode, help=help)


def _json_mode(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value:
        return
    from deploysafe.console import console

    console.json_mode = True
    obj = ctx.find_object(Ctx)
    if obj is not None:
        obj.json = True


def yes_option(help: str = YES_HELP) -> Callable[[F], F]:
    """``--yes``: do not ask (a command without a terminal must pass it)."""
    return click.option("--yes", is_flag=True, help=help)


def dry_run_option(help: str) -> Callable[[F], F]:
    """``--dry-run``: say what would be done; change nothing."""
    return click.option("--dry-run", is_flag=True, help=help)


def duration(option: str, text: str) -> float:
    """Seconds from a duration option's text (``90s``, ``10m``, ``1h``); a bad one is a usage error naming the option."""
    from deploysafe.durations import parse_duration
    from deploysafe.errors import UsageError

    try:
        return parse_duration(text)
    except ValueError as e:
        raise UsageError(f"{option}: {e}") from None
