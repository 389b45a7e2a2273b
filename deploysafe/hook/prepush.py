"""The pre-push hook: guard schema changes at the moment they leave the laptop.

Two paths, because a hook that slows every push gets uninstalled:

- the no-op path (deletions, tags, other branches, pushes that touch no schema or migration
  path) uses only the standard library: ``tomllib`` for the ``[hook]`` keys and git plumbing in a
  subprocess. It prints nothing.
- the guard path (schema or migrations touched) imports gitpython, pydantic, the linter and the
  provider, and checks: migrations generated and committed, new SQL linted, optional snapshot.

Git runs hooks in the root of the working tree, so paths here are relative to ``repo_root``.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploysafe.crash import boundary

# Every import on the no-op path costs start-up time: tomllib has already loaded typing, and
# deploysafe.crash imports nothing else; deploysafe.errors is imported when an error is raised,
# deploysafe.redact when there is something to say, gitpython, pydantic, the linter and the
# provider on the guard path only.
if TYPE_CHECKING:
    import git

    from deploysafe.errors import ConfigError, UsageError
    from deploysafe.hook.git import Change, PushRange
    from deploysafe.providers.base import Provider, Snapshot

CONFIG_NAME = "deploysafe.toml"  # same name and search order as deploysafe.config.find_config
SKIP_ENV = "DEPLOYSAFE_SKIP"
ALLOW_ENV = "DEPLOYSAFE_ALLOW_DESTRUCTIVE"
BLOCKED = 1  # any non-zero exit makes git refuse the push


def say(text: str) -> None:
    """Hook messages go to stderr (git shows them with the push output), always redacted."""
    from deploysafe.redact import redact

    print(redact(f"deploysafe: {text}"), file=sys.stderr, flush=True)


def config_error(message: str, *, hint: str) -> ConfigError:
    """A :class:`~deploysafe.errors.ConfigError` (exit 2), imported only when there is one."""
    from deploysafe.errors import ConfigError

    return ConfigError(message, hint=hint)


def usage_error(message: str, *, hint: str) -> UsageError:
    """A :class:`~deploysafe.errors.UsageError` (exit 2), imported only when there is one."""
    from deploysafe.errors import UsageError

    return UsageError(message, hint=hint)


# --- what git tells us ----------------------------------------------------------------------


class PushRef:
    """One line of git's pre-push input. (Plain class: importing dataclasses costs ~10 ms.)"""

    __slots__ = ("local_ref", "local_sha", "remote_ref", "remote_sha")

    def __init__(self, local_ref: str, local_sha: str, remote_ref: str, remote_sha: str) -> None:
        self.local_ref, self.local_sha, self.remote_ref, self.remote_sha = local_ref, local_sha, remote_ref, remote_sha

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PushRef) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "PushRef({!r}, {!r}, {!r}, {!r})".format(*self._key())

    def _key(self) -> tuple[str, str, str, str]:
        return (self.local_ref, self.local_sha, self.remote_ref, self.remote_sha)

    @property
    def is_delete(self) -> bool:
        return _zero(self.local_sha)

    @property
    def is_tag(self) -> bool:
        return self.remote_ref.startswith("refs/tags/") or self.local_ref.startswith("refs/tags/")

    @property
    def branch(self) -> str | None:
        prefix = "refs/heads/"
        return self.remote_ref[len(prefix) :] if self.remote_ref.startswith(prefix) else None


def _zero(sha: str) -> bool:
    return bool(sha) and set(sha) == {"0"}


def parse_refs(text: str) -> list[PushRef]:
    """Parse git's pre-push stdin: ``<local ref> <local sha> <remote ref> <remote sha>`` per line."""
    refs: list[PushRef] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=3)  # the local ref may be an expression holding spaces
        if len(parts) != 4:
            raise usage_error(
                f"unexpected pre-push input line {line!r}",
                hint="this command is run by git's pre-push hook; install it with `deploysafe hooks install`",
            )
        refs.append(PushRef(*parts))
    return refs


# --- the [hook] settings, read without pydantic -----------------------------------------------


