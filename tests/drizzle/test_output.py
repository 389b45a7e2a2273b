"""A stopped prompt names the fix in the app's package manager's terms."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.drizzle import output as drizzle_patterns
from deploysafe.drizzle import pkgmanager
from deploysafe.drizzle.steps import generate
from deploysafe.errors import StepError

MANAGERS = [
    ("package-lock.json", "`npx drizzle-kit generate`"),
    ("pnpm-lock.yaml", "`pnpm exec drizzle-kit generate`"),
    ("yarn.lock", "`yarn drizzle-kit generate`"),
    ("bun.lock", "`bunx drizzle-kit generate`"),
]

# what drizzle-kit 0.x draws before it waits for the answer (the step is stopped at this line)
PROMPT = "Is full_name column in users table created or renamed from another column?"


def _app(root: Path, lockfile: str) -> LoadedConfig:
    root.mkdir()
    (root / "package.json").write_text(json.dumps({"name": "app", "private": True}))
    (root / lockfile).write_text("")
    (root / "drizzle").mkdir()
    printer = root / "prompt.py"
    printer.write_text(f"import sys, time\nprint({PROMPT!r}, flush=True)\ntime.sleep(60)\n")
    text = (
        f'[app]\ndir = "."\nmigrations_dir = "drizzle"\nstep_timeout = "30s"\n'
        f'generate = "{sys.executable} prompt.py"\n'
        '[provider]\ntype = "local"\ndatabase_url = "${DATABASE_URL}"\n'
        '[platform]\ntype = "dotenv"\nenv_file = ".env"\n'
    )
    return LoadedConfig(parse_config(text, env={"DATABASE_URL": "postgresql://app@127.0.0.1:1/app"}),
                        root / "deploysafe.toml")


@pytest.mark.parametrize(("lockfile", "command"), MANAGERS)
def test_a_stopped_rename_prompt_names_the_fix_with_the_app_s_manager(tmp_path: Path, lockfile: str,
                                                                      command: str) -> None:
    loaded = _app(tmp_path / "app", lockfile)
    with pytest.raises(StepError) as exc:
        generate(loaded, "postgresql://app@127.0.0.1:1/app")
    assert "rename-prompt" in str(exc.value) and "stopped at a question" in str(exc.value)
    hint = exc.value.hint or ""
    assert command in hint and "answer the rename question" in hint
    assert "{drizzle_kit}" not in hint and (lockfile == "package-lock.json" or "npx" not in hint)


@pytest.mark.parametrize("name", pkgmanager.MANAGERS)
def test_every_hint_is_rendered_without_a_placeholder_or_another_manager(tmp_path: Path, name: str) -> None:
    manager = pkgmanager.PackageManager(name, tmp_path, "test")
    for pattern in drizzle_patterns.PATTERNS:
        hint = drizzle_patterns.render_hint(pattern, manager)
        assert "{" not in hint, (pattern.name, hint)
        assert name == "npm" or not re.search(r"\bnp[mx]\b", hint), (pattern.name, hint)
    uncaught = next(p for p in drizzle_patterns.PATTERNS if p.name == "uncaught-error")
    assert f"the same {name} script" in drizzle_patterns.render_hint(uncaught, manager)
