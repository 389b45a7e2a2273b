"""Rewrite one variable in a dotenv file, atomically, leaving every other byte alone.

Temp file in the same folder + fsync + rename, so a reader sees the old file or the new
one, never half of one; the file's mode is kept. Values are written in double quotes
with ``\\`` and ``"`` escaped, and newlines refused (a connection URL has none).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

# Horizontal space only: `\s` would let "KEY=\n" swallow its own newline, putting the new value
# on the next line and leaving the variable empty.
_LINE = re.compile(
    r"^(?P<lead>[ \t]*(?:export[ \t]+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.]*)(?P<eq>[ \t]*=[ \t]*)(?P<val>.*?)(?P<nl>\r?\n)?$"
)


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        inner = raw[1:-1]
        return inner.replace('\\"', '"').replace("\\\\", "\\") if raw[0] == '"' else inner
    # unquoted: a ' #' starts a comment
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()


def _quote(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("a value with a newline cannot be written to an env file")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_var(path: Path, key: str) -> str | None:
    """The last assignment of ``key`` in the file (as dotenv loaders resolve it), or None."""
    if not path.exists():
        return None
    found = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _LINE.match(line)
        if m and m.group("key") == key:
            found = _unquote(m.group("val"))
    return found


def replace_var(text: str, key: str, value: str) -> str:
    """``text`` with every assignment of ``key`` set to ``value`` (appended when absent)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    hit = False
    for line in lines:
        m = _LINE.match(line)
        if m and m.group("key") == key:
            out.append(f"{m.group('lead')}{key}{m.group('eq')}{_quote(value)}{m.group('nl') or ''}")
            hit = True
        else:
            out.append(line)
    if not hit:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(f"{key}={_quote(value)}\n")
    return "".join(out)


def write_var(path: Path, key: str, value: str) -> None:
    """Set ``key`` in the env file atomically, keeping other lines, comments and the file mode."""
    # Bytes, not read_text(): universal-newline reading would turn a CRLF file into LF.
    text = path.read_bytes().decode("utf-8") if path.exists() else ""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o600
    new = replace_var(text, key, value)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if path.exists():
            st = path.stat()
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except PermissionError:
                pass
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
