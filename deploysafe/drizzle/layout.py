"""The two migrations-folder layouts drizzle-kit writes, read the way drizzle-orm's migrator reads them.

* **journal** (drizzle-kit 0.x): ``meta/_journal.json`` lists the migrations in order by
  ``tag``; each is ``<tag>.sql`` (``0000_name.sql``) beside ``meta/``.
* **folders** (drizzle-kit 1.0): one folder per migration, ``<timestamp>_<name>/migration.sql``
  with its ``snapshot.json``, applied in name order. drizzle-kit 1.0 refuses a journal
  folder ("please run drizzle-kit up").

Either way the migrator records ``sha256(file contents)`` in its migrations table, so a
migration is pending when its hash is not there (:func:`pending_migrations`), whoever
generated it and whenever.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Layout = Literal["journal", "folders", "empty"]


@dataclass(frozen=True)
class Migration:
    name: str  # the journal tag, or the migration's folder name
    path: Path  # its SQL file
    hash: str  # sha256 hex of the file, as drizzle-orm's migrator records it


def layout(folder: Path) -> Layout:
    """Which layout ``folder`` holds ("empty" when it holds no migration yet)."""
    if (folder / "meta" / "_journal.json").is_file():
        return "journal"
    if folder.is_dir() and any((d / "migration.sql").is_file() for d in folder.iterdir() if d.is_dir()):
        return "folders"
    if folder.is_dir() and any(folder.glob("*.sql")):
        return "journal"  # SQL files without their journal: read them in name order
    return "empty"


def _migration(name: str, path: Path) -> Migration:
    return Migration(name=name, path=path, hash=hashlib.sha256(path.read_bytes()).hexdigest())


def _journal_tags(folder: Path) -> list[str] | None:
    try:
        data = json.loads((folder / "meta" / "_journal.json").read_text(encoding="utf-8"))
        return [str(e["tag"]) for e in data.get("entries", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def migrations(folder: Path) -> list[Migration]:
    """Every migration in ``folder``, in the order the migrator applies them."""
    kind = layout(folder)
    if kind == "folders":
        dirs = sorted((d for d in folder.iterdir() if (d / "migration.sql").is_file()), key=lambda d: d.name)
        return [_migration(d.name, d / "migration.sql") for d in dirs]
    if kind == "journal":
        tags = _journal_tags(folder)
        if tags is None:
            return [_migration(p.stem, p) for p in sorted(folder.glob("*.sql"))]
        return [_migration(tag, folder / f"{tag}.sql") for tag in tags if (folder / f"{tag}.sql").is_file()]
    return []


def pending_migrations(folder: Path, applied_hashes: set[str]) -> list[Migration]:
    """The migrations of ``folder`` (either layout) whose hash is not among ``applied_hashes``."""
    return [m for m in migrations(folder) if m.hash not in applied_hashes]


def is_baseline(folder_before: list[Migration], new_files: list[Path]) -> bool:
    """True when generate wrote the first migration of an empty folder: the whole schema, not the change.

    A push-only app that does not commit its migrations folder gets a full-schema ``0000`` (or
    its 1.0 folder) on every deploy; judging that file would judge every table as new.
    """
    return not folder_before and len(new_files) == 1
