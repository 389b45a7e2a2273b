"""Fly.io adapter against respx routes built from recorded-shape fixtures (tests/fixtures/fly)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.errors import PlatformError
from deploysafe.http import RetryPolicy
from deploysafe.platforms import make_platform
from deploysafe.platforms.base import CurrentValue, Platform, Release
from deploysafe.platforms.fly import FlyPlatform, auth_header
from support.platforms import Clock

TOKEN = "fo1_DoNotLeakThisFlyToken0123456789abc"
API = "https://api.machines.dev/v1/apps/shop"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fly"
WEB1, WEB2 = "3d8d9e1a4e0089", "148e272c1e9589"
SNAPSHOT_URL = "postgresql://app:snapPW42@ep-snap-9.eu-central-1.aws.neon.tech/neondb?sslmode=require"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def fx(name: str, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=load(name), headers=headers)


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(base_url=API, assert_all_called=False)


@pytest.fixture
def fly(router: respx.MockRouter, clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FlyPlatform]:
    monkeypatch.setenv("FLY_API_TOKEN", TOKEN)
    text = """
[provider]
type = "local"
database_url = "postgresql://localhost/app"
[platform]
type = "fly"
app = "shop"
poll_interval = "1s"
"""
    loaded = LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml")
    p = make_platform(
        loaded, transport=httpx.MockTransport(router.handler), policy=RetryPolicy(attempts=3, sleep=clock.sleep), clock=clock
    )
    assert isinstance(p, FlyPlatform)
    yield p
    p.close()


def leases(router: respx.MockRouter, *ids: str) -> dict[str, tuple[respx.Route, respx.Route]]:
    """Lease routes per Machine: POST answers fly-go's MachineLease {status, data: {nonce, expires_at, owner}}."""
    out = {}
    for mid in ids:
        body = {"status": "success", "data": {"nonce": f"nonce-{mid}", "expires_at": 1764650000, "owner": "deploysafe"}}
        take = router.post(f"/machines/{mid}/lease").mock(return_value=httpx.Response(200, json=body))
        drop = router.delete(f"/machines/{mid}/lease").mock(return_value=httpx.Response(200, json={"ok": True}))
        out[mid] = (take, drop)
    return out


def secrets_set(router: respx.MockRouter, fly: FlyPlatform) -> respx.Route:
    route = router.post("/secrets").mock(return_value=fx("secrets_update_ok"))
    fly.set_url(SNAPSHOT_URL)
    return route


def test_is_a_platform_built_from_config(fly: FlyPlatform) -> None:
    assert isinstance(fly, Platform) and fly.app == "shop"


def test_auth_header_follows_fly_go() -> None:
    assert auth_header("fo1_abc") == "Bearer fo1_abc"
    assert auth_header("fm2_abc,fm2_def") == "FlyV1 fm2_abc,fm2_def"
    assert auth_header("FlyV1 fm1r_abc") == "FlyV1 fm1r_abc"


def test_auth_header_sends_every_macaroon_form_as_flyv1() -> None:
    # fly-go tokens.Parse: fm1r_, fm1a_ and fm2_ are macaroons; FlapsHeader sends only those, as FlyV1
    assert auth_header("fm1a_abc") == "FlyV1 fm1a_abc"
    assert auth_header("fm1r_abc") == "FlyV1 fm1r_abc"
    assert auth_header("Bearer fm2_abc") == "FlyV1 fm2_abc"
    assert auth_header("fm2_abc, fo1_user") == "FlyV1 fm2_abc"
    assert auth_header("fo1_a,fo1_b") == "Bearer fo1_a,fo1_b"


