"""RELIABILITY.md backs every guarantee with a test: each test it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def referenced_tests() -> list[tuple[str, str]]:
    """(file under tests/, test function) for every `file::name` and `::name` (same file as before) in the doc."""
    refs: list[tuple[str, str]] = []
    last_file = ""
    for token in re.findall(r"`([^`]+)`", (ROOT / "RELIABILITY.md").read_text(encoding="utf-8")):
        m = re.fullmatch(r"((?:[\w/]+/)?test_\w+\.py)?::(\w+)(\[[^\]]*\])?(?:, `\[.*)?", token)
        if not m:
            continue
        last_file = m.group(1) or last_file
        refs.append((last_file, m.group(2)))
    return refs


def test_every_test_named_in_reliability_md_exists() -> None:
    refs = referenced_tests()
    assert len(refs) >= 30, "the doc's references were not found: did its format change?"
    for file, name in refs:
        path = ROOT / "tests" / file
        assert path.is_file(), f"RELIABILITY.md names {file}, which does not exist"
        assert re.search(rf"^def {name}\(", path.read_text(encoding="utf-8"), re.M), f"{file}::{name} does not exist"
