"""Parse durations written as strings: "500ms", "90s", "10m", "2h", "7d", "1w"."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")


def parse_duration(text: str) -> float:
    """Return seconds for a duration string; raise ValueError naming the accepted forms."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string like '90s', got {text!r}")
    m = _RE.match(text.strip())
    if not m:
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit with no space: "
            "'500ms', '90s', '10m', '2h', '7d' or '1w'"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def format_duration(seconds: float) -> str:
    """Human form of a duration in seconds: 0.42s, 12.3s, 4m05s, 2h03m, 3d04h."""
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
