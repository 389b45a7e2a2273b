"""What every command shares: the loaded config (read once, on first use) and the confirmation prompt."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig


class Ctx:
    """The click context object: global options and the config, loaded when a command first asks."""

    def __init__(self, config_path: str | None, json_mode: bool) -> None:
        self.config_path = config_path
        self.json = json_mode
        self._loaded: LoadedConfig | None = None

    def load(self) -> LoadedConfig:
        if self._loaded is None:
            from deploysafe.config import load_config
            from deploysafe.crash import remember_state_dir

            self._loaded = load_config(self.config_path)
            remember_state_dir(self._loaded.state_dir)  # where a crash log goes
        return self._loaded


pass_ctx = click.make_pass_decorator(Ctx)


def confirm(question: str) -> bool:
    """Ask on a TTY; refuse without one (a pipeline must pass --yes)."""
    if not sys.stdin.isatty():
        from deploysafe.errors import UsageError

        raise UsageError("this needs confirmation and stdin is not a terminal", hint="pass --yes")
    return click.confirm(question, default=False, err=True)
