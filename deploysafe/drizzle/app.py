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
    casing: str | None = None
    schema_filter: list[str] = field(default_factory=list)
    tables_filter: list[str] = field(default_factory=list)
    migrations_table: str | None = None
    migrations_schema: str | None = None
    # what dbCredentials reads: whole-URL variables, and host/user/... fields fed by variables
    url_vars: list[str] = field(default_factory=list)
    part_vars: dict[str, str] = field(default_factory=dict)
    hard_coded: list[str] = field(default_factory=list)  # dbCredentials fields given as literals
    env_files: list[str] = field(default_factory=list)  # loaded by the config (dotenv, @next/env, loadEnvFile)
    env_override: bool = False  # the config loads an env file with override: true


def _string_or_list(text: str, key: str) -> list[str] | None:
    m = re.search(rf"""\b{key}\s*:\s*(\[[^\]]*\]|(['"`])(?:(?!\2).)*\2)""", text, re.S)
    if not m:
        return None
    value = m.group(1)
    return re.findall(r"""['"`]([^'"`]*)['"`]""", value)


def _block(text: str, key: str) -> str | None:
    """The ``{...}`` object literal (balanced braces) after ``key:``, or the expression up to the next key."""
    m = re.search(rf"\b{key}\s*:\s*", text)
    if not m:
        return None
    i = m.end()
    if i < len(text) and text[i] == "{":
        depth = 0
        for j in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                return text[i : j + 1]
        return text[i:]
    end = re.search(r",\s*\w+\s*:|\n\s*\}", text[i:])
    return text[i : i + end.start()] if end else text[i:]


_ENV_REF = re.compile(r"""process\.env(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\])""")
_T3_ENV_REF = re.compile(r"\benv\.([A-Z_][A-Z0-9_]*)\b")  # `import { env } from "./env"` (t3-env style)
_URL_KEYS = ("url", "connectionString", "uri")
_PART_KEYS = {"host": "host", "port": "port", "user": "user", "password": "password", "database": "database"}


def env_refs(text: str) -> list[str]:
    """Environment variables read in ``text`` (process.env.X, process.env["X"], env.X), in order, once each."""
    names = [a or b for a, b in _ENV_REF.findall(text)] + _T3_ENV_REF.findall(text)
    return list(dict.fromkeys(n for n in names if n != "NODE_ENV"))


def _credentials(app: DrizzleApp, text: str) -> None:
    creds = _block(text, "dbCredentials")
    if creds is None:
        return
    for key in (*_URL_KEYS, *_PART_KEYS):
        value = _block(creds, key) if creds.startswith("{") else None
        if value is None:
            continue
        value = value.strip().rstrip(",").strip()
        refs = env_refs(value)
        if not refs:
            # a literal string, or a local variable: find what that variable is set from
            ident = re.fullmatch(r"([A-Za-z_$][\w$]*)!?", value)
            if ident:
                decl = re.search(rf"\b(?:const|let|var)\s+{re.escape(ident.group(1))}\s*(?::[^=]+)?=\s*([^;\n]+)", text)
                refs = env_refs(decl.group(1)) if decl else []
            if not refs and re.match(r"""^['"`]""", value) and "${" not in value:
                app.hard_coded.append(key)
        if key in _URL_KEYS:
            app.url_vars += [r for r in refs if r not in app.url_vars]
        elif refs:
            app.part_vars[_PART_KEYS[key]] = refs[0]
    if not creds.startswith("{") or (not app.url_vars and not app.part_vars and not app.hard_coded):
        # `dbCredentials: creds` or `{ ...base }`: fall back to every variable the file reads
        app.url_vars += [r for r in env_refs(text) if r not in app.url_vars]


