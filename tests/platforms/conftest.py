from __future__ import annotations

import pytest

from support.platforms import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()
