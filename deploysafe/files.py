"""Files deploysafe writes that can hold operational detail: redacted, owner-only (0600), written atomically.

The journal (:mod:`deploysafe.journal`) and the lock file open themselves 0600; drill reports are
written here, the crash log by :mod:`deploysafe.crash`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from deploysafe.redact import redact

PRIVATE = 0o600


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
