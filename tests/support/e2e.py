"""Helpers for end-to-end tests that drive the real `deploysafe` console script against a live app."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from deploysafe.demo.run import DemoApp
from deploysafe.envfile import read_var
from deploysafe.redact import url_password
from support.cli import CliResult, run_cli


def ds(app: DemoApp, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> CliResult:
    """``run_cli`` in the app folder with the app's environment (``env`` adds to it or overrides it)."""
    return run_cli(*args, cwd=app.root, env={**app.env, **(env or {})}, timeout=timeout)


def healthy(app: DemoApp) -> bool:
    try:
        r = httpx.get(f"http://127.0.0.1:{app.port}/health", timeout=5)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.text == "ok"


def env_url(app: DemoApp) -> str | None:
    return read_var(app.root / ".env", "DATABASE_URL")


def journal_lines(app: DemoApp) -> list[str]:
    path = app.root / ".deploysafe" / "journal.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def assert_no_secret(app: DemoApp, *texts: str) -> None:
    """The database password appears in no output, journal line or report."""
    pw = url_password(app.production_url)
    assert pw and len(pw) > 6
    for text in texts:
        assert pw not in text
    for line in journal_lines(app):
        assert pw not in line
    for p in (app.root / ".deploysafe").rglob("*"):
        if p.is_file() and p.suffix in (".json", ".md", ".jsonl", ".log"):
            assert pw not in p.read_text(errors="replace"), p


def set_config(app: DemoApp, **replace: str) -> None:
    cfg = app.root / "deploysafe.toml"
    text = cfg.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    cfg.write_text(text)


def rows(url: str, query: str = "select count(*) from users") -> Any:
    import psycopg

    with psycopg.connect(url) as c:
        return c.execute(query).fetchone()


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


ROOT = Path(__file__).resolve().parents[2]


# --- the drizzle-kit version matrix -----------------------------------------------------

FIXTURE_APP = ROOT / "tests" / "fixtures" / "drizzle-app"
DRIZZLE_LINES = {  # line -> its node_modules, installed by scripts/setup (0.31: the fixture app's own)
    "0.25": ROOT / "tests" / "fixtures" / "drizzle-versions" / "0.25" / "node_modules",
    "0.30": ROOT / "tests" / "fixtures" / "drizzle-versions" / "0.30" / "node_modules",
    "0.31": FIXTURE_APP / "node_modules",
    "1.0": ROOT / "tests" / "fixtures" / "drizzle-versions" / "1.0" / "node_modules",
}


def line_modules(line: str) -> Path:
    """The line's node_modules; a missing install skips locally and fails in CI (as conftest does)."""
    import pytest

    nm = DRIZZLE_LINES[line]
    if not (nm / ".bin" / "drizzle-kit").exists():
        reason = f"drizzle-kit {line} is not installed: run `bash scripts/setup`"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must provide this: {reason}")
        pytest.skip(reason)
    return nm