def _env_files(app: DrizzleApp, text: str) -> None:
    files: list[str] = []
    if re.search(r"""['"]dotenv/config['"]""", text):
        files.append(".env")
    for call in re.finditer(r"\b(?:config|configDotenv|dotenv\.config|loadEnvFile|expand)\s*\(", text):
        args = text[call.end() : call.end() + 400].split(")", 1)[0]
        m = re.search(r"""\bpath\s*:\s*(\[[^\]]*\]|['"`][^'"`]*['"`])""", args)
        if m:
            files += re.findall(r"""['"`]([^'"`]+)['"`]""", m.group(1))
        elif call.group(0).startswith("loadEnvFile"):
            lit = re.match(r"""\s*['"`]([^'"`]+)['"`]""", args)
            files.append(lit.group(1) if lit else ".env")
        elif re.search(r"\b(?:dotenv|configDotenv)\b", text) and not args.strip():
            files.append(".env")
        if re.search(r"\boverride\s*:\s*true\b", args):
            app.env_override = True
    if re.search(r"\bloadEnvConfig\s*\(", text):  # @next/env: .env.$NODE_ENV.local, .env.local, .env.$NODE_ENV, .env
        files += [".env.production.local", ".env.local", ".env.production", ".env"]
    app.env_files = list(dict.fromkeys(files))


def _migrations(app: DrizzleApp, text: str) -> None:
    block = _block(text, "migrations")
    if block and block.startswith("{"):
        table = _string_or_list(block, "table")
        schema = _string_or_list(block, "schema")
        app.migrations_table = table[0] if table else None
        app.migrations_schema = schema[0] if schema else None


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
        except (json.JSONDecodeError, OSError, AttributeError, TypeError, ValueError):
            app.scripts = {}
    cfg = find_config_file(app_dir)
    if cfg is None:
        return app
    app.config_file = cfg
    try:
        text = cfg.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return app
    if cfg.suffix == ".json":
        try:
            data = json.loads(text)
            schema = data.get("schema")
            app.schema = [schema] if isinstance(schema, str) else list(schema or [])
            app.out = data.get("out", app.out)
            app.dialect = data.get("dialect")
            creds = data.get("dbCredentials") or {}
            app.hard_coded = [k for k in (*_URL_KEYS, *_PART_KEYS) if isinstance(creds.get(k), str)]
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
    casing = _string_or_list(text, "casing")
    app.casing = casing[0] if casing else None
    app.schema_filter = _string_or_list(text, "schemaFilter") or []
    app.tables_filter = _string_or_list(text, "tablesFilter") or []
    _credentials(app, text)
    _env_files(app, text)
    _migrations(app, text)
    return app


_REEXPORT = re.compile(r"""\bexport\s+(?:\*(?:\s+as\s+\w+)?|\{[^}]*\}|type\s+\{[^}]*\})\s+from\s+['"](\.{1,2}/[^'"]+)['"]""")


def _resolve_module(base: Path, spec: str) -> Path | None:
    target = (base.parent / spec).resolve()
    stem = target.with_suffix("") if target.suffix in (".js", ".mjs", ".cjs") else target
    for cand in (target, *[stem.with_name(stem.name + ext) for ext in (".ts", ".mts", ".tsx", ".js", ".mjs")],
                 *[stem / f"index{ext}" for ext in (".ts", ".js")]):
        if cand.is_file():
            return cand
    return None


