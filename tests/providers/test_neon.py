"""NeonProvider against respx routes serving recorded, spec-validated fixtures (tests/fixtures/neon/)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from deploysafe.config import LoadedConfig, RetentionConfig, parse_config
from deploysafe.errors import PointInTimeError, PreconditionError, ProviderError
from deploysafe.http import RetryPolicy
from deploysafe.providers import make_provider
from deploysafe.providers.base import Provider, SnapshotKind
from deploysafe.providers.neon.provider import NeonProvider
from support.neon_double import spec_errors

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "neon"
BASE = "https://console.neon.tech/api/v2/"
PROJECT = "shiny-wind-028834"
P = f"projects/{PROJECT}"
KEY = "napi_k3y_must_never_show_0123456789"
PROD_ID = "br-wispy-salad-a1b2c300001"
NEW_ID = "br-wispy-meadow-a1b2c300011"


def fx(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def reply(name: str, **override: Any) -> httpx.Response:
    f = fx(name)
    if f["body"] is None:
        return httpx.Response(f["status"], headers=f.get("headers"))
    headers = {**(f.get("headers") or {}), **override.get("headers", {})}
    return httpx.Response(f["status"], json=f["body"], headers=headers)


class Sleeps(list[float]):
    def __call__(self, s: float) -> None:
        self.append(s)


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_called=False)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def neon(router: respx.Router, sleeps: Sleeps) -> Iterator[NeonProvider]:
    p = NeonProvider(
        project_id=PROJECT, api_key=KEY, production_branch="production", database="neondb", role="neondb_owner",
        transport=httpx.MockTransport(router.handler), policy=RetryPolicy(sleep=sleeps), poll_interval=0.0,
        retention=RetentionConfig.model_validate({}),
    )
    yield p
    p.close()


def route_lists(router: respx.Router) -> respx.Route:
    def pages(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        return reply({None: "branches_list_page1", "c2": "branches_list_page2", "c4": "branches_list_page3"}[cursor])

    return router.get(f"{P}/branches").mock(side_effect=pages)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_fixture_matches_the_neon_spec(path: Path) -> None:
    f = json.loads(path.read_text())
    req = f["request"]
    query = "&".join(f"{k}={v}" for k, v in (req.get("query") or {}).items())
    body = json.dumps(req["body"]).encode() if "body" in req else None
    response = json.dumps(f["body"]).encode() if f["body"] is not None else None
    assert spec_errors(req["method"], req["path"], query=query, body=body, status=f["status"], response=response) == []


def test_spec_check_catches_a_drifted_shape() -> None:
    f = fx("branch_get_ready")
    f["body"]["branch"].pop("current_state")
    problems = spec_errors("GET", f["request"]["path"], status=200, response=json.dumps(f["body"]).encode())
    assert problems and "current_state" in problems[0]


def test_list_walks_three_pages_and_reads_annotations(router: respx.Router, neon: NeonProvider) -> None:
    lists = route_lists(router)
    snaps = {s.name: s for s in neon.list_snapshots()}
    assert lists.call_count == 3
    assert [c.request.url.params.get("cursor") for c in lists.calls] == [None, "c2", "c4"]
    assert set(snaps) == {"production", "dev", "feature-x", "pre-deploy-20260101-0000", "daily-2026-01-01"}
    prod, pre, daily, dev = snaps["production"], snaps["pre-deploy-20260101-0000"], snaps["daily-2026-01-01"], snaps["dev"]
    assert prod.is_production and prod.is_default and prod.has_children and not prod.ours
    assert pre.ours and pre.kind == SnapshotKind.PRE_DEPLOY and pre.git_sha == "0123abc" and pre.source == "production"
    assert pre.expires_at == datetime(2026, 1, 8, tzinfo=UTC) and pre.parent_id == PROD_ID
    assert daily.kind == SnapshotKind.DAILY and not daily.has_children
    assert dev.has_children and not dev.ours and dev.kind is None
    assert prod.size_bytes == 30785536


def test_create_waits_for_every_operation_over_several_polls(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    created = fx("branch_create_201")["body"]
    post = router.post(f"{P}/branches").mock(return_value=reply("branch_create_201"))
    op_states = {o["id"]: iter(["running", "running", "finished"]) for o in created["operations"]}

    def op(request: httpx.Request, op_id: str) -> httpx.Response:
        body = fx("operation_get_running")["body"]
        body["operation"].update(id=op_id, status=next(op_states[op_id]))
        return httpx.Response(200, json=body)

    ops = router.get(path__regex=rf"/{P}/operations/(?P<op_id>[0-9a-f-]+)$").mock(side_effect=op)
    router.get(f"{P}/branches/{NEW_ID}").mock(return_value=reply("branch_get_ready"))
    router.get(f"{P}/branches/{NEW_ID}/endpoints").mock(return_value=reply("branch_endpoints_active"))
    router.get(P).mock(return_value=reply("project_get_free"))

    snap = neon.create_snapshot("pre-deploy-20260102-0000", SnapshotKind.PRE_DEPLOY, git_sha="4567def")

    assert ops.call_count == 6  # two operations, three polls each
    assert snap.id == NEW_ID and snap.state == "ready" and snap.kind == SnapshotKind.PRE_DEPLOY
    sent = json.loads(post.calls.last.request.content)
    assert sent["branch"]["parent_id"] == PROD_ID and sent["branch"]["name"] == "pre-deploy-20260102-0000"
    assert sent["annotation_value"] == {"deploysafe": "pre-deploy", "source": "production", "created_by": "deploysafe",
                                        "git_sha": "4567def"}
    assert sent["endpoints"] == [{"type": "read_write"}]  # eager by default for pre-deploy
    expires = datetime.fromisoformat(sent["branch"]["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert spec_errors("POST", f"/{P}/branches", body=post.calls.last.request.content) == []
    assert post.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


def ticking_provider(router: respx.Router, sleeps: Sleeps) -> NeonProvider:
    """A provider whose clock moves 5 s per read, so a 120 s deadline passes in a few polls."""
    now = [0.0]

    def clock() -> float:
        now[0] += 5.0
        return now[0]

    return NeonProvider(project_id=PROJECT, api_key=KEY, production_branch="production", database="neondb",
                        role="neondb_owner", transport=httpx.MockTransport(router.handler),
                        policy=RetryPolicy(sleep=sleeps), poll_interval=5.0, clock=clock)


def test_failed_operation_that_neon_retries_is_waited_on_until_the_deadline(router: respx.Router, sleeps: Sleeps) -> None:
    # `failed` with failures_count > 0 is Neon retrying (spec: failures_count, retry_at): one re-read is not enough,
    # the operation is waited on until the deadline, and the error names the last failure
    p = ticking_provider(router, sleeps)
    route_lists(router)
    router.post(f"{P}/branches").mock(return_value=reply("branch_create_201"))
    ops = router.get(path__regex=rf"/{P}/operations/").mock(return_value=reply("operation_get_failed"))
    with pytest.raises(ProviderError, match="create_branch .* did not finish .*failed 1 time.*timeline creation failed"):
        p.create_snapshot("manual-1", SnapshotKind.MANUAL)
    assert ops.call_count > 2


def test_failed_operation_without_a_retry_is_reread_once_then_reported(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    router.post(f"{P}/branches").mock(return_value=reply("branch_create_201"))
    body = fx("operation_get_failed")["body"]
    body["operation"]["failures_count"] = 0
    ops = router.get(path__regex=rf"/{P}/operations/").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ProviderError, match="create_branch .* ended 'failed': timeline creation failed"):
        neon.create_snapshot("manual-1", SnapshotKind.MANUAL)
    assert ops.call_count == 2


def test_failed_then_finished_after_neon_retries_it(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    router.post(f"{P}/branches").mock(return_value=reply("branch_create_201"))
    router.get(path__regex=rf"/{P}/operations/").mock(
        side_effect=[reply("operation_get_failed"), reply("operation_get_finished"), reply("operation_get_finished")]
    )
    router.get(f"{P}/branches/{NEW_ID}").mock(return_value=reply("branch_get_ready"))
    router.get(f"{P}/branches/{NEW_ID}/endpoints").mock(return_value=reply("branch_endpoints_active"))
    assert neon.create_snapshot("manual-1", SnapshotKind.MANUAL).state == "ready"


def test_operation_deadline_gives_a_clear_error(router: respx.Router, sleeps: Sleeps) -> None:
    p = ticking_provider(router, sleeps)
    route_lists(router)
    router.post(f"{P}/branches").mock(return_value=reply("branch_create_201"))
    router.get(path__regex=rf"/{P}/operations/").mock(return_value=reply("operation_get_running"))
    with pytest.raises(ProviderError, match=r"create_branch .* did not finish within \d+s"):
        p.create_snapshot("manual-1", SnapshotKind.MANUAL)


def test_423_twice_then_created(router: respx.Router, neon: NeonProvider, sleeps: Sleeps) -> None:
    route_lists(router)
    post = router.post(f"{P}/branches").mock(
        side_effect=[reply("branch_create_423"), reply("branch_create_423"), reply("branch_create_201")]
    )
    router.get(path__regex=rf"/{P}/operations/").mock(return_value=reply("operation_get_finished"))
    router.get(f"{P}/branches/{NEW_ID}").mock(return_value=reply("branch_get_ready"))
    router.get(f"{P}/branches/{NEW_ID}/endpoints").mock(return_value=reply("branch_endpoints_active"))
    assert neon.create_snapshot("manual-1", SnapshotKind.MANUAL).id == NEW_ID
    assert post.call_count == 3 and len([s for s in sleeps if s > 0]) >= 2


def test_429_retry_after_is_honoured(router: respx.Router, neon: NeonProvider, sleeps: Sleeps) -> None:
    pages = iter([reply("branches_list_429"), reply("branches_list_page1"), reply("branches_list_page2"),
                  reply("branches_list_page3")])
    router.get(f"{P}/branches").mock(side_effect=lambda request: next(pages))
    assert len(neon.list_snapshots()) == 5
    assert sleeps == [7.0]


def test_lost_create_response_is_reconciled_by_listing(router: respx.Router, neon: NeonProvider) -> None:
    """The POST timed out but Neon created the branch: find it by exact name instead of posting again."""
    after = fx("branches_list_page3")["body"]
    created = fx("branch_get_ready")["body"]["branch"]
    annotation = {"object": {"type": "console/branch", "id": NEW_ID},
                  "value": {"deploysafe": "manual", "created_by": "deploysafe", "source": "production"}}
    listed = {"branches": [*after["branches"], created], "annotations": {NEW_ID: annotation},
              "pagination": {"sort_by": "created_at", "sort_order": "asc"}}
    first = [True]

    def lists(request: httpx.Request) -> httpx.Response:
        if first[0]:  # production lookup before the POST
            first[0] = False
            return httpx.Response(200, json={**after, "annotations": {}})
        return httpx.Response(200, json=listed)

    router.get(f"{P}/branches").mock(side_effect=lists)
    post = router.post(f"{P}/branches").mock(side_effect=httpx.ReadTimeout("timed out"))
    router.get(f"{P}/branches/{NEW_ID}").mock(return_value=reply("branch_get_ready"))
    snap = neon.create_snapshot("pre-deploy-20260102-0000", SnapshotKind.MANUAL)
    assert post.call_count == 1 and snap.id == NEW_ID and snap.ours


def test_lost_create_response_with_no_branch_is_posted_again(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    post = router.post(f"{P}/branches").mock(side_effect=[httpx.ConnectError("reset"), reply("branch_create_201")])
    router.get(path__regex=rf"/{P}/operations/").mock(return_value=reply("operation_get_finished"))
    router.get(f"{P}/branches/{NEW_ID}").mock(return_value=reply("branch_get_ready"))
    router.get(f"{P}/branches/{NEW_ID}/endpoints").mock(return_value=reply("branch_endpoints_active"))
    assert neon.create_snapshot("manual-x", SnapshotKind.MANUAL).id == NEW_ID
    assert post.call_count == 2


def test_create_409_returns_our_existing_snapshot(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    router.post(f"{P}/branches").mock(return_value=reply("branch_create_409"))
    router.get(f"{P}/branches/br-shiny-salad-a1b2c300005").mock(
        return_value=httpx.Response(200, json={"branch": fx("branches_list_page2")["body"]["branches"][1]})
    )
    eps = fx("branch_endpoints_active")["body"]
    eps["endpoints"][0]["branch_id"] = "br-shiny-salad-a1b2c300005"
    router.get(f"{P}/branches/br-shiny-salad-a1b2c300005/endpoints").mock(return_value=httpx.Response(200, json=eps))
    post_ep = router.post(f"{P}/endpoints")
    snap = neon.create_snapshot("pre-deploy-20260101-0000", SnapshotKind.PRE_DEPLOY)
    assert snap.id == "br-shiny-salad-a1b2c300005" and snap.ours
    assert post_ep.call_count == 0  # it already serves (eager pre-deploy snapshots get a compute)


def test_create_409_on_a_foreign_branch_is_refused(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    router.post(f"{P}/branches").mock(return_value=reply("branch_create_409"))
    with pytest.raises(ProviderError, match="'dev' already exists \\(not created by deploysafe\\)"):
        neon.create_snapshot("dev", SnapshotKind.MANUAL)


def test_point_in_time_outside_the_window_fails_before_any_post(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    router.get(P).mock(return_value=reply("project_get_free"))  # history_retention_seconds 21600 (6 h)
    post = router.post(f"{P}/branches").mock(return_value=reply("branch_create_201"))
    with pytest.raises(PointInTimeError, match=r"keeps 6 h of history.*300 s safety margin"):
        neon.create_snapshot("restore-1", SnapshotKind.RESTORE, at=datetime.now(UTC) - timedelta(hours=5, minutes=57))
    with pytest.raises(PointInTimeError, match="in the future"):
        neon.create_snapshot("restore-1", SnapshotKind.RESTORE, at=datetime.now(UTC) + timedelta(minutes=5))
    with pytest.raises(PointInTimeError, match="no time zone"):
        neon.create_snapshot("restore-1", SnapshotKind.RESTORE, at=datetime(2026, 1, 1, 12, 0))
    assert post.call_count == 0


def test_point_in_time_inside_the_window_sends_parent_timestamp(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    router.get(P).mock(return_value=reply("project_get_free"))
    post = router.post(f"{P}/branches").mock(return_value=reply("branch_create_201"))
    router.get(path__regex=rf"/{P}/operations/").mock(return_value=reply("operation_get_finished"))
    router.get(f"{P}/branches/{NEW_ID}").mock(return_value=reply("branch_get_ready"))
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    snap = neon.create_snapshot("restore-1", SnapshotKind.RESTORE, at=at)
    sent = json.loads(post.calls.last.request.content)
    assert sent["branch"]["parent_timestamp"] == at.strftime("%Y-%m-%dT%H:%M:%SZ") and "endpoints" not in sent
    assert sent["annotation_value"]["at"] == sent["branch"]["parent_timestamp"] and snap.at == at


def test_connection_url_is_fetched_for_that_branch(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    uri = router.get(f"{P}/connection_uri").mock(return_value=reply("connection_uri_direct"))
    url = neon.connection_url("pre-deploy-20260101-0000")
    params = uri.calls.last.request.url.params
    assert params["branch_id"] == "br-shiny-salad-a1b2c300005" and params["database_name"] == "neondb"
    assert params["role_name"] == "neondb_owner" and params["pooled"] == "false"
    assert url.startswith("postgresql://neondb_owner:")
    from deploysafe.redact import redact

    assert "npg_Xy12AbCdEf34" not in redact(f"using {url}")


def test_identify_matches_direct_and_pooler_hosts(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    router.get(f"{P}/endpoints").mock(return_value=reply("endpoints_list_all"))
    host = "ep-sweet-salad-a1b2c300002"
    assert neon.identify(f"postgresql://u:p@{host}.c-2.us-east-2.aws.neon.tech/neondb") == "production"
    assert neon.identify(f"postgresql://u:p@{host}-pooler.c-2.us-east-2.aws.neon.tech/neondb") == "production"
    assert neon.identify("postgresql://u:p@ep-other-1.c-2.us-east-2.aws.neon.tech/neondb") is None
    assert neon.identify("not a url") is None


def test_delete_204_is_success_and_children_block(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    delete = router.delete(f"{P}/branches/br-quiet-salad-a1b2c300007").mock(return_value=reply("branch_delete_204"))
    neon.delete("daily-2026-01-01")
    assert delete.call_count == 1
    neon.delete("daily-2026-01-01")  # gone from the listing now: nothing to do
    assert delete.call_count == 1
    with pytest.raises(ProviderError, match="has child branches \\(feature-x\\)"):
        neon.delete("dev")


def test_delete_200_waits_for_its_operations(router: respx.Router, neon: NeonProvider) -> None:
    route_lists(router)
    router.delete(f"{P}/branches/br-quiet-salad-a1b2c300007").mock(return_value=reply("branch_delete_200"))
    ops = router.get(path__regex=rf"/{P}/operations/").mock(return_value=reply("operation_get_finished"))
    neon.delete("daily-2026-01-01")
    assert ops.call_count == 1


def test_errors_carry_status_request_id_message_and_hide_the_key(router: respx.Router, neon: NeonProvider) -> None:
    router.get(P).mock(return_value=reply("project_get_401"))
    with pytest.raises(ProviderError) as e:
        neon.branch_allowance()
    err = e.value
    assert err.status == 401 and err.request_id and "authentication required" in err.message
    assert "NEON_API_KEY" in (err.hint or "")
    assert KEY not in str(err) and KEY not in repr(err.context)
    router.get(f"{P}/branches").mock(return_value=reply("branch_get_404", headers={"x-request-id": "req-404-abc"}))
    with pytest.raises(ProviderError) as e:
        neon.list_snapshots()
    assert e.value.status == 404 and e.value.request_id == "req-404-abc" and "project_id" in (e.value.hint or "")


@pytest.mark.parametrize("body", [b'{"project": {"id": "shiny', b"<html>502 Bad Gateway</html>", b"[1, 2]", b'{"x": 1}'])
def test_malformed_answers_become_provider_errors(router: respx.Router, neon: NeonProvider, body: bytes) -> None:
    router.get(P).mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(ProviderError, match="Neon API: read the project"):
        neon.history_window()


def test_network_failure_on_get_is_retried_then_reported(router: respx.Router, neon: NeonProvider) -> None:
    route = router.get(P).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderError, match="no answer"):
        neon.history_window()
    assert route.call_count == RetryPolicy().attempts


def test_project_info_and_allowance(router: respx.Router, neon: NeonProvider) -> None:
    router.get(P).mock(return_value=reply("project_get_free"))
    router.get(f"{P}/branches/count").mock(return_value=reply("branches_count"))
    info = neon.project_info()
    assert info.branches_limit == neon.branch_allowance() == 10 and info.subscription_type == "free_v3"
    assert neon.history_window() == 21600.0 and neon.count_branches() == 6


def _loaded(tmp_path: Path, extra: str = "") -> LoadedConfig:
    text = f"""
