"""Fixtures for the deploy tests: a rig (tests/support/rig.py) per test (the Neon API double comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from support.rig import Rig, new_rig


@pytest.fixture
def make_rig(tmp_path: Path) -> Callable[..., Rig]:
    def make(extra: str = "", provider_extra: str = "") -> Rig:
        return new_rig(tmp_path, extra, provider_extra)

    return make


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()
