"""Coordinated rollback end to end for the five HTTP platforms: a deploy whose app release changed and
whose probes then fail ends with the previous release live AND the app on the snapshot, both halves journaled, exit 1.

Each vendor is a small stateful double behind respx, answering in the shapes of tests/fixtures/<vendor> (the
adapter tests check those shapes against the vendors' specs and clients). It models the one thing that matters
here: a release runs one code with the variable value it started with, and only a release action changes what is
live. The probe double is healthy only on the old code AND a database other than production (the snapshot).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.deploy import run as deploy
from deploysafe.deploy.probes import Verdict
from deploysafe.errors import DeployFailedRolledBack
from deploysafe.http import RetryPolicy
from deploysafe.journal import read_journal
from deploysafe.platforms import make_platform
from deploysafe.snapshots.inuse import REPOINT_STEP
from deploysafe.testing import FakePlatform, FakeProvider
from support.rig import Rig


@dataclass
class World:
    """The vendor's state: the variable, the releases (code + the URL each started with), which one is live."""

    var: str
    releases: list[dict[str, Any]] = field(default_factory=list)
    live: int = 0
    pending: list[int] = field(default_factory=list)  # started, not live yet
    name: Callable[[str, int], str] = lambda code, n: f"r{n}"  # the vendor's id for release n running code

    def __post_init__(self) -> None:
        self.releases.append({"id": "r0", "code": "code-0", "url": self.var})

    def start(self, code: str, rid: str | None = None) -> dict[str, Any]:
        release = {"id": rid or f"r{len(self.releases)}", "code": code, "url": self.var}
        self.releases.append(release)
        self.pending.append(len(self.releases) - 1)
        return release

    def settle(self, rid: str) -> dict[str, Any]:
        # the newest of that id: Fly's release id is its image, which a rollback starts again
        index = max(i for i, r in enumerate(self.releases) if r["id"] == rid)
        if index in self.pending:
            self.pending.remove(index)
            self.live = index
        return self.releases[index]

    def ship(self, code: str) -> None:
        """What ``[deploy] app_deploy`` does: new code live."""
        self.settle(self.start(code, self.name(code, len(self.releases)))["id"])

    @property
    def running(self) -> dict[str, Any]:
        return self.releases[self.live]

    def by_id(self, rid: str) -> dict[str, Any]:
        return next(r for r in reversed(self.releases) if r["id"] == rid)


def json_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else {}


# --- the vendors ---------------------------------------------------------------------------------------------


def vercel(router: respx.MockRouter, w: World) -> tuple[str, str, str]:
    api, project = "https://api.vercel.com", "prj_1"
    w.releases[0]["id"] = "dpl_0"

    def deployment(r: dict[str, Any], ready: bool) -> dict[str, Any]:
        return {"id": r["id"], "url": f"{r['id']}.vercel.app", "readyState": "READY" if ready else "QUEUED",
                "readySubstate": "PROMOTED" if ready else None, "aliasAssigned": ready, "aliasError": None,
                "target": "production", "meta": {}}

    def envs() -> dict[str, Any]:
        return {"envs": [{"id": "env1", "key": "DATABASE_URL", "type": "encrypted", "target": ["production"]}]}

    router.get(f"{api}/v10/projects/{project}/env").mock(side_effect=lambda r: httpx.Response(200, json=envs()))
    router.get(f"{api}/v1/projects/{project}/env/env1").mock(
        side_effect=lambda r: httpx.Response(200, json={"key": "DATABASE_URL", "value": w.var, "decrypted": True}))

    def patch(request: httpx.Request) -> httpx.Response:
        w.var = json_of(request)["value"]
        return httpx.Response(200, json={"id": "env1", "key": "DATABASE_URL"})

    router.patch(f"{api}/v9/projects/{project}/env/env1").mock(side_effect=patch)
    router.get(f"{api}/v9/projects/{project}").mock(side_effect=lambda r: httpx.Response(
        200, json={"id": project, "name": "shop", "targets": {"production": deployment(w.running, True)}}))

    def create(request: httpx.Request) -> httpx.Response:
        source = w.by_id(json_of(request)["deploymentId"])  # a new build of that deployment's source
        return httpx.Response(200, json=deployment(w.start(source["code"], f"dpl_{len(w.releases)}"), False))

    router.post(f"{api}/v13/deployments").mock(side_effect=create)
    router.get(url__regex=rf"{api}/v13/deployments/(?P<rid>[^/?]+)").mock(
        side_effect=lambda r, rid: httpx.Response(200, json=deployment(w.settle(rid), True)))
    return f'type = "vercel"\nproject = "{project}"', "VERCEL_TOKEN", "rollback.app"


