"""Heroku adapter against respx. Every fixture is validated against the link's targetSchema in
tests/fixtures/specs/heroku-platform-api-schema.json, and every request the adapter sends must match a link
(method, href) of that schema, with its JSON body valid against the link's request schema."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import jsonschema
import pytest
import respx

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.errors import PlatformError, PreconditionError
from deploysafe.http import RetryPolicy
from deploysafe.platforms.base import CurrentValue, Platform, Release
from deploysafe.platforms.heroku import HerokuPlatform

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "heroku"
SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "heroku-platform-api-schema.json"
API = "https://api.heroku.com"
APP = "deploysafe-demo"
TOKEN = "HRKU-7c1f9a2e-55d0-4b8e-9f3a-0e6d2c4b8a17"
SNAPSHOT_URL = "postgres://app:pw-snap-5678@ep-snap.example.neon.tech/neondb?sslmode=require"
ADDON = "postgresql-curved-12345"

# fixture endpoint -> (schema definition, link title) whose targetSchema the fixture must satisfy
FIXTURE_LINKS = {
    "releases": ("release", "List"),
    "release": ("release", "Info"),
    "dynos": ("dyno", "List"),
    "config-vars_get": ("config-var", "Info for App"),
    "config-vars_patch": ("config-var", "Update"),
    "addon-attachments_none": ("add-on-attachment", "List by App"),
    "addon-attachments_database": ("add-on-attachment", "List by App"),
    "addon-attachments_create": ("add-on-attachment", "Create"),
    "slug": ("slug", "Info"),
    "formation": ("formation", "List"),
}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC.is_file():
        pytest.fail(f"Heroku schema missing at {SPEC}")
    data: dict[str, Any] = json.loads(SPEC.read_text())
    return data


def link(spec: dict[str, Any], definition: str, title: str) -> dict[str, Any]:
    found: dict[str, Any] = next(x for x in spec["definitions"][definition]["links"] if x["title"] == title)
    return found


def validate(spec: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """JSON-Schema validation (draft 4, formats checked) plus Heroku's ``strictProperties``: no key
    the schema does not list, so a fixture cannot carry invented fields."""
    root = {"definitions": spec["definitions"], **schema}
    jsonschema.Draft4Validator(root, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER).validate(instance)
    _no_unknown_keys(spec, schema, instance, "$")


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _no_unknown_keys(spec: dict[str, Any], node: dict[str, Any], instance: Any, where: str) -> None:
    node = _resolve(spec, node)
    if isinstance(instance, dict) and "properties" in node and "patternProperties" not in node:
        unknown = set(instance) - set(node["properties"])
        assert not unknown, f"{where}: keys not in the Heroku schema: {sorted(unknown)}"
        for key, value in instance.items():
            _no_unknown_keys(spec, node["properties"][key], value, f"{where}.{key}")
    if isinstance(instance, list) and "items" in node:
        for i, item in enumerate(instance):
            _no_unknown_keys(spec, node["items"], item, f"{where}[{i}]")


def _href_pattern(href: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(unquote(href))) + "$")


def assert_request_in_spec(spec: dict[str, Any], request: httpx.Request) -> None:
    for definition in spec["definitions"].values():
        for lk in definition.get("links", []):
            if lk["method"] == request.method and _href_pattern(lk["href"]).match(request.url.path):
                if request.content:
                    validate(spec, lk["schema"], json.loads(request.content))
                return
    raise AssertionError(f"{request.method} {request.url.path} is not a link of the Heroku schema")


@pytest.fixture
def api(spec: dict[str, Any]) -> Iterator[respx.Router]:
    router = respx.Router(base_url=API, assert_all_called=False)
    yield router
    for call in router.calls:
        assert call.request.headers["accept"] == "application/vnd.heroku+json; version=3"
        assert_request_in_spec(spec, call.request)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make(
    api: respx.Router, sleeps: list[float], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[[], HerokuPlatform]:
    def build() -> HerokuPlatform:
        monkeypatch.setenv("HEROKU_API_KEY", TOKEN)
        text = f"""
