"""`deploysafe hooks install/uninstall` and the hook script, with real git repos and real `git push`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
DEPLOYSAFE = VENV_BIN / "deploysafe"
FIXTURE_APP = ROOT / "tests" / "fixtures" / "drizzle-app"


def run(cwd: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    return subprocess.run(list(args), cwd=cwd, env=full, capture_output=True, text=True, input=input, check=False)


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = run(cwd, "git", *args, env=env)
    assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout.strip()


def push(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run(cwd, "git", "push", "origin", *args, env=env)


def ds(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console script, as a user runs it."""
    return run(cwd, str(DEPLOYSAFE), *args, env=env)


def remote_sha(remote: Path, branch: str) -> str:
    proc = run(remote, "git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}")
    return proc.stdout.strip()


def commit_file(repo: Path, rel: str, text: str, message: str) -> str:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(repo, "add", rel)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


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
    from hook.test_prepush import write_migration  # the migration writer lives with the guard tests

    write_migration(seed, 0, "0000_init", 'CREATE TABLE "users" ("id" serial PRIMARY KEY, "email" text NOT NULL);\n')
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "app with first migration")
    git(seed, "remote", "add", "origin", str(bare_remote))
    git(seed, "push", "-q", "origin", "main")
    repo = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare_remote), str(repo))
    return repo


def hooks_path(repo: Path) -> Path:
    path = repo / ".git" / "hooks"  # the empty template dir means git made none
    path.mkdir(exist_ok=True)
    return path


# --- install ----------------------------------------------------------------------------------


def test_install_writes_executable_script_recording_this_deploysafe(app_repo: Path) -> None:
    proc = ds(app_repo, "hooks", "install")
    assert proc.returncode == 0, proc.stderr
    hook = hooks_path(app_repo) / "pre-push"
    text = hook.read_text()
    assert os.access(hook, os.X_OK)
    assert f"DEPLOYSAFE={DEPLOYSAFE}\n" in text
    assert "DEPLOYSAFE_PYTHON=" + str(VENV_BIN / "python") in text or "DEPLOYSAFE_PYTHON=/" in text
    assert "DEPLOYSAFE_HOOK_MISSING=allow\n" in text
    assert not (hooks_path(app_repo) / "pre-push.legacy").exists()
    # installing again rewrites our own script and does not turn it into a legacy hook
    assert ds(app_repo, "hooks", "install").returncode == 0
    assert not (hooks_path(app_repo) / "pre-push.legacy").exists()


def test_install_records_missing_block_from_config(app_repo: Path) -> None:
    (app_repo / "deploysafe.toml").write_text('[hook]\nmissing = "block"\n')
    assert ds(app_repo, "hooks", "install").returncode == 0
    assert "DEPLOYSAFE_HOOK_MISSING=block\n" in (hooks_path(app_repo) / "pre-push").read_text()


def test_install_outside_a_repository_fails_with_a_hint(tmp_path: Path, git_env: dict[str, str]) -> None:
    proc = ds(tmp_path, "hooks", "install")
    assert proc.returncode == 3
    assert "not inside a git repository" in proc.stderr
    assert "Traceback" not in proc.stderr


FOREIGN = """#!/bin/sh
echo "args: $*" > "{log}"
cat >> "{log}"
exit {code}
"""


def test_foreign_hook_is_chained_with_args_and_stdin_and_restored(app_repo: Path, bare_remote: Path, tmp_path: Path) -> None:
    log = tmp_path / "foreign.log"
    foreign = hooks_path(app_repo) / "pre-push"
    foreign.write_text(FOREIGN.format(log=log, code=0))
    foreign.chmod(0o755)
    original = foreign.read_text()

    proc = ds(app_repo, "hooks", "install")
    assert proc.returncode == 0, proc.stderr
    assert "pre-push.legacy" in proc.stdout
    assert (hooks_path(app_repo) / "pre-push.legacy").read_text() == original

    sha = commit_file(app_repo, "README.md", "hi\n", "readme")
    result = push(app_repo, "main")
    assert result.returncode == 0, result.stderr
    seen = log.read_text()
    assert seen.startswith(f"args: origin {bare_remote}\n")
    assert f"refs/heads/main {sha} refs/heads/main " in seen  # the same stdin git gave us

    proc = ds(app_repo, "hooks", "uninstall")
    assert proc.returncode == 0, proc.stderr
    assert foreign.read_text() == original
    assert not (hooks_path(app_repo) / "pre-push.legacy").exists()


def test_failing_foreign_hook_blocks_the_push(app_repo: Path, bare_remote: Path, tmp_path: Path) -> None:
    foreign = hooks_path(app_repo) / "pre-push"
    foreign.write_text(FOREIGN.format(log=tmp_path / "log", code=7))
    foreign.chmod(0o755)
    assert ds(app_repo, "hooks", "install").returncode == 0
    before = remote_sha(bare_remote, "main")
    commit_file(app_repo, "README.md", "hi\n", "readme")
    result = push(app_repo, "main")
    assert result.returncode != 0
    assert remote_sha(bare_remote, "main") == before