def render(router: respx.MockRouter, w: World) -> tuple[str, str, str]:
    api, sid = "https://api.render.com/v1", "srv-1"
    w.releases[0]["id"] = "dep-0"

    def deploy_of(r: dict[str, Any], status: str) -> dict[str, Any]:
        return {"id": r["id"], "commit": {"id": r["code"]}, "status": status, "trigger": "api",
                "createdAt": "2026-11-25T10:00:00Z"}

    router.get(f"{api}/services/{sid}").mock(return_value=httpx.Response(200, json={"id": sid, "serviceDetails": {}}))
    router.get(f"{api}/services/{sid}/env-vars/DATABASE_URL").mock(
        side_effect=lambda r: httpx.Response(200, json={"key": "DATABASE_URL", "value": w.var}))

    def put(request: httpx.Request) -> httpx.Response:
        w.var = json_of(request)["value"]
        return httpx.Response(200, json={"key": "DATABASE_URL", "value": w.var})

    router.put(f"{api}/services/{sid}/env-vars/DATABASE_URL").mock(side_effect=put)
    router.get(f"{api}/services/{sid}/deploys").mock(side_effect=lambda r: httpx.Response(
        200, json=[{"deploy": deploy_of(w.running, "live"), "cursor": "c0"}]))

    def rollback(request: httpx.Request) -> httpx.Response:
        target = w.by_id(json_of(request)["deployId"])  # its build artifact, with the current variables
        return httpx.Response(201, json=deploy_of(w.start(target["code"], f"dep-{len(w.releases)}"), "created"))

    router.post(f"{api}/services/{sid}/rollback").mock(side_effect=rollback)
    router.get(url__regex=rf"{api}/services/{sid}/deploys/(?P<rid>[^/?]+)").mock(
        side_effect=lambda r, rid: httpx.Response(200, json=deploy_of(w.settle(rid), "live")))
    return f'type = "render"\nservice_id = "{sid}"', "RENDER_API_KEY", "rollback.app"


def railway(router: respx.MockRouter, w: World) -> tuple[str, str, str]:
    api = "https://backboard.railway.com/graphql/v2"
    w.releases[0]["id"] = "dep-0"

    def node(r: dict[str, Any], status: str) -> dict[str, Any]:
        return {"id": r["id"], "status": status, "canRedeploy": True, "url": None, "staticUrl": "web.up.railway.app",
                "statusUpdatedAt": "2026-11-25T10:00:00Z"}

    def answer(request: httpx.Request) -> httpx.Response:
        body = json_of(request)
        op = re.match(r"\s*(?:query|mutation)\s+(\w+)", body["query"]).group(1)  # type: ignore[union-attr]
        v = body["variables"]
        if op == "variables":
            data: dict[str, Any] = {"variables": {"DATABASE_URL": w.var}}
        elif op == "serviceInstance":
            data = {"serviceInstance": {"id": "svc", "serviceName": "web", "preDeployCommand": None,
                                        "latestDeployment": node(w.running, "SUCCESS"),
                                        "activeDeployments": [node(w.running, "SUCCESS")]}}
        elif op == "variableUpsert":
            w.var = v["input"]["value"]
            data = {"variableUpsert": True}
        elif op == "deploymentRedeploy":  # the deployment's image with the current variables
            data = {"deploymentRedeploy": node(w.start(w.by_id(v["id"])["code"], f"dep-{len(w.releases)}"),
                                               "INITIALIZING")}
        elif op == "deployment":
            data = {"deployment": node(w.settle(v["id"]), "SUCCESS")}
        else:
            raise AssertionError(op)
        return httpx.Response(200, json={"data": data})

    router.post(api).mock(side_effect=answer)
    ids = 'project = "p-1"\nenvironment_id = "e-1"\nservice_id = "s-1"'
    return f'type = "railway"\n{ids}', "RAILWAY_API_TOKEN", "rollback.app"


