"""``deploysafe init``: write a commented starter deploysafe.toml for an app."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from deploysafe import platforms, providers
from deploysafe.config import CONFIG_NAME
from deploysafe.drizzle import pkgmanager
from deploysafe.drizzle.app import CONFIG_NAMES, DrizzleApp, find_config_file, normalise, read_app, schema_files, script_env
from deploysafe.drizzle.pkgmanager import PackageManager
from deploysafe.envfile import read_var
from deploysafe.errors import PreconditionError, UsageError


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML), so odd paths cannot break the file."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class Detected:
    """What init learned about the app: its commands, workflow, database variables and env files."""

    pm: PackageManager
    workflow: str
    why: str
    generate: str
    push: str
    migrate: str
    database_env: list[str]
    database_env_parts: dict[str, str]
    env_files: list[str]
    env_file: str  # the one the app's URL lives in (for the dotenv platform)
    hook_paths: list[str]


def _committed_journal(app: DrizzleApp) -> bool:
    return (app.dir / normalise(app.out) / "meta" / "_journal.json").is_file()


def _calls_migrator(app_dir: Path) -> bool:
    """A source file calls drizzle-orm's migrator (``import { migrate } from "drizzle-orm/.../migrator"``)."""
    for folder in ("", "src", "lib", "scripts", "db", "src/db", "lib/db", "src/lib/db", "server"):
        d = app_dir / folder
        if not d.is_dir():
            continue
        for f in d.iterdir():
            if f.suffix in (".ts", ".mts", ".js", ".mjs", ".cjs") and f.is_file():
                try:
                    if "/migrator" in f.read_text(encoding="utf-8", errors="replace"):
                        return True
                except OSError:
                    continue
    return False


def detect(app_dir: Path) -> Detected:
    """Read package.json, the lockfiles and drizzle.config.* (never run) into what the config needs."""
    app = read_app(app_dir)
    pm = pkgmanager.detect(app_dir)
    scripts = app.scripts

    def script_for(kit: str) -> str | None:
        """db:<kit>, else a script that runs `drizzle-kit <kit>` (e.g. create-t3-turbo's "push")."""
        if f"db:{kit}" in scripts:
            return f"db:{kit}"
        return next((n for n, c in scripts.items() if re.search(rf"\bdrizzle-kit\s+{kit}\b", c)), None)

    def cmd(kit: str) -> str:
        script = script_for(kit)
        return pm.run(script) if script else pm.exec(f"drizzle-kit {kit}")

    if script_for("push"):
        workflow, why = "push", f"a {script_for('push')} script"
    elif "db:migrate" in scripts or script_for("migrate"):
        workflow, why = "migrate", f"a {script_for('migrate') or 'db:migrate'} script and no push script"
    elif _committed_journal(app):
        workflow, why = "migrate", f"committed migrations ({normalise(app.out)}/meta/_journal.json)"
    elif _calls_migrator(app_dir):
        workflow, why = "migrate", "a call to drizzle-orm's migrator"
    else:
        workflow, why = "push", "no db:migrate script, journal or migrator call"
    push, migrate = cmd("push"), cmd("migrate")
    files: list[str] = []
    for name in (script_for("push") if workflow == "push" else script_for("migrate"), script_for("generate")):
        if name:
            files += script_env(scripts[name], scripts).files
    files += app.env_files
    files = list(dict.fromkeys(normalise(f) if f.startswith("./") else f for f in files))
    database_env = app.url_vars or ([] if app.part_vars else ["DATABASE_URL"])
    names = [*database_env, *app.part_vars.values()]
    existing = [f for f in files if (app_dir / f).is_file()]
    holding = [f for f in existing if any(read_var(app_dir / f, n) for n in names)]
    env_file = (holding or existing or files or [".env"])[0]
    paths = [_rel(p, app_dir) for p in schema_files(app)] or [normalise(p) for p in app.schema]
    return Detected(
        pm=pm, workflow=workflow, why=why, generate=cmd("generate"), push=push, migrate=migrate,
        database_env=database_env, database_env_parts=dict(app.part_vars), env_files=files, env_file=env_file,
        hook_paths=list(dict.fromkeys([*paths, normalise(app.out)])),
    )


def _rel(p: Path, base: Path) -> str:
    try:
        return p.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return p.as_posix()


def workspace_app(root: Path) -> Path | None:
    """The one workspace package below ``root`` holding a drizzle.config.* (None: none, or several)."""
    found = {c.parent for pattern in ("*/drizzle.config.*", "*/*/drizzle.config.*", "*/*/*/drizzle.config.*")
             for c in root.glob(pattern) if "node_modules" not in c.parts and c.name in CONFIG_NAMES}
    return found.pop() if len(found) == 1 else None


