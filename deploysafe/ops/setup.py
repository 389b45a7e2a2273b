"""``deploysafe setup``: make the provider ready for production use, and say what is left to do.

Neon: production must be the project's root branch (instant restore in place, native snapshots and
backup schedules work only on root branches, docs: introduction/branch-restore, guides/backup-restore).
When the production branch is missing, the root default branch is renamed to it (its connection string
stays); a production that is a child branch is reported with what it loses and how to fix it. Protect it
where the plan allows, propose a ``[retention]`` that fits the plan's branch allowance, and say
where the connection string comes from and where it must go (never the password itself).
Local: there is nothing to create; it says so and lists the checks that apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deploysafe.errors import ProviderError
from deploysafe.ops.check import CHECKS, LOCAL_NOT_APPLICABLE

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.journal import Journal
    from deploysafe.providers.base import ProjectFacts, Provider, Snapshot

DEFAULT_ALLOWANCE = 10  # Neon Free and Launch include 10 branches per project
RESERVED = 2  # one pre-deploy snapshot + one restore/drill branch in flight


@dataclass
class SetupReport:
    done: list[str] = field(default_factory=list)  # what was changed
    notes: list[str] = field(default_factory=list)  # what is already fine / advice
    retention: dict[str, str] = field(default_factory=dict)  # proposed [retention] values
    todo: list[str] = field(default_factory=list)  # what a person must still do

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "notes": self.notes, "retention": self.retention, "todo": self.todo}


def propose_retention(allowance: int, fixed: int) -> dict[str, str]:
    """Daily/weekly counts that fit ``allowance`` branches beside ``fixed`` ones deploysafe does not manage.

    The guide's 7 daily + 4 weekly + pre-deploy snapshots need 13+ slots; the Free plan's 10 cannot
    hold them, so the counts shrink (weekly first kept at 1+, daily at 1+), pre-deploy to 1 day.
    """
    room = max(2, allowance - fixed - RESERVED)
    weekly = max(1, min(4, room // 3))
    daily = max(1, min(7, room - weekly))
    tight = daily < 7 or weekly < 4
    return {
        "daily": f"{daily}d",
        "weekly": f"{weekly}w",
        "pre_deploy": "1d" if tight else "7d",
        "restore": "1d" if tight else "7d",
        "drill": "1d",
    }


def run_setup(loaded: LoadedConfig, provider: Provider, journal: Journal, *, dry_run: bool = False) -> SetupReport:
    facts = provider.capabilities().project_facts
    report = _neon(loaded, provider, facts, journal, dry_run=dry_run) if facts else _local(loaded)
    journal.event("result", outcome="dry run" if dry_run else "ok", done=report.done, todo=report.todo)
    return report


def _local(loaded: LoadedConfig) -> SetupReport:
    report = SetupReport()
    report.notes.append("the local provider has nothing to set up: production is the database in "
                        "[provider] database_url and snapshots are copies on the same server")
    report.notes.append("checks that apply: " + ", ".join(n for n, _ in CHECKS if n not in LOCAL_NOT_APPLICABLE))
    report.todo.append("schedule `deploysafe backup` daily and `deploysafe check` after it; run `deploysafe drill` monthly")
    return report


def _root_default(provider: Provider) -> Snapshot:
    root = next((s for s in provider.list_snapshots() if s.is_default and not s.parent_id), None)
    if root is None:
        raise ProviderError("the project has no root default branch to make production",
                            hint="set [provider] production_branch to the project's root branch")
    return root


CHILD_LOSES = ("instant restore in place (rollback then repoints DATABASE_URL instead), Neon's snapshots and backup "
               "schedules, which work only on root branches")


def _neon(loaded: LoadedConfig, provider: Provider, facts: ProjectFacts, journal: Journal, *, dry_run: bool) -> SetupReport:
    report = SetupReport()
    cfg = loaded.config.provider
    name = cfg.production_branch
    info = facts.project_info()
    snaps = provider.list_snapshots()
    prod = next((s for s in snaps if s.name == name), None)
    if prod is None:
        root = _root_default(provider)
        if dry_run:
            report.todo.append(f"rename the root default branch {root.name!r} to {name!r} (dry run: not done)")
        else:
            with journal.step("setup-name-production", branch=name, was=root.name):
                provider.rename(root.name, name)
            report.done.append(f"renamed the root default branch {root.name!r} to {name!r}: production is the root "
                               "branch, its connection string is unchanged")
            prod = provider.get(name)
    elif prod.parent_id:
        parent = next((s.name for s in snaps if s.id == prod.parent_id), prod.parent_id)
        report.todo.append(
            f"production branch {name!r} is a child of {parent!r}: it loses {CHILD_LOSES}. To fix: in the Neon console "
            f"restore the root branch {parent!r} from {name!r} (Backup & restore → from another branch), move the app "
            f"to {parent!r}'s connection string and set [provider] production_branch = {parent!r}"
        )
    else:
        report.notes.append(f"production branch {name!r} exists and is a root branch")
    plan = str(info.subscription_type or "unknown")
    if prod is not None and prod.protected:
        report.notes.append(f"{name!r} is protected")
    elif plan.startswith("free"):
        report.notes.append("the Free plan has no protected branches; upgrade to protect production")
    elif dry_run:
        report.todo.append(f"protect {name!r} (dry run: not done)")
    else:
        try:
            with journal.step("setup-protect", branch=name):
                facts.protect(name)
            report.done.append(f"protected {name!r} (it can no longer be deleted or reset by mistake)")
        except ProviderError as e:
            report.todo.append(f"protect {name!r} in the Neon console: the API refused ({e.message})")
    allowance = info.branches_limit or DEFAULT_ALLOWANCE
    fixed = len([s for s in snaps if not s.ours]) + (1 if prod is not None and prod not in snaps else 0)
    report.retention = propose_retention(allowance, max(fixed, 1))
    report.notes.append(f"plan {plan}: {allowance} branches; {fixed} not managed by deploysafe")
    if info.history_retention_seconds <= 0:
        report.todo.append("enable point-in-time history (history retention) in the Neon console")
    report.todo.append(
        f"copy {name!r}'s connection string from the Neon console (Dashboard → Connect → branch {name!r}, "
        f"database {cfg.database!r}, role {cfg.role!r}, pooled) into {loaded.config.platform.var} on "
        f"{loaded.config.platform.type}; deploysafe itself reads it from the Neon API with ${cfg.api_key_env}"
    )
    return report


def retention_toml(values: dict[str, str]) -> str:
    return "[retention]\n" + "\n".join(f'{k} = "{v}"' for k, v in values.items())
