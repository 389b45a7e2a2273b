"""Vercel adapter against respx routes built from recorded-shape fixtures (tests/fixtures/vercel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.errors import PlatformError
from deploysafe.http import RetryPolicy
from deploysafe.platforms import make_platform
from deploysafe.platforms.base import Platform, Release
from deploysafe.platforms.vercel import VercelPlatform
from support.platforms import Clock, responder

TOKEN = "vcp_DoNotLeakThisVercelToken0123456789"
API = "https://api.vercel.com"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vercel"
PROJECT = "prj_XLKmu1DyR1eY7zq8UgeRKbA7yVLA"
ENV_ID = "aBcD1234efGH5678"
NEW_DEPLOY = "dpl_2qmb9CpSM1rbmtVxSEMb4BPv3u9x"
SNAPSHOT_URL = "postgresql://app:snapPW42@ep-snap-9.eu-central-1.aws.neon.tech/neondb?sslmode=require"


fx = responder("vercel")


@pytest.fixture
def router() -> respx.MockRouter:
    # injected as the client's transport: no global patching, unknown routes fail the test
    return respx.MockRouter(base_url=API, assert_all_called=False)


@pytest.fixture
def vercel(router: respx.MockRouter, clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("VERCEL_TOKEN", TOKEN)
    text = f"""
