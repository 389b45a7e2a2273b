"""Install and uninstall the git pre-push hook, keeping any hook that was there before.

Rules (documented in docs/hooks.md):

- the hooks folder is ``git rev-parse --git-path hooks``: it honours ``core.hooksPath`` and
  worktrees (which share the main repository's hooks);
- a foreign ``pre-push`` is moved to ``pre-push.legacy`` and our script chains to it (same
  arguments and stdin; the push fails if it fails), as pre-commit does; uninstall moves it back;
- nothing is ever deleted: when ``pre-push.legacy`` is already taken, install refuses, and
  ``--force`` moves the old legacy file aside to ``pre-push.legacy.bak`` (``.bak.2``...) first;
- installing over our own script just rewrites it (updates the recorded deploysafe path).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from deploysafe.errors import PreconditionError

MARKER = "deploysafe-pre-push-hook"
HOOK = "pre-push"
LEGACY = "pre-push.legacy"
# hooks/pre-push in a source checkout (editable install); a wheel would ship it as package data
# under deploysafe/templates/ (setuptools only packages files inside the package).
TEMPLATES = (Path(__file__).resolve().parents[2] / "hooks" / HOOK, Path(__file__).resolve().parents[1] / "templates" / HOOK)


@dataclass
class HookResult:
    path: Path
    messages: list[str] = field(default_factory=list)


def hooks_dir(cwd: Path) -> Path:
    """The folder git runs hooks from (core.hooksPath and worktrees respected)."""
    from deploysafe.childenv import user_environment

    proc = subprocess.run(
        ["git", "rev-parse", "--git-path", "hooks"], cwd=cwd, capture_output=True, text=True, check=False,
        env=user_environment(),
    )
    if proc.returncode != 0:
        raise PreconditionError(f"{cwd} is not inside a git repository", hint="cd into your app's repository and run it again")
    path = Path(proc.stdout.strip())
    return path if path.is_absolute() else (cwd / path).resolve()


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def deploysafe_executable() -> str:
    """The console script that is running now, so the hook uses the same install (venv, pipx...)."""
    candidates = [Path(sys.argv[0]), Path(sys.executable).parent / "deploysafe"]
    for c in candidates:
        if c.name == "deploysafe" and c.is_file() and os.access(c, os.X_OK):
            return str(c.absolute())
    return ""  # not found: the script falls back to PATH


def render(template: str, executable: str, missing: str, python: str | None = None) -> str:
    """Fill in the recorded install: its console script, its interpreter, the missing policy."""
    python = sys.executable if python is None else python
    out = template.replace("DEPLOYSAFE=''", f"DEPLOYSAFE={shlex.quote(executable)}", 1)
    out = out.replace("DEPLOYSAFE_PYTHON=''", f"DEPLOYSAFE_PYTHON={shlex.quote(python if executable else '')}", 1)
    return out.replace("DEPLOYSAFE_HOOK_MISSING='allow'", f"DEPLOYSAFE_HOOK_MISSING={shlex.quote(missing)}", 1)


def _template() -> str:
    for path in TEMPLATES:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise PreconditionError(
        f"the hook script is missing from this deploysafe install (looked for {TEMPLATES[0]})", hint="reinstall deploysafe"
    )


def _free_backup(path: Path) -> Path:
    cand = path.with_name(path.name + ".bak")
    n = 2
    while os.path.lexists(cand):
        cand = path.with_name(f"{path.name}.bak.{n}")
        n += 1
    return cand


def install(cwd: Path, *, force: bool = False, missing: str = "allow", executable: str | None = None) -> HookResult:
    """Install the pre-push hook; a foreign hook becomes pre-push.legacy and keeps running."""
    folder = hooks_dir(cwd)
    folder.mkdir(parents=True, exist_ok=True)
    target, legacy = folder / HOOK, folder / LEGACY
    result = HookResult(target)
    if os.path.lexists(target) and not is_ours(target):
        if os.path.lexists(legacy):
            if not force:
                raise PreconditionError(
                    f"{target} is not deploysafe's and {legacy} already exists, so the current hook cannot be kept",
                    hint=f"merge them by hand, or pass --force to move {legacy.name} aside to {legacy.name}.bak first",
                )
            backup = _free_backup(legacy)
            os.replace(legacy, backup)
            result.messages.append(f"moved the old {legacy.name} to {backup.name} (kept, not run)")
        os.replace(target, legacy)
        result.messages.append(f"kept your existing hook as {legacy.name}; it runs first, with the same input")
    text = render(_template(), executable if executable is not None else deploysafe_executable(), missing)
    tmp = target.with_name(f".{HOOK}.deploysafe-tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o755)
    os.replace(tmp, target)
    return result


def uninstall(cwd: Path) -> HookResult:
    """Remove our hook and put back the one it replaced."""
    folder = hooks_dir(cwd)
    target, legacy = folder / HOOK, folder / LEGACY
    result = HookResult(target)
    if not os.path.lexists(target):
        result.messages.append(f"no pre-push hook in {folder}; nothing to do")
        return result
    if not is_ours(target):
        raise PreconditionError(
            f"{target} was not installed by deploysafe; left it alone", hint="remove it by hand if you want it gone"
        )
    target.unlink()
    result.messages.append(f"removed {target}")
    if os.path.lexists(legacy):
        os.replace(legacy, target)
        result.messages.append(f"restored your previous hook from {legacy.name}")
    return result


def missing_policy(cwd: Path, config: str | None) -> str:
    """[hook] missing from deploysafe.toml (read cheaply), recorded into the script at install time."""
    from deploysafe.hook.prepush import find_config_light, read_raw

    path = find_config_light(config, cwd)
    hook = read_raw(path).get("hook", {})
    value = hook.get("missing", "allow") if isinstance(hook, dict) else "allow"
    if value not in ("allow", "block"):
        from deploysafe.errors import ConfigError

        raise ConfigError(f'hook.missing: must be "allow" or "block", not {value!r}', hint=f"fix {path}")
    return str(value)