def test_a_deploy_token_reaches_the_api_as_flyv1(
    router: respx.MockRouter, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = FlyPlatform(token="fm1a_DeployTokenXYZ", app="shop", transport=httpx.MockTransport(router.handler),
                    policy=RetryPolicy(attempts=1, sleep=clock.sleep), clock=clock)
    route = router.get("/secrets").mock(return_value=fx("secrets_list_with_var"))
    router.get("/machines").mock(return_value=fx("machines_list_ok"))
    p.read_current()
    assert route.calls.last.request.headers["authorization"] == "FlyV1 fm1a_DeployTokenXYZ"
    p.close()


def test_secret_is_unreadable(fly: FlyPlatform, router: respx.MockRouter) -> None:
    route = router.get("/secrets").mock(return_value=fx("secrets_list_with_var"))
    router.get("/machines").mock(return_value=fx("machines_list_ok"))
    assert fly.read_current() == CurrentValue(readable=False)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"
    assert any("write-only" in c for c in fly.caveats())
    assert not any("[env]" in c for c in fly.caveats())


def test_a_plain_env_value_of_the_same_name_as_the_secret_is_warned_about(
    fly: FlyPlatform, router: respx.MockRouter
) -> None:
    router.get("/secrets").mock(return_value=fx("secrets_list_with_var"))
    router.get("/machines").mock(return_value=fx("machines_list_env_plain"))
    assert fly.read_current() == CurrentValue(readable=False)  # still the secret: its value is write-only
    assert any("both a secret and a plain [env] value" in c for c in fly.caveats())


def test_plain_env_value_is_read_from_the_machine_config(fly: FlyPlatform, router: respx.MockRouter) -> None:
    router.get("/secrets").mock(return_value=fx("secrets_list_without_var"))
    router.get("/machines").mock(return_value=fx("machines_list_env_plain"))
    assert fly.read_current() == CurrentValue(readable=True, value="postgresql://app:plainPW@shop-db.flycast:5432/shop")
    assert any("plain [env] value" in c for c in fly.caveats())


def test_all_machines_stopped_is_live_without_waiting(fly: FlyPlatform, router: respx.MockRouter) -> None:
    secrets_set(router, fly)
    only_stopped = [m for m in load("machines_list_ok") if m["id"] == WEB2]
    router.get("/machines").mock(return_value=httpx.Response(200, json=only_stopped))
    leases(router, WEB2)
    router.post(f"/machines/{WEB2}").mock(return_value=fx("machines_update_web2"))
    done = fly.wait_live(fly.pick_up(), timeout=60)
    assert done.live and done.id == "secrets-v17"


def test_set_posts_the_secret_and_keeps_the_version(fly: FlyPlatform, router: respx.MockRouter) -> None:
    route = secrets_set(router, fly)
    assert json.loads(route.calls.last.request.content) == {"values": {"DATABASE_URL": SNAPSHOT_URL}}


def test_pick_up_updates_each_app_machine_with_the_secrets_version(fly: FlyPlatform, router: respx.MockRouter) -> None:
    secrets_set(router, fly)
    router.get("/machines").mock(return_value=fx("machines_list_ok"))
    held = leases(router, WEB1, WEB2)
    up1 = router.post(f"/machines/{WEB1}").mock(return_value=fx("machines_update_web1"))
    up2 = router.post(f"/machines/{WEB2}").mock(return_value=fx("machines_update_web2"))
    release = fly.pick_up()
    # each update carries the lease nonce, and each lease is released after (fly-go NonceHeader)
    assert up1.calls.last.request.headers["fly-machine-lease-nonce"] == f"nonce-{WEB1}"
    assert held[WEB1][0].calls.last.request.url.params["ttl"] == "120"
    assert held[WEB1][1].calls.last.request.headers["fly-machine-lease-nonce"] == f"nonce-{WEB1}"
    assert held[WEB2][1].called
    assert release.id == "secrets-v17" and release.detail == "1 to start, 1 left stopped"
    listed = {m["id"]: m for m in load("machines_list_ok")}
    assert json.loads(up1.calls.last.request.content) == {
        "config": listed[WEB1]["config"],  # the whole config, unchanged
        "min_secrets_version": 17,
        "skip_launch": False,
    }
    assert json.loads(up2.calls.last.request.content)["skip_launch"] is True  # stopped stays stopped
    # the release-command machine and the destroyed one are left alone
    prefix = "/v1/apps/shop/machines/"
    updates = [c.request.url.path[len(prefix):] for c in router.calls
               if c.request.method == "POST" and c.request.url.path.startswith(prefix)
               and "/" not in c.request.url.path[len(prefix):]]
    assert sorted(updates) == sorted([WEB1, WEB2])


def test_a_machine_holding_a_deploys_lease_is_a_clear_error(fly: FlyPlatform, router: respx.MockRouter) -> None:
    secrets_set(router, fly)
    router.get("/machines").mock(return_value=fx("machines_list_ok"))
    held = {"error": "lease currently held by deploy@example.com, expires at 2026-12-02T02:00:00Z"}
    router.post(f"/machines/{WEB1}/lease").mock(return_value=httpx.Response(409, json=held))
    update = router.post(f"/machines/{WEB1}")
    with pytest.raises(PlatformError, match="HTTP 409: lease currently held") as e:
        fly.pick_up()
    assert e.value.hint and "holds a lease" in e.value.hint and not update.called


@pytest.mark.parametrize("state", ["created", "stopping", "stopped", "suspended"])
def test_machines_flyctl_leaves_stopped_are_not_started(fly: FlyPlatform, router: respx.MockRouter, state: str) -> None:
    secrets_set(router, fly)
    machine = {**[m for m in load("machines_list_ok") if m["id"] == WEB1][0], "state": state}
    router.get("/machines").mock(return_value=httpx.Response(200, json=[machine]))
    leases(router, WEB1)
    update = router.post(f"/machines/{WEB1}").mock(return_value=fx("machines_update_web1"))
    release = fly.pick_up()
    assert json.loads(update.calls.last.request.content)["skip_launch"] is True
    assert fly.wait_live(release, timeout=60).live  # nothing to wait for: it boots with the new secret on demand


def test_restore_strategy_restarts_running_machines_without_a_secrets_version(
    fly: FlyPlatform, router: respx.MockRouter
) -> None:
    # [rollback] strategy = "restore": the URL is unchanged, set_url() is never called, pick_up() restarts
    router.get("/machines").mock(return_value=fx("machines_list_ok"))
    held = leases(router, WEB1)
    restart = router.post(f"/machines/{WEB1}/restart").mock(return_value=httpx.Response(200, json={"ok": True}))
    update = router.post(f"/machines/{WEB1}")
    stopped = router.post(f"/machines/{WEB2}/restart")
    release = fly.pick_up()
    assert restart.calls.last.request.headers["fly-machine-lease-nonce"] == f"nonce-{WEB1}"
    assert held[WEB1][1].called and not update.called and not stopped.called
    assert release.status == "1 machines restarted"
    router.get(f"/machines/{WEB1}").mock(return_value=fx("machines_get_web1_passing"))
    assert fly.wait_live(release, timeout=60).live


def test_prepare_refuses_an_app_without_machines(fly: FlyPlatform, router: respx.MockRouter) -> None:
    router.get("/machines").mock(return_value=fx("machines_list_empty"))
    with pytest.raises(PlatformError, match="no Machines"):
        fly.prepare()


def picked_up(fly: FlyPlatform, router: respx.MockRouter) -> Release:
    secrets_set(router, fly)
    router.get("/machines").mock(return_value=fx("machines_list_ok"))
    leases(router, WEB1, WEB2)
    router.post(f"/machines/{WEB1}").mock(return_value=fx("machines_update_web1"))
    router.post(f"/machines/{WEB2}").mock(return_value=fx("machines_update_web2"))
    return fly.pick_up()


def test_wait_live_until_started_with_passing_checks(fly: FlyPlatform, router: respx.MockRouter, clock: Clock) -> None:
    release = picked_up(fly, router)
    router.get(f"/machines/{WEB1}").mock(
        side_effect=[fx("machines_get_web1_starting"), fx("machines_get_web1_passing")]
    )
    stopped = router.get(f"/machines/{WEB2}")
    done = fly.wait_live(release, timeout=120)
    assert done.live and done.status == "1/1 machines started (release v42)"
    assert clock.sleeps == [1.0] and not stopped.called


def test_wait_live_fails_when_a_machine_fails(fly: FlyPlatform, router: respx.MockRouter) -> None:
    release = picked_up(fly, router)
    router.get(f"/machines/{WEB1}").mock(return_value=fx("machines_get_web1_failed"))
    with pytest.raises(PlatformError, match=f"Machine {WEB1} is failed after the update \\(last event: exit failed, exit code 1\\)") as e:
        fly.wait_live(release, timeout=120)
    assert e.value.hint and "fly logs -a shop" in e.value.hint


def test_wait_live_stops_at_the_deadline(fly: FlyPlatform, router: respx.MockRouter, clock: Clock) -> None:
    release = picked_up(fly, router)
    router.get(f"/machines/{WEB1}").mock(return_value=fx("machines_get_web1_starting"))
    with pytest.raises(PlatformError, match="did not finish within 5s"):
        fly.wait_live(release, timeout=5)
    assert clock.now == 5


def test_429_honours_retry_after(fly: FlyPlatform, router: respx.MockRouter, clock: Clock) -> None:
    router.post("/secrets").mock(side_effect=[fx("error_429", 429, **{"Retry-After": "3"}), fx("secrets_update_ok")])
    fly.set_url(SNAPSHOT_URL)
    assert clock.sleeps == [3.0]


def test_429_after_retries_is_rate_limited(fly: FlyPlatform, router: respx.MockRouter, clock: Clock) -> None:
    router.get("/secrets").mock(return_value=fx("error_429", 429, **{"Retry-After": "1"}))
    with pytest.raises(PlatformError) as e:
        fly.read_current()
    assert e.value.status == 429 and e.value.hint and "rate limited" in e.value.hint
    assert clock.sleeps == [1.0, 1.0]


def test_401_names_the_token_variable(fly: FlyPlatform, router: respx.MockRouter) -> None:
    router.get("/secrets").mock(return_value=fx("error_401", 401))
    with pytest.raises(PlatformError, match="HTTP 401: unauthorized") as e:
        fly.read_current()
    assert e.value.platform == "fly" and e.value.hint and "$FLY_API_TOKEN" in e.value.hint


def test_404_says_the_app_is_wrong(fly: FlyPlatform, router: respx.MockRouter) -> None:
    router.get("/machines").mock(return_value=fx("error_404", 404))
    with pytest.raises(PlatformError, match="app not found") as e:
        fly.prepare()
    assert e.value.status == 404 and e.value.hint and "[platform] app" in e.value.hint


def test_no_message_contains_the_token_or_the_url_password(
    fly: FlyPlatform, router: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    echo = {"error": f"token {TOKEN} may not set {SNAPSHOT_URL}"}
    router.post("/secrets").mock(return_value=httpx.Response(422, json=echo))
    with pytest.raises(PlatformError) as e:
        fly.set_url(SNAPSHOT_URL)
    text = f"{e.value} {e.value.hint} {e.value.context}"
    out = capsys.readouterr()
    for t in (text, out.out, out.err):
        assert TOKEN not in t and "snapPW42" not in t
    assert "****" in text


def test_describe_is_the_image_the_machines_run(fly: FlyPlatform, router: respx.MockRouter) -> None:
    router.get("/machines").mock(return_value=fx("machines_list_ok"))
    described = fly.describe()
    assert described is not None and described.code == "registry.fly.io/shop:deployment-01JBX2Q6Z8R5M3"


def test_return_to_updates_machines_to_the_recorded_image_with_the_new_secret(
    fly: FlyPlatform, router: respx.MockRouter
) -> None:
    secrets = router.post("/secrets").mock(return_value=fx("secrets_update_ok"))
    router.get("/machines").mock(return_value=fx("machines_list_ok"))
    leases(router, WEB1, WEB2)
    up1 = router.post(f"/machines/{WEB1}").mock(return_value=fx("machines_update_web1"))
    router.post(f"/machines/{WEB2}").mock(return_value=fx("machines_update_web2"))
    old = "registry.fly.io/shop:deployment-01JAOLDOLDOLD0"
    release = fly.return_to(Release(id=old, status="1/1 machines started", live=True, code=old), SNAPSHOT_URL)
    assert secrets.called
    sent = json.loads(up1.calls.last.request.content)
    assert sent["config"]["image"] == old and sent["min_secrets_version"] == 17  # one update: code and secret
    listed = {m["id"]: m for m in load("machines_list_ok")}
    assert {k: v for k, v in sent["config"].items() if k != "image"} == {
        k: v for k, v in listed[WEB1]["config"].items() if k != "image"}
    assert release.code == old and release.id == f"image-{old}"


def test_return_to_refuses_when_the_machines_ran_several_images(fly: FlyPlatform, router: respx.MockRouter) -> None:
    with pytest.raises(PlatformError, match="more than one image") as e:
        fly.return_to(Release(id="shop", status="x", live=True), SNAPSHOT_URL)
    assert e.value.hint and "fly deploy --image" in e.value.hint