def fly(router: respx.MockRouter, w: World) -> tuple[str, str, str]:
    api = "https://api.machines.dev/v1/apps/shop"
    w.releases[0]["id"] = "registry.fly.io/shop:code-0"
    w.name = lambda code, n: f"registry.fly.io/shop:{code}"
    state = {"version": 1, "values": {1: w.var}}

    def machine() -> dict[str, Any]:
        r = w.running
        return {"id": "m1", "state": "started", "instance_id": r["id"] + "-inst",
                "config": {"image": r["id"], "metadata": {"fly_process_group": "app"}, "env": {}},
                "checks": [{"name": "health", "status": "passing"}]}

    router.get(f"{api}/secrets").mock(return_value=httpx.Response(200, json={"secrets": [{"name": "DATABASE_URL"}]}))

    def set_secret(request: httpx.Request) -> httpx.Response:
        state["version"] += 1
        w.var = json_of(request)["values"]["DATABASE_URL"]
        state["values"][state["version"]] = w.var
        return httpx.Response(200, json={"secrets": [{"name": "DATABASE_URL"}], "version": state["version"]})

    router.post(f"{api}/secrets").mock(side_effect=set_secret)
    router.get(f"{api}/machines").mock(side_effect=lambda r: httpx.Response(200, json=[machine()]))
    router.post(f"{api}/machines/m1/lease").mock(
        return_value=httpx.Response(200, json={"status": "success", "data": {"nonce": "n1", "expires_at": 1}}))
    router.delete(f"{api}/machines/m1/lease").mock(return_value=httpx.Response(200, json={}))

    def update(request: httpx.Request) -> httpx.Response:
        body = json_of(request)
        assert request.headers["fly-machine-lease-nonce"] == "n1"
        image = body["config"]["image"]
        w.var = state["values"][body.get("min_secrets_version", state["version"])]
        started = w.start(image.rsplit(":", 1)[1], image)
        w.settle(started["id"])
        return httpx.Response(200, json=machine())

    router.post(f"{api}/machines/m1").mock(side_effect=update)
    router.get(f"{api}/machines/m1").mock(side_effect=lambda r: httpx.Response(200, json=machine()))
    return 'type = "fly"\napp = "shop"', "FLY_API_TOKEN", "rollback.app"


def heroku(router: respx.MockRouter, w: World) -> tuple[str, str, str]:
    api, app = "https://api.heroku.com", "shop"
    w.releases[0]["id"] = "1"
    w.name = lambda code, n: str(n + 1)

    def release(r: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"uuid-{r['id']}", "version": int(r["id"]), "status": "succeeded", "current": True,
                "description": "", "slug": {"id": r["code"]}}

    def start(code: str) -> dict[str, Any]:
        r = w.start(code, str(len(w.releases) + 1))
        w.settle(r["id"])  # Heroku releases at once; the dynos come up on it
        return r

    router.get(f"{api}/apps/{app}/addon-attachments").mock(return_value=httpx.Response(200, json=[]))
    router.get(f"{api}/apps/{app}/config-vars").mock(side_effect=lambda r: httpx.Response(200, json={"DATABASE_URL": w.var}))

    def patch(request: httpx.Request) -> httpx.Response:
        w.var = json_of(request)["DATABASE_URL"]
        start(w.running["code"])  # a config change: a new release of the same slug with the new value
        return httpx.Response(200, json={"DATABASE_URL": w.var})

    router.patch(f"{api}/apps/{app}/config-vars").mock(side_effect=patch)
    router.get(f"{api}/apps/{app}/releases").mock(side_effect=lambda r: httpx.Response(200, json=[release(w.running)]))

    def create(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json=release(start(json_of(request)["slug"])))

    router.post(f"{api}/apps/{app}/releases").mock(side_effect=create)
    router.get(url__regex=rf"{api}/apps/{app}/releases/(?P<v>\d+)").mock(
        side_effect=lambda r, v: httpx.Response(200, json=release(w.by_id(v))))
    router.get(f"{api}/apps/{app}/dynos").mock(side_effect=lambda r: httpx.Response(200, json=[
        {"name": "web.1", "type": "web", "state": "up", "release": {"version": int(w.running["id"])}}]))
    router.get(url__regex=rf"{api}/apps/{app}/slugs/.*").mock(
        return_value=httpx.Response(200, json={"process_types": {"web": "npm start"}}))
    router.get(f"{api}/apps/{app}/formation").mock(return_value=httpx.Response(200, json=[]))
    return f'type = "heroku"\napp = "{app}"', "HEROKU_API_KEY", "rollback.app"


