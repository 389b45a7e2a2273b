"""Where does the app's DATABASE_URL point right now?

Asked of the platform where it can tell; otherwise the journal's record of the last
repoint (rollback or promote) answers. Prune, check and status all use this one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploysafe.journal import read_journal

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider

REPOINT_STEP = "repoint"  # journal step whose details carry {"target": <snapshot name>}


@dataclass(frozen=True)
class InUse:
    name: str | None  # snapshot/branch/database name, or None when unknown
    source: str  # "platform", "journal" or "unknown"
    detail: str = ""


def last_repoint(loaded: LoadedConfig) -> str | None:
    target = None
    for rec in read_journal(loaded.state_dir):
        if rec.get("step") == REPOINT_STEP and rec.get("outcome") == "ok":
            target = rec.get("details", {}).get("target")
    return target


def app_points_at(loaded: LoadedConfig, provider: Provider, platform: Platform | None) -> InUse:
    from deploysafe.errors import PlatformError

    detail = "no platform"
    if platform is not None:
        detail = ""
        try:
            cur = platform.read_current()
        except PlatformError as e:
            detail = f"platform unreadable: {e.message}"
        else:
            if cur.readable and cur.value and not cur.reference:
                name = provider.identify(cur.value)
                if name:
                    return InUse(name, "platform")
                detail = "the platform's value matches no known branch or database"
            elif cur.reference:
                # a reference (Railway ${{...}}, Heroku add-on) points at production by construction
                return InUse(provider.production().name, "platform", "reference")
    journal = last_repoint(loaded)
    if journal:
        return InUse(journal, "journal", detail)
    return InUse(None, "unknown", detail)