def schema_files(app: DrizzleApp) -> list[Path]:
    """The schema files drizzle.config names, plus the files they re-export (``export * from "./users"``)."""
    seen: list[Path] = []
    todo = [(app.dir / normalise(s)).resolve() for s in app.schema if not any(c in s for c in "*?[{")]
    while todo:
        p = todo.pop(0)
        if p in seen or not p.is_file():
            continue
        seen.append(p)
        try:
            text = strip_comments(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        for spec in _REEXPORT.findall(text):
            found = _resolve_module(p, spec)
            if found:
                todo.append(found)
    return seen


def normalise(path: str) -> str:
    p = path.strip()
    while p.startswith("./"):
        p = p[2:]
    return p.rstrip("/")


@dataclass(frozen=True)
class ScriptEnv:
    """What a package.json script loads before drizzle-kit runs: env files, and whether they override."""

    tool: str | None  # dotenv-cli, env-cmd, dotenvx, node --env-file
    files: tuple[str, ...]
    override: bool


def script_env(command: str, scripts: dict[str, str] | None = None, _depth: int = 0) -> ScriptEnv:
    """Env files loaded by ``command`` (following ``pnpm with-env ...`` into the script it names)."""
    import shlex

    try:
        argv = shlex.split(command)
    except ValueError:
        return ScriptEnv(None, (), False)
    tool, files, override = _env_loaders(argv)
    if scripts and _depth < 3:  # `pnpm with-env drizzle-kit push`, `npm run env -- ...`
        for inner in _named_script_envs(argv, scripts, _depth):
            tool = tool or inner.tool
            files += [f for f in inner.files if f not in files]
            override = override or inner.override
    return ScriptEnv(tool, tuple(dict.fromkeys(files)), override)


def _env_loaders(argv: list[str]) -> tuple[str | None, list[str], bool]:
    """The env-loading tool named in ``argv`` (the last one wins), the files it loads in order, and whether they
    override variables already set."""
    tool: str | None = None
    files: list[str] = []
    override = False
    for i, tok in enumerate(argv):
        rest = argv[i + 1 :]
        if tok in ("dotenv", "dotenv-cli"):
            tool = "dotenv-cli"
            loaded, overrides = _dotenv_cli_options(rest)
            files += loaded
            override = override or overrides
            files = files or [".env"]
        elif tok == "env-cmd":
            tool = "env-cmd"
            override = "--no-override" not in argv  # env-cmd overrides the environment unless told not to
            files += _option_values(rest, ("-f", "--file"))
            files = files or [".env"]
        elif tok == "dotenvx":
            tool = "dotenvx"
            override = "--overload" in argv or "-o" in argv
            files += _option_values(rest, ("-f", "--env-file"))
            files = files or [".env"]
        elif tok.startswith("--env-file="):
            tool = tool or "node --env-file"
            files.append(tok.split("=", 1)[1])
    return tool, files, override


def _dotenv_cli_options(args: list[str]) -> tuple[list[str], bool]:
    """dotenv-cli's options before ``--``: the files ``-e`` and ``-c [env]`` load, in order, and whether
    ``-o``/``--override`` is given."""
    files: list[str] = []
    override = False
    j = 0
    while j < len(args) and args[j] != "--":
        if args[j] == "-e" and j + 1 < len(args):
            files.append(args[j + 1])
            j += 1
        elif args[j] == "-c":
            env = args[j + 1] if j + 1 < len(args) and not args[j + 1].startswith("-") else ""
            files += ([f".env.{env}.local"] if env else []) + [".env.local"] + ([f".env.{env}"] if env else []) + [".env"]
        elif args[j] in ("-o", "--override"):
            override = True
        j += 1
    return files, override


def _option_values(args: list[str], names: tuple[str, ...]) -> list[str]:
    """The value after each occurrence of one of the option ``names`` in ``args``."""
    return [args[j + 1] for j, t in enumerate(args) if t in names and j + 1 < len(args)]


def _named_script_envs(argv: list[str], scripts: dict[str, str], depth: int) -> list[ScriptEnv]:
    """What each package.json script that ``argv`` runs through a package manager loads, in order."""
    from deploysafe.drizzle.pkgmanager import MANAGERS

    found: list[ScriptEnv] = []
    for i, tok in enumerate(argv[:-1]):
        if tok in MANAGERS:
            name = argv[i + 2] if argv[i + 1] in ("run", "run-script") and i + 2 < len(argv) else argv[i + 1]
            if name in scripts:
                found.append(script_env(scripts[name], scripts, depth + 1))
    return found
