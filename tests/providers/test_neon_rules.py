"""Neon's rules as the double enforces them, and the provider living with them.

Each rule cites what it relies on: instant restore works on root branches from their own or another root branch's
history (docs: introduction/branch-restore, guides/backup-restore); expires_at at most 30 days ahead on Neon's clock
(docs: guides/branch-expiration); branches idle for a while are archived (docs: guides/branch-archiving); 423 while
another operation runs and POST not safe to resend (spec: GeneralError); operations Neon retries carry
failures_count/retry_at (spec: Operation).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from deploysafe.config import RetentionConfig
from deploysafe.errors import ProviderError
from deploysafe.http import RetryPolicy
from deploysafe.providers.base import SnapshotKind
from deploysafe.providers.neon.provider import NeonProvider
from support.neon_double import NeonDouble, make_double


def provider_for(d: NeonDouble, **kw: Any) -> NeonProvider:
    return NeonProvider(
        project_id=d.project_id, api_key=d.api_key, production_branch="production", database=d.database, role=d.role,
        api_url=d.base_url, policy=RetryPolicy(sleep=lambda s: None), poll_interval=0.0,
        retention=kw.pop("retention", RetentionConfig.model_validate({})), **kw,
    )


@pytest.fixture
def neon(neon_double: NeonDouble) -> Iterator[NeonProvider]:
    p = provider_for(neon_double)
    yield p
    p.close()


def table(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT id, email FROM users ORDER BY id").fetchall()


def seed(d: NeonDouble, n: int = 5) -> None:
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.execute("CREATE TABLE users (id int PRIMARY KEY, email text)")
        c.execute("INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, %s) g", (n,))


def add_rows(d: NeonDouble, ids: range) -> None:
    with psycopg.connect(d.branch_url("production"), autocommit=True) as c:
        c.cursor().executemany("INSERT INTO users VALUES (%s, 'late')", [(i,) for i in ids])


def api(d: NeonDouble, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{d.base_url}/projects/{d.project_id}{path}", json=body,
                         headers={"Authorization": f"Bearer {d.api_key}"}, timeout=60.0)


def test_point_in_time_branches_serve_the_data_as_it_was_row_for_row(neon_double: NeonDouble, neon: NeonProvider) -> None:
    d = neon_double
    d.op_polls = 0  # the raw POSTs below do not wait for operations
    seed(d)
    now = datetime.now(UTC).replace(microsecond=0)
    at_five = table(d.branch_url("production"))
    lsn = d.checkpoint("production", at=now - timedelta(hours=1))
    add_rows(d, range(6, 9))
    d.checkpoint("production", at=now - timedelta(minutes=10))
    add_rows(d, range(9, 11))
    neon.create_snapshot("restore-ts", SnapshotKind.RESTORE, at=now - timedelta(minutes=30), serve=True)
    assert table(neon.connection_url("restore-ts")) == at_five
    d.add_branch("by-lsn", parent="production", endpoint=True)  # at head: all 10 rows
    assert len(table(d.branch_url("by-lsn"))) == 10
    r = api(d, "POST", "/branches", {"branch": {"name": "at-lsn", "parent_id": d.by_name("production")["id"],
                                                 "parent_lsn": lsn}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    assert table(d.branch_url("at-lsn")) == at_five
    r = api(d, "POST", "/branches", {"branch": {"parent_id": d.by_name("production")["id"],
                                                 "parent_timestamp": (now - timedelta(days=2)).isoformat()}})
    assert r.status_code == 400 and "outside the project's history retention window" in r.json()["message"]


def test_restore_from_a_child_branch_is_refused_and_only_roots_are_restored(neon_double: NeonDouble) -> None:
    d = neon_double
    d.add_branch("snap", parent="production")
    prod, snap = d.by_name("production")["id"], d.by_name("snap")["id"]
    r = api(d, "POST", f"/branches/{prod}/restore", {"source_branch_id": snap, "preserve_under_name": "kept"})
    assert r.status_code == 400 and set(r.json()) >= {"code", "message"}  # GeneralError
    assert "root branch" in r.json()["message"]
    r = api(d, "POST", f"/branches/{snap}/restore", {"source_branch_id": prod})
    assert r.status_code == 400 and "only supported for root branches" in r.json()["message"]
    r = api(d, "POST", f"/branches/{prod}/restore", {"source_branch_id": prod, "source_lsn": "0/1000000"})
    assert r.status_code == 400 and "preserve_under_name" in r.json()["message"]
    assert {b["name"] for b in d.branches.values()} == {"production", "snap"}


def test_restore_from_another_root_leaves_an_undeletable_backup_own_history_a_deletable_one(neon_double: NeonDouble,
                                                                                          neon: NeonProvider) -> None:
    d = neon_double
    d.root_branches_limit = 5
    seed(d)
    neon.create_snapshot("pre-deploy-a", SnapshotKind.PRE_DEPLOY)
    own = neon.plan_restore("pre-deploy-a")
    assert own.possible and own.own_history and own.source == "production"
    neon.restore_in_place(own, "production-failed-20261201T000000Z")
    kept = d.by_name("production-failed-20261201T000000Z")
    assert not kept.get("parent_id") and d.by_name("pre-deploy-a")["parent_id"] == kept["id"]  # children moved
    # the snapshot now hangs off the kept root: restoring from it reads another root's history
    other = neon.plan_restore("pre-deploy-a")
    assert other.possible and not other.own_history and other.notes
    neon.restore_in_place(other, "production-failed-20261201T000100Z")
    r = api(d, "DELETE", f"/branches/{d.by_name('production-failed-20261201T000100Z')['id']}")
    assert r.status_code == 422 and "cannot be deleted" in r.json()["message"]
    snaps = {s.name: s for s in neon.list_snapshots()}
    assert snaps["production-failed-20261201T000000Z"].kind == SnapshotKind.FAILED_STATE
    neon.delete("pre-deploy-a")
    neon.delete("production-failed-20261201T000000Z")  # own history: deletable once its children are gone


def test_restore_plan_refuses_what_neon_would_refuse(pg_server: Any) -> None:
    d = make_double(pg_server)
    try:
        d.add_branch("main", default=True, endpoint=True)
        d.add_branch("production", parent="main", endpoint=True)
        d.add_branch("pre-deploy-x", parent="production")
        p = provider_for(d)
        plan = p.plan_restore("pre-deploy-x")
        assert not plan.possible and "child of 'main'" in plan.reason and "setup" in plan.fix
        with pytest.raises(ProviderError, match="child of 'main'"):
            p.restore_in_place(plan, "x")
        assert not d.restore_bodies
    finally:
        d.stop()


def test_root_branch_cap_is_checked_before_and_its_code_drives_the_message(neon_double: NeonDouble,
                                                                          neon: NeonProvider) -> None:
    d = neon_double
    d.root_branches_limit = 3  # Free plan (docs: plans); the API does not report it, the client knows the plans
    seed(d)
    neon.create_snapshot("pre-deploy-a", SnapshotKind.PRE_DEPLOY)
    d.add_branch("other-root")
    d.add_branch("another-root")
    plan = neon.plan_restore("pre-deploy-a")
    assert not plan.possible and "3 of its 3 root branches" in plan.reason
    forced = plan.model_copy(update={"possible": True, "source": "production", "source_id": d.by_name("production")["id"],
                                     "source_lsn": d.by_name("pre-deploy-a")["parent_lsn"]})
    with pytest.raises(ProviderError) as e:
        neon.restore_in_place(forced, "production-failed-20261201T000000Z")
    assert "ROOT_BRANCHES_LIMIT_EXCEEDED" in e.value.message and "root-branch limit" in (e.value.hint or "")


def test_branch_limit_answers_its_code(neon_double: NeonDouble, neon: NeonProvider) -> None:
    neon_double.branches_limit = 1
    with pytest.raises(ProviderError) as e:
        neon.create_snapshot("manual-a", SnapshotKind.MANUAL)
    assert e.value.status == 422 and "BRANCHES_LIMIT_EXCEEDED" in e.value.message and "prune" in (e.value.hint or "")


def test_a_502_on_restore_does_not_cause_a_second_restore(neon_double: NeonDouble, neon: NeonProvider) -> None:
    d = neon_double
    seed(d)
    neon.create_snapshot("pre-deploy-a", SnapshotKind.PRE_DEPLOY)
    plan = neon.plan_restore("pre-deploy-a")
    d.gateway_after = 1  # the restore happens, then the gateway answers 502
    neon.restore_in_place(plan, "production-failed-20261201T000000Z")
    assert len(d.restore_bodies) == 1  # reconciled by reading state: the kept branch exists
    assert d.by_name("production-failed-20261201T000000Z")


def test_expiry_uses_neons_clock_and_stays_inside_its_30_day_cap(neon_double: NeonDouble) -> None:
    d = neon_double
    server = datetime.now(UTC).replace(microsecond=0)
    d.clock = lambda: server
    ahead = lambda: server + timedelta(seconds=5)  # noqa: E731  (the client's clock runs 5 s ahead)
    p = provider_for(d, wall=ahead, retention=RetentionConfig.model_validate({"daily": "30d"}))
    snap = p.create_snapshot("backup-2026-12-01", SnapshotKind.DAILY)  # 30-day retention: at Neon's cap
    assert snap.expires_at is not None and server < snap.expires_at <= server + timedelta(days=30)
    assert server + timedelta(days=29, hours=23) < snap.expires_at
    r = api(d, "PATCH", f"/branches/{snap.id}",
            {"branch": {"expires_at": (server + timedelta(days=30, seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}})
    assert r.status_code == 400 and "30 days" in r.json()["message"]
    assert "GMT" in r.headers["date"]


def test_expiry_job_deletes_an_expired_branch(neon_double: NeonDouble, neon: NeonProvider) -> None:
    d = neon_double
    now = datetime.now(UTC)
    neon.create_snapshot("pre-deploy-old", SnapshotKind.PRE_DEPLOY)
    assert "expires_at" in d.by_name("pre-deploy-old")
    d.clock = lambda: now + timedelta(days=8)
    assert "pre-deploy-old" not in {s.name for s in neon.list_snapshots()}


def test_an_archived_snapshot_is_woken_and_served_within_the_deadline(neon_double: NeonDouble, neon: NeonProvider) -> None:
    d = neon_double
    seed(d)
    neon.create_snapshot("pre-deploy-a", SnapshotKind.PRE_DEPLOY, serve=True)
    d.archive("pre-deploy-a")
    url = neon.connection_url("pre-deploy-a")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url).close()  # archived: no connection until woken
    neon.ensure_serving("pre-deploy-a")
    assert d.by_name("pre-deploy-a")["current_state"] == "ready"
    assert len(table(url)) == 5
    assert d.count("POST", r"/endpoints/[^/]+/start$") == 1


def test_mutations_wait_out_423_while_an_operation_runs(neon_double: NeonDouble, neon: NeonProvider) -> None:
    d = neon_double
    d.op_polls = 3
    prod = d.by_name("production")["id"]
    r = api(d, "POST", "/branches", {"branch": {"name": "busy", "parent_id": prod}})
    assert r.status_code == 201
    assert api(d, "POST", "/branches", {"branch": {"name": "second", "parent_id": prod}}).status_code == 423
    snap = neon.create_snapshot("manual-a", SnapshotKind.MANUAL)  # waits the other operation out, then proceeds
    assert snap.state == "ready"


def test_operations_neon_retries_are_waited_on(neon_double: NeonDouble, neon: NeonProvider) -> None:
    neon_double.retrying_ops = 1
    snap = neon.create_snapshot("manual-a", SnapshotKind.MANUAL)
    assert snap.state == "ready"
    retried = [r["op"] for r in neon_double.operations.values() if r["op"].get("failures_count")]
    assert retried and retried[0]["status"] == "finished"


def test_last_page_carries_next_and_the_client_stops_at_the_empty_page(neon_double: NeonDouble,
                                                                       neon: NeonProvider) -> None:
    neon_double.page_size = 2
    neon_double.add_branch("a", parent="production", database=False)
    r = api(neon_double, "GET", "/branches?limit=2")
    assert r.json()["pagination"]["next"]  # even though this is the only full page
    assert {s.name for s in neon.list_snapshots()} == {"production", "a"}
