"""snapshot create/list/delete and prune: naming, then end to end on real PostgreSQL through the CLI.

These tests use their own embedded server: the local provider lists every database on the
server, so snapshots made by other tests (run in parallel on the shared server) would change
which snapshot is the newest of its kind.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from deploysafe.demo import embedded
from deploysafe.errors import UsageError
from deploysafe.journal import Journal, read_journal
from deploysafe.providers.base import SnapshotKind
from deploysafe.providers.local import LocalProvider
from deploysafe.snapshots.manage import (
    backup_name,
    drill_name,
    manual_name,
    parse_at,
    pre_deploy_name,
    restore_name,
    validate_name,
)
from support.cli import DEPLOYSAFE, run_cli_in_process

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC)


# --- names -----------------------------------------------------------------------------------------


def test_names() -> None:
    assert pre_deploy_name(NOW, "ABCDEF0123456789") == "pre-deploy-20261125T100005Z-abcdef0"
    assert pre_deploy_name(NOW, None) == "pre-deploy-20261125T100005Z-nosha"
    cet = datetime(2026, 11, 25, 11, 0, 5, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert pre_deploy_name(cet, "f00") == "pre-deploy-20261125T110005Z-f00"  # always UTC
    assert backup_name(SnapshotKind.DAILY, date(2026, 11, 24)) == "backup-2026-11-24"
    assert backup_name("weekly", date(2026, 11, 22)) == "weekly-2026-11-22"
    with pytest.raises(ValueError):
        backup_name(SnapshotKind.MANUAL, date(2026, 11, 22))
    assert restore_name(NOW) == "restore-20261125T100005Z"
    assert drill_name(NOW) == "drill-20261125T100005Z"
    assert manual_name(NOW) == "manual-20261125T100005Z"


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "empty"), ("   ", "empty"), ("x" * 201, "201 characters"), ("a\nb", "control character"), ("a\x1b[31m", "control")],
)
def test_bad_names_are_usage_errors(name: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate_name(name)


def test_good_names_pass() -> None:
    assert validate_name("before-big-import é 2") == "before-big-import é 2"
    assert validate_name("x" * 200) == "x" * 200


def test_parse_at() -> None:
    assert parse_at("2026-11-24T15:30:00Z", now=NOW) == datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
    assert parse_at("2026-11-24T16:30:00+01:00", now=NOW) == datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
    for text, msg in [("yesterday", "not an ISO 8601"), ("2026-11-24T15:30:00", "no time zone"), ("2027-01-01T00:00:00Z", "future")]:
        with pytest.raises(UsageError, match=msg):
            parse_at(text, now=NOW)


# --- a private server, an app config ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[embedded.EmbeddedPostgres]:
    if embedded.system_bin_dir() is None and embedded.pgserver_bin_dir() is None:
        pytest.skip("no PostgreSQL server binaries")
    srv = embedded.start()
    yield srv
    srv.stop()


def drop_all_but_system(srv: embedded.EmbeddedPostgres) -> None:
    with psycopg.connect(srv.url(), autocommit=True) as c:
        for (db,) in c.execute("SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'").fetchall():
            c.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))


class App:
    """A tmp_path app: deploysafe.toml (local provider, dotenv platform), app.env, a seeded production."""

    def __init__(self, root: Path, srv: embedded.EmbeddedPostgres) -> None:
        self.root = root
        self.srv = srv
        self.prod_url = srv.url("prod")
        self.config = root / "deploysafe.toml"
        self.env_file = root / "app.env"
        self.config.write_text(
            '[provider]\ntype = "local"\ndatabase_url = "${DATABASE_URL}"\nstrategy = "template"\n\n'
            '[platform]\ntype = "dotenv"\nenv_file = "app.env"\nrestart = "true"\n'
        )
        self.point_at(self.prod_url)
        self.provider = LocalProvider(self.prod_url, strategy="template")

    def point_at(self, url: str) -> None:
        self.env_file.write_text(f"DATABASE_URL={url}\n")

    def make(self, name: str, kind: SnapshotKind, age: timedelta) -> None:
        """A real snapshot, aged by rewriting its COMMENT (created_at lives there)."""
        snap = self.provider.create_snapshot(name, kind)
        with psycopg.connect(self.srv.url(), autocommit=True) as c:
            (comment,) = c.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (snap.id,)
            ).fetchone()  # type: ignore[misc]
            meta = json.loads(comment)
            meta["created_at"] = (datetime.now(UTC) - age).isoformat()
            meta.pop("expires_at", None)
            c.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(snap.id), sql.Literal(json.dumps(meta))))

    def names(self) -> set[str]:
        return {s.name for s in self.provider.list_snapshots()}

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        """``deploysafe --config <this app's file> ARGS`` in this process: exit code, stdout, stderr."""
        r = run_cli_in_process(capsys, "--config", str(self.config), *args)
        return r.code, r.stdout, r.stderr


