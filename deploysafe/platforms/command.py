"""command platform: user commands for anything else (kubectl, systemd, docker compose, pm2).

``get_command`` prints the current value; ``set_command`` sets it, receiving the new URL in
``$DEPLOYSAFE_NEW_URL`` (never on its command line, where ``ps`` would show it);
``restart`` makes the app pick it up; ``wait_command`` exits 0 once the release is live.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploysafe.childenv import user_environment
from deploysafe.errors import PlatformError
from deploysafe.platforms.base import CurrentValue, Release
from deploysafe.platforms.dotenv import UserReleases, run_user_command
from deploysafe.redact import redact, register_secret, url_password

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig


class CommandPlatform(UserReleases):
    name = "command"

    def __init__(
        self,
        *,
        set_command: str,
        get_command: str | None,
        restart: str | None,
        wait_command: str | None,
        var: str,
        cwd: Path,
        timeout: float,
        release_command: str | None = None,
        rollback_command: str | None = None,
    ) -> None:
        self.release_command = release_command
        self.rollback_command = rollback_command
        self.set_command = set_command
        self.get_command = get_command
        self.restart = restart
        self.wait_command = wait_command
        self.var = var
        self.cwd = cwd
        self.timeout = timeout
        self._new_url = ""

    @classmethod
    def from_config(cls, loaded: LoadedConfig, **_: Any) -> CommandPlatform:
        p = loaded.config.platform
        assert p.set_command is not None  # validated by the config model
        return cls(
            set_command=p.set_command,
            get_command=p.get_command,
            restart=p.restart,
            wait_command=p.wait_command,
            var=p.var,
            cwd=loaded.root,
            timeout=p.ready_timeout,
            release_command=p.release_command,
            rollback_command=p.rollback_command,
        )

    def _env(self) -> dict[str, str]:
        """What deploysafe adds for the commands (each also gets the variables it names: deploysafe.childenv)."""
        return {"DEPLOYSAFE_NEW_URL": self._new_url, "DEPLOYSAFE_VAR": self.var}

    def read_current(self) -> CurrentValue:
        if not self.get_command:
            return CurrentValue(readable=False)
        # The value itself is needed (to tell which snapshot it names), so stdout is read raw here;
        # step output elsewhere is redacted. It is registered as a secret at once.
        try:
            r = subprocess.run(self.get_command, shell=True, cwd=self.cwd, capture_output=True,
                               env=user_environment(self.get_command, extra=self._env()),
                               text=True, timeout=60, stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise PlatformError("command: get command ran past 60s", platform=self.name,
                                hint=f"run it by hand: {self.get_command}") from None
        if r.returncode != 0:
            raise PlatformError(f"command: get command exited {r.returncode}: {redact(r.stderr.strip()[-300:])}",
                                platform=self.name, hint=f"run it by hand: {self.get_command}")
        lines = [line.strip() for line in r.stdout.splitlines() if line.strip()]
        value = lines[-1] if lines else None
        register_secret(url_password(value) if value else None)
        return CurrentValue(readable=True, value=value)

    def prepare(self) -> None:
        return None

    def set_url(self, url: str) -> None:
        self._new_url = url
        run_user_command(self.name, "set", self.set_command, cwd=self.cwd, env=self._env(), timeout=self.timeout)

    def pick_up(self) -> Release:
        if self.restart:
            run_user_command(self.name, "restart", self.restart, cwd=self.cwd, env=self._env(), timeout=self.timeout)
        return Release(id="restart-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"), status="restarted")

    def wait_live(self, release: Release, timeout: float) -> Release:
        if self.wait_command:
            run_user_command(self.name, "wait", self.wait_command, cwd=self.cwd, env=self._env(), timeout=timeout)
        return release.model_copy(update={"live": True, "status": "live"})

    def caveats(self) -> list[str]:
        return [] if self.get_command else ["command: no get_command, so deploysafe cannot read where the app points"]

    def close(self) -> None:
        return None