def render_starter(root: Path, *, provider: str, platform: str) -> str:
    if not (root / "package.json").is_file():
        raise PreconditionError(
            f"no package.json in {root}", hint="run `deploysafe init` in your Node app's folder, or pass --dir"
        )
    app_dir = root
    if find_config_file(root) is None:  # a workspace root: deploysafe runs the package's own scripts ([app] dir)
        app_dir = workspace_app(root) or root
    rel = _rel(app_dir, root) if app_dir != root else "."
    app = read_app(app_dir)
    d = detect(app_dir)

    def from_root(p: str) -> str:  # paths in deploysafe.toml outside [app] are relative to the file itself
        return normalise(os.path.relpath(app_dir / p, root)) if rel != "." else p
    var = (d.database_env or ["DATABASE_URL"])[0]
    found = [f"# Package manager: {d.pm.name} ({d.pm.source}). Workflow: {d.workflow} ({d.why})."]
    if rel != ".":
        found.append(f"# The Drizzle app is the workspace package in {rel}: its scripts run there directly, not "
                     "through turbo (which refuses interactive tasks without a terminal and may replay a cached run).")
    if app.config_file:
        found.append(f"# Read {app.config_file.name}: schema = {', '.join(app.schema) or '?'}, out = {app.out}"
                     + (f", casing = {app.casing}" if app.casing else "")
                     + (f", schemaFilter = {', '.join(app.schema_filter)}" if app.schema_filter else "")
                     + (f", tablesFilter = {', '.join(app.tables_filter)}" if app.tables_filter else ""))
        reads = [*d.database_env, *d.database_env_parts.values()]
        found.append(f"# Its dbCredentials read {', '.join(reads)}"
                     + (f", loaded from {', '.join(d.env_files)}" if d.env_files else "")
                     + "; every step gets them set to the database it must reach.")
        if app.hard_coded:
            found.append(f"# WARNING: dbCredentials.{', '.join(app.hard_coded)} is written as a literal: deploy refuses "
                         "until it is read from the environment.")
    migrations = []
    if app.migrations_table:
        migrations.append(f"migrations_table = {_q(app.migrations_table)}")
    if app.migrations_schema:
        migrations.append(f"migrations_schema = {_q(app.migrations_schema)}")
    parts = ("database_env_parts = { " + ", ".join(f"{k} = {_q(v)}" for k, v in d.database_env_parts.items()) + " }"
             if d.database_env_parts else None)
    platform_text = platforms.starter(platform).replace("DATABASE_URL", var)
    # a starter with an env file (dotenv) names the one the app's URL was found in
    platform_text = platform_text.replace('env_file = ".env"', f"env_file = {_q(from_root(d.env_file))}")
    if var != "DATABASE_URL":
        platform_text += f"var = {_q(var)}\n"
    return "\n".join(
        [
            "# deploysafe.toml: written by `deploysafe init`. Reference: docs/configuration.md",
            *found,
            "",
            "[app]",
            f"dir = {_q(rel)}",
            f"{'workflow = ' + _q(d.workflow):<36}# \"push\" (drizzle-kit push) or \"migrate\" (committed migrations)",
            f"generate = {_q(d.generate)}",
            f"push = {_q(d.push)}",
            f"migrate = {_q(d.migrate)}",
            "database_env = [" + ", ".join(_q(v) for v in d.database_env) + "]",
            *([parts] if parts else []),
            "env_files = [" + ", ".join(_q(f) for f in d.env_files) + "]",
            'step_timeout = "15m"',
            f"migrations_dir = {_q(normalise(app.out))}",
            *migrations,
            "",
            providers.starter(provider).replace("DATABASE_URL", var),
            platform_text,
            "[probes]",
            'deadline = "60s"',
            'interval = "2s"',
            "[[probes.http]]",
            'name = "health"',
            'url = "http://127.0.0.1:3000/health"',
            "expect_status = 200",
            "",
            "[retention]",
            'pre_deploy = "7d"',
            'daily = "30d"',
            'weekly = "90d"',
            "",
            "[lint]",
            'destructive = "block"              # "block" | "warn" | "allow"',
            "",
            "[hook]",
            "paths = [" + ", ".join(_q(from_root(p)) for p in d.hook_paths) + "]",
            "",
        ]
    )


def ignore_state(app_dir: Path) -> bool:
    """Add ``.deploysafe/`` (journal, locks, reports) to the app's .gitignore; True when it was added."""
    path = app_dir / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if any(line.strip() in (".deploysafe", ".deploysafe/", "/.deploysafe", "/.deploysafe/") for line in text.splitlines()):
        return False
    with path.open("a", encoding="utf-8") as f:
        f.write(("\n" if text and not text.endswith("\n") else "") + "# deploysafe's state (journal, locks, reports)\n.deploysafe/\n")
    return True


def write_starter(app_dir: Path, *, provider: str, platform: str, force: bool) -> Path:
    target = app_dir / CONFIG_NAME
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", hint="edit it, or pass --force to overwrite it")
    text = render_starter(app_dir, provider=provider, platform=platform)
    tmp = target.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    ignore_state(app_dir)
    return target
