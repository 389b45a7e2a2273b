"""command platform: user commands for get/set/restart/wait; the URL travels in the environment only."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.errors import PlatformError
from deploysafe.platforms import make_platform

URL = "postgresql://app:cmd-secret-pw@db.internal:5432/snap"


def platform(tmp_path: Path, **cmds: str):  # type: ignore[no-untyped-def]
    lines = ['[provider]', 'type = "local"', 'database_url = "postgresql://localhost/app"', "[platform]", 'type = "command"']
    lines += [f"{k} = {v!r}".replace("'", '"') if '"' not in v else f"{k} = '{v}'" for k, v in cmds.items()]
    return make_platform(LoadedConfig(parse_config("\n".join(lines) + "\n", env={}), tmp_path / "deploysafe.toml"))


def test_set_restart_wait_and_read_back(tmp_path: Path) -> None:
    store = tmp_path / "store"
    p = platform(
        tmp_path,
        get_command=f"cat {store}",
        set_command=f'printf %s "$DEPLOYSAFE_NEW_URL" > {store}; ps -o args= -p $$ > {tmp_path}/argv',
        restart=f"echo restarted >> {tmp_path}/log",
        wait_command=f"echo waited >> {tmp_path}/log",
    )
    p.set_url(URL)
    assert store.read_text() == URL
    assert "cmd-secret-pw" not in (tmp_path / "argv").read_text()  # never on a command line
    release = p.pick_up()
    live = p.wait_live(release, 10)
    assert live.live and (tmp_path / "log").read_text() == "restarted\nwaited\n"
    cur = p.read_current()
    assert cur.readable and cur.value == URL


def test_without_get_command_the_value_is_unreadable(tmp_path: Path) -> None:
    p = platform(tmp_path, set_command="true")
    assert p.read_current().readable is False
    assert any("get_command" in c for c in p.caveats())


def test_failing_wait_command_is_a_platform_error(tmp_path: Path) -> None:
    p = platform(tmp_path, set_command="true", wait_command="echo rollout failed >&2; exit 1")
    with pytest.raises(PlatformError, match="wait command exited 1: rollout failed"):
        p.wait_live(p.pick_up(), 10)


def test_a_hanging_command_is_killed_at_the_timeout(tmp_path: Path) -> None:
    p = platform(tmp_path, set_command="true", wait_command="sleep 30")
    import time

    t0 = time.monotonic()
    with pytest.raises(PlatformError, match="timeout"):
        p.wait_live(p.pick_up(), 0.5)
    assert time.monotonic() - t0 < 10