class HookSettings:
    """The keys the hook needs, read with tomllib so the no-op path stays cheap."""

    def __init__(self, config_path: Path | None, raw: dict[str, Any]) -> None:
        self.config_path = config_path
        self.raw = raw
        self.branches: list[str] = ["main", "production"]
        self.schema_specs: list[str] = []  # git pathspecs, relative to the repo root
        self.migrations_dir = "drizzle"  # relative to the repo root
        self.app_dir = ""  # relative to the repo root ("" = the root)

    @property
    def pathspecs(self) -> list[str]:
        return [*self.schema_specs, _spec(self.migrations_dir)]

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        return value if isinstance(value, dict) else {}


def find_config_light(explicit: str | None, cwd: Path) -> Path | None:
    """``--config``, ``$DEPLOYSAFE_CONFIG``, then deploysafe.toml from cwd upward; None when absent.

    Mirrors deploysafe.config.find_config, which cannot be used here: importing deploysafe.config
    imports pydantic (~100 ms), and the no-op path must not pay that.
    """
    given = explicit or os.environ.get("DEPLOYSAFE_CONFIG")
    if given:
        p = Path(given)
        if not p.is_file():
            raise config_error(f"config file {p} does not exist", hint="pass an existing file with --config")
        return p.resolve()
    here = cwd.resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_NAME).is_file():
            return d / CONFIG_NAME
    return None


def read_raw(config_path: Path | None) -> dict[str, Any]:
    if config_path is None:
        return {}
    try:
        return tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise config_error(f"{config_path}: cannot read it: {e}", hint="fix the file, or push with DEPLOYSAFE_SKIP=1") from None


def read_settings(repo_root: Path, config_path: Path | None) -> HookSettings:
    s = HookSettings(config_path=config_path, raw=read_raw(config_path))
    hook, app = s.section("hook"), s.section("app")
    branches = hook.get("branches", s.branches)
    if not isinstance(branches, list) or not all(isinstance(b, str) for b in branches):
        raise config_error('hook.branches: must be a list of branch names, e.g. ["main"]', hint=f"fix {config_path}")
    s.branches = branches
    config_root = config_path.parent if config_path else repo_root
    app_abs = (config_root / str(app.get("dir", "."))).resolve()
    s.app_dir = _relative(app_abs, repo_root.resolve())
    paths = hook.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise config_error('hook.paths: must be a list of paths, e.g. ["src/db/schema.ts"]', hint=f"fix {config_path}")
    from deploysafe.drizzle.app import normalise, read_app, schema_files  # no pydantic: fine on the no-op path

    drizzle = read_app(app_abs)
    out = app.get("migrations_dir") or drizzle.out
    s.migrations_dir = _join(s.app_dir, normalise(str(out)))
    # [hook] paths are relative to deploysafe.toml, like every path in the file.
    config_rel = _relative(config_root.resolve(), repo_root.resolve())
    if paths:
        wanted = [_join(config_rel, normalise(p)) for p in paths]
    else:  # the schema drizzle.config names, and the files its entry files re-export (`export * from "./users"`)
        wanted = [_join(s.app_dir, normalise(p)) for p in drizzle.schema]
        for f in schema_files(drizzle):
            if f.is_relative_to(repo_root.resolve()):
                wanted.append(f.relative_to(repo_root.resolve()).as_posix())
        wanted = list(dict.fromkeys(wanted))
    s.schema_specs = [_spec(p) for p in wanted if not _under(p, s.migrations_dir)]
    return s


