"""The one way tests run the deploysafe command: the installed console script in a subprocess, as a user runs it.

    from support.cli import run_cli

    r = run_cli("--json", "deploy", cwd=app.root, env=app.env)
    assert r.code == 0, r.stderr
    assert r.json["outcome"] == "deployed"

``run_cli(*args, cwd, env=None, timeout=240.0, input=None) -> CliResult``
    Runs ``deploysafe ARGS`` in ``cwd`` and waits for it. ``env`` is the child's whole environment (None: this
    process's); stdin is empty unless ``input`` is given; output that is not UTF-8 is decoded with
    replacement characters; a run longer than ``timeout`` seconds raises
    ``subprocess.TimeoutExpired``, so a hang fails the test instead of stalling the suite.
``CliResult``
    ``code``, ``stdout``, ``stderr``; ``output`` (stdout then stderr); ``json`` (the JSON document in stdout).
``run_cli_in_process(capsys, *args) -> CliResult``
    The same command in this process, with this process's environment and working folder (set them with
    ``monkeypatch``), output captured by pytest's ``capsys``. Only for tests that run the CLI hundreds of times
    (hypothesis) or many times over fast in-memory setups, where a start-up per run would dominate; anything
    about signals, exit codes seen by a shell, stdin or start-up uses ``run_cli``.
``DEPLOYSAFE``
    The console script's path, for a test that must start it another way (``Popen`` to send a signal, a TTY).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DEPLOYSAFE = Path(sys.executable).parent / "deploysafe"


@dataclass(frozen=True)
class CliResult:
    """What one ``deploysafe`` run left: its exit code and both output streams."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def json(self) -> Any:
        """The JSON document in stdout (``--json``), from its first ``{``."""
        return json.loads(self.stdout[self.stdout.index("{"):])


def run_cli(*args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 240.0,
            input: str | None = None) -> CliResult:
    """Run ``deploysafe ARGS`` in ``cwd`` (see the module docstring)."""
    assert DEPLOYSAFE.exists(), f"{DEPLOYSAFE} is missing: run `bash scripts/setup`"
    stdin = None if input is not None else subprocess.DEVNULL
    r = subprocess.run([str(DEPLOYSAFE), *args], cwd=cwd, env=None if env is None else dict(env), input=input, stdin=stdin,
                       capture_output=True, text=True, errors="replace", timeout=timeout, check=False)
    return CliResult(r.returncode, r.stdout, r.stderr)


def run_cli_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """Run ``deploysafe ARGS`` in this process (see the module docstring); output printed before the call is
    dropped, not returned."""
    from deploysafe.cli import run

    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    return CliResult(code, out, err)
