"""Reliability tests (issue 10): the fault matrix's tally, printed at the end of the run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # reliability_kit, next to this file

MATRIX_KEY = "fault_matrix"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault_matrix(call, fault): one case of the fault-injection matrix")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        m = item.get_closest_marker(MATRIX_KEY)
        if m is not None:
            item.user_properties.append((MATRIX_KEY, f"{m.args[0]}|{m.args[1]}"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    case = dict(report.user_properties).get(MATRIX_KEY)
    if case is None:
        return
    table: dict[str, Any] = _table()
    call, fault = str(case).split("|")
    prev = table.get(report.nodeid)
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if prev is None or prev[2] in ("passed", "pending"):
            table[report.nodeid] = (call, fault, outcome)
    elif prev is None:
        table[report.nodeid] = (call, fault, "pending")


_TABLE: dict[str, Any] = {}


def _table() -> dict[str, Any]:
    return _TABLE


def pytest_terminal_summary(terminalreporter: Any) -> None:
    table = _table()
    if not table:
        return
    calls = {c for c, _, _ in table.values()}
    faults = {f for _, f, _ in table.values()}
    passed = sum(1 for _, _, o in table.values() if o == "passed")
    terminalreporter.write_line(
        f"fault matrix: {len(calls)} calls x {len(faults)} faults = {len(table)} cases, {passed} passed"
    )
    failed = sorted(f"{c} x {f}: {o}" for c, f, o in table.values() if o != "passed")
    for line in failed:
        terminalreporter.write_line(f"  not passed: {line}")


@pytest.fixture
def no_sleep() -> Iterator[Any]:
    from deploysafe.http import RetryPolicy

    yield RetryPolicy(sleep=lambda s: None)
