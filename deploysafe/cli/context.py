"""What every command shares: the loaded config (read once, on first use), the provider and platform
opened and closed around a command, and the confirmation prompt."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider


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


class Adapters:
    """A command's provider, and its platform built on first use (None, with a warning, when it cannot be built)."""

    def __init__(self, loaded: LoadedConfig) -> None:
        from deploysafe.providers import make_provider

        self.loaded = loaded
        self.provider: Provider = make_provider(loaded)
        self._platform: Platform | None = None
        self._platform_tried = False

    @property
    def platform(self) -> Platform | None:
        if not self._platform_tried:
            from deploysafe.snapshots.manage import try_platform

            self._platform_tried = True
            self._platform = try_platform(self.loaded)
        return self._platform

    def close(self) -> None:
        try:
            self.provider.close()
        finally:
            if self._platform is not None:
                self._platform.close()


@contextmanager
def adapters(loaded: LoadedConfig) -> Iterator[Adapters]:
    """Open the provider (and, when asked for, the platform) for one command; close them however it ends."""
    opened = Adapters(loaded)
    try:
        yield opened
    finally:
        opened.close()
