"""The coordinated rollback: when the app's live release changed during the deploy, a rollback brings the
recorded release back WITH the database; ``[rollback] app = "keep"`` moves only the database; the plan says which.

Deploy-level logic with the in-memory fakes (the rig of tests/support/rig.py); each adapter's describe() and
return_to() requests are tested against respx in tests/platforms/, and with real processes for dotenv/command in
tests/platforms/test_user_releases.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from deploysafe.deploy import apply
from deploysafe.deploy import run as deploy
from deploysafe.errors import DeployFailedRolledBack, PlatformError, RollbackFailed
from deploysafe.journal import read_journal
from deploysafe.snapshots.inuse import REPOINT_STEP
from support.rig import Rig

APP_DEPLOY = '[deploy]\napp_deploy = "ship-it"\n'


def ships_new_code(rig: Rig, *, broken: bool) -> None:
    """``[deploy] app_deploy`` puts code-1 live; ``broken``: code-1 cannot run on the old schema (the snapshot)."""

    def app_deploy(loaded: Any, url: str) -> None:
        rig.platform.ship("code-1")
        rig.platform.healthy_urls.discard(rig.prod_url)  # the new code + its migration fail the probes

    rig.app_deploy = app_deploy
    if broken:
        rig.platform.broken_code.add("code-1")


def journal_steps(rig: Rig) -> dict[str, dict[str, Any]]:
    return {r["step"]: r for r in read_journal(rig.loaded.state_dir) if r.get("ended_at") or r["step"] == REPOINT_STEP}


def test_a_changed_release_comes_back_with_the_database(make_rig: Any) -> None:
    rig: Rig = make_rig(APP_DEPLOY)
    ships_new_code(rig, broken=True)
    summary, err = rig.run()
    assert isinstance(err, DeployFailedRolledBack) and err.exit_code == 1 and summary.outcome == "rolled back"
    snap_url = rig.provider.url_of(summary.snapshot or "")
    # both halves: the previous release live, on the snapshot
    assert rig.platform.live_code == "code-0" and rig.platform.value == rig.platform.live_value == snap_url
    assert rig.platform.app_healthy() and (snap_url, "rollback.probe") in rig.probed
    # one release action brought both (the URL set with it), not set_url + pick_up + another deploy
    assert [c.args[1] for c in rig.platform.faults.calls("return_to")] == [snap_url]
    assert rig.platform.faults.calls("pick_up") == [] and rig.platform.faults.calls("set_url") == []
    done = journal_steps(rig)
    assert done["rollback.app"]["outcome"] == "ok"
    assert done["rollback.app"]["details"]["release_to"] == "rel-0"
    assert done["rollback.app"]["details"]["release_from"] == "rel-1"
    assert done["rollback.app"]["details"]["sets"] == "DATABASE_URL"
    assert done[REPOINT_STEP]["details"]["target"] == summary.snapshot  # the database half
    assert done["snapshot"]["details"]["app_release"] == "rel-0"  # recorded before production changed
    assert summary.rollback and summary.rollback["app_release"] == "rel-0"
    assert "app release brought back: rel-0" in deploy.render_summary(summary)
    assert rig.provider.deleted == [] and "production" in rig.provider.snapshots


def test_app_keep_moves_only_the_database(make_rig: Any) -> None:
    rig: Rig = make_rig(APP_DEPLOY + '[rollback]\napp = "keep"\n')
    ships_new_code(rig, broken=False)
    summary, err = rig.run()
    assert isinstance(err, DeployFailedRolledBack) and err.exit_code == 1
    assert rig.platform.live_code == "code-1"  # the new code stays
    assert rig.platform.value == rig.provider.url_of(summary.snapshot or "")
    assert rig.platform.faults.calls("return_to") == [] and len(rig.platform.faults.calls("pick_up")) == 1
    assert "rollback.app" not in journal_steps(rig)
    assert summary.rollback and summary.rollback["app_release"] is None


def test_an_unchanged_release_is_not_rolled_back(make_rig: Any) -> None:
    rig: Rig = make_rig()
    rig.push_breaks_app = True
    summary, err = rig.run()
    assert isinstance(err, DeployFailedRolledBack)
    assert rig.platform.faults.calls("return_to") == [] and len(rig.platform.faults.calls("pick_up")) == 1
    assert journal_steps(rig)["rollback.app_check"]["outcome"] == "ok"


def test_a_failed_app_half_needs_a_person_and_says_which_release(make_rig: Any) -> None:
    rig: Rig = make_rig(APP_DEPLOY)
    ships_new_code(rig, broken=True)
    rig.platform.faults.fail("return_to", PlatformError("build quota exceeded", platform="fake"))
    summary, err = rig.run()
    assert isinstance(err, RollbackFailed) and err.exit_code == 4 and summary.outcome == "needs a person"
    assert "failed at step 'app'" in err.message
    assert any("Bring back the app release that was live before the deploy (rel-0, code code-0)" in s
               for s in err.manual_steps)
    assert any("Set DATABASE_URL" in s for s in err.manual_steps)  # the database half is not done either


def test_dry_run_says_how_the_code_comes_back(make_rig: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rig: Rig = make_rig(APP_DEPLOY)
    summary, err = rig.run(dry_run=True)
    assert err is None and summary.outcome == "dry run: nothing changed"
    out = capsys.readouterr().out
    assert "on rollback, app code: if the live release changes during the deploy, a rollback brings the recorded " \
           "one back with the database: fake: start the recorded release again" in out
    assert rig.platform.faults.calls("return_to") == []


def test_dry_run_says_when_the_code_cannot_come_back(make_rig: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rig: Rig = make_rig(APP_DEPLOY)
    rig.platform.can_return = False
    rig.run(dry_run=True)
    out = capsys.readouterr().out
    assert "app code: NOT rolled back: dotenv cannot bring back a previous release (set [platform] " \
           "release_command and rollback_command to let it)" in out
    assert "! [deploy] app_deploy ships new code, and app code: NOT rolled back" in out


def test_dry_run_with_keep(make_rig: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rig: Rig = make_rig('[rollback]\napp = "keep"\n')
    rig.run(dry_run=True)
    assert 'app code: kept as it is on rollback ([rollback] app = "keep")' in capsys.readouterr().out


# --- dotenv and command, with real processes -----------------------------------------------------------------

USER_PLATFORMS = {
    "dotenv": """
