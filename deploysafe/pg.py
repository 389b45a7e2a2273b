"""Small PostgreSQL helpers shared by the local provider, probes, locks and restores.

Identifiers are always quoted with psycopg's ``sql`` module; no user value is ever
interpolated into SQL text or a shell command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg

from deploysafe.childenv import libpq_environment
from deploysafe.demo.embedded import pgserver_bin_dir
from deploysafe.errors import PreconditionError, ProviderError
from deploysafe.redact import url_password

CONNECT_TIMEOUT = 10


def with_dbname(url: str, dbname: str) -> str:
    """The same URL pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname, safe=""), parts.query, parts.fragment))


def dbname_of(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/"))


def server_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or "localhost", parts.port or 5432)


def connect(url: str, *, autocommit: bool = True, timeout: float = CONNECT_TIMEOUT, **kw: Any) -> psycopg.Connection[Any]:
    """Connect with an explicit timeout; translate failures into a ProviderError without the password."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout)), **kw)
    except psycopg.OperationalError as e:
        raise ProviderError(
            f"cannot connect to database {dbname_of(url)!r} at {':'.join(map(str, server_of(url)))}: {first_line(e)}",
            hint="check DATABASE_URL (host, port, password) and that the server is running",
        ) from None


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def direct_url(url: str) -> str:
    """The same URL on the direct (unpooled) host: Neon's ``ep-x-pooler.region`` -> ``ep-x.region``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    first, dot, rest = host.partition(".")
    if not first.endswith("-pooler"):
        return url
    new_host = first[: -len("-pooler")] + dot + rest
    netloc = parts.netloc.rsplit("@", 1)
    hostport = netloc[-1].replace(host, new_host, 1)
    return urlunsplit(parts._replace(netloc=(netloc[0] + "@" + hostport) if len(netloc) == 2 else hostport))


def maintenance_url(url: str) -> str:
    """A URL on the same server not connected to the database we copy (template copies need that)."""
    return with_dbname(url, "postgres")


def server_major(conn: psycopg.Connection[Any]) -> int:
    return int(conn.info.server_version // 10000)


def _tool_major(path: str) -> int:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False,
                             env=libpq_environment(None)).stdout
    except OSError:
        return 0
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(m.group(1)) if m else 0


@lru_cache(maxsize=8)
def find_tool(name: str, min_major: int) -> str:
    """A pg_dump/pg_restore/psql at least as new as the server (older ones refuse newer servers)."""
    cands: list[str] = []
    env = os.environ.get("DEPLOYSAFE_PG_BIN")
    if env:
        cands.append(str(Path(env) / name))
    which = shutil.which(name)
    if which:
        cands.append(which)
    cands += [str(p / name) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]

    bundled = pgserver_bin_dir()
    if bundled:
        cands.append(str(bundled / name))
    seen: list[str] = []
    for c in cands:
        if os.path.exists(c) and c not in seen:
            seen.append(c)
            if _tool_major(c) >= min_major:
                return c
    raise PreconditionError(
        f"no {name} of version {min_major} or newer found (tried: {', '.join(seen) or 'none'})",
        hint=f"install the PostgreSQL {min_major} client tools, or set DEPLOYSAFE_PG_BIN to their folder",
    )


def libpq_env(url: str) -> dict[str, str]:
    """Environment for pg_dump & co: the password (``user:PASSWORD@`` or ``?password=``) travels in
    PGPASSWORD, never on a command line; nothing else of deploysafe's environment goes along
    (:func:`deploysafe.childenv.libpq_environment`)."""
    return libpq_environment(url_password(url))


def without_password(url: str) -> str:
    """The URL without its password, whether in the userinfo or a ``password=`` query parameter."""
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at:
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith("password="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def dbname_arg(url: str) -> str:
    """``--dbname=`` value for pg_dump & co: the URL without its password (see libpq_env)."""
    return "--dbname=" + without_password(url)
