"""Operations from the recovery guide (issue 8): backup, check, drill, restore-table, setup, runbook.

Each module holds one command's logic; ``cli.py`` only parses options and calls it. This
package module holds what several of them share: opening the adapters, the clock, snapshot
lookups and the local provider's copy of one database into another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploysafe.providers.base import ANNOTATION_KEY, Snapshot, SnapshotKind
from deploysafe.providers.base import utcnow as utcnow  # re-exported: the ops modules' wall clock

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import Platform
    from deploysafe.providers.base import Provider


def open_provider(loaded: LoadedConfig, **kwargs: Any) -> Provider:
    from deploysafe.providers import make_provider

    return make_provider(loaded, **kwargs)


def open_platform(loaded: LoadedConfig, **kwargs: Any) -> Platform:
    from deploysafe.platforms import make_platform

    return make_platform(loaded, **kwargs)


def newest(snapshots: list[Snapshot], *kinds: SnapshotKind) -> Snapshot | None:
    """The newest snapshot deploysafe made of one of ``kinds`` (None when there is none)."""
    mine = [s for s in snapshots if s.ours and s.kind in kinds]
    return max(mine, key=lambda s: (s.created_at, s.name), default=None)


def is_neon(provider: Provider) -> bool:
    return provider.name == "neon"


def clone_local_database(provider: Provider, source: Snapshot, name: str, kind: SnapshotKind) -> Snapshot:
    """Local provider only: copy one snapshot database into a new one marked as ours (kind ``kind``).

    Drills and restores work on the copy so the snapshot itself is never touched. The copy is
    ``CREATE DATABASE … TEMPLATE snapshot``: snapshots have no sessions, so the fast file-level
    copy applies; if one does, the error says so.
    """
    import json

    import psycopg
    from psycopg import sql

    from deploysafe import pg
    from deploysafe.errors import ProviderError
    from deploysafe.providers.local import LocalProvider, db_name_for

    assert isinstance(provider, LocalProvider)
    target = db_name_for(name)
    # "source" is production (the provider counts a database as ours only when it copies this production);
    # "copied_from" names the snapshot it was made from.
    meta = {ANNOTATION_KEY: kind.value, "name": name, "created_at": provider.now().isoformat(timespec="milliseconds"),
            "source": provider.production_db, "copied_from": source.id}
    with pg.connect(pg.maintenance_url(provider.url)) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(target), sql.Identifier(source.id)))
        except psycopg.errors.ObjectInUse:
            raise ProviderError(
                f"cannot copy snapshot {source.name!r}: other sessions are connected to it",
                hint="disconnect them (nothing should use a snapshot directly) and retry",
            ) from None
        except psycopg.Error as e:
            raise ProviderError(f"cannot copy snapshot {source.name!r}: {pg.first_line(e)}") from None
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(target), sql.Literal(json.dumps(meta))))
    return provider.get(name)