type = "dotenv"
env_file = "app.env"
restart = "true"
""",
    "command": """
type = "command"
get_command = "cat url.txt"
set_command = 'printf %s "$DEPLOYSAFE_NEW_URL" > url.txt'
restart = "true"
wait_command = "test -s release.txt"
""",
}


@pytest.mark.parametrize("kind", sorted(USER_PLATFORMS))
def test_user_commands_bring_the_release_back_with_the_database(
    kind: str, tmp_path: Any
) -> None:
    """The app's release is the content of release.txt; app_deploy (a real shell command) ships code-1; the
    probes see code-1 on the new schema fail; the rollback runs rollback_command with $DEPLOYSAFE_RELEASE."""
    from deploysafe.config import LoadedConfig, parse_config
    from deploysafe.deploy.probes import Verdict
    from deploysafe.platforms import make_platform
    from deploysafe.testing import FakePlatform, FakeProvider

    provider = FakeProvider("production")
    prod = provider.url_of("production")
    (tmp_path / "release.txt").write_text("code-0\n")
    (tmp_path / "app.env").write_text(f"DATABASE_URL={prod}\n")
    (tmp_path / "url.txt").write_text(prod)
    text = f"""
[provider]
type = "local"
database_url = "{prod}"
[platform]
{USER_PLATFORMS[kind]}
release_command = "cat release.txt"
rollback_command = 'printf "%s\\n" "$DEPLOYSAFE_RELEASE" > release.txt'
[deploy]
app_deploy = 'printf "code-1\\n" > {tmp_path}/release.txt'
[[probes.http]]
name = "health"
url = "http://127.0.0.1:3000/health"
"""
    loaded = LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml")
    rig = Rig(loaded, provider, FakePlatform(prod))  # the doubles for generate/push/lint/lock come from the rig
    rig.app_deploy = apply.app_deploy  # the real [deploy] app_deploy command
    platform = make_platform(loaded)

    def where() -> str:
        if kind == "dotenv":
            return (tmp_path / "app.env").read_text().split("=", 1)[1].strip().strip('"')
        return (tmp_path / "url.txt").read_text().strip()

    def analyse(cfg: Any, url: str | None, *, journal: Any = None, on_attempt: Any = None, phase: str = "probe",
                **kw: Any) -> Verdict:
        code = (tmp_path / "release.txt").read_text().strip()
        ok = code == "code-0" and where() != prod  # the old code runs only on the old schema: the snapshot
        return Verdict(ok, "all probes passed" if ok else f"health: HTTP 500 on {code}", 0.0)

    rig.analyse = analyse
    summary = deploy.deploy(loaded, deploy.DeployOptions(sha="0123456789abcdef"), provider=provider, platform=platform,
                            tools=rig.tools(), clock=rig.clock)
    assert isinstance(summary.failure, DeployFailedRolledBack) and summary.exit_code == 1
    assert (tmp_path / "release.txt").read_text() == "code-0\n"  # the previous release is live
    assert where() == provider.url_of(summary.snapshot)  # and the database is the snapshot
    done = {r["step"]: r for r in read_journal(loaded.state_dir) if r.get("ended_at") or r["step"] == REPOINT_STEP}
    assert done["rollback.app"]["outcome"] == "ok" and done["rollback.app"]["details"]["release_to"] == "code-0"
    assert done["rollback.app"]["details"]["release_from"] == "code-1"
    assert done[REPOINT_STEP]["details"]["target"] == summary.snapshot
    assert summary.rollback["app_release"] == "code-0"
