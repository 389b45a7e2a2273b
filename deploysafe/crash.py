"""The one error boundary (the CLI and the pre-push hook both run through :func:`boundary`) and the crash log.

Every exception that reaches the top becomes its documented exit code (``errors.exit_code_for``) and
one redacted line on stderr: Ctrl-C is ``interrupted`` (130), a :class:`~deploysafe.errors.DeploysafeError`
is its own message, anything else is a bug: exit 70 with the path of a crash log holding the traceback.

The crash log goes to the state folder of the config in use, else to ``$XDG_STATE_HOME/deploysafe``
(``~/.local/state/deploysafe``), owner-only (0600), under a unique name, redacted.

Only the standard library is imported here at module level: the hook's no-op path imports this module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

_state_dir: Path | None = None


def remember_state_dir(path: Path) -> None:
    """The state folder of the config this run loaded: where a crash log goes."""
    global _state_dir
    _state_dir = path


def crash_dir() -> Path:
    import os

    if _state_dir is not None:
        return _state_dir
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "deploysafe"


def write_crash_log(text: str, *, now: datetime | None = None) -> Path:
    """Save a traceback, redacted, in a new 0600 file with a unique name; return its path."""
    import os
    import tempfile
    from datetime import UTC, datetime

    from deploysafe.redact import redact

    folder = crash_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    fd, name = tempfile.mkstemp(prefix=f"crash-{stamp}-", suffix=".log", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(redact(text))
    return Path(name)


def say(text: str) -> None:
    """One redacted line on stderr."""
    from deploysafe.redact import redact

    print(redact(text), file=sys.stderr, flush=True)


def boundary(body: Callable[[], int], *, show_error: Callable[[str], None] = say) -> int:
    """Run ``body`` and return its exit code; turn whatever it raises into the documented code.

    ``show_error`` prints a deploysafe error's message (the CLI passes its console, the hook plain stderr).
    """
    try:
        return body()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except BaseException as e:  # the boundary: every exception ends here
        return report(e, show_error)


def report(e: BaseException, show_error: Callable[[str], None] = say) -> int:
    """Say what stopped the run and return its exit code (a bug also gets a crash log)."""
    from deploysafe.errors import EXIT_INTERNAL, DeploysafeError, exit_code_for

    code = exit_code_for(e)
    if isinstance(e, DeploysafeError):
        show_error(f"{type(e).__name__}: {e}" if code == EXIT_INTERNAL else str(e))
    elif isinstance(e, KeyboardInterrupt):
        say("interrupted")
    elif isinstance(e, Exception):
        internal_error(e)
    else:
        raise e  # GeneratorExit and other BaseExceptions that are not errors
    return code


def internal_error(e: BaseException) -> None:
    """A bug: the traceback goes to a new crash log; stderr gets one line naming it."""
    import traceback

    try:
        log = write_crash_log("".join(traceback.format_exception(e)))
        where = f"the traceback is in {log}"
    except OSError:
        where = "the traceback could not be saved"
    say(f"internal error (a bug in deploysafe): {type(e).__name__}: {e}; {where}")
