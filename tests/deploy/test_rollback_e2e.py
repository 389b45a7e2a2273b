"""Manual rollback, promote and probe end to end (local provider, dotenv platform, the real app)."""

from __future__ import annotations

import json

import psycopg
import pytest

from deploysafe.demo.run import DemoApp
from deploysafe.providers.base import SnapshotKind
from deploysafe.providers.local import LocalProvider
from support.e2e import assert_no_secret, ds, env_url, healthy, journal_lines, rows, set_config

pytestmark = pytest.mark.e2e


def snapshot(app: DemoApp, name: str, kind: SnapshotKind = SnapshotKind.PRE_DEPLOY) -> str:
    prov = LocalProvider(app.production_url)
    prov.create_snapshot(name, kind)
    return prov.connection_url(name)


def add_users(url: str, n: int) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("INSERT INTO users (email) SELECT 'late' || g || '@x' FROM generate_series(1, %s) g", (n,))


def test_rollback_to_a_named_snapshot_repoints_restarts_and_keeps_the_failed_state(live_app: DemoApp) -> None:
    snap_url = snapshot(live_app, "manual-before-change", SnapshotKind.MANUAL)
    add_users(live_app.production_url, 10)  # writes made after the snapshot
    (live_app.root / ".env").write_text((live_app.root / ".env").read_text() + "# keep me\nOTHER='x y'\n")
    r = ds(live_app, "--json", "rollback", "--to", "manual-before-change", "--yes")
    assert r.code == 0, r.stderr
    result = r.json
    assert result["snapshot"] == "manual-before-change" and result["repoint_seconds"] > 0
    assert env_url(live_app) == snap_url
    env_text = (live_app.root / ".env").read_text()
    assert "# keep me\nOTHER='x y'\n" in env_text and f'PORT="{live_app.port}"' in env_text
    assert healthy(live_app)
    probe = ds(live_app, "--json", "probe")
    assert probe.code == 0 and probe.json["healthy"] is True
    # the failed production state is kept with every row, and the report names the 10 rows only it has
    assert rows(live_app.production_url) == (35,)
    assert rows(snap_url) == (25,)
    users = next(d for d in result["divergence"] if d["table"] == "public.users")
    assert users["only_in_failed"] == 10 and users["key"] == ["id"]
    # the journal shows each rollback step with start and end times
    recs = [json.loads(line) for line in journal_lines(live_app)]
    done = {rec["step"]: rec for rec in recs if rec["command"] == "rollback" and rec["outcome"] == "ok"}
    for step in ("rollback.set", "rollback.pick_up", "rollback.wait_live", "rollback.probes"):
        assert done[step]["started_at"] <= done[step]["ended_at"]
    assert done["repoint"]["details"]["target"] == "manual-before-change"
    st = ds(live_app, "--json", "status")
    assert st.json["app_points_at"]["name"] == "manual-before-change"
    assert any("promote" in a for a in st.json["advice"])
    assert_no_secret(live_app, r.stdout, r.stderr, probe.stdout, st.stdout)


def test_dry_run_changes_nothing(live_app: DemoApp) -> None:
    snapshot(live_app, "pre-deploy-20261125T000000Z-aaaaaaa")
    before = (live_app.root / ".env").read_text()
    r = ds(live_app, "rollback", "--dry-run")
    assert r.code == 0, r.stderr
    assert "pre-deploy-20261125T000000Z-aaaaaaa" in r.stdout and "dry run" in r.stdout
    assert (live_app.root / ".env").read_text() == before
    assert not [line for line in journal_lines(live_app) if '"rollback.set"' in line]


def test_refuses_without_yes_when_not_a_terminal(live_app: DemoApp) -> None:
    snapshot(live_app, "pre-deploy-x")
    r = ds(live_app, "rollback")
    assert r.code == 2
    assert "pass --yes" in r.stderr
    assert env_url(live_app) == live_app.production_url


def test_nothing_to_roll_back_to_is_exit_3(live_app: DemoApp) -> None:
    r = ds(live_app, "rollback", "--yes")
    assert r.code == 3
    assert "no pre-deploy snapshot" in r.stderr and "Traceback" not in r.stderr


def test_point_in_time_on_local_is_refused_clearly(live_app: DemoApp) -> None:
    r = ds(live_app, "rollback", "--at", "2026-11-25T09:00:00Z", "--yes")
    assert r.code == 3
    assert "point in time" in r.stderr and "--to" in r.stderr
    bad = ds(live_app, "rollback", "--at", "yesterday", "--yes")
    assert bad.code == 2 and "ISO 8601" in bad.stderr


def test_failed_restart_exits_4_with_the_manual_steps(live_app: DemoApp) -> None:
    snapshot(live_app, "pre-deploy-y")
    set_config(live_app, **{'restart = "sh restart.sh"': 'restart = "echo cannot restart >&2; exit 9"'})
    r = ds(live_app, "rollback", "--yes")
    assert r.code == 4, r.stderr
    assert "failed at step 'pick_up'" in r.stderr
    assert "Restart the app: echo cannot restart" in r.stderr
    assert f"Keep '{LocalProvider(live_app.production_url).production_db}'" in r.stderr
    assert_no_secret(live_app, r.stdout, r.stderr)


def test_promote_makes_the_snapshot_production_and_keeps_the_old_one(live_app: DemoApp) -> None:
    snapshot(live_app, "pre-deploy-z")
    add_users(live_app.production_url, 3)
    assert ds(live_app, "rollback", "--yes").code == 0
    r = ds(live_app, "--json", "promote", "--yes")
    assert r.code == 0, r.stderr
    prod_db = LocalProvider(live_app.production_url).production_db
    assert r.json["production"] == prod_db and r.json["was"] == "pre-deploy-z"
    assert env_url(live_app) == live_app.production_url  # production's name now holds the snapshot's data
    assert rows(live_app.production_url) == (25,)
    failed = r.json["failed_state"]
    assert failed.startswith(prod_db + "-failed-")
    from deploysafe.pg import with_dbname

    assert rows(with_dbname(live_app.production_url, failed)) == (28,)
    assert healthy(live_app)
    assert ds(live_app, "promote", "--yes").code == 3  # nothing left to promote


def test_promote_failing_half_way_exits_4_saying_what_changed_and_what_is_left(live_app: DemoApp) -> None:
    snapshot(live_app, "pre-deploy-h")
    add_users(live_app.production_url, 3)
    assert ds(live_app, "rollback", "--yes").code == 0
    set_config(live_app, **{'restart = "sh restart.sh"': 'restart = "echo cannot restart >&2; exit 9"'})
    r = ds(live_app, "promote", "--yes")
    assert r.code == 4, r.stderr  # never 3 ("nothing was changed") once databases were renamed
    assert "nothing was changed" not in r.stderr
    prod_db = LocalProvider(live_app.production_url).production_db
    assert "promote stopped half-way" in r.stderr and "Already changed:" in r.stderr
    assert f"production '{prod_db}' was renamed '{prod_db}-failed-" in r.stderr
    assert f"snapshot 'pre-deploy-h' was renamed '{prod_db}'" in r.stderr
    assert "Restart the app: echo cannot restart" in r.stderr and "deploysafe probe" in r.stderr
    assert rows(live_app.production_url) == (25,)  # production's name holds the snapshot's data now
    assert env_url(live_app) == live_app.production_url
    last = [rec for rec in map(json.loads, journal_lines(live_app)) if rec["command"] == "promote"][-1]
    assert last["step"] == "result" and last["details"]["outcome"] == "needs a person"
    assert_no_secret(live_app, r.stdout, r.stderr)
