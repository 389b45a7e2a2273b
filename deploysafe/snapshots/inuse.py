"""Where does the app's DATABASE_URL point right now?

Asked of the platform where it can tell; otherwise the provider's record (written by every
repoint, so every runner sees it: see providers/record.py), then this machine's journal of
the last repoint (rollback or promote) answers. Prune, check and status all use this one answer.

When none can tell, the answer is "unknown" and callers fail closed: prune keeps
every snapshot the app could be using, and deploy refuses unless ``--assume-production``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from deploysafe import pg
from deploysafe.errors import DeploysafeError, PlatformError
from deploysafe.journal import read_journal

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import CurrentValue, Platform
    from deploysafe.providers.base import Provider

REPOINT_STEP = "repoint"  # journal step whose details carry {"target": <snapshot name>}


@dataclass(frozen=True)
class InUse:
    name: str | None  # snapshot/branch/database name, or None when unknown
    source: str  # "platform", "provider" (the provider-side record), "journal" or "unknown"
    detail: str = ""


def last_repoint(loaded: LoadedConfig) -> str | None:
    target = None
    for rec in read_journal(loaded.state_dir):
        if rec.get("step") == REPOINT_STEP and rec.get("outcome") == "ok":
            target = rec.get("details", {}).get("target")
    return target


def app_points_at(loaded: LoadedConfig, provider: Provider, platform: Platform | None) -> InUse:
    current, detail = read_current(platform)
    return points_at(loaded, provider, current, detail)


def read_current(platform: Platform | None) -> tuple[CurrentValue | None, str]:
    """The platform's value (None when there is no platform or it is unreadable, with why)."""
    if platform is None:
        return None, "no platform"
    try:
        return platform.read_current(), ""
    except PlatformError as e:
        return None, f"platform unreadable: {e.message}"


def points_at(loaded: LoadedConfig, provider: Provider, cur: CurrentValue | None, detail: str) -> InUse:
    """Where the app points, from the platform's value already read (:func:`read_current`)."""
    if cur is not None:
        if cur.readable and cur.value and not cur.reference:
            name = provider.identify(cur.value)
            if name:
                return InUse(name, "platform")
            prod = provider.production()
            if same_database(cur.value, prod.url):  # the provider could not say, but it is production's URL
                return InUse(prod.name, "platform")
            detail = "the platform's value matches no known branch or database"
        elif cur.reference:
            # a reference (Railway ${{...}}, Heroku add-on) points at production by construction
            return InUse(provider.production().name, "platform", "reference")
    try:
        recorded = provider.recorded_app_target()
    except DeploysafeError as e:
        recorded = None
        detail = f"{detail}; provider record unreadable: {e.message}".lstrip("; ")
    if recorded:
        return InUse(recorded, "provider", detail)
    journal = last_repoint(loaded)
    if journal:
        return InUse(journal, "journal", detail)
    return InUse(None, "unknown", detail or "nothing recorded where the app points")


def same_database(a: str, b: str) -> bool:
    """Do two connection URLs name the same database as the same user on the same host and port?"""


    try:
        return (pg.server_of(a), pg.dbname_of(a), urlsplit(a).username) == (pg.server_of(b), pg.dbname_of(b),
                                                                           urlsplit(b).username)
    except ValueError:
        return False


def record_target(provider: Provider, name: str) -> str | None:
    """Record the app's new target with the provider; the reason when that failed (never raises:
    a repoint that happened must not be reported as failed because its record could not be written)."""
    try:
        provider.record_app_target(name)
    except DeploysafeError as e:
        return e.message
    return None
