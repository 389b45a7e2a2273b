"""gitpython helpers for the pre-push hook: which commits a push sends, what they change, file contents.

Imported only once the hook knows a push touches schema or migration paths: gitpython
costs tens of milliseconds to import, which the no-op path must not pay.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import git
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from deploysafe.errors import PreconditionError


def is_zero(sha: str) -> bool:
    """git writes all zeros (40 for sha1, 64 for sha256) for "no object": a deletion or a new ref."""
    return bool(sha) and set(sha) == {"0"}


@dataclass(frozen=True)
class Change:
    status: str  # A (added), M, D, R (renamed: path is the new name), C, T
    path: str  # relative to the repository root


@dataclass(frozen=True)
class PushRange:
    """What one pushed ref sends: ``commits`` (newest first) and the tree it is compared with."""

    local_sha: str
    base: str  # a commit (the remote's sha or the parent of the oldest pushed commit) or the empty tree
    exclude: tuple[str, ...]  # rev-list arguments naming what the remote already has
    commits: tuple[str, ...]


def open_repo(path: Path) -> git.Repo:
    try:
        return git.Repo(path, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise PreconditionError(f"{path} is not inside a git repository", hint="run this in your app's repository") from None


def commit_exists(repo: git.Repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
    except GitCommandError:
        return False
    return True


def is_remote_name(repo: git.Repo, remote: str) -> bool:
    return remote in {r.name for r in repo.remotes}


def push_range(repo: git.Repo, local_sha: str, remote_sha: str, remote: str) -> PushRange:
    """Work out what a pushed ref sends.

    - remote sha known locally (fast-forward, force push, already pushed): compare with it;
    - new branch (remote sha zeros): the commits on no remote-tracking ref of that remote;
    - remote sha unknown here (someone pushed since our last fetch): the commits on no
      remote-tracking ref at all, compared with the parent of the oldest of them.
    """
    if not is_zero(remote_sha) and commit_exists(repo, remote_sha):
        commits = _rev_list(repo, local_sha, ("--not", remote_sha))
        return PushRange(local_sha, remote_sha, ("--not", remote_sha), commits)
    if is_zero(remote_sha) and is_remote_name(repo, remote):
        exclude: tuple[str, ...] = ("--not", f"--remotes={remote}")
    else:
        exclude = ("--not", "--remotes")
    commits = _rev_list(repo, local_sha, exclude)
    if not commits:
        return PushRange(local_sha, local_sha, exclude, ())
    oldest = commits[-1]
    parents = repo.commit(oldest).parents
    base = parents[0].hexsha if parents else empty_tree(repo)
    return PushRange(local_sha, base, exclude, commits)


def empty_tree(repo: git.Repo) -> str:
    """The empty tree's id (base of a push that sends a root commit); differs for sha256 repos."""
    out: str = repo.git.hash_object("-t", "tree", "--stdin", istream=subprocess.DEVNULL)
    return out.strip()


def _rev_list(repo: git.Repo, local_sha: str, exclude: tuple[str, ...], *paths: str, limit: int | None = None) -> tuple[str, ...]:
    args = ["--topo-order", local_sha, *exclude]
    if limit is not None:
        args.insert(0, f"--max-count={limit}")
    if paths:
        args += ["--", *paths]
    out: str = repo.git.rev_list(*args)
    return tuple(line for line in out.splitlines() if line)


def changes(repo: git.Repo, rng: PushRange, pathspecs: list[str]) -> list[Change]:
    """Net changes between what the remote has and what is pushed, limited to ``pathspecs``."""
    if not pathspecs:
        return []
    out: str = repo.git.diff("--name-status", "-z", "--no-renames", rng.base, rng.local_sha, "--", *pathspecs)
    parts = out.split("\0")
    found: list[Change] = []
    for status, path in zip(parts[0::2], parts[1::2]):
        if status:
            found.append(Change(status[0], path))
    return found


def newest_commit_touching(repo: git.Repo, rng: PushRange, pathspecs: list[str]) -> str | None:
    """The newest pushed commit that changes ``pathspecs`` (None: none does)."""
    if not pathspecs or not rng.commits:
        return None
    found = _rev_list(repo, rng.local_sha, rng.exclude, *pathspecs, limit=1)
    return found[0] if found else None


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
    except GitCommandError:
        return False
    return True


def show(repo: git.Repo, sha: str, path: str) -> bytes:
    """A file's content in commit ``sha`` (the pushed commit, not the working tree)."""
    blob = repo.commit(sha).tree / path
    data: bytes = blob.data_stream.read()
    return data


def exists_at(repo: git.Repo, sha: str, path: str) -> bool:
    try:
        repo.commit(sha).tree / path
    except KeyError:
        return False
    return True


def short_sha(repo: git.Repo, sha: str) -> str:
    out: str = repo.git.rev_parse("--short", sha)
    return out.strip()
