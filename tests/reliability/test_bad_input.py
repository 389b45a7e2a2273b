"""Bad input: each gets a clear error naming the key or variable, exit 2 or 3, never 70.

A malformed DATABASE_URL, a journal line that is JSON but not an event, a probe URL that is not a
URL, and the demo's embedded server run as root from a private TMPDIR.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from deploysafe.demo import embedded
from support.cli import run_cli_in_process
from support.reliability_kit import assert_clean, scratch_app, seed_users

MARKER = "Pw0rdMarker"


# --- a malformed DATABASE_URL --------------------------------------------------------------------------

BAD_URLS = {
    "bad percent-encoding": (f"postgresql://app:{MARKER}%zz@127.0.0.1:5432/shop", "% not followed by two hex digits"),
    "a space": (f"postgresql://app:{MARKER} x@127.0.0.1:5432/shop", "space"),
    "a port that is not a number": (f"postgresql://app:{MARKER}@127.0.0.1:54x2/shop", "port"),
    "not a URL": (f"host=127.0.0.1 password={MARKER}", "must start with postgresql://"),
}


@pytest.mark.parametrize("case", sorted(BAD_URLS))
@pytest.mark.parametrize("command", [["config", "check"], ["status"], ["snapshot", "list"], ["prune", "--dry-run"],
                                     ["probe"], ["deploy", "--dry-run"], ["rollback", "--yes"]])
def test_a_malformed_database_url_is_a_usage_error_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, case: str, command: list[str]
) -> None:
    url, why = BAD_URLS[case]
    cfg = scratch_app(tmp_path / "app", "postgresql://app@127.0.0.1:5432/shop")
    monkeypatch.setenv("DATABASE_URL", url)
    r = run_cli_in_process(capsys, "--config", str(cfg), *command)
    assert_clean(r, {2})
    assert "provider.database_url" in r.output and "$DATABASE_URL" in r.output and why in r.output, r.output
    assert MARKER not in r.output


# --- journal lines that are JSON but not events ----------------------------------------------------------


@pytest.fixture
def local_app(tmp_path: Path, make_db: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    url = make_db("badinput")
    seed_users(url)
    cfg = scratch_app(tmp_path / "app", url)
    cfg.write_text(cfg.read_text().replace('strategy = "dump"', 'strategy = "template"'))  # fast copies
    monkeypatch.setenv("DATABASE_URL", url)
    yield cfg
    from deploysafe.providers.local import LocalProvider

    prov = LocalProvider(url)
    for s in prov.list_snapshots():
        if s.ours and not s.is_production:
            prov.delete(s.name)


@pytest.mark.parametrize("foreign", ["1", "[1]"])
def test_journal_lines_that_are_not_objects_are_skipped_by_status_deploy_and_prune(
    local_app: Path, capsys: pytest.CaptureFixture[str], foreign: str
) -> None:
    cfg = local_app
    r = run_cli_in_process(capsys, "--config", str(cfg), "deploy", "--sha", "abc1234")  # a real run writes the journal
    assert_clean(r, {0})
    journal = cfg.parent / ".deploysafe" / "journal.jsonl"
    with journal.open("a") as f:
        f.write(f"{foreign}\n")
    outputs = ""
    for command in (["status"], ["deploy", "--sha", "abc1235"], ["prune"]):
        r = run_cli_in_process(capsys, "--config", str(cfg), *command)
        assert_clean(r, {0})
        outputs += r.output
    assert outputs.count("not journal events") == 1  # one warning (per process: each command in real use)
    r = run_cli_in_process(capsys, "--json", "--config", str(cfg), "status")
    assert r.code == 0
    assert json.loads(r.stdout)["last_run"]["outcome"] == "deployed"


# --- a probe URL that is not a URL -----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "why"), [("http://[::1", "not a valid URL"), ("http://[::1]:99999/x", "not a valid URL"),
                                          ("http:///health", "no host"), ("http://exa mple.test/", "spaces")])
def test_config_check_refuses_a_probe_url_that_is_not_a_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str, why: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@127.0.0.1:5432/shop")
    cfg = scratch_app(tmp_path / "app", "postgresql://app@127.0.0.1:5432/shop")
    cfg.write_text(cfg.read_text() + f'[[probes.http]]\nname = "health"\nurl = "{url}"\n')
    r = run_cli_in_process(capsys, "--config", str(cfg), "config", "check")
    assert_clean(r, {2})
    assert "probes.http[0].url" in r.output and why in r.output, r.output


# --- the embedded server as root from a private TMPDIR ---------------------------------------------------


@pytest.fixture
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    return private


def test_the_cluster_parent_is_one_every_user_can_enter(private_tmpdir: Path) -> None:
    assert tempfile.gettempdir() == str(private_tmpdir)
    parent = embedded.cluster_parent()
    assert not parent.resolve().is_relative_to(private_tmpdir.resolve())
    for d in (parent.resolve(), *parent.resolve().parents):
        assert os.stat(d).st_mode & stat.S_IXOTH


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as the postgres user only when started by root")
def test_the_embedded_server_starts_as_root_from_a_private_tmpdir_and_cleans_up(private_tmpdir: Path) -> None:
    srv = embedded.start(private_tmpdir / "pg")
    try:
        with psycopg.connect(srv.url(), connect_timeout=10) as c:
            assert c.execute("select 1").fetchone() == (1,)
        folder = srv.data_dir.parent
        assert folder.is_dir() and not folder.resolve().is_relative_to(private_tmpdir.resolve())
    finally:
        srv.stop()
    assert not folder.exists(), "the cluster folder was left behind"
