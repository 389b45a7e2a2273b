"""Helpers shared by the HTTP platform adapter tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


class Clock:
    """Fake monotonic clock advanced by the (recorded) sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def responder(vendor: str) -> Callable[..., httpx.Response]:
    """``fx(name, status=200, **headers)``: an httpx response whose body is tests/fixtures/<vendor>/<name>.json."""

    def fx(name: str, status: int = 200, **headers: str) -> httpx.Response:
        return httpx.Response(status, json=json.loads((FIXTURES / vendor / f"{name}.json").read_text()), headers=headers)

    return fx
