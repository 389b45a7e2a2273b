"""The hook tests' repository: the fixture Drizzle app committed and pushed to a local bare remote."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.repo import git, write_migration

FIXTURE_APP = Path(__file__).resolve().parents[1] / "fixtures" / "drizzle-app"


@pytest.fixture
def app_repo(tmp_path: Path, git_env: dict[str, str], bare_remote: Path) -> Path:
    """A clone of a bare remote holding the fixture Drizzle app (no node_modules) and one migration."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q")
    for name in ("drizzle.config.ts", "package.json"):
        shutil.copy(FIXTURE_APP / name, seed / name)
    shutil.copytree(FIXTURE_APP / "src", seed / "src")
    (seed / ".gitignore").write_text("node_modules\n")
    write_migration(seed, 0, "0000_init", 'CREATE TABLE "users" ("id" serial PRIMARY KEY, "email" text NOT NULL);\n')
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "app with first migration")
    git(seed, "remote", "add", "origin", str(bare_remote))
    git(seed, "push", "-q", "origin", "main")
    repo = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare_remote), str(repo))
    return repo