[provider]
type = "local"
database_url = "postgresql://localhost/app"
[platform]
type = "heroku"
app = "{APP}"
poll_interval = "3s"
"""
        loaded = LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml")
        transport = httpx.MockTransport(api.handler)
        return HerokuPlatform.from_config(loaded, transport=transport, policy=RetryPolicy(sleep=sleeps.append))

    return build


def ok(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=fixture(name))


def route(api: respx.Router, method: str, path: str, *answers: httpx.Response) -> respx.Route:
    r = api.route(method=method, path=path)
    return r.mock(side_effect=list(answers)) if len(answers) > 1 else r.mock(return_value=answers[0])


# --- the spec ------------------------------------------------------------------------------------------


def test_fixtures_match_schema(spec: dict[str, Any]) -> None:
    checked = 0
    for path in sorted(FIXTURES.glob("*.json")):
        if path.stem.startswith("error_"):
            continue  # the hyper-schema does not describe error bodies
        key = path.stem if path.stem in FIXTURE_LINKS else path.stem.split("_")[0]
        definition, title = FIXTURE_LINKS[key]
        validate(spec, link(spec, definition, title)["targetSchema"], json.loads(path.read_text()))
        checked += 1
    assert checked >= 15
    # the check can fail: an invented field or a wrong enum value is rejected
    bad = fixture("release_succeeded")
    with pytest.raises(AssertionError, match="keys not in the Heroku schema"):
        validate(spec, link(spec, "release", "Info")["targetSchema"], {**bad, "state": "live"})
    with pytest.raises(jsonschema.ValidationError):
        validate(spec, link(spec, "release", "Info")["targetSchema"], {**bad, "status": "live"})


def test_adapter_satisfies_protocol(make: Callable[[], HerokuPlatform]) -> None:
    assert isinstance(make(), Platform)


# --- reading -------------------------------------------------------------------------------------------


def test_read_current_plain(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_none"))
    route(api, "GET", f"/apps/{APP}/config-vars", ok("config-vars_get"))
    current = make().read_current()
    assert current == CurrentValue(readable=True, value=fixture("config-vars_get")["DATABASE_URL"])
    assert api.calls[0].request.headers["authorization"] == f"Bearer {TOKEN}"


def test_read_current_keeps_addon_reference(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_database"))
    config = route(api, "GET", f"/apps/{APP}/config-vars", ok("config-vars_get"))
    current = make().read_current()
    assert current == CurrentValue(readable=True, value=f"heroku-addon:{ADDON}", reference=True)
    assert not config.called  # the resolved URL is never read, so never kept


# --- set, pick up, wait ---------------------------------------------------------------------------------


def test_set_then_pick_up_returns_the_release_the_patch_made(
    api: respx.Router, make: Callable[[], HerokuPlatform]
) -> None:
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_none"))
    releases = route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"), ok("releases_new"))
    patch = route(api, "PATCH", f"/apps/{APP}/config-vars", ok("config-vars_patch"))
    platform = make()
    platform.prepare()
    platform.set_url(SNAPSHOT_URL)
    assert json.loads(patch.calls[0].request.content) == {"DATABASE_URL": SNAPSHOT_URL}
    release = platform.pick_up()
    assert release == Release(id="42", status="pending", detail="v42: Set DATABASE_URL config vars",
                              code=fixture("releases_new")[0]["slug"]["id"])
    assert releases.calls[0].request.headers["range"] == "version ..; order=desc, max=1"
    assert [c.request.method for c in api.calls] == ["GET", "GET", "PATCH", "GET"]


def test_pick_up_restarts_when_no_release_appeared(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_none"))
    route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"))
    restart = route(api, "DELETE", f"/apps/{APP}/dynos", httpx.Response(202, json={}))
    platform = make()
    platform.prepare()
    release = platform.pick_up()
    assert restart.called
    assert release.id == "41" and release.detail and release.detail.endswith("(dynos restarted)")


def test_return_to_releases_the_recorded_slug_then_sets_the_variable(
    api: respx.Router, make: Callable[[], HerokuPlatform]
) -> None:
    # the recorded release v41 ran slug 5d1c...; the deploy shipped another. "Create" release with the old slug
    # (config vars as they are now), then the config var: its release (v43) is the one to wait on
    recorded = Release(id="41", status="succeeded", live=True, code="5d1c9f0e-7a2b-4c3d-9e8f-0a1b2c3d4e5f")
    slug_release = {**fixture("releases_new")[0], "version": 42, "description": "deploysafe: back to the code of v41"}
    config_release = {**fixture("releases_new")[0], "version": 43, "id": "c0a8e1f2-0000-4000-8000-000000000043"}
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_none"))
    create = route(api, "POST", f"/apps/{APP}/releases", httpx.Response(201, json=slug_release))
    patch = route(api, "PATCH", f"/apps/{APP}/config-vars", ok("config-vars_patch"))
    route(api, "GET", f"/apps/{APP}/releases", httpx.Response(200, json=[config_release]))
    platform = make()
    release = platform.return_to(recorded, SNAPSHOT_URL)
    assert json.loads(create.calls.last.request.content) == {
        "slug": recorded.code, "description": "deploysafe: back to the code of v41"}
    assert json.loads(patch.calls.last.request.content) == {"DATABASE_URL": SNAPSHOT_URL}
    assert [c.request.method for c in api.calls if c.request.method != "GET"] == ["POST", "PATCH"]  # slug first
    assert release.id == "43"


def test_return_to_without_a_slug_is_a_clear_error(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    with pytest.raises(PlatformError, match="no slug") as exc:
        make().return_to(Release(id="41", status="succeeded"), SNAPSHOT_URL)
    assert exc.value.hint and "releases:rollback v41" in exc.value.hint and not api.calls


def dynos_at(version: int, stamp: str) -> httpx.Response:
    body = fixture("dynos_up")
    for d in body:
        d["release"]["version"] = version
        d["created_at"] = d["updated_at"] = stamp
    return httpx.Response(200, json=body)


def test_restart_fallback_waits_for_dynos_started_after_the_restart(
    api: respx.Router, make: Callable[[], HerokuPlatform], sleeps: list[float]
) -> None:
    # no new release (restore strategy, or the value was already set): the dynos of v41 are restarted, and the
    # dynos still up on v41 from before the restart must not count as live
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_none"))
    route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"))
    route(api, "DELETE", f"/apps/{APP}/dynos",
          httpx.Response(202, json={}, headers={"Date": "Wed, 25 Nov 2026 10:10:00 GMT"}))
    dynos = route(api, "GET", f"/apps/{APP}/dynos",
                  dynos_at(41, "2026-11-25T10:06:00Z"), dynos_at(41, "2026-11-25T10:10:04Z"))
    platform = make()
    platform.prepare()
    release = platform.pick_up()
    assert release.id == "41" and not release.live
    body = fixture("release_succeeded")
    body["version"] = 41
    api.route(method="GET", path=f"/apps/{APP}/releases/41").mock(return_value=httpx.Response(200, json=body))
    live = platform.wait_live(release, timeout=60)
    assert live.live and dynos.call_count == 2 and sleeps == [3.0]


def test_set_url_refuses_an_addon_owned_var(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_database"))
    route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"))
    patch = route(api, "PATCH", f"/apps/{APP}/config-vars", ok("config-vars_patch"))
    platform = make()
    platform.prepare()
    with pytest.raises(PlatformError, match=f"belongs to add-on {ADDON}") as exc:
        platform.set_url(SNAPSHOT_URL)
    assert not patch.called
    assert exc.value.hint and "[platform] var" in exc.value.hint


def test_patch_422_for_attachment_explains(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    # the attachment appeared after prepare(): Heroku's own refusal must be explained the same way
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_none"))
    route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"))
    route(api, "PATCH", f"/apps/{APP}/config-vars", ok("error_attachment-422", 422))
    platform = make()
    platform.prepare()
    with pytest.raises(PlatformError, match="Cannot overwrite attachment values") as exc:
        platform.set_url(SNAPSHOT_URL)
    assert exc.value.status == 422
    assert exc.value.hint and "add-on attachment" in exc.value.hint


def test_restoring_the_reference_reattaches_the_addon(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"))
    attach = route(api, "POST", "/addon-attachments", ok("addon-attachments_create", 201))
    patch = route(api, "PATCH", f"/apps/{APP}/config-vars", ok("config-vars_patch"))
    make().set_url(f"heroku-addon:{ADDON}")
    assert json.loads(attach.calls[0].request.content) == {
        "addon": ADDON,
        "app": APP,
        "name": "DATABASE",
        "confirm": APP,
    }
    assert not patch.called


def test_wait_live_success(api: respx.Router, make: Callable[[], HerokuPlatform], sleeps: list[float]) -> None:
    route(api, "GET", f"/apps/{APP}/releases/42", ok("release_pending"), ok("release_succeeded"), ok("release_succeeded"))
    dynos = route(api, "GET", f"/apps/{APP}/dynos", ok("dynos_starting"), ok("dynos_up"))
    live = make().wait_live(Release(id="42", status="pending"), timeout=60)
    assert live.live and live.status == "succeeded" and live.id == "42"
    assert dynos.call_count == 2  # waited for web.2 to leave release 41 and web.1 to come up
    assert sleeps == [3.0, 3.0]


def test_wait_live_release_phase_failed(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/releases/42", ok("release_pending"), ok("release_failed"))
    with pytest.raises(PlatformError, match="release v42 failed") as exc:
        make().wait_live(Release(id="42", status="pending"), timeout=60)
    assert exc.value.hint and f"heroku releases:output v42 --app {APP}" in exc.value.hint


def test_wait_live_dyno_crashed(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/releases/42", ok("release_succeeded"))
    route(api, "GET", f"/apps/{APP}/dynos", ok("dynos_crashed"))
    with pytest.raises(PlatformError, match="dyno web.1 crashed on release v42"):
        make().wait_live(Release(id="42", status="pending"), timeout=60)


def test_wait_live_deadline(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/releases/42", ok("release_pending"))
    with pytest.raises(PlatformError, match=r"within 0s \(last release status: pending\)"):
        make().wait_live(Release(id="42", status="pending"), timeout=0)


def test_describe(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"))
    described = make().describe()
    assert described == Release(id="41", status="succeeded", live=True, detail="v41: Deploy 1a2b3c4d",
                                code="5d1c9f0e-7a2b-4c3d-9e8f-0a1b2c3d4e5f")  # the slug: what code v41 runs


# --- errors ----------------------------------------------------------------------------------------------


def test_429_backs_off_honouring_retry_after(
    api: respx.Router, make: Callable[[], HerokuPlatform], sleeps: list[float]
) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "7"}, json=fixture("error_rate-limit"))
    route(api, "GET", f"/apps/{APP}/addon-attachments", limited, ok("addon-attachments_none"))
    route(api, "GET", f"/apps/{APP}/config-vars", ok("config-vars_get"))
    assert make().read_current().readable
    assert sleeps == [7.0]


def test_429_exhausted(api: respx.Router, make: Callable[[], HerokuPlatform], sleeps: list[float]) -> None:
    route(api, "GET", f"/apps/{APP}/addon-attachments", httpx.Response(429, json=fixture("error_rate-limit")))
    # one error mapping for every HTTP adapter: the vendor's message, the hint says what to do
    with pytest.raises(PlatformError, match="HTTP 429: Your account reached the API rate limit") as exc:
        make().read_current()
    assert exc.value.status == 429 and exc.value.platform == "heroku"
    assert exc.value.hint and "rate-limited" in exc.value.hint
    assert len(sleeps) == 5


def test_401(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("error_unauthorized", 401))
    with pytest.raises(PlatformError, match="Invalid credentials") as exc:
        make().read_current()
    assert exc.value.status == 401
    assert exc.value.hint and "HEROKU_API_KEY" in exc.value.hint and "write-protected" in exc.value.hint


def test_404(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("error_not-found", 404))
    with pytest.raises(PlatformError) as exc:
        make().prepare()
    assert exc.value.status == 404
    assert exc.value.hint and f"app = '{APP}'" in exc.value.hint


def test_missing_token_is_a_precondition(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HEROKU_API_KEY", raising=False)
    text = '[provider]\ntype = "local"\ndatabase_url = "postgresql://localhost/app"\n[platform]\ntype = "heroku"\napp = "a"\n'
    with pytest.raises(PreconditionError, match="HEROKU_API_KEY"):
        HerokuPlatform.from_config(LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml"))


def test_token_never_in_errors_or_output(
    api: respx.Router,
    make: Callable[[], HerokuPlatform],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deploysafe.console import console

    monkeypatch.setattr(console, "verbose", True)
    echo = {"id": "unauthorized", "message": f"Invalid credentials provided: {TOKEN}"}
    route(api, "GET", f"/apps/{APP}/addon-attachments", httpx.Response(401, json=echo))
    route(api, "GET", f"/apps/{APP}/releases/42", ok("release_pending"), ok("release_failed"))
    platform = make()
    messages = []
    for action in (platform.read_current, lambda: platform.wait_live(Release(id="42", status="pending"), 60)):
        with pytest.raises(PlatformError) as exc:
            action()
        messages.append(str(exc.value) + repr(exc.value.context))
    out = capsys.readouterr()
    assert "release v42" in out.out + out.err  # progress was printed, so the check below means something
    for text in (*messages, out.out, out.err):
        assert TOKEN not in text


# --- caveats ---------------------------------------------------------------------------------------------


def test_caveat_release_phase_that_migrates(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"))
    route(api, "GET", f"/apps/{APP}/slugs/5d1c9f0e-7a2b-4c3d-9e8f-0a1b2c3d4e5f", ok("slug_release-phase"))
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_none"))
    (warning,) = make().caveats()
    assert "release phase (`npm run db:migrate`)" in warning and "looks like it migrates" in warning


def test_no_caveats_for_web_only_app(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"))
    route(api, "GET", f"/apps/{APP}/slugs/5d1c9f0e-7a2b-4c3d-9e8f-0a1b2c3d4e5f", ok("slug_web-only"))
    formation = route(api, "GET", f"/apps/{APP}/formation", ok("formation_list"))
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_none"))
    assert make().caveats() == []
    assert formation.called


def test_caveat_addon_owned_var(api: respx.Router, make: Callable[[], HerokuPlatform]) -> None:
    route(api, "GET", f"/apps/{APP}/releases", ok("releases_baseline"))
    route(api, "GET", f"/apps/{APP}/slugs/5d1c9f0e-7a2b-4c3d-9e8f-0a1b2c3d4e5f", ok("slug_web-only"))
    route(api, "GET", f"/apps/{APP}/formation", ok("formation_list"))
    route(api, "GET", f"/apps/{APP}/addon-attachments", ok("addon-attachments_database"))
    (warning,) = make().caveats()
    assert f"set by add-on {ADDON}" in warning