def test_existing_legacy_is_never_overwritten(app_repo: Path) -> None:
    hooks = hooks_path(app_repo)
    (hooks / "pre-push").write_text("#!/bin/sh\necho current\n")
    (hooks / "pre-push.legacy").write_text("#!/bin/sh\necho older\n")
    proc = ds(app_repo, "hooks", "install")
    assert proc.returncode == 3
    assert "--force" in proc.stderr
    assert (hooks / "pre-push").read_text() == "#!/bin/sh\necho current\n"  # untouched

    proc = ds(app_repo, "hooks", "install", "--force")
    assert proc.returncode == 0, proc.stderr
    assert (hooks / "pre-push.legacy").read_text() == "#!/bin/sh\necho current\n"
    assert (hooks / "pre-push.legacy.bak").read_text() == "#!/bin/sh\necho older\n"


def test_uninstall_leaves_a_foreign_hook_alone(app_repo: Path) -> None:
    hook = hooks_path(app_repo) / "pre-push"
    hook.write_text("#!/bin/sh\nexit 0\n")
    proc = ds(app_repo, "hooks", "uninstall")
    assert proc.returncode == 3
    assert "not installed by deploysafe" in proc.stderr
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"
    assert ds(app_repo, "hooks", "uninstall").returncode == 3
    hook.unlink()
    proc = ds(app_repo, "hooks", "uninstall")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout


def test_core_hooks_path_is_respected(app_repo: Path, bare_remote: Path) -> None:
    git(app_repo, "config", "core.hooksPath", ".githooks")
    assert ds(app_repo, "hooks", "install").returncode == 0
    hook = app_repo / ".githooks" / "pre-push"
    assert hook.is_file()
    assert not (hooks_path(app_repo) / "pre-push").exists()
    # it really runs: a schema change without a migration is refused
    commit_file(app_repo, "src/schema.ts", (app_repo / "src/schema.ts").read_text() + "// more\n", "schema")
    result = push(app_repo, "main")
    assert result.returncode != 0
    assert "npm run db:generate" in result.stderr


def test_worktree_installs_into_the_shared_hooks_folder(app_repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    git(app_repo, "worktree", "add", "-q", "-b", "side", str(wt))
    proc = ds(wt, "hooks", "install")
    assert proc.returncode == 0, proc.stderr
    assert (hooks_path(app_repo) / "pre-push").is_file()


def _break_recorded_path(repo: Path) -> Path:
    hook = hooks_path(repo) / "pre-push"
    text = hook.read_text().replace(f"DEPLOYSAFE={DEPLOYSAFE}\n", "DEPLOYSAFE=/nonexistent/deploysafe\n")
    hook.write_text(text)
    return hook


def _path_without_deploysafe(tmp_path: Path) -> str:
    # git and sh only: no deploysafe anywhere on PATH
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "cat"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_missing_deploysafe_lets_the_push_through_with_one_line(app_repo: Path, bare_remote: Path, tmp_path: Path) -> None:
    assert ds(app_repo, "hooks", "install").returncode == 0
    _break_recorded_path(app_repo)
    sha = commit_file(app_repo, "src/schema.ts", "// changed\n", "schema without migration")
    proc = subprocess.run(
        ["git", "push", "origin", "main"], cwd=app_repo, capture_output=True, text=True,
        env={**os.environ, "PATH": _path_without_deploysafe(tmp_path)}, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("deploysafe:")]
    assert len(lines) == 1 and "cannot find deploysafe" in lines[0] and "rm " in lines[0]
    assert remote_sha(bare_remote, "main") == sha


def test_missing_deploysafe_blocks_when_recorded(app_repo: Path, bare_remote: Path, tmp_path: Path) -> None:
    (app_repo / "deploysafe.toml").write_text('[hook]\nmissing = "block"\n')
    assert ds(app_repo, "hooks", "install").returncode == 0
    _break_recorded_path(app_repo)
    before = remote_sha(bare_remote, "main")
    commit_file(app_repo, "README.md", "x\n", "readme")
    proc = subprocess.run(
        ["git", "push", "origin", "main"], cwd=app_repo, capture_output=True, text=True,
        env={**os.environ, "PATH": _path_without_deploysafe(tmp_path)}, check=False,
    )
    assert proc.returncode != 0
    assert remote_sha(bare_remote, "main") == before


def test_hook_script_is_posix_sh() -> None:
    proc = subprocess.run(["sh", "-n", str(ROOT / "hooks" / "pre-push")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_pre_commit_manifest_points_at_a_real_command(tmp_path: Path) -> None:
    import yaml

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "deploysafe-pre-push"
    assert hook["stages"] == ["pre-push"] and hook["language"] == "python"
    assert hook["pass_filenames"] is False and hook["always_run"] is True
    program, *args = hook["entry"].split()
    assert program == "deploysafe"
    proc = ds(tmp_path, *args, "--help")
    assert proc.returncode == 0 and "PRE_COMMIT_" in proc.stdout
