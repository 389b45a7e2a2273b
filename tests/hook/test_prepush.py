"""The pre-push guard on real `git push` runs: a bare remote, a clone of the fixture Drizzle app, the
hook installed by the real console script. Migrations are written by hand (no drizzle-kit here)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from deploysafe.hook.prepush import PushRef, parse_refs, read_settings, stdin_from_pre_commit
from hook.test_install import DEPLOYSAFE, app_repo, commit_file, ds, git, push, remote_sha, run  # noqa: F401

ZERO = "0" * 40
SCHEMA_ADD = '  nickname: text("nickname"),\n'
ADD_NICK = 'ALTER TABLE "users" ADD COLUMN "nickname" text;\n'


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


def change_schema(repo: Path) -> None:
    path = repo / "src" / "schema.ts"
    text = path.read_text()
    path.write_text(text.replace('  name: text("name"),\n', '  name: text("name"),\n' + SCHEMA_ADD))


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def hooked(app_repo: Path) -> Path:  # noqa: F811
    proc = ds(app_repo, "hooks", "install")
    assert proc.returncode == 0, proc.stderr
    return app_repo


def deploysafe_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "deploysafe" in ln]


# --- the no-op path -------------------------------------------------------------------------------


def test_unrelated_change_passes_silently(hooked: Path, bare_remote: Path) -> None:
    sha = commit_file(hooked, "README.md", "hello\n", "docs")
    result = push(hooked, "main")
    assert result.returncode == 0, result.stderr
    assert deploysafe_lines(result.stderr) == []
    assert remote_sha(bare_remote, "main") == sha


def test_other_branch_tag_and_deletion_pass_silently(hooked: Path, bare_remote: Path) -> None:
    change_schema(hooked)
    sha = commit_all(hooked, "schema without migration")
    # a feature branch: not a deploy branch
    result = push(hooked, "HEAD:refs/heads/feature")
    assert result.returncode == 0, result.stderr
    assert deploysafe_lines(result.stderr) == []
    # a tag on that commit
    git(hooked, "tag", "v1")
    result = push(hooked, "v1")
    assert result.returncode == 0, result.stderr
    assert deploysafe_lines(result.stderr) == []
    # deleting a deploy branch on the remote
    git(hooked, "push", "-q", "--no-verify", "origin", "main~1:refs/heads/production")
    result = push(hooked, ":production")
    assert result.returncode == 0, result.stderr
    assert deploysafe_lines(result.stderr) == []
    assert remote_sha(bare_remote, "production") == ""
    assert remote_sha(bare_remote, "feature") == sha


@pytest.mark.parametrize(
    ("entry", "allowed_click"),
    [
        (["-m", "deploysafe", "hook", "pre-push"], True),
        (["-c", "import sys; from deploysafe.hook.prepush import main; sys.exit(main(sys.argv[1:]))"], False),
    ],
    ids=["deploysafe-hook-pre-push", "installed-script-entry"],
)
def test_noop_path_imports_nothing_heavy(hooked: Path, entry: list[str], allowed_click: bool) -> None:
    base = git(hooked, "rev-parse", "HEAD")
    sha = commit_file(hooked, "README.md", "hello\n", "docs")
    stdin = f"refs/heads/main {sha} refs/heads/main {base}\n"
    proc = run(hooked, sys.executable, "-X", "importtime", *entry, "origin", "url", input=stdin)
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "tomllib" in imported  # sanity: the import log was captured
    assert not imported & {"pydantic", "httpx", "git", "psycopg", "pglast"}
    assert ("click" in imported) == allowed_click


def test_already_pushed_sha_is_a_noop(hooked: Path) -> None:
    sha = git(hooked, "rev-parse", "HEAD")
    stdin = f"refs/heads/main {sha} refs/heads/main {sha}\n"
    proc = run(hooked, str(DEPLOYSAFE), "hook", "pre-push", "origin", "url", input=stdin)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


# --- schema changes ---------------------------------------------------------------------------------


def test_schema_change_with_its_migration_passes(hooked: Path, bare_remote: Path) -> None:
    change_schema(hooked)
    write_migration(hooked, 1, "0001_nickname", ADD_NICK)
    sha = commit_all(hooked, "nickname")
    result = push(hooked, "main")
    assert result.returncode == 0, result.stderr
    assert remote_sha(bare_remote, "main") == sha
    assert not [ln for ln in deploysafe_lines(result.stderr) if "blocked" in ln]


def test_schema_change_without_migration_is_blocked_with_the_fix(hooked: Path, bare_remote: Path) -> None:
    before = remote_sha(bare_remote, "main")
    change_schema(hooked)
    commit_all(hooked, "nickname, forgot to generate")
    result = push(hooked, "main")
    assert result.returncode != 0
    assert "push to main blocked: src/schema.ts changed but the pushed commits add no migration in drizzle/" in result.stderr
    assert "fix: run `npm run db:generate`, commit drizzle/, and push again" in result.stderr
    assert remote_sha(bare_remote, "main") == before


def test_schema_changed_again_after_generating_is_blocked(hooked: Path) -> None:
    change_schema(hooked)
    write_migration(hooked, 1, "0001_nickname", ADD_NICK)
    commit_all(hooked, "nickname")
    path = hooked / "src" / "schema.ts"
    path.write_text(path.read_text().replace(SCHEMA_ADD, SCHEMA_ADD + '  bio: text("bio"),\n'))
    late = commit_all(hooked, "bio, forgot to generate")
    result = push(hooked, "main")
    assert result.returncode != 0
    assert f"the schema changed in {late[:7]}" in result.stderr
    assert "npm run db:generate" in result.stderr


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"journal": False}, "drizzle/0001_nickname.sql is not listed in drizzle/meta/_journal.json"),
        ({"snapshot": False}, "drizzle/meta/0001_snapshot.json is missing for drizzle/0001_nickname.sql"),
    ],
    ids=["sql-not-in-journal", "snapshot-missing"],
)
def test_migrations_folder_out_of_step_is_blocked(hooked: Path, kwargs: dict[str, bool], expected: str) -> None:
    change_schema(hooked)
    write_migration(hooked, 1, "0001_nickname", ADD_NICK, **kwargs)
    commit_all(hooked, "partial or hand-made migration")
    result = push(hooked, "main")
    assert result.returncode != 0
    assert expected in result.stderr
    assert "npm run db:generate" in result.stderr


def test_skip_env_lets_anything_through_with_a_note(hooked: Path, bare_remote: Path) -> None:
    commit_file(hooked, "README.md", "x\n", "docs")
    result = push(hooked, "main", env={"DEPLOYSAFE_SKIP": "1"})
    assert result.returncode == 0 and deploysafe_lines(result.stderr) == []  # nothing to skip: silent
    change_schema(hooked)
    sha = commit_all(hooked, "no migration")
    result = push(hooked, "main", env={"DEPLOYSAFE_SKIP": "1"})
    assert result.returncode == 0, result.stderr
    assert "DEPLOYSAFE_SKIP is set" in result.stderr
    assert remote_sha(bare_remote, "main") == sha


def test_no_verify_skips_natively(hooked: Path, bare_remote: Path) -> None:
    change_schema(hooked)
    sha = commit_all(hooked, "no migration")
    result = run(hooked, "git", "push", "--no-verify", "origin", "main")
    assert result.returncode == 0, result.stderr
    assert remote_sha(bare_remote, "main") == sha


# --- ranges: new branch, force push, unknown remote sha ---------------------------------------------


def test_new_deploy_branch_checks_only_commits_not_on_the_remote(hooked: Path, bare_remote: Path) -> None:
    # production does not exist on the remote yet: the commits not on origin/* are checked
    sha = commit_file(hooked, "README.md", "hello\n", "docs")
    result = push(hooked, "HEAD:refs/heads/production")
    assert result.returncode == 0, result.stderr
    assert deploysafe_lines(result.stderr) == []
    assert remote_sha(bare_remote, "production") == sha
    git(hooked, "push", "-q", "--no-verify", "origin", ":production")
    change_schema(hooked)
    commit_all(hooked, "no migration")
    result = push(hooked, "HEAD:refs/heads/production")
    assert result.returncode != 0
    assert "push to production blocked" in result.stderr


def test_force_push_compares_with_what_the_remote_has(hooked: Path, bare_remote: Path) -> None:
    change_schema(hooked)
    write_migration(hooked, 1, "0001_nickname", ADD_NICK)
    commit_all(hooked, "nickname")
    assert push(hooked, "main").returncode == 0
    # rewrite: drop the migration but keep the schema change, then force push
    git(hooked, "rm", "-q", "-r", "drizzle/0001_nickname.sql", "drizzle/meta/0001_snapshot.json")
    write_migration(hooked, 0, "0000_init", 'CREATE TABLE "users" ("id" serial PRIMARY KEY, "email" text NOT NULL);\n')
    jpath = hooked / "drizzle" / "meta" / "_journal.json"
    data = json.loads(jpath.read_text())
    data["entries"] = [e for e in data["entries"] if e["tag"] == "0000_init"][:1]
    jpath.write_text(json.dumps(data))
    path = hooked / "src" / "schema.ts"
    path.write_text(path.read_text().replace(SCHEMA_ADD, SCHEMA_ADD + '  bio: text("bio"),\n'))
    git(hooked, "add", "-A")
    git(hooked, "commit", "-q", "--amend", "-m", "rewritten")
    before = remote_sha(bare_remote, "main")
    result = push(hooked, "--force", "main")
    assert result.returncode != 0
    assert "src/schema.ts changed but the pushed commits add no migration" in result.stderr
    assert remote_sha(bare_remote, "main") == before
    # a force push that only rewrites an unrelated file passes silently
    git(hooked, "reset", "-q", "--hard", before)
    commit_file(hooked, "README.md", "v1\n", "docs")
    git(hooked, "commit", "-q", "--amend", "-m", "docs, reworded")
    result = push(hooked, "--force", "main")
    assert result.returncode == 0, result.stderr
    assert deploysafe_lines(result.stderr) == []


def test_unknown_remote_sha_falls_back_to_commits_on_no_remote(hooked: Path, bare_remote: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare_remote), str(other))
    commit_file(other, "NOTES.md", "theirs\n", "someone else's commit")
    git(other, "push", "-q", "--no-verify", "origin", "main")
    # we have not fetched: the remote's sha is unknown here; a force push must still be checked
    change_schema(hooked)
    commit_all(hooked, "no migration")
    result = push(hooked, "--force", "main")
    assert result.returncode != 0
    assert "no migration in drizzle/" in result.stderr


# --- lint -------------------------------------------------------------------------------------------

DROP = 'ALTER TABLE "users" DROP COLUMN "name";\n'


def _drop_name(repo: Path, sql: str) -> None:
    path = repo / "src" / "schema.ts"
    path.write_text(path.read_text().replace('  name: text("name"),\n', ""))
    write_migration(repo, 1, "0001_drop_name", sql)
    commit_all(repo, "drop name")


def _rule_for(sql: str, tmp_path: Path) -> str:
    from deploysafe.drizzle import lint

    f = tmp_path / "probe.sql"
    f.write_text(sql)
    rules = {finding.rule for finding in lint.lint_files([f]).findings}
    assert len(rules) == 1, rules
    return rules.pop()


def test_destructive_migration_is_blocked_and_passes_with_the_override(hooked: Path, bare_remote: Path) -> None:
    _drop_name(hooked, DROP)
    before = remote_sha(bare_remote, "main")
    result = push(hooked, "main")
    assert result.returncode != 0
    assert "push to main blocked" in result.stderr
    assert "drizzle/0001_drop_name.sql" in result.stderr
    assert "DEPLOYSAFE_ALLOW_DESTRUCTIVE=1" in result.stderr
    assert remote_sha(bare_remote, "main") == before
    result = push(hooked, "main", env={"DEPLOYSAFE_ALLOW_DESTRUCTIVE": "1"})
    assert result.returncode == 0, result.stderr
    assert remote_sha(bare_remote, "main") == git(hooked, "rev-parse", "HEAD")


def test_destructive_migration_passes_with_an_allow_comment(hooked: Path, bare_remote: Path, tmp_path: Path) -> None:
    rule = _rule_for(DROP, tmp_path)
    _drop_name(hooked, f"-- deploysafe: allow {rule}\n{DROP}")
    result = push(hooked, "main")
    assert result.returncode == 0, result.stderr
    assert remote_sha(bare_remote, "main") == git(hooked, "rev-parse", "HEAD")


def test_lint_reads_the_pushed_commit_not_the_working_tree(hooked: Path) -> None:
    _drop_name(hooked, DROP)
    # the working tree says the SQL is harmless; the commit being pushed does not
    (hooked / "drizzle" / "0001_drop_name.sql").write_text('ALTER TABLE "users" ADD COLUMN "x" text;\n')
    result = push(hooked, "main")
    assert result.returncode != 0
    assert "push to main blocked" in result.stderr


# --- snapshot ----------------------------------------------------------------------------------------

CONFIG = """
[provider]
type = "local"
database_url = "${{DATABASE_URL}}"