[provider]
type = "neon"
project_id = "{PROJECT}"
database = "neondb"
role = "neondb_owner"
{extra}
[platform]
type = "dotenv"
env_file = ".env"
"""
    (tmp_path / "deploysafe.toml").write_text(text)
    return LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml")


def test_from_config_reads_the_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, router: respx.Router
) -> None:
    loaded = _loaded(tmp_path, 'pooled = true\nproduction_branch = "main"')
    monkeypatch.delenv("NEON_API_KEY", raising=False)
    with pytest.raises(PreconditionError, match="NEON_API_KEY is empty"):
        make_provider(loaded)
    monkeypatch.setenv("NEON_API_KEY", KEY)
    p = make_provider(loaded, transport=httpx.MockTransport(router.handler), policy=RetryPolicy(sleep=lambda s: None))
    assert isinstance(p, NeonProvider) and isinstance(p, Provider)
    assert p.pooled is True and p.production_branch == "main"
    route_lists(router)
    with pytest.raises(ProviderError, match="production branch 'main' not found") as e:
        p.production()
    assert "production_branch" in (e.value.hint or "")
    p.close()


def test_create_answered_502_is_reconciled_not_resent(router: respx.Router, neon: NeonProvider) -> None:
    """A gateway error may hide a created branch: list first; here it does not exist, so post again."""
    lists = route_lists(router)
    post = router.post(f"{P}/branches").mock(side_effect=[httpx.Response(502, text="Bad Gateway"), reply("branch_create_201")])
    router.get(path__regex=rf"/{P}/operations/").mock(return_value=reply("operation_get_finished"))
    router.get(f"{P}/branches/{NEW_ID}").mock(return_value=reply("branch_get_ready"))
    assert neon.create_snapshot("manual-502", SnapshotKind.MANUAL).id == NEW_ID
    assert post.call_count == 2 and lists.call_count >= 6  # production lookup + the reconcile listing, 3 pages each


@pytest.mark.parametrize(
    "page", [{"branches": "x", "annotations": {}}, {"branches": [1], "annotations": {}}, {"annotations": {}},
             {"branches": [{"id": "br-a-1", "name": "x"}], "annotations": {}}]
)
def test_malformed_branch_lists_become_provider_errors(router: respx.Router, neon: NeonProvider, page: Any) -> None:
    router.get(f"{P}/branches").mock(return_value=httpx.Response(200, json=page))
    with pytest.raises(ProviderError):
        neon.list_snapshots()


def test_a_key_echoed_by_the_server_is_redacted(router: respx.Router, neon: NeonProvider) -> None:
    router.get(P).mock(return_value=httpx.Response(400, json={"code": "", "message": f"bad token {KEY}"}))
    with pytest.raises(ProviderError) as e:
        neon.project_info()
    assert KEY not in str(e.value) and "bad token ****" in str(e.value)
