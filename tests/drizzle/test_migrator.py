"""The migrate workflow reads drizzle-kit 0.x's journal; a 1.0 folder is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploysafe.drizzle.migrator import read_journal
from deploysafe.errors import PreconditionError


def test_a_drizzle_kit_1_0_folder_is_refused_with_the_layout_named(tmp_path: Path) -> None:
    mig = tmp_path / "20260101000000_drop_name"
    mig.mkdir()
    (mig / "migration.sql").write_text('ALTER TABLE "users" DROP COLUMN "name";\n')
    with pytest.raises(PreconditionError, match="drizzle-kit 1.0's migrations") as e:
        read_journal(tmp_path)
    assert e.value.exit_code == 3 and 'workflow = "push"' in (e.value.hint or "")


def test_a_journal_folder_is_read_with_each_file_s_hash(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "_journal.json").write_text('{"entries": [{"tag": "0000_init", "when": 5}]}')
    (tmp_path / "0000_init.sql").write_text("CREATE TABLE t (id int);\n")
    [entry] = read_journal(tmp_path)
    assert (entry.tag, entry.when, len(entry.hash)) == ("0000_init", 5, 64)
