"""Read what a Drizzle app declares, without running its TypeScript config.

``drizzle.config.ts`` is parsed, not executed: we read the string values of the
``schema``, ``out`` and ``dialect`` keys of the exported object literal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_NAMES = ("drizzle.config.ts", "drizzle.config.mts", "drizzle.config.js", "drizzle.config.mjs", "drizzle.config.cjs", "drizzle.config.json")



def strip_comments(text: str) -> str:
    """Remove // and /* */ comments outside string literals (a glob like "./src/**/*.ts" is not a comment)."""
    out: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
            i += 1
        elif ch in "'\"`":
            quote = ch
            out.append(ch)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass
class DrizzleApp:
    dir: Path
    config_file: Path | None = None
    schema: list[str] = field(default_factory=list)
    out: str = "drizzle"
    dialect: str | None = None
    scripts: dict[str, str] = field(default_factory=dict)


def _string_or_list(text: str, key: str) -> list[str] | None:
    m = re.search(rf"""\b{key}\s*:\s*(\[[^\]]*\]|(['"`])(?:(?!\2).)*\2)""", text, re.S)
    if not m:
        return None
    value = m.group(1)
    return re.findall(r"""['"`]([^'"`]*)['"`]""", value)


def find_config_file(app_dir: Path) -> Path | None:
    for name in CONFIG_NAMES:
        p = app_dir / name
        if p.is_file():
            return p
    return None


def read_app(app_dir: Path) -> DrizzleApp:
    app = DrizzleApp(dir=app_dir)
    pkg = app_dir / "package.json"
    if pkg.is_file():
        try:
            app.scripts = dict(json.loads(pkg.read_text(encoding="utf-8")).get("scripts") or {})
        except (json.JSONDecodeError, OSError, AttributeError):
            app.scripts = {}
    cfg = find_config_file(app_dir)
    if cfg is None:
        return app
    app.config_file = cfg
    try:
        text = cfg.read_text(encoding="utf-8")
    except OSError:
        return app
    if cfg.suffix == ".json":
        try:
            data = json.loads(text)
            schema = data.get("schema")
            app.schema = [schema] if isinstance(schema, str) else list(schema or [])
            app.out = data.get("out", app.out)
            app.dialect = data.get("dialect")
        except (json.JSONDecodeError, AttributeError):
            pass
        return app
    text = strip_comments(text)
    app.schema = _string_or_list(text, "schema") or []
    out = _string_or_list(text, "out")
    if out:
        app.out = out[0]
    dialect = _string_or_list(text, "dialect")
    app.dialect = dialect[0] if dialect else None
    return app


def normalise(path: str) -> str:
    p = path.strip()
    while p.startswith("./"):
        p = p[2:]
    return p.rstrip("/")