VENDORS: dict[str, Callable[[respx.MockRouter, World], tuple[str, str, str]]] = {
    "vercel": vercel, "render": render, "railway": railway, "fly": fly, "heroku": heroku,
}


@pytest.mark.parametrize("app_mode", ["auto", "keep"])
@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_a_changed_release_comes_back_with_the_database(
    vendor: str, app_mode: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = FakeProvider("production")
    prod = provider.url_of("production")
    world = World(prod)
    router = respx.MockRouter(assert_all_called=False)
    platform_toml, token_var, _ = VENDORS[vendor](router, world)
    monkeypatch.setenv(token_var, "tok_DoNotLeak0123456789")
    text = f"""
[provider]
type = "local"
database_url = "{prod}"
[platform]
{platform_toml}
poll_interval = "1s"
[rollback]
app = "{app_mode}"
[deploy]
app_deploy = "ship-it"
[[probes.http]]
name = "health"
url = "http://127.0.0.1:3000/health"
"""
    loaded = LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml")
    rig = Rig(loaded, provider, FakePlatform(prod))
    rig.app_deploy = lambda loaded, url: world.ship("code-1")

    def analyse(cfg: Any, url: str | None, *, journal: Any = None, on_attempt: Any = None, phase: str = "probe",
                **kw: Any) -> Verdict:
        live = world.running
        # keep: the new code is fine on the old schema; auto: it is not, only the old code is
        ok = live["url"] != prod and (app_mode == "keep" or live["code"] == "code-0")
        return Verdict(ok, "all probes passed" if ok else f"health: HTTP 500 on {live['code']}", 0.0)

    rig.analyse = analyse
    platform = make_platform(loaded, transport=httpx.MockTransport(router.handler),
                             policy=RetryPolicy(attempts=2, sleep=lambda s: None))
    # Fly's secrets are write-only: on a fresh runner only --assume-production lets the first deploy through
    opts = deploy.DeployOptions(sha="0123456789abcdef", assume_production=vendor == "fly")
    summary = deploy.deploy(loaded, opts, provider=provider, platform=platform, tools=rig.tools(), clock=rig.clock)
    assert isinstance(summary.failure, DeployFailedRolledBack)
    assert summary.exit_code == 1 and summary.outcome == "rolled back"
    snap_url = provider.url_of(summary.snapshot)
    assert world.running["url"] == snap_url  # the database half: the app runs on the snapshot
    done = {r["step"]: r for r in read_journal(loaded.state_dir) if r.get("ended_at") or r["step"] == REPOINT_STEP}
    assert done[REPOINT_STEP]["details"]["target"] == summary.snapshot
    if app_mode == "auto":
        assert world.running["code"] == "code-0"  # the app half: the previous release's code is live again
        assert done["rollback.app"]["outcome"] == "ok"
        assert done["rollback.app"]["details"]["release_to"] == world.releases[0]["id"]
        assert summary.rollback["app_release"] == world.releases[0]["id"]
    else:
        assert world.running["code"] == "code-1" and "rollback.app" not in done
        assert summary.rollback["app_release"] is None