def _relative(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        raise config_error(
            f"{path} is outside the repository {root}", hint="keep deploysafe.toml and the app inside the repository"
        ) from None
    return "" if rel == "." else rel


def _join(base: str, rel: str) -> str:
    return f"{base}/{rel}" if base and rel else (base or rel)


def _spec(path: str) -> str:
    # ":(glob)" makes "**" match any depth (drizzle schema globs like src/**/schema.ts); plain
    # pathspecs already match every file below a folder.
    return f":(glob){path}" if any(c in path for c in "*?[") else (path or ".")


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


# --- the hook ---------------------------------------------------------------------------------


def run_legacy(legacy: Path, args: list[str], stdin: bytes) -> int:
    """Run the hook that was there before us with the same arguments and stdin (like pre-commit)."""
    return subprocess.run([str(legacy), *args], input=stdin, check=False).returncode


def run_pre_push(
    remote: str,
    url: str,
    stdin: bytes,
    *,
    repo_root: Path,
    config: str | None = None,
    legacy: Path | None = None,
) -> int:
    """The whole hook; returns the exit code (0: push goes ahead)."""
    if legacy is not None and legacy.is_file() and os.access(legacy, os.X_OK):
        code = run_legacy(legacy, [remote, url], stdin)
        if code != 0:
            return code  # the push is refused anyway: do not snapshot for it
    refs = [r for r in parse_refs(stdin.decode("utf-8", "replace")) if not r.is_delete and not r.is_tag and r.branch]
    if not refs:
        return 0
    settings = read_settings(repo_root, find_config_light(config, repo_root))
    refs = [r for r in refs if any(fnmatch.fnmatchcase(r.branch or "", b) for b in settings.branches)]
    refs = [r for r in refs if r.local_sha != r.remote_sha]  # already pushed: nothing new
    touching = [r for r in refs if touches(r, remote, settings.pathspecs, repo_root)]
    if not touching:
        return 0
    if os.environ.get(SKIP_ENV, "") not in ("", "0"):
        # said only when there was something to check, so an exported DEPLOYSAFE_SKIP stays quiet
        say(f"{SKIP_ENV} is set: schema checks skipped for this push")
        return 0
    return guard(touching, remote, settings, repo_root)


def touches(ref: PushRef, remote: str, pathspecs: list[str], repo_root: Path) -> bool:
    """Cheap check (plumbing, no gitpython): does this push change any schema/migration path?"""
    if not _zero(ref.remote_sha):
        diff = _git(repo_root, "diff", "--name-only", ref.remote_sha, ref.local_sha, "--", *pathspecs)
        if diff.returncode == 0:
            return bool(diff.stdout.strip())
        # remote sha unknown locally (not fetched): fall through to "commits on no remote"
    exclude = f"--remotes={remote}" if _zero(ref.remote_sha) and _is_remote(remote, repo_root) else "--remotes"
    log = _git(repo_root, "log", "--format=", "--name-only", ref.local_sha, "--not", exclude, "--", *pathspecs)
    if log.returncode != 0:
        raise usage_error(f"git log failed: {log.stderr.strip()}", hint="check the repository with `git status`")
    return bool(log.stdout.strip())


def _is_remote(remote: str, repo_root: Path) -> bool:
    # git passes the remote's name, or the URL twice when pushing to a URL; a name has no "/" or ":"
    if "/" in remote or ":" in remote:
        return False
    return _git(repo_root, "config", "--get", f"remote.{remote}.url").returncode == 0


def _git(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, check=False)


# --- the guard path: imports the heavy machinery ------------------------------------------------


class _Context:
    def __init__(self, repo: git.Repo, settings: HookSettings, generate: str, remote: str) -> None:
        self.repo, self.settings, self.generate, self.remote = repo, settings, generate, remote


def guard(refs: list[PushRef], remote: str, settings: HookSettings, repo_root: Path) -> int:
    from deploysafe.hook import git as dgit

    repo = dgit.open_repo(repo_root)
    ctx = _Context(repo, settings, _generate_command(settings), remote)
    snapshot_shas: list[str] = []
    for ref in refs:
        rng = dgit.push_range(repo, ref.local_sha, ref.remote_sha, remote)
        if not rng.commits and rng.base == rng.local_sha:
            continue
        found = dgit.changes(repo, rng, settings.pathspecs)
        if not found:
            continue
        where = f"push to {ref.branch}"
        problem = check_generated(ctx, rng, found)
        if problem:
            say(f"{where} blocked: {problem}")
            return BLOCKED
        if not lint_new_sql(ctx, rng, found, where):
            return BLOCKED
        if ref.local_sha not in snapshot_shas:
            snapshot_shas.append(ref.local_sha)
    if _bool(settings.section("hook").get("snapshot", False)):
        for sha in snapshot_shas:
            if not take_snapshot(ctx, sha):
                return BLOCKED
    return 0


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise config_error("hook.snapshot: must be true or false", hint="fix deploysafe.toml")


def _generate_command(settings: HookSettings) -> str:
    cmd = settings.section("app").get("generate", "npm run db:generate")
    cmd = str(cmd) if cmd else "drizzle-kit generate"  # [app] generate = "" / false: the app has no generate script
    return f"cd {settings.app_dir} && {cmd}" if settings.app_dir else cmd


def check_generated(ctx: _Context, rng: PushRange, found: list[Change]) -> str | None:
    """Migrations generated and committed? Returns the reason to block, or None."""
    from deploysafe.hook import git as dgit

    out = ctx.settings.migrations_dir
    schema = [c.path for c in found if not _under(c.path, out)]
    added_sql = [c.path for c in found if _under(c.path, out) and c.path.endswith(".sql") and c.status == "A"]
    fix = f"run `{ctx.generate}`, commit {out}/, and push again (if the change needs no migration, push with {SKIP_ENV}=1)"
    if schema and not added_sql:
        return f"{', '.join(schema)} changed but the pushed commits add no migration in {out}/\n  fix: {fix}"
    # Out of step 1: the schema changed again after the newest commit that touched the migrations.
    if schema:
        last_schema = dgit.newest_commit_touching(ctx.repo, rng, ctx.settings.schema_specs)
        last_migration = dgit.newest_commit_touching(ctx.repo, rng, [_spec(out)])
        if last_schema and last_migration and not dgit.is_ancestor(ctx.repo, last_schema, last_migration):
            short = dgit.short_sha(ctx.repo, last_schema)
            return f"the schema changed in {short} after the newest migration in {out}/ was generated\n  fix: {fix}"
    # Out of step 2: SQL files drizzle-kit does not know about (journal) or without their snapshot.
    journal_path = f"{out}/meta/_journal.json"
    if added_sql and dgit.exists_at(ctx.repo, rng.local_sha, journal_path):
        tags = _journal_tags(dgit.show(ctx.repo, rng.local_sha, journal_path))
        if tags is None:
            return f"{journal_path} is not valid JSON\n  fix: {fix}"
        for path in added_sql:
            tag = Path(path).stem
            if path != f"{out}/{tag}.sql":
                continue  # a SQL file in a subfolder is not a drizzle-kit migration
            if tag not in tags:
                return f"{path} is not listed in {journal_path} (the migrations folder is out of step)\n  fix: {fix}"
            snap = f"{out}/meta/{tags[tag]:04d}_snapshot.json"
            if not dgit.exists_at(ctx.repo, rng.local_sha, snap):
                return f"{snap} is missing for {path} (the migrations folder is out of step)\n  fix: {fix}"
    return None


def _journal_tags(data: bytes) -> dict[str, int] | None:
    import json

    try:
        entries = json.loads(data).get("entries", [])
        return {str(e["tag"]): int(e["idx"]) for e in entries}
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def lint_new_sql(ctx: _Context, rng: PushRange, found: list[Change], where: str) -> bool:
    """Lint the SQL as it is in the pushed commit (not the working tree). False: blocked."""
    from deploysafe.drizzle import lint
    from deploysafe.errors import LintBlocked
    from deploysafe.hook import git as dgit

    out = ctx.settings.migrations_dir
    sql_files = [c.path for c in found if _under(c.path, out) and c.path.endswith(".sql") and c.status in "AM"]
    if not sql_files:
        return True
    findings: list[lint.Finding] = []
    for path in sql_files:
        text = dgit.show(ctx.repo, rng.local_sha, path).decode("utf-8", "replace")
        findings += lint.lint_sql(text, path).findings
    policy = str(ctx.settings.section("lint").get("destructive", "block"))
    allow = os.environ.get(ALLOW_ENV, "") not in ("", "0")
    try:
        shown = lint.enforce(lint.LintReport(findings), policy, allow)
    except LintBlocked as e:
        say(f"{where} blocked: {e.message}")
        say(f"  fix: make the change non-destructive; or, after checking, add `-- deploysafe: allow <rule>` above the "
            f"statement and commit it, or push once with {ALLOW_ENV}=1")
        return False
    for f in shown:
        say(f"{f.location()}: {f.severity} [{f.rule}] {f.message} ({f.url})")
    return True


def take_snapshot(ctx: _Context, sha: str) -> bool:
    """``pre-push-<short sha>`` of kind pre-deploy. False: blocked ([hook] offline = "block")."""
    from deploysafe.config import load_config
    from deploysafe.errors import ProviderError
    from deploysafe.hook import git as dgit
    from deploysafe.providers import make_provider
    from deploysafe.providers.base import SnapshotKind

    cfg_path = ctx.settings.config_path
    if cfg_path is None:
        raise config_error("hook.snapshot needs a deploysafe.toml with a [provider]", hint="run `deploysafe init`")
    loaded = load_config(str(cfg_path))
    name = f"pre-push-{dgit.short_sha(ctx.repo, sha)}"
    try:
        provider = make_provider(loaded)
        try:
            try:
                snap = provider.create_snapshot(name, SnapshotKind.PRE_DEPLOY, git_sha=sha)
            except ProviderError:
                # the same commit pushed again (the first push was refused by the remote): reuse it
                same = _existing(provider, name, sha)
                if same is None:
                    raise
                say(f"snapshot {same.name} of this commit already exists; keeping it")
                return True
        finally:
            provider.close()
    except ProviderError as e:
        offline = loaded.config.hook.offline
        if offline == "block":
            say(f"push blocked: could not take snapshot {name}: {e}")
            say("fix the provider connection and push again, or set [hook] offline = \"warn\"")
            return False
        say("!" * 60)
        say(f"WARNING: NO SNAPSHOT TAKEN: {name} could not be created: {e}")
        say("the push goes ahead ([hook] offline = \"warn\"); take one by hand before the deploy starts:")
        say(f"  deploysafe snapshot create --name {name}")
        say("!" * 60)
        return True
    say(f"snapshot {snap.name} taken (kind pre-deploy, commit {sha[:12]})")
    return True


def _existing(provider: Provider, name: str, sha: str) -> Snapshot | None:
    from deploysafe.errors import ProviderError

    try:
        snap = provider.get(name)
    except ProviderError:
        return None
    return snap if snap.git_sha == sha else None


# --- pre-commit's pre-push stage ----------------------------------------------------------------


def stdin_from_pre_commit(env: dict[str, str]) -> tuple[str, str, bytes]:
    """pre-commit reads git's stdin itself and passes one ref through PRE_COMMIT_* variables.

    PRE_COMMIT_FROM_REF is unset when the push sends the whole history (root commit): that is a
    new branch for us. Returns (remote, url, the equivalent pre-push stdin).
    """
    to_ref = env.get("PRE_COMMIT_TO_REF", "")
    remote_branch = env.get("PRE_COMMIT_REMOTE_BRANCH", "")
    if not remote_branch:
        raise usage_error(
            "PRE_COMMIT_REMOTE_BRANCH is not set: this command runs from pre-commit's pre-push stage",
            hint="use `stages: [pre-push]` in .pre-commit-config.yaml, or install the git hook: `deploysafe hooks install`",
        )
    if not to_ref:
        to_ref = _git(Path.cwd(), "rev-parse", env.get("PRE_COMMIT_LOCAL_BRANCH", "HEAD")).stdout.strip()
    from_ref = env.get("PRE_COMMIT_FROM_REF") or "0" * len(to_ref or "0" * 40)
    local = env.get("PRE_COMMIT_LOCAL_BRANCH", "HEAD")
    remote = env.get("PRE_COMMIT_REMOTE_NAME", "origin")
    url = env.get("PRE_COMMIT_REMOTE_URL", remote)
    return remote, url, f"{local} {to_ref} {remote_branch} {from_ref}\n".encode()


# --- the click-free entry the installed hook script uses ----------------------------------------


def main(argv: list[str]) -> int:
    """``python -m deploysafe.hook.prepush [--legacy PATH] REMOTE URL``: the hook without click.

    The installed script calls it with ``python -c`` (runpy's own imports cost a few ms more).

    Same as ``deploysafe hook pre-push``, through the same error boundary (:mod:`deploysafe.crash`);
    the installed script calls this through the recorded interpreter because importing click and the
    CLI costs more than the whole no-op check (a hook should add under 100 ms to a push).
    """
    args = list(argv)
    legacy: Path | None = None
    if len(args) >= 2 and args[0] == "--legacy":
        legacy = Path(args[1])
        del args[:2]

    def hook() -> int:
        if len(args) != 2:
            raise usage_error("usage: python -m deploysafe.hook.prepush [--legacy PATH] REMOTE URL", hint="git passes REMOTE and URL")
        return run_pre_push(args[0], args[1], sys.stdin.buffer.read(), repo_root=Path.cwd(), legacy=legacy)

    return boundary(hook)  # the same boundary, messages and crash log as every command


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
