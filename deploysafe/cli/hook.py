"""The git hook commands: `hook pre-push` (run by git) and `hooks install/uninstall`.

`hook ...` runs inside `git push`: it imports only the standard library until it knows the
push touches schema or migration paths (see deploysafe/hook/prepush.py).
"""

from __future__ import annotations

import sys

import click

from deploysafe.cli.context import Ctx, pass_ctx

# `hook ...` runs inside `git push`: it imports only the standard library until it knows the
# push touches schema or migration paths (see deploysafe/hook/prepush.py).


@click.group("hook")
def hook_group() -> None:
    """Run a git hook (called by the installed hook script, not by hand)."""


@hook_group.command("pre-push")
@click.argument("remote")
@click.argument("url")
@click.option("--legacy", type=click.Path(dir_okay=False), help="The previous hook to run first (set by the hook script).")
@pass_ctx
def hook_pre_push(ctx: Ctx, remote: str, url: str, legacy: str | None) -> int:
    """Check a push to a deploy branch: migrations generated, new SQL linted, optional snapshot.

    Example: git push (the hook runs `deploysafe hook pre-push origin URL` with git's stdin)

    Reads git's `<local ref> <local sha> <remote ref> <remote sha>` lines on stdin. Pushes to other
    branches, tags and deletions pass at once and silently. DEPLOYSAFE_SKIP=1 skips the checks.
    """
    from pathlib import Path

    from deploysafe.errors import UsageError
    from deploysafe.hook.prepush import run_pre_push

    if sys.stdin.isatty():
        raise UsageError("`deploysafe hook pre-push` reads git's push lines on stdin", hint="it is run by git; install it with `deploysafe hooks install`")
    stdin = sys.stdin.buffer.read()
    return run_pre_push(remote, url, stdin, repo_root=Path.cwd(), config=ctx.config_path, legacy=Path(legacy) if legacy else None)


@hook_group.command("pre-commit-pre-push")
@pass_ctx
def hook_pre_commit_pre_push(ctx: Ctx) -> int:
    """The same check, run from pre-commit's pre-push stage (refs come from PRE_COMMIT_* variables).

    Example (.pre-commit-config.yaml): hooks: [{id: deploysafe-pre-push}] with the deploysafe repo
    """
    import os
    from pathlib import Path

    from deploysafe.hook.prepush import run_pre_push, stdin_from_pre_commit

    remote, url, stdin = stdin_from_pre_commit(dict(os.environ))
    return run_pre_push(remote, url, stdin, repo_root=Path.cwd(), config=ctx.config_path)


@click.group("hooks")
def hooks_group() -> None:
    """Install or remove the git pre-push hook."""


@hooks_group.command("install")
@click.option("--force", is_flag=True, help="Also when pre-push.legacy exists: move it aside to pre-push.legacy.bak (nothing is deleted).")
@pass_ctx
def hooks_install(ctx: Ctx, force: bool) -> None:
    """Install the pre-push hook into this repository (core.hooksPath and worktrees respected).

    Example: deploysafe hooks install

    An existing pre-push hook is kept as pre-push.legacy and still runs first.
    """
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.hook.install import install, missing_policy

    result = install(Path.cwd(), force=force, missing=missing_policy(Path.cwd(), ctx.config_path))
    for msg in result.messages:
        console.info(msg)
    console.ok(f"installed {result.path}; pushes to deploy branches are now checked")


@hooks_group.command("uninstall")
def hooks_uninstall() -> None:
    """Remove deploysafe's pre-push hook and restore the hook it replaced.

    Example: deploysafe hooks uninstall
    """
    from pathlib import Path

    from deploysafe.console import console
    from deploysafe.hook.install import uninstall

    result = uninstall(Path.cwd())
    for msg in result.messages:
        console.ok(msg)

