"""Render adapter against respx routes built from recorded-shape fixtures (tests/fixtures/render)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import respx

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.errors import PlatformError
from deploysafe.http import RetryPolicy
from deploysafe.platforms import make_platform
from deploysafe.platforms.base import CurrentValue, Platform, Release
from deploysafe.platforms.render import RenderPlatform
from support.platforms import Clock, responder

TOKEN = "rnd_DoNotLeakThisRenderKey0123456789"
API = "https://api.render.com/v1"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "render"
SID = "srv-cukouhrtq21c73e9scng"
GROUP = "evg-cq8kj2tds78s73fmsc00"
DEPLOY = "dep-ct1n4ktds78s73fmse10"
LIVE = "dep-cskp0ftds78s73fmr000"
NOW = datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)
SNAPSHOT_URL = "postgresql://app:snapPW42@ep-snap-9.eu-central-1.aws.neon.tech/neondb?sslmode=require"


fx = responder("render")


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(base_url=API, assert_all_called=False)


@pytest.fixture
def render(
    router: respx.MockRouter, clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[RenderPlatform]:
    monkeypatch.setenv("RENDER_API_KEY", TOKEN)
    text = f"""
[provider]
type = "local"
database_url = "postgresql://localhost/app"
[platform]
type = "render"
service_id = "{SID}"
poll_interval = "4s"
"""
    loaded = LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml")
    p = make_platform(
        loaded, transport=httpx.MockTransport(router.handler), policy=RetryPolicy(attempts=3, sleep=clock.sleep), clock=clock,
        now=lambda: NOW,
    )
    assert isinstance(p, RenderPlatform)
    yield p
    p.close()


def service(router: respx.MockRouter, name: str = "services_get_ok") -> respx.Route:
    return router.get(f"/services/{SID}").mock(return_value=fx(name))


def test_is_a_platform_built_from_config(render: RenderPlatform) -> None:
    assert isinstance(render, Platform) and render.service_id == SID


def test_read_current_returns_the_service_value(render: RenderPlatform, router: respx.MockRouter) -> None:
    service(router)
    route = router.get(f"/services/{SID}/env-vars/DATABASE_URL").mock(return_value=fx("env-vars_get_ok"))
    current = render.read_current()
    assert current == CurrentValue(
        readable=True, value="postgresql://app:s3cr3tpw@dpg-prod-a.frankfurt-postgres.render.com/shop"
    )
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"


def test_env_group_value_is_kept_as_a_reference(render: RenderPlatform, router: respx.MockRouter) -> None:
    service(router)
    router.get(f"/services/{SID}/env-vars/DATABASE_URL").mock(return_value=fx("error_404", 404))
    router.get("/env-groups").mock(return_value=fx("env-groups_list_linked"))
    other = router.get("/env-groups/evg-other00000000000000")
    router.get(f"/env-groups/{GROUP}").mock(return_value=fx("env-groups_get_with_var"))
    current = render.read_current()
    assert current == CurrentValue(readable=True, value=f"envgroup:{GROUP}", reference=True)
    assert not other.called  # not linked to this service
    assert "gr0upPW" not in current.model_dump_json()  # never a resolved copy
    assert any("environment group" in c for c in render.caveats())


def test_set_puts_the_service_variable(render: RenderPlatform, router: respx.MockRouter) -> None:
    put = router.put(f"/services/{SID}/env-vars/DATABASE_URL").mock(return_value=fx("env-vars_put_ok"))
    render.set_url(SNAPSHOT_URL)
    assert json.loads(put.calls.last.request.content) == {"value": SNAPSHOT_URL}


def test_restoring_the_group_reference_removes_the_override(render: RenderPlatform, router: respx.MockRouter) -> None:
    delete = router.delete(f"/services/{SID}/env-vars/DATABASE_URL").mock(return_value=httpx.Response(204))
    put = router.put(f"/services/{SID}/env-vars/DATABASE_URL")
    render.set_url(f"envgroup:{GROUP}")
    assert delete.called and not put.called


def live_deploy(router: respx.MockRouter) -> respx.Route:
    return router.get(f"/services/{SID}/deploys", params={"status": "live"}).mock(return_value=fx("deploys_list_live"))


def test_pick_up_rolls_back_to_the_live_deploy_not_the_last_build(render: RenderPlatform, router: respx.MockRouter) -> None:
    # deployMode "deploy_only" would run the last successful build, maybe newer code than what is live
    live_deploy(router)
    rollback = router.post(f"/services/{SID}/rollback").mock(return_value=fx("deploys_create_ok", 201))
    deploys = router.post(f"/services/{SID}/deploys")
    release = render.pick_up()
    assert release == Release(id=DEPLOY, status="created", detail="created (commit 9f2c1e7a)", code="9f2c1e7a")
    assert json.loads(rollback.calls.last.request.content) == {"deployId": LIVE}
    assert not deploys.called


def test_a_queued_rollback_is_found_by_its_build_and_time_not_as_the_newest(
    render: RenderPlatform, router: respx.MockRouter
) -> None:
    live_deploy(router)
    router.post(f"/services/{SID}/rollback").mock(return_value=httpx.Response(202))
    theirs = {"deploy": {"id": "dep-someoneelses0000000", "commit": {"id": "0badc0de"}, "status": "queued",
                         "trigger": "new_commit", "createdAt": "2026-11-25T10:00:20Z"}, "cursor": "Y3Vyc29yLTI="}
    listing = router.get(f"/services/{SID}/deploys", params={"createdAfter": "2026-11-25T09:58:30Z"}).mock(
        return_value=httpx.Response(200, json=[theirs, *json.loads((FIXTURES / "deploys_list_newest.json").read_text())])
    )
    assert render.pick_up().id == DEPLOY and listing.called


def test_a_queued_rollback_that_cannot_be_told_apart_is_an_error(render: RenderPlatform, router: respx.MockRouter) -> None:
    live_deploy(router)
    router.post(f"/services/{SID}/rollback").mock(return_value=httpx.Response(202))
    theirs = {"deploy": {"id": "dep-someoneelses0000000", "commit": {"id": "0badc0de"}, "status": "queued"}}
    router.get(f"/services/{SID}/deploys", params={"createdAfter": "2026-11-25T09:58:30Z"}).mock(
        return_value=httpx.Response(200, json=[theirs])
    )
    with pytest.raises(PlatformError, match="no deploy of that build"):
        render.pick_up()


def test_describe_names_the_live_deploy_and_its_commit(render: RenderPlatform, router: respx.MockRouter) -> None:
    live_deploy(router)
    described = render.describe()
    assert described is not None and described.id == LIVE and described.code == "9f2c1e7a" and described.live


def test_return_to_sets_then_rolls_back_to_the_recorded_deploy(render: RenderPlatform, router: respx.MockRouter) -> None:
    put = router.put(f"/services/{SID}/env-vars/DATABASE_URL").mock(return_value=fx("env-vars_put_ok"))
    rollback = router.post(f"/services/{SID}/rollback").mock(return_value=fx("deploys_create_ok", 201))
    recorded = Release(id="dep-recorded00000000000", status="live", live=True, code="1111aaaa")
    release = render.return_to(recorded, SNAPSHOT_URL)
    assert put.called and json.loads(rollback.calls.last.request.content) == {"deployId": recorded.id}
    assert router.calls[0].request.method == "PUT"  # the variable first: the rolled-back deploy starts with it
    assert release.id == DEPLOY


def test_env_groups_are_read_past_the_first_page(render: RenderPlatform, router: respx.MockRouter) -> None:
    service(router)
    router.get(f"/services/{SID}/env-vars/DATABASE_URL").mock(return_value=fx("error_404", 404))
    linked = json.loads((FIXTURES / "env-groups_list_linked.json").read_text())[1]
    filler = [{"id": f"evg-filler{i:014d}", "name": f"g{i}", "ownerId": "tea-x", "createdAt": "2026-05-01T10:00:00Z",
               "updatedAt": "2026-05-01T10:00:00Z", "serviceLinks": []} for i in range(100)]

    def pages(request: httpx.Request) -> httpx.Response:
        assert request.url.params["limit"] == "100"
        if "cursor" not in request.url.params:
            return httpx.Response(200, json=filler)
        assert request.url.params["cursor"] == filler[-1]["id"]
        return httpx.Response(200, json=[linked])

    listing = router.get("/env-groups").mock(side_effect=pages)
    router.get(f"/env-groups/{GROUP}").mock(return_value=fx("env-groups_get_with_var"))
    assert render.read_current() == CurrentValue(readable=True, value=f"envgroup:{GROUP}", reference=True)
    assert listing.call_count == 2


def test_prepare_resolves_service_value_and_live_deploy(render: RenderPlatform, router: respx.MockRouter) -> None:
    service(router, "services_get_predeploy")
    router.get(f"/services/{SID}/env-vars/DATABASE_URL").mock(return_value=fx("env-vars_get_ok"))
    router.get(f"/services/{SID}/deploys", params={"status": "live"}).mock(return_value=fx("deploys_list_live"))
    render.prepare()
    live = render.describe()
    assert live is not None and live.live and live.id == "dep-cskp0ftds78s73fmr000"
    warnings = render.caveats()
    assert len(warnings) == 1 and "pre-deploy command ('npm run db:migrate')" in warnings[0]


def test_no_pre_deploy_command_no_caveat(render: RenderPlatform, router: respx.MockRouter) -> None:
    service(router)
    router.get(f"/services/{SID}/env-vars/DATABASE_URL").mock(return_value=fx("env-vars_get_ok"))
    assert render.caveats() == []


def test_wait_live_polls_until_live(render: RenderPlatform, router: respx.MockRouter, clock: Clock) -> None:
    router.get(f"/services/{SID}/deploys/{DEPLOY}").mock(
        side_effect=[fx("deploys_get_update_in_progress"), fx("deploys_get_live")]
    )
    done = render.wait_live(Release(id=DEPLOY, status="created"), timeout=300)
    assert done.live and done.status == "live" and clock.sleeps == [4.0]


def test_wait_live_fails_on_a_failed_deploy(render: RenderPlatform, router: respx.MockRouter) -> None:
    router.get(f"/services/{SID}/deploys/{DEPLOY}").mock(return_value=fx("deploys_get_update_failed"))
    with pytest.raises(PlatformError, match=f"deploy {DEPLOY} ended update_failed") as e:
        render.wait_live(Release(id=DEPLOY, status="created"), timeout=300)
    assert e.value.hint and "logs" in e.value.hint


def test_wait_live_stops_at_the_deadline(render: RenderPlatform, router: respx.MockRouter, clock: Clock) -> None:
    router.get(f"/services/{SID}/deploys/{DEPLOY}").mock(return_value=fx("deploys_get_update_in_progress"))
    with pytest.raises(PlatformError, match="did not finish within 10s"):
        render.wait_live(Release(id=DEPLOY, status="created"), timeout=10)
    assert clock.now == 10


def test_429_honours_retry_after(render: RenderPlatform, router: respx.MockRouter, clock: Clock) -> None:
    live_deploy(router)
    router.post(f"/services/{SID}/rollback").mock(
        side_effect=[fx("error_429", 429, **{"Retry-After": "12"}), fx("deploys_create_ok", 201)]
    )
    assert render.pick_up().id == DEPLOY
    assert clock.sleeps == [12.0]


def test_429_after_retries_is_rate_limited(render: RenderPlatform, router: respx.MockRouter, clock: Clock) -> None:
    live_deploy(router)
    router.post(f"/services/{SID}/rollback").mock(return_value=fx("error_429", 429, **{"Retry-After": "1"}))
    with pytest.raises(PlatformError, match="HTTP 429: rate limit exceeded") as e:
        render.pick_up()
    assert e.value.status == 429 and e.value.hint and "rate limited" in e.value.hint
    assert clock.sleeps == [1.0, 1.0]


def test_401_names_the_key_variable(render: RenderPlatform, router: respx.MockRouter) -> None:
    router.get(f"/services/{SID}").mock(return_value=fx("error_401", 401))
    with pytest.raises(PlatformError) as e:
        render.read_current()
    assert e.value.status == 401 and e.value.platform == "render"
    assert e.value.hint and "$RENDER_API_KEY" in e.value.hint


def test_404_on_the_service_blames_the_service_id(render: RenderPlatform, router: respx.MockRouter) -> None:
    router.get(f"/services/{SID}").mock(return_value=fx("error_404", 404))
    with pytest.raises(PlatformError, match="service not found") as e:
        render.read_current()
    assert e.value.status == 404 and e.value.hint and "[platform] service_id" in e.value.hint


def test_no_message_contains_the_token_or_the_url_password(
    render: RenderPlatform, router: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    echo = {"id": "invalid", "message": f"key {TOKEN} cannot set {SNAPSHOT_URL}"}
    router.put(f"/services/{SID}/env-vars/DATABASE_URL").mock(return_value=httpx.Response(400, json=echo))
    router.get(f"/services/{SID}/deploys/{DEPLOY}").mock(return_value=fx("deploys_get_update_failed"))
    texts = []
    for action in (
        lambda: render.set_url(SNAPSHOT_URL),
        lambda: render.wait_live(Release(id=DEPLOY, status="created"), timeout=5),
    ):
        with pytest.raises(PlatformError) as e:
            action()
        texts.append(f"{e.value} {e.value.hint} {e.value.context}")
    out = capsys.readouterr()
    for text in (*texts, out.out, out.err):
        assert TOKEN not in text and "snapPW42" not in text
    assert "****" in texts[0]
