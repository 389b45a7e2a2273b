"""The app's package manager: which one (npm, pnpm, yarn, bun) and how it runs a script.

Detected the way the managers themselves decide: the ``packageManager`` field of the
nearest package.json that has one (corepack's rule), else the lockfile found walking up
from the app folder to the workspace root (an app inside a monorepo shares the root's
lockfile). Commands and hints are then written in that manager's terms.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

LOCKFILES = (
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
)
MANAGERS = ("npm", "pnpm", "yarn", "bun")


@dataclass(frozen=True)
class PackageManager:
    name: str  # npm | pnpm | yarn | bun
    root: Path  # where the lockfile (or the packageManager field) was found: the workspace root
    source: str  # what told us: "packageManager in <file>", "<lockfile>", or "default"

    def run(self, script: str) -> str:
        """The command that runs a package.json script."""
        if self.name == "yarn":
            return f"yarn {shlex.quote(script)}"
        return f"{self.name} run {shlex.quote(script)}"

    def exec(self, binary: str) -> str:
        """The command that runs a binary of the app's dependencies (e.g. drizzle-kit)."""
        return {"npm": "npx", "pnpm": "pnpm exec", "yarn": "yarn", "bun": "bunx"}[self.name] + f" {binary}"

    def install(self) -> str:
        """The clean-install command for CI."""
        return {
            "npm": "npm ci",
            "pnpm": "pnpm install --frozen-lockfile",
            "yarn": "yarn install --immutable",
            "bun": "bun install --frozen-lockfile",
        }[self.name]


def _package_manager_field(pkg: Path) -> str | None:
    try:
        data = json.loads(pkg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("packageManager") if isinstance(data, dict) else None
    if isinstance(value, str):
        name = value.split("@", 1)[0].strip()
        if name in MANAGERS:
            return name
    return None


def detect(app_dir: Path) -> PackageManager:
    """The manager of the app at ``app_dir`` (npm when nothing says otherwise)."""
    here = app_dir.resolve()
    for d in (here, *here.parents):
        pkg = d / "package.json"
        if pkg.is_file():
            name = _package_manager_field(pkg)
            if name:
                return PackageManager(name, d, f"packageManager in {os.path.relpath(pkg, here)}")
        for lock, name in LOCKFILES:
            if (d / lock).is_file():
                return PackageManager(name, d, lock)
        if (d / ".git").exists():  # the repository's root: a lockfile above it is someone else's
            break
    return PackageManager("npm", here, "default")


def script_of(argv: list[str]) -> tuple[str, str] | None:
    """(manager, script) when ``argv`` runs a package.json script, e.g. ``pnpm run db:push``."""
    if len(argv) < 2 or argv[0] not in MANAGERS:
        return None
    if argv[1] in ("run", "run-script"):
        return (argv[0], argv[2]) if len(argv) >= 3 else None
    if argv[0] == "yarn" and not argv[1].startswith("-") and argv[1] not in ("install", "add", "exec", "dlx", "workspace"):
        return argv[0], argv[1]
    return None


def pass_args(command: str, args: str) -> str:
    """``command`` with ``args`` passed through to the script it runs (npm needs ``--``)."""
    argv = shlex.split(command)
    if argv and argv[0] == "npm" and script_of(argv) and "--" not in argv:
        return f"{command} -- {args}"
    return f"{command} {args}"
