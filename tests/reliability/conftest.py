"""Reliability tests: marks each fault-matrix case; the tally is printed by tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

MATRIX_KEY = "fault_matrix"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault_matrix(call, fault): one case of the fault-injection matrix")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        m = item.get_closest_marker(MATRIX_KEY)
        if m is not None:
            item.user_properties.append((MATRIX_KEY, f"{m.args[0]}|{m.args[1]}"))


@pytest.fixture
def no_sleep() -> Iterator[Any]:
    from deploysafe.http import RetryPolicy

    yield RetryPolicy(sleep=lambda s: None)
