"""Files deploysafe writes that can hold operational detail: redacted, owner-only (0600), written atomically.

The journal (:mod:`deploysafe.journal`) and the lock file open themselves 0600; drill reports and the
crash log are written here. The crash log goes to the state folder of the config in use, else to
``$XDG_STATE_HOME/deploysafe`` (``~/.local/state/deploysafe``), under a unique name.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from deploysafe.redact import redact

PRIVATE = 0o600

_state_dir: Path | None = None


def remember_state_dir(path: Path) -> None:
    """The state folder of the config this run loaded: where a crash log goes."""
    global _state_dir
    _state_dir = path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` redacted to ``path`` atomically with mode 0600 (also when replacing a wider file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(redact(text))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def crash_dir() -> Path:
    if _state_dir is not None:
        return _state_dir
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "deploysafe"


def write_crash_log(text: str, *, now: datetime | None = None) -> Path:
    """Save a traceback, redacted, in a new 0600 file with a unique name; return its path."""
    folder = crash_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    fd, name = tempfile.mkstemp(prefix=f"crash-{stamp}-", suffix=".log", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(redact(text))
    return Path(name)
