"""Both migrations-folder layouts, read as drizzle-orm's migrator reads them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from deploysafe.drizzle.layout import is_baseline, layout, migrations, pending_migrations


def _journal(folder: Path, tags: list[str]) -> None:
    (folder / "meta").mkdir(parents=True)
    entries = [{"idx": i, "version": "7", "when": 1700000000000 + i, "tag": t, "breakpoints": True}
               for i, t in enumerate(tags)]
    (folder / "meta" / "_journal.json").write_text(json.dumps({"version": "7", "dialect": "postgresql", "entries": entries}))
    for t in tags:
        (folder / f"{t}.sql").write_text(f"-- {t}\nSELECT 1;\n")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_journal_layout_in_journal_order_with_the_migrators_hash(tmp_path: Path) -> None:
    folder = tmp_path / "drizzle"
    _journal(folder, ["0000_first", "0001_second"])
    (folder / "0002_not_in_journal.sql").write_text("SELECT 2;")  # drizzle-orm ignores files the journal does not list
    assert layout(folder) == "journal"
    ms = migrations(folder)
    assert [m.name for m in ms] == ["0000_first", "0001_second"]
    assert ms[0].hash == _sha(folder / "0000_first.sql")
    assert [m.name for m in pending_migrations(folder, {ms[0].hash})] == ["0001_second"]


def test_folder_per_migration_layout_of_drizzle_kit_1(tmp_path: Path) -> None:
    folder = tmp_path / "drizzle"
    for name in ("20261202015804_b", "20261101000000_a"):
        (folder / name).mkdir(parents=True)
        (folder / name / "migration.sql").write_text(f"-- {name}\nSELECT 1;\n")
        (folder / name / "snapshot.json").write_text("{}")
    (folder / "notes").mkdir()  # a folder without migration.sql is no migration
    assert layout(folder) == "folders"
    ms = migrations(folder)
    assert [m.name for m in ms] == ["20261101000000_a", "20261202015804_b"]
    assert ms[1].path == folder / "20261202015804_b" / "migration.sql" and ms[1].hash == _sha(ms[1].path)
    assert pending_migrations(folder, {m.hash for m in ms}) == []
    assert [m.name for m in pending_migrations(folder, set())] == [m.name for m in ms]


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    assert layout(tmp_path / "nope") == "empty" and migrations(tmp_path / "nope") == []
    (tmp_path / "drizzle").mkdir()
    assert layout(tmp_path / "drizzle") == "empty"


def test_the_first_migration_of_an_empty_folder_is_a_baseline(tmp_path: Path) -> None:
    folder = tmp_path / "drizzle"
    _journal(folder, ["0000_first"])
    assert is_baseline([], [folder / "0000_first.sql"])
    assert not is_baseline(migrations(folder), [folder / "0001_next.sql"])
