"""Real git repositories for the hook tests: commands run with the virtualenv's ``bin`` first on PATH (as a user
who activated it), commits, pushes, and drizzle-kit's migration files written by hand.

    from support.repo import commit_file, git, push, write_migration

The ``app_repo`` fixture (``tests/hook/conftest.py``) is a clone of the fixture app built with these; the hook
is installed with ``support.cli.run_cli("hooks", "install", cwd=repo, env=tool_env())``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from support.cli import DEPLOYSAFE


def tool_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the virtualenv's ``bin`` first on PATH, then ``env`` on top."""
    path = f"{DEPLOYSAFE.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, **(env or {})}


def run(cwd: Path, *args: str, env: Mapping[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Any command (git, sh, python) in ``cwd`` with :func:`tool_env`; never raises on its exit code."""
    return subprocess.run(list(args), cwd=cwd, env=tool_env(env), capture_output=True, text=True, input=input, check=False)


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """``git ARGS``, which must succeed; its stdout, stripped."""
    proc = run(cwd, "git", *args, env=env)
    assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout.strip()


def push(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``git push origin ARGS``: the installed pre-push hook runs; the caller checks the outcome."""
    return run(cwd, "git", "push", "origin", *args, env=env)


def remote_sha(remote: Path, branch: str) -> str:
    """The commit ``branch`` points at in ``remote`` ("" when it has no such branch)."""
    proc = run(remote, "git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}")
    return proc.stdout.strip()


def commit_file(repo: Path, rel: str, text: str, message: str) -> str:
    """Write ``rel`` and commit it; the new commit's sha."""
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(repo, "add", rel)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def write_migration(repo: Path, idx: int, tag: str, sql: str, *, journal: bool = True, snapshot: bool = True) -> None:
    """What drizzle-kit generate leaves: drizzle/<tag>.sql, meta/_journal.json, meta/<idx>_snapshot.json."""
    out = repo / "drizzle"
    (out / "meta").mkdir(parents=True, exist_ok=True)
    (out / f"{tag}.sql").write_text(sql)
    jpath = out / "meta" / "_journal.json"
    data = json.loads(jpath.read_text()) if jpath.exists() else {"version": "7", "dialect": "postgresql", "entries": []}
    if journal:
        data["entries"].append({"idx": idx, "version": "7", "when": 1700000000000 + idx, "tag": tag, "breakpoints": True})
    jpath.write_text(json.dumps(data, indent=2))
    if snapshot:
        (out / "meta" / f"{idx:04d}_snapshot.json").write_text(json.dumps({"id": tag, "version": "7"}))