@pytest.fixture
def app(tmp_path: Path, server: embedded.EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    drop_all_but_system(server)
    with psycopg.connect(server.url(), autocommit=True) as c:
        c.execute("CREATE DATABASE prod")
        c.execute("CREATE DATABASE someone_elses")
    with psycopg.connect(server.url("prod"), autocommit=True) as c:
        c.execute("CREATE TABLE users (id serial PRIMARY KEY, email text)")
        c.execute("INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 5) g")
    monkeypatch.setenv("DATABASE_URL", server.url("prod"))
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    yield App(tmp_path, server)


D = timedelta(days=1)


def every_kind_at_several_ages(app: App) -> None:
    app.make("pre-deploy-old", SnapshotKind.PRE_DEPLOY, 20 * D)
    app.make("pre-deploy-inuse", SnapshotKind.PRE_DEPLOY, 12 * D)
    app.make("pre-deploy-young", SnapshotKind.PRE_DEPLOY, 2 * D)
    app.make("pre-deploy-newest", SnapshotKind.PRE_DEPLOY, 1 * D)
    app.make("backup-2026-09-01", SnapshotKind.DAILY, 85 * D)
    app.make("backup-2026-11-24", SnapshotKind.DAILY, 1 * D)
    app.make("weekly-2026-06-07", SnapshotKind.WEEKLY, 171 * D)
    app.make("weekly-2026-11-22", SnapshotKind.WEEKLY, 3 * D)
    app.make("restore-old", SnapshotKind.RESTORE, 9 * D)
    app.make("restore-new", SnapshotKind.RESTORE, 8 * D)
    app.make("drill-old", SnapshotKind.DRILL, 40 * D)
    app.make("drill-new", SnapshotKind.DRILL, 30 * D)
    app.make("manual-ancient", SnapshotKind.MANUAL, 900 * D)
    app.make("manual-recent", SnapshotKind.MANUAL, 1 * D)
    app.point_at(app.provider.connection_url("pre-deploy-inuse"))


EXPIRED = {"pre-deploy-old", "backup-2026-09-01", "weekly-2026-06-07", "restore-old", "drill-old"}


def test_prune_end_to_end_deletes_exactly_the_expired_and_journals_each(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    every_kind_at_several_ages(app)
    before = app.names()

    code, out, _ = app.cli(capsys, "prune", "--dry-run")
    assert code == 0 and app.names() == before  # a dry run deletes nothing
    lines = out.splitlines()
    assert lines[0] == "would delete 5 snapshot(s):"
    assert {ln.split()[0] for ln in lines[1:6]} == EXPIRED
    assert "  pre-deploy-old  (older than the pre-deploy retention of 7d00h (age 20d00h))" in lines
    kept = "\n".join(lines[6:])
    assert lines[6] == f"kept {len(before) - 5}:"
    for name, reason in [
        ("prod", "production"),
        ("someone_elses", "not created by deploysafe"),
        ("postgres", "not created by deploysafe"),
        ("pre-deploy-inuse", "the app's DATABASE_URL points at it now"),
        ("pre-deploy-newest", "the newest pre-deploy snapshot"),
        ("pre-deploy-young", "younger than the pre-deploy retention of 7d00h (age 2d00h)"),
        ("drill-new", "the newest drill snapshot"),
        ("manual-ancient", "manual snapshots are kept until [retention] manual is set"),
    ]:
        assert f"  {name}  ({reason})" in kept

    code, out, _ = app.cli(capsys, "prune", "--json")
    assert code == 0
    result = json.loads(out)
    assert {d["name"] for d in result["deleted"]} == EXPIRED and result["failed"] == []
    assert app.names() == before - EXPIRED
    journal = [r for r in read_journal(app.root / ".deploysafe") if r["step"] == "delete-snapshot" and r["outcome"] == "ok"]
    assert {r["details"]["snapshot"] for r in journal} == EXPIRED

    code, out, _ = app.cli(capsys, "prune")  # idempotent: nothing left to do
    assert code == 0 and out.splitlines()[0] == "deleted 0 snapshot(s)"


def test_prune_falls_back_to_the_journal_and_goes_on_past_a_failed_delete(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    app.make("pre-deploy-a", SnapshotKind.PRE_DEPLOY, 30 * D)
    app.make("pre-deploy-b", SnapshotKind.PRE_DEPLOY, 20 * D)
    app.make("pre-deploy-c", SnapshotKind.PRE_DEPLOY, 10 * D)
    app.make("pre-deploy-d", SnapshotKind.PRE_DEPLOY, 1 * D)
    app.env_file.unlink()  # the platform cannot be read: the journal's last repoint answers
    Journal(app.root / ".deploysafe", "rollback").event("repoint", target="pre-deploy-b")
    with psycopg.connect(app.provider.connection_url("pre-deploy-a")):  # a session blocks DROP DATABASE
        code, out, err = app.cli(capsys, "prune")
    assert code == 3
    assert "  pre-deploy-b  (the app's DATABASE_URL points at it now)" in out
    assert "failed to delete 1:" in out and "pre-deploy-a  (snapshot 'pre-deploy-a' is in use by other sessions" in out
    assert "deleted 1 snapshot(s):" in out and "  pre-deploy-c  (" in out
    assert app.names() >= {"pre-deploy-a", "pre-deploy-b", "pre-deploy-d"} and "pre-deploy-c" not in app.names()
    plan = [r for r in read_journal(app.root / ".deploysafe") if r["step"] == "prune-plan"][-1]["details"]
    assert plan["in_use"] == "pre-deploy-b" and plan["in_use_source"] == "journal"


def test_prune_leaves_another_apps_snapshots_on_the_same_server_alone(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(app.srv.url(), autocommit=True) as c:
        c.execute("CREATE DATABASE prod_b")
    other = LocalProvider(app.srv.url("prod_b"), strategy="template")
    other.create_snapshot("pre-deploy-b-only", SnapshotKind.PRE_DEPLOY)
    app.make("pre-deploy-mine-old", SnapshotKind.PRE_DEPLOY, 30 * D)
    app.make("pre-deploy-mine-new", SnapshotKind.PRE_DEPLOY, 1 * D)
    # Age the other app's snapshot too: by age alone it would go.
    with psycopg.connect(app.srv.url(), autocommit=True) as c:
        (comment,) = c.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'pre-deploy-b-only'").fetchone()  # type: ignore[misc]
        meta = {**json.loads(comment), "created_at": (datetime.now(UTC) - 40 * D).isoformat()}
        c.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier("pre-deploy-b-only"), sql.Literal(json.dumps(meta))))
    code, out, _ = app.cli(capsys, "prune")
    assert code == 0, out
    # The local provider already reports it as not ours; the planner would also refuse it by source.
    assert "  pre-deploy-b-only  (not created by deploysafe)" in out
    assert "pre-deploy-b-only" in app.names() and "pre-deploy-mine-old" not in app.names()
    code, _, err = app.cli(capsys, "snapshot", "delete", "pre-deploy-b-only", "--yes")
    assert code == 3 and "refusing to delete 'pre-deploy-b-only'" in err
    code, out, _ = app.cli(capsys, "snapshot", "list")
    assert "pre-deploy-b-only" not in out


class LimitedProvider(LocalProvider):
    """The local provider with a branch allowance, as a Neon plan has."""

    allowance = 0

    def branch_allowance(self) -> int | None:
        return self.allowance


def test_ensure_headroom_deletes_only_expired_and_fails_clearly_when_not_enough(app: App) -> None:
    from deploysafe.config import load_config
    from deploysafe.errors import PreconditionError
    from deploysafe.platforms import make_platform
    from deploysafe.snapshots.manage import ensure_headroom

    app.make("pre-deploy-a", SnapshotKind.PRE_DEPLOY, 30 * D)
    app.make("pre-deploy-b", SnapshotKind.PRE_DEPLOY, 20 * D)
    app.make("pre-deploy-c", SnapshotKind.PRE_DEPLOY, 1 * D)
    loaded = load_config(str(app.config))
    prov = LimitedProvider(app.prod_url, strategy="template")
    platform = make_platform(loaded)
    count = len(prov.list_snapshots())  # postgres, prod, someone_elses and three snapshots

    prov.allowance = count + 1
    assert ensure_headroom(loaded, prov, platform).delete == [] and len(prov.list_snapshots()) == count

    prov.allowance = count - 3  # needs 4 deletions; only pre-deploy-a and -b may go
    with pytest.raises(PreconditionError, match=f"the plan allows {count - 3} branches and {count} exist; 1 more are needed"):
        ensure_headroom(loaded, prov, platform)
    assert len(prov.list_snapshots()) == count  # nothing deleted when it cannot succeed

    prov.allowance = count  # one must go: the oldest expired
    plan = ensure_headroom(loaded, prov, platform)
    assert [s.name for s, _ in plan.deleted] == ["pre-deploy-a"]
    assert app.names() >= {"pre-deploy-b", "pre-deploy-c"} and "pre-deploy-a" not in app.names()


def test_snapshot_create_list_delete(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = app.cli(capsys, "snapshot", "create", "--name", "before-import")
    assert code == 0 and out.strip().endswith("✓ snapshot before-import created")
    code, out, _ = app.cli(capsys, "snapshot", "create", "--kind", "daily")
    assert code == 0
    daily = f"backup-{datetime.now(UTC).date().isoformat()}"
    assert daily in app.names()
    code, out, _ = app.cli(capsys, "--json", "snapshot", "create", "--kind", "drill")
    created = json.loads(out)
    assert code == 0 and created["kind"] == "drill" and created["name"].startswith("drill-")
    assert created["created_at"].endswith("Z") and created["name"] in app.names()
    with psycopg.connect(app.provider.connection_url("before-import")) as c:
        assert c.execute("SELECT count(*) FROM users").fetchone() == (5,)

    code, out, _ = app.cli(capsys, "snapshot", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "AGE", "CREATED_AT", "IN-USE", "PROTECTED", "EXPIRES_AT"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert set(rows) == {"before-import", daily, created["name"], "prod"}  # ours plus production; not someone_elses
    assert rows["before-import"][1] == "manual" and rows["before-import"][-1] == "never"
    assert rows["prod"][1:2] == ["production"] and "yes" in rows["prod"]  # production is in use

    code, out, _ = app.cli(capsys, "snapshot", "list", "--json", "--all")
    assert code == 0
    data = {r["name"]: r for r in json.loads(out)}
    assert {"someone_elses", "postgres"} <= set(data)
    d = data[daily]
    assert d["kind"] == "daily" and d["in_use"] is False and d["protected"] is False
    created = datetime.fromisoformat(d["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(d["expires_at"].replace("Z", "+00:00"))
    assert d["created_at"].endswith("Z") and abs((expires - created) - 30 * D) < timedelta(seconds=2)
    assert 0 <= d["age_seconds"] < 120

    code, _, err = app.cli(capsys, "snapshot", "delete", "before-import")
    assert code == 2 and "refusing to delete 'before-import' without --yes: stdin is not a terminal" in err
    code, out, _ = app.cli(capsys, "snapshot", "delete", "before-import", "--yes")
    assert code == 0 and "before-import" not in app.names()


@pytest.mark.parametrize(
    ("target", "why"),
    [("prod", "it is production"), ("someone_elses", "deploysafe did not create it"), ("pre-deploy-live", "points at it now"), ("nope", "no snapshot named 'nope'")],
)
def test_snapshot_delete_refuses(app: App, capsys: pytest.CaptureFixture[str], target: str, why: str) -> None:
    app.make("pre-deploy-live", SnapshotKind.PRE_DEPLOY, 30 * D)
    app.point_at(app.provider.connection_url("pre-deploy-live"))
    before = app.names()
    code, _, err = app.cli(capsys, "snapshot", "delete", target, "--yes")
    assert code == 3 and why in err
    assert app.names() == before


def test_snapshot_create_bad_input_is_one_clear_line(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = app.cli(capsys, "snapshot", "create", "--kind", "restore", "--at", "2026-01-01T00:00:00Z")
    assert code == 3 and "cannot make point-in-time snapshots" in err and "Traceback" not in err
    code, _, err = app.cli(capsys, "snapshot", "create", "--at", "last tuesday")
    assert code == 2 and "--at 'last tuesday' is not an ISO 8601 timestamp" in err
    code, _, err = app.cli(capsys, "snapshot", "create", "--name", "bad\tname")
    assert code == 2 and "control character" in err
    code, _, err = app.cli(capsys, "snapshot", "create", "--kind", "hourly")
    assert code == 2 and "hourly" in err
    assert app.names() & {"bad\tname"} == set()


def test_delete_asks_on_a_terminal(app: App) -> None:
    """On a real TTY, `snapshot delete` asks; 'n' keeps the snapshot, 'y' deletes it."""
    import pty

    app.make("manual-ask", SnapshotKind.MANUAL, D)
    for answer, gone in (("n", False), ("y", True)):
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [str(DEPLOYSAFE), "--config", str(app.config), "snapshot", "delete", "manual-ask"],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ},
        )
        os.close(slave)
        os.write(master, f"{answer}\n".encode())
        out, _ = proc.communicate(timeout=60)
        os.close(master)
        assert proc.returncode == 0, out
        assert b"Delete snapshot 'manual-ask'?" in out
        assert ("manual-ask" not in app.names()) is gone


# --- prune against the Neon API double: children and protected branches are real there ------------------


def test_prune_on_neon_keeps_parents_protected_in_use_and_deletes_leaf_first(tmp_path: Path, pg_server: embedded.EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch) -> None:
    from deploysafe.config import load_config
    from deploysafe.http import RetryPolicy
    from deploysafe.platforms import make_platform
    from deploysafe.providers.neon.provider import NeonProvider
    from deploysafe.snapshots.manage import prune
    from support.neon_double import make_double, seed_production

    d = make_double(pg_server)
    try:
        seed_production(d)
        now = datetime.now(UTC)

        def add(name: str, kind: str | None, days: float, **kw: object) -> None:
            d.add_branch(name, annotation={"deploysafe": kind} if kind else None, database=False,
                         created_at=now - days * D, **kw)  # type: ignore[arg-type]

        add("someones-dev", None, 300)
        add("pre-deploy-old", "pre-deploy", 20)
        add("pre-deploy-inuse", "pre-deploy", 12, endpoint=True)
        add("pre-deploy-newest", "pre-deploy", 1)
        add("backup-parent", "daily", 85)
        add("restore-child", "restore", 60, parent="backup-parent")
        add("restore-new", "restore", 5)
        add("backup-new", "daily", 1)
        add("weekly-protected", "weekly", 171, protected=True)
        add("weekly-new", "weekly", 3)
        add("drill-old", "drill", 40)
        add("drill-new", "drill", 8)
        add("manual-old", "manual", 500)
        add("manual-new", "manual", 2)
        host = next(e["host"] for e in d.endpoints.values() if e["branch_id"] == d.by_name("pre-deploy-inuse")["id"])
        (tmp_path / "app.env").write_text(f"DATABASE_URL=postgresql://app:pw@{host}/neondb\n")
        (tmp_path / "deploysafe.toml").write_text(
            f'[provider]\ntype = "neon"\nproject_id = "{d.project_id}"\ndatabase = "{d.database}"\nrole = "{d.role}"\n'
            f'api_url = "{d.base_url}"\n\n[platform]\ntype = "dotenv"\nenv_file = "app.env"\n'
        )
        monkeypatch.setenv("NEON_API_KEY", d.api_key)
        loaded = load_config(str(tmp_path / "deploysafe.toml"))
        prov = NeonProvider.from_config(loaded, policy=RetryPolicy(sleep=lambda s: None), poll_interval=0.0)
        journal = Journal(loaded.state_dir, "prune")

        dry = prune(loaded, prov, make_platform(loaded), dry_run=True, journal=journal)
        expected = ["restore-child", "drill-old", "pre-deploy-old"]  # the child first, then oldest first
        assert [s.name for s, _ in dry.delete] == expected
        why = {s.name: r for s, r in dry.keep}
        assert why["backup-parent"].startswith("has child branches")
        assert why["weekly-protected"] == "protected"
        assert why["pre-deploy-inuse"] == "the app's DATABASE_URL points at it now"
        assert why["production"] == "production" and why["someones-dev"] == "not created by deploysafe"
        assert len(d.branches) == 15  # nothing deleted by the dry run

        done = prune(loaded, prov, make_platform(loaded), dry_run=False, journal=journal)
        assert done.failed == [] and [s.name for s, _ in done.deleted] == expected
        left = {b["name"] for b in d.branches.values()}
        assert left.isdisjoint(expected) and {"backup-parent", "weekly-protected", "pre-deploy-inuse"} <= left

        again = prune(loaded, prov, make_platform(loaded), dry_run=False, journal=journal)  # the parent's turn
        assert [s.name for s, _ in again.deleted] == ["backup-parent"]
        prov.close()
    finally:
        d.stop()
    assert not d.spec_problems, d.spec_problems