[platform]
type = "dotenv"
env_file = ".env"

[hook]
snapshot = true
offline = "{offline}"
"""


def _with_snapshot_config(repo: Path, offline: str = "warn") -> None:
    (repo / "deploysafe.toml").write_text(CONFIG.format(offline=offline))
    commit_all(repo, "deploysafe config")


def _databases(url: str) -> set[str]:
    with psycopg.connect(url) as c:
        return {r[0] for r in c.execute("SELECT datname FROM pg_database")}


def _schema_change_to_snapshot(repo: Path) -> str:
    """[hook] snapshot on, then a commit that changes the schema with its migration; returns its sha."""
    _with_snapshot_config(repo)
    change_schema(repo)
    write_migration(repo, 1, "0001_nickname", ADD_NICK)
    return commit_all(repo, "nickname")


def test_snapshot_is_taken_when_enabled(hooked: Path, bare_remote: Path, make_db: Callable[..., str]) -> None:
    prod = make_db("prod")
    sha = _schema_change_to_snapshot(hooked)
    result = push(hooked, "main", env={"DATABASE_URL": prod})
    assert result.returncode == 0, result.stderr
    short = git(hooked, "rev-parse", "--short", sha)
    assert f"snapshot pre-push-{short} taken" in result.stderr
    from deploysafe.providers.local import LocalProvider

    snap = LocalProvider(prod).get(f"pre-push-{short}")
    assert snap.git_sha == sha and snap.kind is not None and snap.kind.value == "pre-deploy"
    assert remote_sha(bare_remote, "main") == sha
    # an unrelated push afterwards takes no snapshot and says nothing
    commit_file(hooked, "README.md", "x\n", "docs")
    before = _databases(prod)
    result = push(hooked, "main", env={"DATABASE_URL": prod})
    assert result.returncode == 0 and deploysafe_lines(result.stderr) == []
    assert _databases(prod) == before


def test_the_same_commit_pushed_again_keeps_its_snapshot(hooked: Path, bare_remote: Path, make_db: Callable[..., str]) -> None:
    """A push the remote refused is retried: the hook finds pre-push-<sha> of that very commit and keeps it."""
    prod = make_db("prod")
    sha = _schema_change_to_snapshot(hooked)
    stdin = f"refs/heads/main {sha} refs/heads/main {remote_sha(bare_remote, 'main')}\n"
    short = git(hooked, "rev-parse", "--short", sha)
    hook = [str(DEPLOYSAFE), "hook", "pre-push", "origin", str(bare_remote)]
    first = run(hooked, *hook, input=stdin, env={"DATABASE_URL": prod})
    assert first.returncode == 0 and f"snapshot pre-push-{short} taken" in first.stderr, first.stderr
    again = run(hooked, *hook, input=stdin, env={"DATABASE_URL": prod})
    assert again.returncode == 0, again.stderr
    assert f"snapshot pre-push-{short} of this commit already exists; keeping it" in again.stderr


def test_provider_unreachable_warns_loudly_and_pushes(hooked: Path, bare_remote: Path) -> None:
    _with_snapshot_config(hooked, offline="warn")
    change_schema(hooked)
    write_migration(hooked, 1, "0001_nickname", ADD_NICK)
    sha = commit_all(hooked, "nickname")
    dead = "postgresql://nobody:secretpw@127.0.0.1:1/prod"
    result = push(hooked, "main", env={"DATABASE_URL": dead})
    assert result.returncode == 0, result.stderr
    assert "WARNING: NO SNAPSHOT TAKEN" in result.stderr
    assert "secretpw" not in result.stderr
    assert remote_sha(bare_remote, "main") == sha


def test_provider_unreachable_blocks_when_configured(hooked: Path, bare_remote: Path) -> None:
    _with_snapshot_config(hooked, offline="block")
    change_schema(hooked)
    write_migration(hooked, 1, "0001_nickname", ADD_NICK)
    commit_all(hooked, "nickname")
    before = remote_sha(bare_remote, "main")
    result = push(hooked, "main", env={"DATABASE_URL": "postgresql://nobody:secretpw@127.0.0.1:1/prod"})
    assert result.returncode != 0
    assert "could not take snapshot" in result.stderr
    assert "secretpw" not in result.stderr
    assert remote_sha(bare_remote, "main") == before


# --- pieces -------------------------------------------------------------------------------------------


def test_parse_refs_keeps_refs_with_spaces_and_flags_deletes_and_tags() -> None:
    sha = "a" * 40
    refs = parse_refs(f"HEAD~1 {sha} refs/heads/main {ZERO}\n(delete) {ZERO} refs/heads/old {sha}\nrefs/tags/v1 {sha} refs/tags/v1 {ZERO}\n")
    assert refs[0] == PushRef("HEAD~1", sha, "refs/heads/main", ZERO)
    assert refs[0].branch == "main" and not refs[0].is_delete and not refs[0].is_tag
    assert refs[1].is_delete
    assert refs[2].is_tag and refs[2].branch is None


def test_bad_stdin_is_a_usage_error_without_traceback(hooked: Path) -> None:
    proc = run(hooked, str(DEPLOYSAFE), "hook", "pre-push", "origin", "url", input="garbage\n")
    assert proc.returncode == 2
    assert "unexpected pre-push input line" in proc.stderr and "Traceback" not in proc.stderr


def test_settings_from_hook_paths_and_app_dir(tmp_path: Path) -> None:
    app = tmp_path / "apps" / "web"
    app.mkdir(parents=True)
    (app / "drizzle.config.ts").write_text('export default { schema: ["./src/db/*.ts", "./src/tables/**"], out: "./migrations" }\n')
    cfg = tmp_path / "deploysafe.toml"
    cfg.write_text('[app]\ndir = "apps/web"\n[hook]\nbranches = ["release/*"]\n')
    s = read_settings(tmp_path, cfg)
    assert s.branches == ["release/*"]
    assert s.schema_specs == [":(glob)apps/web/src/db/*.ts", ":(glob)apps/web/src/tables/**"]
    assert s.migrations_dir == "apps/web/migrations"
    cfg.write_text('[app]\ndir = "apps/web"\n[hook]\npaths = ["apps/web/schema.prisma", "apps/web/migrations"]\n')
    s = read_settings(tmp_path, cfg)
    assert s.schema_specs == ["apps/web/schema.prisma"]  # the migrations folder is not schema


def test_pre_commit_variables_become_one_push_line() -> None:
    sha, old = "b" * 40, "c" * 40
    env = {
        "PRE_COMMIT_FROM_REF": old, "PRE_COMMIT_TO_REF": sha, "PRE_COMMIT_REMOTE_BRANCH": "refs/heads/main",
        "PRE_COMMIT_LOCAL_BRANCH": "refs/heads/main", "PRE_COMMIT_REMOTE_NAME": "origin", "PRE_COMMIT_REMOTE_URL": "git@x:y",
    }
    assert stdin_from_pre_commit(env) == ("origin", "git@x:y", f"refs/heads/main {sha} refs/heads/main {old}\n".encode())
    del env["PRE_COMMIT_FROM_REF"]  # whole history pushed: a new branch for us
    assert stdin_from_pre_commit(env)[2].endswith(f" {ZERO}\n".encode())


def test_pre_commit_entry_blocks_like_the_hook(hooked: Path) -> None:
    base = git(hooked, "rev-parse", "HEAD")
    change_schema(hooked)
    sha = commit_all(hooked, "no migration")
    env = {
        "PRE_COMMIT_FROM_REF": base, "PRE_COMMIT_TO_REF": sha, "PRE_COMMIT_REMOTE_BRANCH": "refs/heads/main",
        "PRE_COMMIT_LOCAL_BRANCH": "refs/heads/main", "PRE_COMMIT_REMOTE_NAME": "origin", "PRE_COMMIT_REMOTE_URL": "x",
    }
    proc = ds(hooked, "hook", "pre-commit-pre-push", env=env)
    assert proc.returncode == 1
    assert "no migration in drizzle/" in proc.stderr
    proc = ds(hooked, "hook", "pre-commit-pre-push", env={k: v for k, v in env.items() if k != "PRE_COMMIT_REMOTE_BRANCH"})
    assert proc.returncode == 2 and "stages: [pre-push]" in proc.stderr



def test_first_push_of_a_new_repository(tmp_path: Path, git_env: dict[str, str]) -> None:
    """Root commits: nothing on any remote yet, compared with the empty tree."""
    remote = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    src = Path(__file__).resolve().parents[1] / "fixtures" / "drizzle-app"
    for name in ("drizzle.config.ts", "package.json"):
        (repo / name).write_text((src / name).read_text())
    (repo / "src").mkdir()
    (repo / "src" / "schema.ts").write_text((src / "src" / "schema.ts").read_text())
    commit_all(repo, "app, migrations not generated")
    git(repo, "remote", "add", "origin", str(remote))
    assert ds(repo, "hooks", "install").returncode == 0
    result = push(repo, "main")
    assert result.returncode != 0
    assert "src/schema.ts changed but the pushed commits add no migration" in result.stderr
    write_migration(repo, 0, "0000_init", 'CREATE TABLE "users" ("id" serial PRIMARY KEY);\n')
    sha = commit_all(repo, "generated")
    result = push(repo, "main")
    assert result.returncode == 0, result.stderr
    assert remote_sha(remote, "main") == sha


def test_default_schema_paths_follow_re_exports(tmp_path: Path) -> None:
    app = tmp_path / "apps" / "web"
    (app / "lib" / "db" / "schema").mkdir(parents=True)
    (app / "drizzle.config.ts").write_text('export default { schema: "./lib/db/schema/index.ts" }\n')
    (app / "lib" / "db" / "schema" / "index.ts").write_text('export * from "./chat";\nexport { user } from "./user.js";\n')
    (app / "lib" / "db" / "schema" / "chat.ts").write_text("export const chat = 1;\n")
    (app / "lib" / "db" / "schema" / "user.ts").write_text("export const user = 1;\n")
    cfg = tmp_path / "deploysafe.toml"
    cfg.write_text('[app]\ndir = "apps/web"\n')
    assert read_settings(tmp_path, cfg).schema_specs == [
        "apps/web/lib/db/schema/index.ts", "apps/web/lib/db/schema/chat.ts", "apps/web/lib/db/schema/user.ts"]
