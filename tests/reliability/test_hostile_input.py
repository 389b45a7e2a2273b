"""Hostile input: random and malformed deploysafe.toml, hostile snapshot and table names,
timestamps outside the history window, odd git refs. Never a traceback, the documented exit code, and
never a shell or SQL injection: a canary file must not appear and a canary table must not be dropped."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.cli import run_cli, run_cli_in_process
from support.reliability_kit import assert_clean, neon_provider_toml, scratch_app, seed_users

CANARY_TABLE = "canary_keep_me"


# --- deploysafe.toml: random text and well-formed TOML with wrong types -------------------------------

VALID = """[app]
dir = "."
step_timeout = "2m"

[provider]
type = "local"
database_url = "postgresql://u@127.0.0.1:5432/shop"

[platform]
type = "dotenv"
env_file = ".env"
restart = "true"

[probes]
deadline = "20s"
[[probes.sql]]
name = "users"
query = "select 1"

[retention]
pre_deploy = "7d"

[lint]
destructive = "warn"
"""

# every leaf the structured fuzz may replace: (table path, key)
LEAVES = [
    (("app",), "dir"), (("app",), "step_timeout"), (("provider",), "type"), (("provider",), "database_url"),
    (("platform",), "type"), (("platform",), "env_file"), (("platform",), "restart"), (("probes",), "deadline"),
    (("retention",), "pre_deploy"), (("lint",), "destructive"), (("probes", "sql", 0), "query"),
    (("probes", "sql", 0), "name"),
]

toml_values = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=20).map(json.dumps),
    st.lists(st.integers(0, 9), max_size=3).map(lambda v: "[" + ", ".join(map(str, v)) + "]"),
    st.just("{ a = 1 }"),
    st.just("1979-05-27T07:32:00Z"),
    st.sampled_from(['"-1s"', '"1 fortnight"', '"0"', '"9999999999999d"', '"nan"', '"neon"', '"local"', '""']),
)


@pytest.fixture
def cfg_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_random_text_config_never_tracebacks(capsys: pytest.CaptureFixture[str], cfg_dir: Path, text: str) -> None:
    path = cfg_dir / "deploysafe.toml"
    path.write_text(text, encoding="utf-8")
    r = run_cli_in_process(capsys, "--config", str(path), "config", "check")
    assert_clean(r, {0, 2})
    if r.code == 2:
        assert r.output.strip(), "exit 2 without saying why"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_random_bytes_config_never_tracebacks(capsys: pytest.CaptureFixture[str], cfg_dir: Path, data: bytes) -> None:
    path = cfg_dir / "deploysafe.toml"
    path.write_bytes(data)
    r = run_cli_in_process(capsys, "--config", str(path), "config", "check")
    assert_clean(r, {0, 2})


def _replace_leaf(text: str, where: tuple[Any, ...], key: str, value: str) -> str:
    """Rewrite one ``key = ...`` line of VALID inside the table ``where``."""
    header = "[[probes.sql]]" if len(where) == 3 else f"[{'.'.join(where)}]"
    before, _, rest = text.partition(header + "\n")
    lines = rest.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("["):
            break
        if line.split("=")[0].strip() == key:
            lines[i] = f"{key} = {value}"
            break
    return before + header + "\n" + "\n".join(lines)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(LEAVES), toml_values, st.booleans())
def test_wrong_types_in_valid_toml_exit_2_naming_the_key(
    capsys: pytest.CaptureFixture[str], cfg_dir: Path, leaf: tuple[tuple[Any, ...], str], value: str, extra_key: bool
) -> None:
    where, key = leaf
    text = _replace_leaf(VALID, where, key, value)
    if extra_key:
        text += "\n[surprise]\nkey = 1\n"
    path = cfg_dir / "deploysafe.toml"
    path.write_text(text, encoding="utf-8")
    r = run_cli_in_process(capsys, "--config", str(path), "config", "check")
    assert_clean(r, {0, 2})
    if r.code == 2 and not extra_key:
        assert key in r.output or "TOML" in r.output or where[0] in r.output, r.output  # the message names what is wrong


def test_the_valid_base_config_is_valid(capsys: pytest.CaptureFixture[str], cfg_dir: Path) -> None:
    path = cfg_dir / "deploysafe.toml"
    path.write_text(VALID, encoding="utf-8")
    r = run_cli_in_process(capsys, "--config", str(path), "config", "check")
    assert r.code == 0, r.output


def test_missing_and_unreadable_config_exit_2(capsys: pytest.CaptureFixture[str], cfg_dir: Path) -> None:
    r = run_cli_in_process(capsys, "--config", str(cfg_dir / "nope.toml"), "config", "check")
    assert_clean(r, {2})
    r = run_cli_in_process(capsys, "--config", str(cfg_dir), "config", "check")  # a folder, not a file
    assert_clean(r, {2})


# --- hostile snapshot and table names ----------------------------------------------------------------

HOSTILE = [
    "x$(touch CANARY)",
    "x`touch CANARY`",
    "a\"; touch CANARY; \"",
    "b'; DROP TABLE canary_keep_me; --",
    'c"; DROP TABLE canary_keep_me; --',
    "semi;colon",
    "with spaces in it",
    "ünïcødé-スナップ-🙂",
    "$HOME",
    "-rf",
    "x" * 80,
    "'",
]


@pytest.fixture
def local_app(tmp_path: Path, make_db: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    url = make_db("hostile")
    seed_users(url)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE TABLE {CANARY_TABLE} (id int)")
    root = tmp_path / "app"
    cfg = scratch_app(root, url)
    cfg.write_text(cfg.read_text().replace('strategy = "dump"', 'strategy = "template"'))  # fast copies
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(root)  # a `touch CANARY` that ran would create it here
    yield root, url
    _drop_ours(url)


def _drop_ours(url: str) -> None:
    from deploysafe.providers.local import LocalProvider

    prov = LocalProvider(url)
    for s in prov.list_snapshots():
        if s.ours and not s.is_production:
            prov.delete(s.name)


def _canaries_alive(root: Path, url: str) -> None:
    assert not list(root.rglob("CANARY")) and not Path("/tmp/CANARY").exists(), "a shell ran part of a name"
    with psycopg.connect(url) as c:
        assert c.execute("select to_regclass(%s) is not null", (CANARY_TABLE,)).fetchone() == (True,)


def test_hostile_snapshot_names(local_app: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    root, url = local_app
    created = []
    for name in HOSTILE:
        r = run_cli_in_process(capsys, "snapshot", "create", "--name", name)
        assert_clean(r, {0, 2, 3})
        if r.code == 0:
            created.append(name)
        _canaries_alive(root, url)
    assert created, "no hostile name was accepted at all: the test exercised nothing"
    r = run_cli_in_process(capsys, "snapshot", "list", "--json")
    assert r.code == 0, r.output
    names = {s["name"] for s in json.loads(r.output[r.output.index("["):])}
    for name in created:
        assert name in names  # stored exactly, not mangled into another snapshot's name
    for name in created:
        r = run_cli_in_process(capsys, "snapshot", "delete", "--yes", "--", name)
        assert_clean(r, {0})
    _canaries_alive(root, url)


def test_hostile_table_names_in_restore_table(local_app: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    root, url = local_app
    r = run_cli_in_process(capsys, "snapshot", "create", "--name", "hostile-src")
    assert r.code == 0, r.output
    for table in HOSTILE[:6] + ['users"; DROP TABLE canary_keep_me; --', "users", "USERS", "nope"]:
        r = run_cli_in_process(capsys, "restore-table", "--from", "hostile-src", "--table", table, "--dry-run", "--yes")
        assert_clean(r, {0, 2, 3})
        _canaries_alive(root, url)
        for schema in ("public; DROP TABLE canary_keep_me", "pg_catalog"):
            r = run_cli_in_process(capsys, "restore-table", "--from", "hostile-src", "--table", table,
                                   "--schema", schema, "--dry-run", "--yes")
            assert_clean(r, {0, 2, 3})
    _canaries_alive(root, url)


# --- timestamps outside the history window -------------------------------------------------------------


@pytest.mark.parametrize("at", ["1900-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "2026-11-25T09:30:00",
                                "not a time", "", "2026-13-45T99:00:00Z", "1e10", "-1"])
def test_timestamps_the_local_provider_cannot_serve(local_app: tuple[Path, str], capsys: pytest.CaptureFixture[str],
                                                     at: str) -> None:
    root, url = local_app
    for args in (["snapshot", "create", "--at", at], ["rollback", "--at", at, "--yes"],
                 ["restore-table", "--at", at, "--table", "users", "--dry-run", "--yes"]):
        r = run_cli_in_process(capsys, *args)
        assert_clean(r, {2, 3})
        assert r.output.strip()
    _canaries_alive(root, url)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parse_at_returns_a_past_utc_moment_or_a_usage_error(text: str) -> None:
    from datetime import UTC, datetime

    from deploysafe.errors import UsageError
    from deploysafe.snapshots.manage import parse_at

    try:
        dt = parse_at(text)
    except UsageError as e:
        assert e.hint and e.exit_code == 2
    else:
        assert dt.utcoffset() is not None and dt.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert dt <= datetime.now(UTC)


def test_neon_timestamps_outside_the_window_are_refused(pg_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from support.neon_double import make_double, seed_production

    d = make_double(pg_server, history_seconds=3600)
    try:
        seed_production(d)
        root = tmp_path / "neon"
        root.mkdir()
        (root / "deploysafe.toml").write_text(neon_provider_toml(d) + """[platform]
