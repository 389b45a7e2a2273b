"""dotenv platform: atomic rewrite of one variable, mode kept, restart command run with the URL in the environment."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.errors import PlatformError
from deploysafe.platforms import make_platform
from deploysafe.platforms.dotenv import DotenvPlatform

URL = "postgresql://app:s3cr3t-pw@127.0.0.1:5432/snap"


def platform(tmp_path: Path, restart: str | None = None) -> DotenvPlatform:
    text = '[provider]\ntype = "local"\ndatabase_url = "postgresql://localhost/app"\n[platform]\ntype = "dotenv"\nenv_file = "app/.env"\n'
    if restart:
        text += f"restart = '{restart}'\n"  # a TOML literal string: the shell's quotes stay as written
    p = make_platform(LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml"))
    assert isinstance(p, DotenvPlatform)
    return p


def test_set_rewrites_one_variable_and_keeps_everything_else(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    env = tmp_path / "app" / ".env"
    env.write_text("# production\nexport DATABASE_URL='postgresql://old'\nPORT=3000 # web\n\nSECRET=\"a=b\"\n")
    env.chmod(0o640)
    p = platform(tmp_path)
    assert p.read_current().value == "postgresql://old"
    p.set_url(URL)
    assert env.read_text() == f'# production\nexport DATABASE_URL="{URL}"\nPORT=3000 # web\n\nSECRET="a=b"\n'
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    assert p.read_current().value == URL
    assert not [f for f in env.parent.iterdir() if f.name != ".env"]  # no temp file left behind


def test_restart_gets_the_new_url_in_its_environment_not_its_argv(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".env").write_text("DATABASE_URL=x\n")
    p = platform(tmp_path, restart='echo "$DEPLOYSAFE_NEW_URL" > restarted.txt')
    p.set_url(URL)
    release = p.pick_up()
    assert release.live and (tmp_path / "restarted.txt").read_text().strip() == URL
    assert p.wait_live(release, 5) == release


def test_failing_restart_is_a_platform_error_without_the_password(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".env").write_text("DATABASE_URL=x\n")
    p = platform(tmp_path, restart='echo "cannot reach $DEPLOYSAFE_NEW_URL" >&2; exit 3')
    p.set_url(URL)
    with pytest.raises(PlatformError) as e:
        p.pick_up()
    assert "restart command exited 3" in str(e.value) and "s3cr3t-pw" not in str(e.value)


def test_missing_env_file_is_a_clear_error(tmp_path: Path) -> None:
    p = platform(tmp_path)
    with pytest.raises(PlatformError, match=r"app/.env does not exist") as e:
        p.prepare()
    assert e.value.hint and "env_file" in e.value.hint


def test_read_only_env_file_is_caught_by_prepare(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        (tmp_path / "app").mkdir()
        (tmp_path / "app" / ".env").write_text("DATABASE_URL=x\n")
        # root can write anything; what prepare must catch is a missing file or folder
        with pytest.raises(PlatformError):
            platform(tmp_path).set_url("bad\nvalue")
        return
    (tmp_path / "app").mkdir()
    env = tmp_path / "app" / ".env"
    env.write_text("DATABASE_URL=x\n")
    env.chmod(0o400)
    with pytest.raises(PlatformError, match="not writable"):
        platform(tmp_path).prepare()


def test_no_restart_command_is_a_caveat(tmp_path: Path) -> None:
    assert any("no platform.restart" in c for c in platform(tmp_path).caveats())
