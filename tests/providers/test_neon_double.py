"""NeonProvider end to end through the Neon API double: real HTTP, real databases behind branches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from deploysafe.config import RetentionConfig
from deploysafe.errors import PointInTimeError, ProviderError
from deploysafe.http import RetryPolicy
from deploysafe.providers.base import SnapshotKind
from deploysafe.providers.neon.provider import NeonProvider
from support.neon_double import NeonDouble, make_double, seed_production


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, s: float) -> None:
        self.calls.append(s)


def provider_for(d: NeonDouble, sleeps: Sleeps | None = None, **kw: Any) -> NeonProvider:
    return NeonProvider(
        project_id=d.project_id, api_key=d.api_key, production_branch="production", database=d.database,
        role=d.role, api_url=d.base_url, policy=RetryPolicy(sleep=sleeps or Sleeps()), poll_interval=0.0, retention=kw.pop("retention", RetentionConfig.model_validate({})), **kw,
    )


@pytest.fixture
def neon(neon_double: NeonDouble) -> Iterator[NeonProvider]:
    p = provider_for(neon_double)
    yield p
    p.close()


def seed_rows(d: NeonDouble, rows: int = 3) -> None:
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.execute("CREATE TABLE users (id int primary key, email text, name text)")
        c.execute("INSERT INTO users SELECT g, 'u' || g || '@x.test', 'n' || g FROM generate_series(1, %s) g", (rows,))


def rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT id, email, name FROM users ORDER BY id").fetchall()


def test_snapshot_holds_production_rows_and_has_its_own_url(neon_double: NeonDouble, neon: NeonProvider) -> None:
    neon_double.op_polls = 3  # every operation needs several polls
    seed_rows(neon_double, 5)
    prod = neon.production()
    snap = neon.create_snapshot("pre-deploy-1", SnapshotKind.PRE_DEPLOY, git_sha="abc123")
    assert snap.ours and snap.kind == SnapshotKind.PRE_DEPLOY and snap.git_sha == "abc123"
    assert snap.state == "ready" and snap.source == "production"
    assert snap.expires_at is not None and timedelta(days=6) < snap.expires_at - datetime.now(UTC) <= timedelta(days=7)
    url = neon.connection_url("pre-deploy-1")  # eager endpoint: serves at once
    assert url != prod.url and neon_double.branch_for_url(url) == "pre-deploy-1"
    assert rows(url) == rows(prod.url) and len(rows(url)) == 5
    assert neon_double.count("GET", r"/operations/") >= 6  # 2 ops x 3 polls
    # writes to production after the snapshot do not reach it
    with psycopg.connect(prod.url, autocommit=True) as c:
        c.execute("DELETE FROM users")
    assert len(rows(url)) == 5


def test_list_three_pages_marks_ours_children_and_production(neon_double: NeonDouble, neon: NeonProvider) -> None:
    neon_double.page_size = 2
    neon_double.add_branch("dev", parent="production", database=False)
    neon_double.add_branch("daily-1", parent="production", annotation={"deploysafe": "daily", "created_by": "deploysafe"},
                           database=False)
    neon_double.add_branch("child-of-dev", parent="dev", database=False)
    neon_double.add_branch("weekly-1", parent="production", annotation={"deploysafe": "weekly"}, database=False)
    snaps = {s.name: s for s in neon.list_snapshots()}
    assert set(snaps) == {"production", "dev", "daily-1", "child-of-dev", "weekly-1"}
    assert neon_double.count("GET", r"/branches\?") == 4  # 3 pages + the empty page Neon's last `next` leads to
    assert snaps["production"].is_production and snaps["production"].is_default and snaps["production"].has_children
    assert snaps["dev"].has_children and not snaps["dev"].ours
    assert snaps["daily-1"].ours and snaps["daily-1"].kind == SnapshotKind.DAILY
    assert snaps["weekly-1"].kind == SnapshotKind.WEEKLY and not snaps["weekly-1"].has_children
    assert neon.count_branches() == 5


def test_create_409_adopts_our_rerun_and_refuses_foreign(neon_double: NeonDouble, neon: NeonProvider) -> None:
    first = neon.create_snapshot("manual-1", SnapshotKind.MANUAL)
    again = neon.create_snapshot("manual-1", SnapshotKind.MANUAL)  # CI rerun: 409 -> the same branch
    assert again.id == first.id
    assert neon_double.count("POST", r"/branches$") == 2 and len(neon_double.branches) == 2
    neon_double.add_branch("someone-elses", parent="production", database=False)
    with pytest.raises(ProviderError, match="already exists .*not created by deploysafe"):
        neon.create_snapshot("someone-elses", SnapshotKind.MANUAL)
    with pytest.raises(ProviderError, match="already exists"):
        neon.create_snapshot("manual-1", SnapshotKind.DAILY)


def test_lost_create_response_is_reconciled_not_duplicated(neon_double: NeonDouble, neon: NeonProvider) -> None:
    neon_double.drop_creates = 1
    snap = neon.create_snapshot("pre-deploy-lost", SnapshotKind.PRE_DEPLOY)
    assert snap.name == "pre-deploy-lost" and snap.ours
    assert neon_double.count("POST", r"/branches$") == 1  # re-listed instead of re-posting
    assert [b["name"] for b in neon_double.branches.values()].count("pre-deploy-lost") == 1
    assert neon_double.branch_for_url(neon.connection_url("pre-deploy-lost")) == "pre-deploy-lost"


def test_423_then_success_and_429_retry_after_honoured(neon_double: NeonDouble) -> None:
    sleeps = Sleeps()
    p = provider_for(neon_double, sleeps)
    neon_double.inject(r"/branches$", 423, method="POST", times=2)
    neon_double.inject(r"/branches$", 429, method="GET", retry_after="7")
    snap = p.create_snapshot("manual-423", SnapshotKind.MANUAL)
    assert snap.state == "ready"
    assert 7.0 in sleeps.calls
    assert [s for m, path, s in neon_double.log if m == "POST"] == [423, 423, 201]


def test_point_in_time_inside_window_and_refused_outside(neon_double: NeonDouble, neon: NeonProvider) -> None:
    neon_double.history_seconds = 6 * 3600
    at = datetime.now(UTC) - timedelta(hours=2)
    snap = neon.create_snapshot("restore-2h", SnapshotKind.RESTORE, at=at)
    assert snap.at == at.replace(microsecond=0)
    assert neon_double.by_name("restore-2h")["parent_timestamp"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    posts = neon_double.count("POST", r"/branches$")
    with pytest.raises(PointInTimeError, match=r"outside the history window: the project keeps 6 h"):
        neon.create_snapshot("restore-too-old", SnapshotKind.RESTORE, at=datetime.now(UTC) - timedelta(hours=5, minutes=58))
    assert neon_double.count("POST", r"/branches$") == posts  # refused before calling Neon
    # the double itself rejects out-of-window requests the way Neon does (client check bypassed)
    neon_double.history_seconds = 60
    neon._validate_at = lambda at: None  # type: ignore[method-assign]
    with pytest.raises(ProviderError, match="outside the project's history retention window"):
        neon.create_snapshot("restore-server", SnapshotKind.RESTORE, at=datetime.now(UTC) - timedelta(hours=1))


def test_lazy_endpoint_then_ensure_serving_keeps_expiry_until_hold(neon_double: NeonDouble) -> None:
    p = provider_for(neon_double, snapshot_endpoint="lazy")
    p.create_snapshot("pre-deploy-lazy", SnapshotKind.PRE_DEPLOY)
    assert not [e for e in neon_double.endpoints.values() if e["branch_id"] == neon_double.by_name("pre-deploy-lazy")["id"]]
    with pytest.raises(ProviderError, match="read-write endpoint not found"):
        p.connection_url("pre-deploy-lazy")
    p.ensure_serving("pre-deploy-lazy")
    p.ensure_serving("pre-deploy-lazy")  # idempotent: no second compute
    bid = neon_double.by_name("pre-deploy-lazy")["id"]
    assert len([e for e in neon_double.endpoints.values() if e["branch_id"] == bid]) == 1
    assert [e["current_state"] for e in p.branch_endpoints(bid)] == ["active"]
    assert "expires_at" in neon_double.by_name("pre-deploy-lazy")  # ready to serve is not in use
    p.hold("pre-deploy-lazy")  # the app is moved onto it: Neon's expiry job must not delete it
    assert "expires_at" not in neon_double.by_name("pre-deploy-lazy")
    assert p.identify("postgresql://u:p@" + next(e["host"] for e in neon_double.endpoints.values() if e["branch_id"] == bid)
                      .replace(".c-2", "-pooler.c-2") + "/neondb") == "pre-deploy-lazy"


def test_delete_leaf_first_and_idempotent(neon_double: NeonDouble, neon: NeonProvider) -> None:
    neon.create_snapshot("drill-parent", SnapshotKind.DRILL)
    neon_double.add_branch("drill-child", parent="drill-parent", annotation={"deploysafe": "drill"}, database=False)
    neon.list_snapshots()
    with pytest.raises(ProviderError, match="has child branches \\(drill-child\\)"):
        neon.delete("drill-parent")
    neon.delete("drill-child")
    neon.delete("drill-parent")
    neon.delete("drill-parent")  # already gone: success
    assert {b["name"] for b in neon_double.branches.values()} == {"production"}
    with pytest.raises(ProviderError, match="never deletes"):
        neon.delete("production")


def test_branch_limit_and_auth_errors_are_clear(neon_double: NeonDouble, neon: NeonProvider) -> None:
    neon_double.branches_limit = 2
    assert neon.branch_allowance() == 2
    neon.create_snapshot("manual-a", SnapshotKind.MANUAL)
    with pytest.raises(ProviderError) as e:
        neon.create_snapshot("manual-b", SnapshotKind.MANUAL)
    assert e.value.status == 422 and e.value.request_id and "prune" in (e.value.hint or "")
    bad = NeonProvider(project_id=neon_double.project_id, api_key="wrong-key-123", production_branch="production",
                       database="x", role="y", api_url=neon_double.base_url, policy=RetryPolicy(sleep=lambda s: None))
    with pytest.raises(ProviderError) as e:
        bad.production()
    assert e.value.status == 401 and "NEON_API_KEY" in (e.value.hint or "") and "wrong-key-123" not in str(e.value)


def test_backup_schedule_and_project_info(neon_double: NeonDouble, neon: NeonProvider) -> None:
    neon_double.subscription_type = "launch"
    neon.backup_schedule_set([{"frequency": "daily", "hour": 3, "retention_seconds": 7 * 86400}])
    assert neon.backup_schedule_get()[0]["frequency"] == "daily"
    info = neon.project_info()
    assert info.history_retention_seconds == neon_double.history_seconds and info.subscription_type == "launch"


def test_pooled_url_follows_config_or_the_apps_url_and_production_stays_direct(neon_double: NeonDouble) -> None:
    neon_double.add_branch("snap", parent="production", endpoint=True)
    p = provider_for(neon_double, pooled=True)
    p.production()  # the advisory lock and pg_dump need a session: always direct
    assert neon_double.uri_requests[-1]["pooled"] is False
    assert "-pooler." in p.connection_url("snap")
    q = provider_for(neon_double)
    url = q.connection_url("snap", like="postgresql://u:p@ep-x-123-pooler.c-2.us-east-2.aws.neon.tech/neondb")
    assert neon_double.uri_requests[-1]["pooled"] is True and "-pooler." in url
    assert rows_or_none(url) is None  # the pooled URL really connects (to the branch's database)
    assert "-pooler" not in q.connection_url("snap", like="postgresql://u:p@ep-x-123.c-2.us-east-2.aws.neon.tech/db")
    assert "-pooler" not in provider_for(neon_double, pooled=False).connection_url("snap", like=url)


def rows_or_none(url: str) -> Any:
    with psycopg.connect(url) as c:
        return c.execute("SELECT to_regclass('users')").fetchone()[0]  # type: ignore[index]


def test_spec_drift_is_caught(pg_server: Any) -> None:
    d = make_double(pg_server)
    try:
        seed_production(d)
        d.branches[d.by_name("production")["id"]]["current_state"] = 7  # a shape the spec forbids
        p = provider_for(d)
        p.list_snapshots()
    except ProviderError:
        pass
    finally:
        d.stop()
    assert any("response 200 to GET /projects" in s for s in d.spec_problems)


def test_double_rate_limit_answers_429_and_the_provider_rides_it(neon_double: NeonDouble) -> None:
    neon_double.rate_per_minute, neon_double.rate_burst, neon_double._tokens = 300.0, 1.0, 1.0  # 5/s, no burst
    import time as _time

    p = provider_for(neon_double, rate_per_minute=0.0)  # client pacing off: meet the server's limit head-on
    p.api.policy = RetryPolicy(sleep=_time.sleep, attempts=10)
    start = _time.monotonic()
    assert [p.count_branches() for _ in range(4)] == [1] * 4
    assert neon_double.rate_limited >= 1 and _time.monotonic() - start < 10.0  # Retry-After waits, not backoff
    assert all(s in (200, 429) for _, _, s in neon_double.log)