type = "dotenv"
env_file = ".env"
""")
        (root / ".env").write_text(f"DATABASE_URL={d.branch_url('production')}\n")
        monkeypatch.setenv("NEON_API_KEY", d.api_key)
        monkeypatch.chdir(root)
        before = len(d.branches)
        for at in ("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"):
            r = run_cli_in_process(capsys, "snapshot", "create", "--at", at, "--name", "too-far")
            assert_clean(r, {2, 3})  # the future is a usage error (2); before the window a provider refusal (3)
            assert "window" in r.output or "future" in r.output or "history" in r.output, r.output
            r = run_cli_in_process(capsys, "rollback", "--at", at, "--yes")
            assert_clean(r, {2, 3})
        assert len(d.branches) == before  # nothing was created
    finally:
        d.stop()


# --- odd git refs through the pre-push hook --------------------------------------------------------------

ODD_REFS = [
    "refs/heads/$(touch CANARY)",
    "refs/heads/a;touch CANARY",
    "refs/heads/`touch CANARY`",
    "refs/heads/quote\"s'",
    "refs/heads/ünï/スナップ",
    "refs/heads/--help",
    "refs/heads/-n",
    "refs/heads/" + "x" * 300,
]


def test_odd_git_refs_through_the_pre_push_hook(git_repo: Path, tmp_path: Path) -> None:
    (git_repo / "deploysafe.toml").write_text('[hook]\nbranches = ["*"]\noffline = "warn"\n')
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=git_repo, capture_output=True, text=True,
                         check=True).stdout.strip()
    zero = "0" * 40
    lines = [f"{ref} {sha} {ref} {zero}" for ref in ODD_REFS]
    lines += ["garbage", "", "refs/heads/main notasha refs/heads/main alsonot", "a b c d e f", "\x00\x01 \x7f"]
    env = {**os.environ, "NO_COLOR": "1"}
    for stdin in ["\n".join(lines) + "\n", *[line + "\n" for line in lines]]:
        r = run_cli("hook", "pre-push", "origin", "$(touch CANARY)", cwd=git_repo, env=env, input=stdin, timeout=60)
        assert_clean(r, {0, 2, 3})
        assert not list(git_repo.rglob("CANARY")) and not list(tmp_path.rglob("CANARY"))


def test_real_push_of_branches_with_odd_names(git_repo: Path, tmp_path: Path) -> None:
    """git itself allows `$`, `(`, `;`, quotes and backticks in branch names: push them through the installed hook."""
    (git_repo / "deploysafe.toml").write_text('[hook]\nbranches = ["*"]\noffline = "warn"\n')
    env = {**os.environ, "NO_COLOR": "1"}
    inst = run_cli("hooks", "install", cwd=git_repo, env=env)
    assert inst.code == 0, inst.stderr
    for name in ["$(touch${IFS}CANARY)", "a;touch${IFS}CANARY", "`touch${IFS}CANARY`", "q\"'x", "ünï-ブランチ"]:
        subprocess.run(["git", "branch", name], cwd=git_repo, check=True, capture_output=True)
        r = subprocess.run(["git", "push", "-q", "origin", name], cwd=git_repo, capture_output=True, text=True, env=env,
                           timeout=60)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        assert r.returncode == 0, r.stderr
        assert not list(git_repo.rglob("CANARY")) and not list(tmp_path.rglob("CANARY"))
