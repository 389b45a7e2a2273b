"""Fixtures for the deploy tests: a rig (tests/support/rig.py) per test, and the Neon API double."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from support.neon_double import neon_double  # noqa: F401  (the fixture, for the Neon e2e tests here)
from support.rig import Rig, new_rig


@pytest.fixture
def make_rig(tmp_path: Path) -> Callable[..., Rig]:
    def make(extra: str = "", provider_extra: str = "") -> Rig:
        return new_rig(tmp_path, extra, provider_extra)

    return make


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()
