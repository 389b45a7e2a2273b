"""Run one migration step (``npm run db:generate`` / ``db:push``) so that it can never hang.

The command runs through the shell in the app folder with stdin closed (so any prompt is
refused at once instead of waiting for an answer), in its own process group, with stdout
and stderr merged and read line by line. Each line is cleaned of ANSI escapes, redacted,
handed to ``on_line`` and kept for the journal.

Never hang: the deadline covers the whole step; on timeout the whole process
group gets SIGTERM, then SIGKILL after a short grace, and :class:`StepTimeout` is raised.

Never wait out a prompt: ``stop_when`` sees every line while the step runs, and
also the unfinished last line (a prompt's answer list ends without a newline). When it
returns a reason, the process group is stopped at once the same way and the result says
why (``stopped_at``); the caller decides what that means.
Output is read with a selector, not a blocking read, so a grandchild that keeps the pipe
open after the step exited cannot hold us either: after a short drain the group is
killed and we stop reading.

No step outlives deploysafe, even after SIGKILL: each step gets a watchdog, a tiny
``sh`` in its own session that waits on a pipe only deploysafe holds. When the step ends,
deploysafe writes ``done`` and the watchdog exits; when deploysafe dies in any way the kernel
closes the pipe, the watchdog reads end-of-file and kills the step's whole process group
(``PR_SET_PDEATHSIG`` would reach only the direct child, not npm's grandchildren). A signal that
stops deploysafe (Ctrl-C, SIGTERM) raises in the main thread; ``run_step`` then kills the group
at once and re-raises.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from deploysafe.childenv import user_environment
from deploysafe.drizzle.output import clean
from deploysafe.errors import StepError, StepTimeout
from deploysafe.redact import redact, register_secret, url_password

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
DRAIN_GRACE = 1.0  # how long to keep reading after the step exited, if a child holds the pipe
STOP_DRAIN = 0.5  # how long to keep reading after ``stop_when`` matched, before stopping the group


@dataclass(frozen=True)
class StepResult:
    name: str
    command: str
    exit_code: int
    output: str  # redacted, ANSI-free, stdout and stderr merged
    duration: float
    stopped_at: str | None = None  # why ``stop_when`` ended the step early, if it did


def step_environment(command: str, env: dict[str, str], pass_env: Iterable[str] = ()) -> dict[str, str]:
    """The environment built for one step (:func:`deploysafe.childenv.user_environment`) plus ``env``.

    URL passwords found in ``env`` are registered for redaction.
    """
    for value in env.values():
        register_secret(url_password(value))
    return user_environment(command, pass_env=pass_env, extra=env)


def check_runnable(command: str, cwd: Path, env: dict[str, str]) -> None:
    """Fail before running when npm, the npm script or node_modules is missing."""
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise StepError(f"cannot parse the command {command!r}: {e}", hint="fix [app] generate/push in deploysafe.toml") from None
    if not cwd.is_dir():
        raise StepError(f"app folder {cwd} does not exist", hint="set [app] dir in deploysafe.toml to the folder with package.json")
    from deploysafe.drizzle import pkgmanager

    if not argv or argv[0] not in (*pkgmanager.MANAGERS, "npx", "bunx"):
        return
    pm = pkgmanager.detect(cwd)
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise StepError(
            f"`{argv[0]}` is not installed or not on PATH (needed for `{command}`)",
            hint="install Node.js (it ships npm), e.g. actions/setup-node in CI" if argv[0] in ("npm", "npx")
            else f"install {argv[0]} (`corepack enable` provides pnpm and yarn; bun from bun.sh)",
        )
    run = pkgmanager.script_of(argv)
    if run:
        script = run[1]
        pkg = cwd / "package.json"
        try:
            scripts = json.loads(pkg.read_text(encoding="utf-8")).get("scripts") or {}
        except (OSError, ValueError, AttributeError):
            raise StepError(f"cannot read {pkg}", hint="set [app] dir to the folder with a valid package.json") from None
        if script not in scripts:
            raise StepError(
                f"package.json in {cwd} has no script {script!r} (needed for `{command}`)",
                hint=f'add "{script}": "drizzle-kit ..." to "scripts" in {pkg}, or change the command in deploysafe.toml',
            )
    # a workspace installs into the app's folder or hoists to the root: either has node_modules
    folders = [cwd.resolve(), *[d for d in cwd.resolve().parents if d.is_relative_to(pm.root)]]
    if not any((d / "node_modules").is_dir() for d in folders) and not (pm.root / ".pnp.cjs").is_file():
        raise StepError(f"node_modules is missing in {cwd}", hint=f"run `{pm.install()}` in {pm.root}")


# $1 is the step's process group id; dash's kill takes "-KILL -<pgid>" (not "-s KILL" or "--")
WATCHDOG_SCRIPT = 'read -r word; [ "$word" = done ] || kill -KILL "-$1"'


class Watchdog:
    """Ends a process group when deploysafe dies, however it dies (see the module docstring)."""

    def __init__(self, pgid: int) -> None:
        read_end, self._write_end = os.pipe()  # not inheritable: no step gets the write end
        try:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                ["/bin/sh", "-c", WATCHDOG_SCRIPT, "deploysafe-watchdog", str(pgid)],
                stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError:
            self.proc = None  # no /bin/sh: the step still runs; only the SIGKILL guarantee is lost
        finally:
            os.close(read_end)

    def release(self) -> None:
        """The step is over: the watchdog leaves the group alone (its id may be reused) and exits."""
        try:
            os.write(self._write_end, b"done\n")
        except OSError:
            pass
        os.close(self._write_end)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pump(
    proc: subprocess.Popen[bytes], fd: int, deadline: float, emit: Callable[[bytes], None],
    stop: Callable[[bytes], bool],
) -> tuple[bool, bytes]:
    """Emit whole lines until EOF, the deadline, ``stop`` saying so, or an orphan holding the pipe.

    Returns (timed out?, the unfinished last line).
    """
    exited_at: float | None = None
    stop_at: float | None = None
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if now >= deadline:
                return True, buf
            if stop_at is not None and now >= stop_at:
                return False, buf
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > DRAIN_GRACE:
                _kill_group(proc.pid, signal.SIGKILL)  # an orphan holds the pipe: the step is over
                return False, buf
            if not sel.select(timeout=min(0.2, deadline - now)):
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return False, buf
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                emit(raw)
            if stop_at is None and stop(buf):
                # keep what the tool prints right after the question (its error, its stack, its hints)
                stop_at = time.monotonic() + STOP_DRAIN


def run_step(
    name: str,
    command: str,
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    on_line: Callable[[str], None] | None = None,
    pass_env: Iterable[str] = (),
    stop_when: Callable[[str], str | None] | None = None,
) -> StepResult:
    """Run ``command`` in ``cwd`` with ``env`` added to the environment built for it; see the module docstring.

    The child gets the user's environment without deploysafe's own credentials (plus the
    variables ``command`` names and ``pass_env``): see :mod:`deploysafe.childenv`.
    """
    full_env = step_environment(command, env, pass_env)
    check_runnable(command, cwd, full_env)
    lines: list[str] = []
    stopped: list[str] = []

    def watch(line: str) -> None:
        if stop_when is not None and not stopped:
            reason = stop_when(line)
            if reason:
                stopped.append(reason)

    def emit(raw: bytes) -> None:
        for part in clean(raw.decode("utf-8", errors="replace")).split("\n"):
            line = redact(part.rstrip())
            lines.append(line)
            watch(line)
            if on_line is not None:
                on_line(line)

    def stop(partial: bytes) -> bool:
        if not stopped and partial:
            for part in clean(partial.decode("utf-8", errors="replace")).split("\n"):
                watch(part.rstrip())
        return bool(stopped)

    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        raise StepError(f"{name}: cannot start `{redact(command)}`: {e}", step=name, hint="check [app] dir and the command") from e
    pgid = proc.pid  # start_new_session: the child leads its own group
    watchdog = Watchdog(pgid)
    try:
        return _supervise(name, command, proc, pgid, started, timeout, emit, lines, stop, stopped)
    finally:
        watchdog.release()


def _supervise(name: str, command: str, proc: subprocess.Popen[bytes], pgid: int, started: float, timeout: float,
               emit: Callable[[bytes], None], lines: list[str], stop: Callable[[bytes], bool],
               stopped: list[str]) -> StepResult:
    """Read the step's output until it ends, its deadline passes or ``stop`` matched (``stopped`` says why);
    end its group on timeout, stop or interrupt."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    deadline = started + timeout
    try:
        timed_out, tail = _pump(proc, fd, deadline, emit, stop)
    except BaseException:
        # on_line raised, Ctrl-C or SIGTERM: the step runs in its own session and would not see the
        # terminal's signal, so end its whole group at once rather than leave it running.
        _kill_group(pgid, signal.SIGKILL)
        proc.wait()
        raise
    if timed_out or stopped:
        _kill_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(pgid, signal.SIGKILL)  # grandchildren that ignored SIGTERM
    try:
        tail += os.read(fd, 65536)  # what the killed group wrote last
    except (BlockingIOError, OSError):
        pass
    if tail:
        emit(tail)
    proc.stdout.close()
    try:
        code = proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        _kill_group(pgid, signal.SIGKILL)
        code = proc.wait()
    duration = time.monotonic() - started
    output = "\n".join(lines)
    if timed_out:
        raise StepTimeout(
            f"{name}: `{redact(command)}` ran past its timeout of {timeout:g}s and was killed with its child processes",
            step=name,
            hint="find what waits (a prompt, a lock, the network) by running it by hand; or raise [app] step_timeout",
            output=output,
            duration=duration,
        )
    return StepResult(name=name, command=redact(command), exit_code=code, output=output, duration=duration,
                      stopped_at=stopped[0] if stopped else None)
