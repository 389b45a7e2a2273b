"""dotenv platform: the app reads DATABASE_URL from an env file and is restarted by a command.

The embedded default and the usual self-hosted set-up (systemd, pm2, docker compose with
``env_file``). The file is rewritten atomically (see :mod:`deploysafe.envfile`); the restart
command runs through the shell in the config's folder with the new URL in
``$DEPLOYSAFE_NEW_URL`` (never on a command line).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploysafe.envfile import read_var, write_var
from deploysafe.errors import PlatformError, StepError
from deploysafe.platforms.base import CurrentValue, Release, ReleaseRollback
from deploysafe.process import run_step

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig


def run_user_command(platform: str, what: str, command: str, *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run a configured shell command (restart, set, wait...) with a hard timeout; PlatformError on failure.

    ``env`` is what deploysafe adds; the command also gets the user's environment without deploysafe's
    own credentials, and the variables it names (``${DEPLOY_HOOK_TOKEN}``): see :mod:`deploysafe.childenv`.
    """
    try:
        result = run_step(what, command, cwd=cwd, env=env, timeout=timeout)
    except StepError as e:
        raise PlatformError(f"{platform}: {what} command failed: {e.message}", platform=platform, hint=e.hint) from None
    if result.exit_code != 0:
        tail = "\n".join(result.output.strip().splitlines()[-5:])
        raise PlatformError(
            f"{platform}: {what} command exited {result.exit_code}: {tail}",
            platform=platform,
            hint=f"run it by hand to see why: {command}",
        )
    return result.output


class UserReleases(ABC):
    """Releases through the user's own commands (dotenv/command): ``release_command`` prints the id of the release
    running now, ``rollback_command`` brings back the one in ``$DEPLOYSAFE_RELEASE``."""

    name: str
    cwd: Path
    timeout: float
    release_command: str | None
    rollback_command: str | None

    @abstractmethod
    def _env(self) -> dict[str, str]:
        """The environment the user's commands run with (the new URL in $DEPLOYSAFE_NEW_URL, never on argv)."""

    @abstractmethod
    def set_url(self, url: str) -> None:
        """Set the variable (the Platform method)."""

    def describe(self) -> Release | None:
        if not self.release_command:
            return None
        out = run_user_command(self.name, "release", self.release_command, cwd=self.cwd, env=self._env(),
                               timeout=min(self.timeout, 60.0))
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        if not lines:
            raise PlatformError(f"{self.name}: release command printed nothing", platform=self.name,
                                hint=f"it must print the id of the running release: {self.release_command}")
        return Release(id=lines[-1], status="running", live=True, code=lines[-1])

    def release_rollback(self) -> ReleaseRollback | None:
        return self if self.release_command and self.rollback_command else None

    def release_rollback_fix(self) -> str:
        return "set [platform] release_command and rollback_command to let it"

    def how(self) -> str:
        return f"{self.name}: set the variable, then run [platform] rollback_command with $DEPLOYSAFE_RELEASE"

    def return_to(self, release: Release, url: str | None) -> Release:
        if url is not None:
            self.set_url(url)
        assert self.rollback_command is not None  # release_rollback() offers this only with one
        env = {**self._env(), "DEPLOYSAFE_RELEASE": release.id}
        run_user_command(self.name, "rollback", self.rollback_command, cwd=self.cwd, env=env, timeout=self.timeout)
        return Release(id=release.id, status="restarted", code=release.code)


class DotenvPlatform(UserReleases):
    name = "dotenv"

    def __init__(
        self, env_file: Path, var: str, restart: str | None, cwd: Path, timeout: float, *,
        release_command: str | None = None, rollback_command: str | None = None,
    ) -> None:
        self.env_file = env_file
        self.var = var
        self.restart = restart
        self.cwd = cwd
        self.timeout = timeout
        self.release_command = release_command
        self.rollback_command = rollback_command
        self._last_url: str | None = None

    @classmethod
    def from_config(cls, loaded: LoadedConfig, **_: Any) -> DotenvPlatform:
        p = loaded.config.platform
        assert p.env_file is not None  # validated by the config model
        return cls(loaded.resolve(p.env_file), p.var, p.restart, loaded.root, p.ready_timeout,
                   release_command=p.release_command, rollback_command=p.rollback_command)

    def _env(self) -> dict[str, str]:
        return {"DEPLOYSAFE_NEW_URL": self._last_url or "", "DEPLOYSAFE_ENV_FILE": str(self.env_file)}

    def read_current(self) -> CurrentValue:
        if not self.env_file.exists():
            raise PlatformError(
                f"dotenv: {self.env_file} does not exist", platform=self.name, hint="fix platform.env_file in deploysafe.toml"
            )
        return CurrentValue(readable=True, value=read_var(self.env_file, self.var))

    def prepare(self) -> None:
        if not self.env_file.exists():
            raise PlatformError(
                f"dotenv: {self.env_file} does not exist", platform=self.name, hint="fix platform.env_file in deploysafe.toml"
            )
        if not os.access(self.env_file, os.W_OK) or not os.access(self.env_file.parent, os.W_OK):
            raise PlatformError(
                f"dotenv: {self.env_file} (or its folder) is not writable", platform=self.name,
                hint="run deploysafe as a user that can write the env file",
            )

    def set_url(self, url: str) -> None:
        try:
            write_var(self.env_file, self.var, url)
        except (OSError, ValueError) as e:
            raise PlatformError(f"dotenv: cannot write {self.env_file}: {e}", platform=self.name) from None
        self._last_url = url

    def pick_up(self) -> Release:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        if self.restart:
            run_user_command(self.name, "restart", self.restart, cwd=self.cwd, env=self._env(), timeout=self.timeout)
        return Release(id=f"restart-{stamp}", status="restarted", live=True)

    def wait_live(self, release: Release, timeout: float) -> Release:
        # A restart (or rollback) command that returned has done its job; the probes decide whether the app is healthy.
        return release.model_copy(update={"live": True})

    def caveats(self) -> list[str]:
        if not self.restart:
            return [f"dotenv: no platform.restart command: the app must re-read {self.env_file.name} by itself"]
        return []

    def close(self) -> None:
        return None
