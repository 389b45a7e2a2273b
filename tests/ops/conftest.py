"""Fixtures for the operations commands: a real local set-up (config, env file, seeded production)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from deploysafe.config import LoadedConfig
from deploysafe.providers.local import LocalProvider
from support.ops_helpers import Hook, seed_users, write_config


@pytest.fixture
def local_setup(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., tuple[LoadedConfig, LocalProvider]]]:
    """Factory: (loaded config, provider) for a seeded production database; drops the snapshots it made."""
    made: list[LocalProvider] = []

    def make(
        extra: str = "", seed: bool = True, now: Callable[[], datetime] | None = None
    ) -> tuple[LoadedConfig, LocalProvider]:
        if seed:
            seed_users(pg_url)
        loaded = write_config(tmp_path, pg_url, extra)
        monkeypatch.setenv("DATABASE_URL", pg_url)  # for the CLI, which reads deploysafe.toml itself
        prov = LocalProvider.from_config(loaded, **({"now": now} if now else {}))
        made.append(prov)
        return loaded, prov

    yield make
    for prov in made:
        # snapshot names are per day (backup-YYYY-MM-DD) and databases are server-wide: leave none behind
        for s in prov.list_snapshots():
            if s.ours:
                prov.delete(s.name)



@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    """A webhook receiver on a real socket, its URL in $OPS_WEBHOOK."""
    h = Hook()
    monkeypatch.setenv("OPS_WEBHOOK", h.url)
    yield h
    h.server.shutdown()
    h.server.server_close()