[provider]
type = "local"
database_url = "postgresql://localhost/app"
[platform]
type = "vercel"
project = "{PROJECT}"
team_id = "team_1a2b3c"
poll_interval = "3s"
"""
    loaded = LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml")
    p = make_platform(
        loaded, transport=httpx.MockTransport(router.handler), policy=RetryPolicy(attempts=3, sleep=clock.sleep), clock=clock)
    yield p
    p.close()


def env_list(router: respx.MockRouter, name: str = "env_list_encrypted") -> respx.Route:
    return router.get(f"/v10/projects/{PROJECT}/env").mock(return_value=fx(name))


def test_is_a_platform_built_from_config(vercel: VercelPlatform) -> None:
    assert isinstance(vercel, VercelPlatform) and isinstance(vercel, Platform)


def test_read_current_decrypts_the_production_entry(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    listing = env_list(router)
    one = router.get(f"/v1/projects/{PROJECT}/env/{ENV_ID}").mock(return_value=fx("env_get_decrypted"))
    current = vercel.read_current()
    assert current.readable and current.var_id == ENV_ID and not current.reference
    assert current.value is not None and current.value.startswith("postgresql://app:s3cr3tpw@ep-prod-123")
    # every call carries the bearer token and the team
    for route in (listing, one):
        req = route.calls.last.request
        assert req.headers["authorization"] == f"Bearer {TOKEN}"
        assert req.url.params["teamId"] == "team_1a2b3c"


def test_sensitive_variable_is_unreadable(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    env_list(router, "env_list_sensitive")
    decrypt = router.get(f"/v1/projects/{PROJECT}/env/{ENV_ID}")
    current = vercel.read_current()
    assert current == type(current)(readable=False, var_id=ENV_ID)
    assert not decrypt.called
    assert any("sensitive" in c for c in vercel.caveats())


def test_missing_production_variable_says_how_to_fix(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    env_list(router, "env_list_missing")
    with pytest.raises(PlatformError, match="no production variable DATABASE_URL") as e:
        vercel.read_current()
    assert e.value.hint and "Production" in e.value.hint


def test_set_patches_the_production_entry_by_id(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    env_list(router)
    patch = router.patch(f"/v9/projects/{PROJECT}/env/{ENV_ID}").mock(return_value=fx("env_patch_ok"))
    vercel.set_url(SNAPSHOT_URL)
    assert json.loads(patch.calls.last.request.content) == {"value": SNAPSHOT_URL}


def test_shared_targets_are_a_caveat(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    env_list(router, "env_list_shared_targets")
    assert any("preview" in c for c in vercel.caveats())


def test_pick_up_redeploys_current_production_like_vercel_redeploy(
    vercel: VercelPlatform, router: respx.MockRouter
) -> None:
    env_list(router)
    router.get(f"/v9/projects/{PROJECT}").mock(return_value=fx("project_get_ok"))
    create = router.post("/v13/deployments").mock(return_value=fx("deployments_create_ok"))
    vercel.prepare()
    release = vercel.pick_up()
    assert release == Release(id=NEW_DEPLOY, status="QUEUED", url="shop-n3wd3pl.vercel.app")
    req = create.calls.last.request
    assert req.url.params["forceNew"] == "1" and req.url.params["teamId"] == "team_1a2b3c"
    assert json.loads(req.content) == {
        "deploymentId": "dpl_89qyp1cskzkLrVicDaZoDbjyHuDJ",
        "name": "shop",
        "target": "production",
        "meta": {"action": "redeploy"},
    }


def test_return_to_sets_then_redeploys_the_recorded_deployment(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    env_list(router)
    router.get(f"/v9/projects/{PROJECT}").mock(return_value=fx("project_get_ok"))
    patch = router.patch(f"/v9/projects/{PROJECT}/env/{ENV_ID}").mock(return_value=fx("env_patch_ok"))
    create = router.post("/v13/deployments").mock(return_value=fx("deployments_create_ok"))
    vercel.prepare()
    recorded = Release(id="dpl_OldProductionBuild000000000", status="READY", live=True)
    release = vercel.return_to(recorded, SNAPSHOT_URL)
    assert json.loads(patch.calls.last.request.content) == {"value": SNAPSHOT_URL}
    body = json.loads(create.calls.last.request.content)
    assert body["deploymentId"] == recorded.id and body["target"] == "production"  # its source, today's variables
    methods = [c.request.method for c in router.calls]
    assert methods.index("PATCH") < methods.index("POST") and release.id == NEW_DEPLOY


def test_describe_is_the_production_deployment(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    router.get(f"/v9/projects/{PROJECT}").mock(return_value=fx("project_get_ok"))
    described = vercel.describe()
    assert described is not None and described.id == "dpl_89qyp1cskzkLrVicDaZoDbjyHuDJ" and described.live


def test_prepare_refuses_a_project_without_production(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    env_list(router)
    router.get(f"/v9/projects/{PROJECT}").mock(return_value=fx("project_get_no_production"))
    with pytest.raises(PlatformError, match="no production deployment"):
        vercel.prepare()


def test_wait_live_waits_for_ready_and_the_alias(vercel: VercelPlatform, router: respx.MockRouter, clock: Clock) -> None:
    router.get(f"/v13/deployments/{NEW_DEPLOY}").mock(
        side_effect=[fx("deployments_get_building"), fx("deployments_get_ready_unaliased"), fx("deployments_get_ready")]
    )
    done = vercel.wait_live(Release(id=NEW_DEPLOY, status="QUEUED"), timeout=600)
    assert done.live and done.status == "READY" and not done.failed
    assert clock.sleeps == [3.0, 3.0]  # poll_interval from the config


def deployment(**changes: Any) -> httpx.Response:
    body = json.loads((FIXTURES / "deployments_get_ready.json").read_text())
    return httpx.Response(200, json={**body, **changes})


def test_a_staged_production_deployment_is_promoted_then_live(
    vercel: VercelPlatform, router: respx.MockRouter, clock: Clock
) -> None:
    # production domains not auto-assigned: READY, readySubstate STAGED, no alias; today's code waits it out
    staged = deployment(readySubstate="STAGED", aliasAssigned=False)
    router.get(f"/v13/deployments/{NEW_DEPLOY}").mock(return_value=staged)
    promote = router.post(f"/v10/projects/{PROJECT}/promote/{NEW_DEPLOY}").mock(return_value=httpx.Response(202))
    project = json.loads((FIXTURES / "project_get_ok.json").read_text())
    moving = {**project, "lastAliasRequest": {"jobStatus": "in-progress", "toDeploymentId": NEW_DEPLOY,
                                              "requestedAt": 1764000300000, "type": "promote"}}
    done = {**project, "targets": {"production": {**project["targets"]["production"], "id": NEW_DEPLOY}},
            "lastAliasRequest": {**moving["lastAliasRequest"], "jobStatus": "succeeded"}}
    router.get(f"/v9/projects/{PROJECT}").mock(
        side_effect=[httpx.Response(200, json=moving), httpx.Response(200, json=done)]
    )
    live = vercel.wait_live(Release(id=NEW_DEPLOY, status="QUEUED"), timeout=600)
    assert live.live and promote.call_count == 1
    assert promote.calls.last.request.url.params["teamId"] == "team_1a2b3c"


def test_a_rolling_release_is_reported_not_waited_out(vercel: VercelPlatform, router: respx.MockRouter, clock: Clock) -> None:
    router.get(f"/v13/deployments/{NEW_DEPLOY}").mock(return_value=deployment(readySubstate="ROLLING", aliasAssigned=False))
    promote = router.post(f"/v10/projects/{PROJECT}/promote/{NEW_DEPLOY}")
    with pytest.raises(PlatformError, match="Rolling Release") as e:
        vercel.wait_live(Release(id=NEW_DEPLOY, status="QUEUED"), timeout=600)
    assert clock.now == 0 and not promote.called and e.value.hint and "rolling release" in e.value.hint


def test_a_string_target_is_one_target_not_letters(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    body = json.loads((FIXTURES / "env_list_shared_targets.json").read_text())
    for env in body["envs"]:
        env["target"] = "production"
    router.get(f"/v10/projects/{PROJECT}/env").mock(return_value=httpx.Response(200, json=body))
    notes = vercel.caveats()
    assert not any("changing it changes" in c for c in notes), notes


def test_wait_live_reports_the_build_error(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    router.get(f"/v13/deployments/{NEW_DEPLOY}").mock(
        side_effect=[fx("deployments_get_building"), fx("deployments_get_error")]
    )
    with pytest.raises(PlatformError, match=r"ended ERROR: Command \"npm run build\" exited with 1"):
        vercel.wait_live(Release(id=NEW_DEPLOY, status="QUEUED"), timeout=600)


def test_wait_live_gives_up_at_the_deadline(vercel: VercelPlatform, router: respx.MockRouter, clock: Clock) -> None:
    router.get(f"/v13/deployments/{NEW_DEPLOY}").mock(return_value=fx("deployments_get_building"))
    with pytest.raises(PlatformError, match="did not finish within 10s") as e:
        vercel.wait_live(Release(id=NEW_DEPLOY, status="QUEUED"), timeout=10)
    assert clock.now == 10 and e.value.hint and "ready_timeout" in e.value.hint


def test_429_backs_off_for_retry_after_then_succeeds(
    vercel: VercelPlatform, router: respx.MockRouter, clock: Clock
) -> None:
    router.get(f"/v10/projects/{PROJECT}/env").mock(
        side_effect=[fx("error_429", 429, **{"Retry-After": "7"}), fx("env_list_sensitive")]
    )
    assert not vercel.read_current().readable
    assert clock.sleeps == [7.0]


def test_429_after_all_retries_is_rate_limited(vercel: VercelPlatform, router: respx.MockRouter, clock: Clock) -> None:
    router.get(f"/v10/projects/{PROJECT}/env").mock(return_value=fx("error_429", 429, **{"Retry-After": "2"}))
    with pytest.raises(PlatformError) as e:
        vercel.read_current()
    assert e.value.status == 429 and e.value.platform == "vercel"
    assert e.value.hint and "rate limited" in e.value.hint
    assert clock.sleeps == [2.0, 2.0]  # attempts=3: two waits, then the last answer


def test_401_names_the_token_variable(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    router.get(f"/v10/projects/{PROJECT}/env").mock(return_value=fx("error_401", 401))
    with pytest.raises(PlatformError, match="HTTP 401: forbidden: Not authorized") as e:
        vercel.read_current()
    assert e.value.status == 401 and e.value.hint and "$VERCEL_TOKEN" in e.value.hint


def test_404_says_the_project_id_is_wrong(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    router.get(f"/v10/projects/{PROJECT}/env").mock(return_value=fx("error_404", 404))
    with pytest.raises(PlatformError) as e:
        vercel.read_current()
    assert e.value.status == 404 and e.value.hint and "[platform] project" in e.value.hint


def test_network_failure_is_a_platform_error(vercel: VercelPlatform, router: respx.MockRouter) -> None:
    env_list(router)
    router.patch(f"/v9/projects/{PROJECT}/env/{ENV_ID}").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(PlatformError, match="the API did not answer"):
        vercel.set_url(SNAPSHOT_URL)


def test_no_message_contains_the_token_or_the_url_password(
    vercel: VercelPlatform, router: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    # a hostile error body that echoes the token and the URL back
    echo = {"error": {"code": "bad_request", "message": f"bad token {TOKEN} for value {SNAPSHOT_URL}"}}
    env_list(router)
    router.patch(f"/v9/projects/{PROJECT}/env/{ENV_ID}").mock(return_value=httpx.Response(400, json=echo))
    router.get(f"/v13/deployments/{NEW_DEPLOY}").mock(return_value=fx("deployments_get_error"))
    texts = []
    for action in (
        lambda: vercel.set_url(SNAPSHOT_URL),
        lambda: vercel.wait_live(Release(id=NEW_DEPLOY, status="QUEUED"), timeout=5),
    ):
        with pytest.raises(PlatformError) as e:
            action()
        texts.append(f"{e.value} {e.value.hint} {e.value.context}")
    out = capsys.readouterr()
    for text in (*texts, out.out, out.err):
        assert TOKEN not in text and "snapPW42" not in text
    assert "****" in texts[0]
