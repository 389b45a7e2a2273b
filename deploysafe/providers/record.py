"""Where the app points, recorded with the provider so every runner sees it.

A fresh CI runner has no journal, and some platforms cannot say where DATABASE_URL points (Fly
secrets, Vercel sensitive variables, a ``command`` platform without ``get_command``). So every
repoint (rollback, promote, ``deploy --assume-production``) also records its target in the
production database's own ``COMMENT ON DATABASE``, as a JSON object under :data:`RECORD_KEY`.
On Neon that is the production branch's database (a branch is its own server); on a plain
server it is the production database. Neon's API has no writable annotation on an existing
branch (``BranchUpdateRequest`` carries only name, protected and expires_at), so the catalog is
the place both providers share.

A comment someone else wrote (not a JSON object) is never overwritten: recording then fails
with a ProviderError naming the database, and the callers warn.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from deploysafe import pg
from deploysafe.errors import ProviderError

RECORD_KEY = "deploysafe_app_points_at"


def _comment(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    return row[0] if row else None


def _as_object(comment: str | None) -> dict[str, Any] | None:
    """The comment as a JSON object ({} when empty); None when it is someone else's text."""
    if not comment:
        return {}
    try:
        parsed = json.loads(comment)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def read(production_url: str) -> str | None:
    """The recorded target (a snapshot's or production's name), or None when nothing was recorded."""
    try:
        with pg.connect(production_url) as conn:
            meta = _as_object(_comment(conn)) or {}
    except psycopg.Error as e:
        raise ProviderError(f"cannot read where the app points: {pg.first_line(e)}") from None
    value = meta.get(RECORD_KEY)
    target = value.get("name") if isinstance(value, dict) else None
    return target if isinstance(target, str) and target else None


def write(production_url: str, target: str, *, now: datetime | None = None) -> None:
    """Record that the app's DATABASE_URL now points at ``target``."""
    moment = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    try:
        with pg.connect(production_url) as conn:
            meta = _as_object(_comment(conn))
            if meta is None:
                raise ProviderError(
                    f"database {pg.dbname_of(production_url)!r} carries a comment deploysafe did not write; "
                    "not overwriting it to record where the app points",
                    hint="remove or move that COMMENT ON DATABASE, or keep the state dir between runs",
                )
            meta[RECORD_KEY] = {"name": target, "recorded_at": moment}
            db = conn.execute("SELECT current_database()").fetchone()
            assert db is not None
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(db[0]), sql.Literal(json.dumps(meta))))
    except psycopg.Error as e:
        raise ProviderError(f"cannot record where the app points: {pg.first_line(e)}") from None
