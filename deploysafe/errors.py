"""Typed errors and the exit codes they map to.

Class tree (the exit code each maps to in brackets)::

    DeploysafeError                      [70] base; never raised directly
    ├── UsageError                       [2]  bad command-line use
    ├── ConfigError                      [2]  deploysafe.toml missing, unreadable or invalid
    ├── PreconditionError                [3]  a check failed before production changed
    │   ├── ProviderError                [3]  snapshot backend refused or failed
    │   │   └── PointInTimeError         [3]  timestamp outside the history window / unsupported
    │   ├── PlatformError                [3]  deployment platform refused or failed
    │   ├── StepError                    [3]  db:generate / db:push failed before production changed
    │   │   └── StepTimeout              [3]  a step ran past its timeout and was killed
    │   ├── LintBlocked                  [3]  the new SQL holds a blocked destructive statement
    │   └── ProbeError                   [3]  probes could not run (bad config, unreachable DB)
    ├── DeployFailedRolledBack           [1]  production changed, failed, was rolled back; app healthy
    ├── RollbackFailed                   [4]  rollback failed or is incomplete; a person must act
    │   └── PartialChange                [4]  promote/restore-table changed something, then stopped
    ├── LockHeld                         [5]  another deploysafe run holds the lock
    └── Interrupted                      [130] stopped by the user

Check outcomes of ``deploysafe check`` use their own codes (see ``CHECK_WARN`` and
``CHECK_FAIL``), returned rather than raised.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_ROLLED_BACK = 1
EXIT_USAGE = 2
EXIT_PRECONDITION = 3
EXIT_ROLLBACK_FAILED = 4
EXIT_LOCKED = 5
CHECK_WARN = 6
CHECK_FAIL = 7
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done (or nothing to do)",
    EXIT_ROLLED_BACK: "deploy failed and was rolled back; the app is healthy on the snapshot",
    EXIT_USAGE: "usage or config error",
    EXIT_PRECONDITION: "a precondition or step failed before production changed; nothing was changed",
    EXIT_ROLLBACK_FAILED: "rollback failed or is incomplete: a person must act now (manual steps printed)",
    EXIT_LOCKED: "another deploysafe run holds the lock",
    CHECK_WARN: "`deploysafe check` or `drill`: something warns or a drill target was missed (nothing fails)",
    CHECK_FAIL: "`deploysafe check` or `drill`: something fails; `deploysafe probe`: the app is unhealthy",
    EXIT_INTERNAL: "internal error (a bug; the message says where the log is)",
    EXIT_INTERRUPTED: "interrupted",
}


class DeploysafeError(Exception):
    """Base of every error deploysafe raises on purpose."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.context = context

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class UsageError(DeploysafeError):
    """The command line was used wrongly."""

    exit_code = EXIT_USAGE


class ConfigError(DeploysafeError):
    """The config file is missing, unreadable or invalid."""

    exit_code = EXIT_USAGE


class PreconditionError(DeploysafeError):
    """A check failed before production changed; nothing was changed."""

    exit_code = EXIT_PRECONDITION


class ProviderError(PreconditionError):
    """The snapshot backend (Neon API, PostgreSQL server) refused or failed."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, hint=hint, **context)
        self.status = status
        self.request_id = request_id


class PointInTimeError(ProviderError):
    """A point-in-time request is outside the history window or not supported."""


class PlatformError(PreconditionError):
    """The deployment platform refused or failed."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        platform: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, hint=hint, **context)
        self.status = status
        self.platform = platform


class StepError(PreconditionError):
    """A migration step (db:generate, db:push) failed or did not do what it said."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        step: str | None = None,
        production_changed: bool = False,
        **context: Any,
    ) -> None:
        super().__init__(message, hint=hint, **context)
        self.step = step
        self.production_changed = production_changed


class StepTimeout(StepError):
    """A step ran past its timeout; its process group was killed."""


class LintBlocked(PreconditionError):
    """The new SQL holds a destructive statement that the lint policy blocks."""


class ProbeError(PreconditionError):
    """Probes could not be run at all (as opposed to running and failing)."""


class DeployFailedRolledBack(DeploysafeError):
    """Production changed, the deploy failed, and the app was rolled back and is healthy."""

    exit_code = EXIT_ROLLED_BACK


class RollbackFailed(DeploysafeError):
    """Rollback failed or is incomplete; a person must act using the printed steps."""

    exit_code = EXIT_ROLLBACK_FAILED

    def __init__(
        self, message: str, *, manual_steps: list[str] | None = None, hint: str | None = None, **context: Any
    ) -> None:
        super().__init__(message, hint=hint, **context)
        self.manual_steps = manual_steps or []

    def __str__(self) -> str:
        lines = [self.message]
        if self.manual_steps:
            lines.append("Do these steps by hand now:")
            lines += [f"  {i}. {s}" for i, s in enumerate(self.manual_steps, 1)]
        return "\n".join(lines)


class PartialChange(RollbackFailed):
    """An operation changed something and stopped before it finished: the message says what changed,
    the manual steps what is left (never "nothing was changed" after a change)."""


class LockHeld(DeploysafeError):
    """Another deploysafe run holds the deploy lock."""

    exit_code = EXIT_LOCKED


class Interrupted(DeploysafeError):
    """The run was interrupted by the user."""

    exit_code = EXIT_INTERRUPTED


def exit_code_for(exc: BaseException) -> int:
    """Map any exception to the documented exit code."""
    if isinstance(exc, DeploysafeError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_INTERNAL
