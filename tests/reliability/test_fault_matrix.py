"""The fault-injection matrix: every external call on the deploy and rollback paths x every
fault that call can meet, through the real ``deploy.deploy()`` orchestration.

HTTP calls: the real Neon provider against the Neon API double (real databases behind it) and the real
Render adapter against an in-memory Render service; the fault sits at the adapter's edge, in a respx
router that is the adapter's transport. Subprocess and probe calls: the local provider, the dotenv
platform and the real node app, with cheap generate/push commands that really change the database.

Each fault is persistent (every matching request fails), so retries cannot hide it. Every case checks:
the documented exit code, the pre-deploy snapshot survives, the failed production state is never
deleted, the journal parses and agrees, ``status`` describes the state, and an exit 4 is recovered by a
following ``rollback`` once the fault is gone.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from deploysafe.config import LoadedConfig, load_config
from deploysafe.deploy.run import DeployOptions, Summary, deploy
from deploysafe.http import RetryPolicy
from deploysafe.providers.local import LocalProvider
from support.e2e import env_url, healthy
from support.neon_double import NeonDouble, make_double, seed_production
from support.reliability_kit import (
    BREAKING,
    HTTP_FAULTS,
    SAFE,
    Call,
    FaultRouter,
    RenderBackend,
    app_env_line,
    forward_to,
    install_tool,
    journal_records,
    json_of,
    kill_tools,
    neon_provider_toml,
    prepare_app,
    set_change,
    set_faults,
)

NO_SLEEP = RetryPolicy(sleep=lambda s: None)
# slow_body: each try is cut at its deadline (long enough for the double's real work: it creates databases);
# two tries, as retrying is what the other faults prove
SLOW_BODY_POLICY = RetryPolicy(sleep=lambda s: None, deadline=5.0, attempts=2)
SID = "srv-cukouhrtq21c73e9scng"

NEON_CALLS = {
    "provider.create": Call("provider.create", "POST", r"/projects/[^/]+/branches$"),
    "provider.poll": Call("provider.poll", "GET", r"/operations/[^/]+$"),
    "provider.resolve_url": Call("provider.resolve_url", "GET", r"/connection_uri$"),
    "provider.delete": Call("provider.delete", "DELETE", r"/branches/[^/]+$"),
}
RENDER_CALLS = {
    "platform.read": Call("platform.read", "GET", r"/env-vars/DATABASE_URL$"),
    "platform.set": Call("platform.set", "PUT", r"/env-vars/DATABASE_URL$"),
    "platform.pick_up": Call("platform.pick_up", "POST", r"/rollback$"),  # Render: roll back to the live deploy
    "platform.wait": Call("platform.wait", "GET", r"/deploys/dep-[^/]+$"),
}
# The exit code each call's fault must end in: before production changed 3; a prune that fails never
# fails a good deploy (0); a platform step of the rollback that fails leaves a person to act (4).
HTTP_EXPECTED = {
    "provider.create": 3, "provider.poll": 3, "provider.resolve_url": 3, "provider.delete": 0,
    "platform.read": 3, "platform.set": 4, "platform.pick_up": 4, "platform.wait": 4,
}
# A failure reported in a 200 body is not an unreadable platform: reading "no value" is an answer.
# A 200 read that says the value is unknown is not taken for production: nothing that cannot tell where the app
# points is migrated, so it fails closed with 3, like the others.
HTTP_EXPECTED_OVERRIDES: dict[tuple[str, str], int] = {}

HTTP_CASES = [(c, f) for c in [*NEON_CALLS, *RENDER_CALLS] for f in HTTP_FAULTS]

SUBPROCESS_FAULTS = ("exit", "hang", "killed")
PROBE_FAULTS = ("http500", "http502", "http503", "http429", "timeout", "reset", "failure_body")
LOCAL_CASES = [(c, f) for c in ("generate", "push", "restart") for f in SUBPROCESS_FAULTS] + [
    ("probes", f) for f in PROBE_FAULTS
]
# generate fails before production changed; push fails after applying its statement (rolled back);
# restart only runs in the rollback (a person must act); probes failing everywhere also end in 4.
LOCAL_EXPECTED = {"generate": 3, "push": 1, "restart": 4, "probes": 4}
OUTCOMES = {0: "deployed", 1: "rolled back", 3: "failed before production changed", 4: "needs a person"}


def run(loaded: LoadedConfig, provider: Any = None, platform: Any = None) -> tuple[int, Summary]:
    summary = deploy(loaded, DeployOptions(sha="0123456789abcdef"), provider=provider, platform=platform)
    assert summary.exit_code == (summary.failure.exit_code if summary.failure else 0)
    return summary.exit_code, summary


def check_journal(loaded: LoadedConfig, code: int, summary: Summary) -> dict[str, Any]:
    """The journal parses, the run ended with a result line carrying the exit code, and no step is left running."""
    recs = [r for r in journal_records(loaded.state_dir) if r["run_id"] == summary.run_id]
    results = [r for r in recs if r["step"] == "result"]
    assert results, "the run wrote no result line"
    assert results[-1]["details"]["exit_code"] == code
    assert results[-1]["details"]["outcome"] == OUTCOMES[code]
    final: dict[str, str] = {}
    for r in recs:
        final[r["step"] + r["started_at"]] = r["outcome"]
    assert "running" not in final.values(), "a step was left running by a run that ended"
    return {r["step"]: r for r in recs}


def check_status(loaded: LoadedConfig, code: int, summary: Summary, steps: dict[str, Any]) -> dict[str, Any]:
    from deploysafe.ops.recovery import status

    st = status(loaded)
    lr = st["last_run"]
    assert lr["run_id"] == summary.run_id
    assert lr["outcome"] == OUTCOMES[code]
    assert lr["cut_off_in"] == []
    assert lr["push_ran"] == ("push" in steps)
    push_failed = "push" in steps and steps["push"]["outcome"] != "ok"  # may have applied part: status says "may"
    assert lr["production_may_have_changed"] == ("production_changed" in steps or push_failed)
    if code in (1, 4):
        assert lr["production_may_have_changed"]
    assert st["production"]
    return st


# --- HTTP faults: Neon provider + Render platform ---------------------------------------------------


@dataclass
class HttpWorld:
    double: NeonDouble
    render: RenderBackend
    neon_faults: FaultRouter
    render_faults: FaultRouter
    loaded: LoadedConfig
    prod_url: str
    policy: RetryPolicy = NO_SLEEP

    def provider(self) -> Any:
        from deploysafe.providers.neon.provider import NeonProvider

        return NeonProvider.from_config(self.loaded, transport=self.neon_faults.transport(), policy=self.policy,
                                        poll_interval=0.0, operation_deadline=15.0)

    def platform(self) -> Any:
        from deploysafe.platforms.render import RenderPlatform

        return RenderPlatform.from_config(self.loaded, transport=self.render_faults.transport(), policy=self.policy)

    def faults(self, call: str) -> FaultRouter:
        return self.neon_faults if call.startswith("provider.") else self.render_faults


def _neon_failure_bodies(d: NeonDouble) -> dict[str, Any]:
    def create(request: httpx.Request, backend: Any) -> httpx.Response:
        d.fail_ops = 1000  # the double's create operation really ends `failed`, and says so
        try:
            return backend(request)
        finally:
            d.fail_ops = 0

    def poll(request: httpx.Request, backend: Any) -> httpx.Response:
        body = json_of(backend(request))
        body["operation"]["status"] = "failed"
        body["operation"]["error"] = "injected: the operation failed"
        return httpx.Response(200, json=body)

    def resolve(request: httpx.Request, backend: Any) -> httpx.Response:
        return httpx.Response(200, json={"code": "", "message": "endpoint is not ready"})

    def delete(request: httpx.Request, backend: Any) -> httpx.Response:
        bid = request.url.path.rsplit("/", 1)[1]
        op = {"id": str(uuid.uuid4()), "project_id": d.project_id, "branch_id": bid, "action": "delete_timeline",
              "status": "failed", "failures_count": 1, "error": "injected: could not delete",
              "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z", "total_duration_ms": 1}
        with d.lock:
            d.operations[op["id"]] = {"op": op, "polls_left": 0, "fail": True}
        return httpx.Response(200, json={"branch": d.branches[bid], "operations": [op]})

    return {"provider.create": create, "provider.poll": poll, "provider.resolve_url": resolve,
            "provider.delete": delete}


def _render_failure_bodies(r: RenderBackend) -> dict[str, Any]:
    def read(request: httpx.Request, backend: Any) -> httpx.Response:
        return httpx.Response(200, json={"id": "internal", "message": "temporarily unavailable"})

    def set_(request: httpx.Request, backend: Any) -> httpx.Response:
        return httpx.Response(200, json={"key": "DATABASE_URL", "value": r.value})  # the write did not take

    def pick_up(request: httpx.Request, backend: Any) -> httpx.Response:
        r.fail_deploys = True
        try:
            return backend(request)
        finally:
            r.fail_deploys = False

    def wait(request: httpx.Request, backend: Any) -> httpx.Response:
        body = json_of(backend(request))
        r.deploys[body["id"]]["status"] = body["status"] = "update_failed"
        return httpx.Response(200, json=body)

    return {"platform.read": read, "platform.set": set_, "platform.pick_up": pick_up, "platform.wait": wait}


@pytest.fixture(scope="module")
def neon_base(pg_server: Any) -> Iterator[tuple[NeonDouble, str]]:
    """One Neon double and production branch per module (CREATE DATABASE costs ~0.5s); each case resets them."""
    d = make_double(pg_server)
    seed_production(d)
    try:
        yield d, d.branch_url("production")
    finally:
        d.stop()


def _reset_production(d: NeonDouble, prod_url: str) -> None:
    with d.lock:
        for bid, b in list(d.branches.items()):
            if b["name"] != "production":
                d._delete_branch(bid)
        d.injections.clear()
        d.fail_ops = 0
    with psycopg.connect(prod_url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS users")
        c.execute("CREATE TABLE users (id serial primary key, email text not null, name text)")
        c.execute("INSERT INTO users (email, name) SELECT 'u' || g || '@x.test', 'U ' || g FROM generate_series(1, 25) g")


@pytest.fixture
def http_world(neon_base: tuple[NeonDouble, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               request: pytest.FixtureRequest) -> Iterator[HttpWorld]:
    d, prod_url = neon_base
    _reset_production(d, prod_url)
    # Spec validation costs ~0.1s a request in the double; the double's own tests and tests/providers/test_neon.py
    # hold every shape to the spec, so here only the unfaulted deploy + rollback (the audit test) re-checks them.
    d.validate = getattr(request.node, "callspec", None) is None
    d.spec_problems.clear()
    root = tmp_path / "app"
    root.mkdir()
    install_tool(root)
    (root / "deploysafe.toml").write_text(f"""[app]
dir = "."
generate = "sh tool.sh generate"
push = "sh tool.sh push"
step_timeout = "20s"
migrations_dir = "drizzle"
{app_env_line()}

{neon_provider_toml(d)}
[platform]
type = "render"
service_id = "{SID}"
ready_timeout = "5s"
poll_interval = "10ms"

[probes]
deadline = "5s"
interval = "50ms"
failure_limit = 2
[[probes.sql]]
name = "users have names"
query = "select count(name) from users"

[retention]
pre_deploy = "1h"

[rollback]
strategy = "repoint"  # the matrix drives faults into the platform calls a repoint makes

[lint]
destructive = "warn"
""")
    monkeypatch.setenv("NEON_API_KEY", d.api_key)
    monkeypatch.setenv("RENDER_API_KEY", "rnd_reliability_" + uuid.uuid4().hex)
    render = RenderBackend(SID, prod_url)
    world = HttpWorld(
        d, render,
        FaultRouter(forward_to(httpx.HTTPTransport()), _neon_failure_bodies(d)),
        FaultRouter(render, _render_failure_bodies(render)),
        load_config(str(root / "deploysafe.toml")), prod_url,
    )
    # status and rollback build their own adapters: give them the same (fault-free by then) edges
    monkeypatch.setattr("deploysafe.ops.recovery._adapters", lambda loaded: (world.provider(), world.platform()))
    yield world
    assert not d.spec_problems, d.spec_problems


def _production_intact(w: HttpWorld) -> None:
    """Production (the failed state, when the deploy failed) still exists with every row."""
    b = w.double.by_name("production")
    assert b["id"] in w.double.dbnames
    with psycopg.connect(w.prod_url) as c:
        assert c.execute("select count(*) from users").fetchone() == (25,)


@pytest.mark.parametrize(("call", "fault"), [pytest.param(c, f, marks=pytest.mark.fault_matrix(c, f), id=f"{c}-{f}")
                                             for c, f in HTTP_CASES])
def test_http_fault(http_world: HttpWorld, call: str, fault: str) -> None:
    w = http_world
    if call == "provider.delete":
        # a safe deploy whose prune must delete an expired pre-deploy snapshot
        old = time.time() - 3 * 86400
        from datetime import UTC, datetime

        w.double.add_branch("pre-deploy-20260101T000000Z-aaaaaaa", parent="production",
                            annotation={"deploysafe": "pre-deploy", "source": "production", "created_by": "deploysafe"},
                            created_at=datetime.fromtimestamp(old, UTC))
        set_change(w.loaded.root, SAFE)
    else:
        set_change(w.loaded.root, BREAKING)
    faults = w.faults(call)
    faults.inject(NEON_CALLS.get(call) or RENDER_CALLS[call], fault)
    if fault == "slow_body":
        w.policy = SLOW_BODY_POLICY
    t0 = time.monotonic()
    code, summary = run(w.loaded, w.provider(), w.platform())
    assert time.monotonic() - t0 < 120, "the deploy took far longer than its deadlines allow"
    hits = faults.hits
    faults.clear()
    expected = HTTP_EXPECTED_OVERRIDES.get((call, fault), HTTP_EXPECTED[call])
    assert hits > 0, "the faulty call was never made: the case tests nothing"
    assert (code, summary.outcome) == (expected, OUTCOMES[expected]), summary.error
    steps = check_journal(w.loaded, code, summary)
    if "snapshot" in steps and steps["snapshot"]["outcome"] == "ok":
        assert summary.snapshot in {b["name"] for b in w.double.branches.values()}, "the pre-deploy snapshot is gone"
    _production_intact(w)
    st = check_status(w.loaded, code, summary, steps)
    if code == 3:
        assert w.render.value == w.prod_url and w.render.sets == []  # the app was never repointed
    if code == 0 and fault != "truncated_json":  # a truncated answer: the delete happened, only the reply was cut
        assert w.double.by_name("pre-deploy-20260101T000000Z-aaaaaaa")  # the failed delete kept it
    if code == 1:
        assert w.render.value == w.double.branch_url(summary.snapshot)
        assert st["app_points_at"]["name"] == summary.snapshot
    if code == 4:
        assert summary.manual_steps, "exit 4 without the manual steps"
        from deploysafe.ops.recovery import manual_rollback

        result = manual_rollback(w.loaded, to=None, at=None, yes=True, dry_run=False, confirm=lambda q: False)
        assert result.snapshot == summary.snapshot
        assert w.render.value == w.double.branch_url(summary.snapshot)
        assert any(dep["status"] == "live" for dep in list(w.render.deploys.values())[1:])
        _production_intact(w)


def test_http_rollback_prints_no_secret(http_world: HttpWorld, capfd: pytest.CaptureFixture[str]) -> None:
    """The secret audit of the Neon + Render path: a deploy that rolls back, then status and a manual rollback."""
    import os

    from deploysafe.deploy.run import github_summary, render_summary
    from deploysafe.ops.recovery import manual_rollback, render_status, status
    from deploysafe.redact import url_password

    w = http_world
    markers = {"Neon key": w.double.api_key, "Render token": os.environ["RENDER_API_KEY"],
               "database password": url_password(w.prod_url) or "missing"}
    assert all(len(v) > 8 for v in markers.values())
    set_change(w.loaded.root, BREAKING)
    code, summary = run(w.loaded, w.provider(), w.platform())
    assert code == 1, summary.error
    texts = {"summary": render_summary(summary), "github summary": github_summary(summary),
             "json summary": json.dumps(summary.as_dict(), default=str), "status": render_status(status(w.loaded))}
    manual_rollback(w.loaded, to=None, at=None, yes=True, dry_run=False, confirm=lambda q: False)
    out = capfd.readouterr()
    texts.update({"stdout": out.out, "stderr": out.err,
                  "journal": (w.loaded.state_dir / "journal.jsonl").read_text()})
    assert "rolled back" in texts["summary"]
    for where, text in texts.items():
        for what, value in markers.items():
            assert value not in text, f"the {what} leaked into the {where}"


# --- subprocess and probe faults: local provider + dotenv + the real app ---------------------------


class ProbeProxy:
    """The health URL the probes use: forwards to the app, or answers with the injected fault."""

    def __init__(self, app_port: int) -> None:
        self.fault: str | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                f = proxy.fault
                if f == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return
                if f == "timeout":
                    time.sleep(1.5)  # past the probe's 1s timeout
                if f in ("http500", "http502", "http503", "http429"):
                    self._send(int(f[4:]), b"injected")
                    return
                if f == "failure_body":
                    self._send(200, b'{"status":"degraded","db":"error"}')
                    return
                try:
                    r = httpx.get(f"http://127.0.0.1:{app_port}/health", timeout=3)
                    self._send(r.status_code, r.content)
                except httpx.HTTPError:
                    self._send(502, b"app unreachable")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.e2e
@pytest.mark.parametrize(("call", "fault"), [pytest.param(c, f, marks=pytest.mark.fault_matrix(c, f), id=f"{c}-{f}")
                                             for c, f in LOCAL_CASES])
def test_local_fault(live_app: Any, call: str, fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = live_app
    monkeypatch.setenv("DATABASE_URL", app.production_url)
    proxy = ProbeProxy(app.port)
    try:
        # a hang waits out its timeout: keep that short here, and normal again for the recovery below
        hang = fault == "hang"
        cfg = prepare_app(app, probe_url=proxy.url, step_timeout="1s" if hang else "3s",
                          ready_timeout="1s" if hang and call == "restart" else "4s")
        loaded = load_config(str(cfg))
        set_change(app.root, SAFE if call == "probes" else BREAKING)
        if call == "probes":
            proxy.fault = fault
        else:
            set_faults(app.root, **{call: fault})
        t0 = time.monotonic()
        code, summary = run(loaded)
        assert time.monotonic() - t0 < 60, "the deploy took far longer than its timeouts allow"
        set_faults(app.root)
        proxy.fault = None
        kill_tools(app.root)
        loaded = load_config(str(prepare_app(app, probe_url=proxy.url, step_timeout="3s", ready_timeout="8s")))
        expected = LOCAL_EXPECTED[call]
        assert (code, summary.outcome) == (expected, OUTCOMES[expected]), summary.error
        steps = check_journal(loaded, code, summary)
        prov = LocalProvider(app.production_url)
        if "snapshot" in steps and steps["snapshot"]["outcome"] == "ok":
            assert summary.snapshot in [s.name for s in prov.list_snapshots() if s.ours]
        with psycopg.connect(app.production_url) as c:  # the failed state is kept, with its rows
            assert c.execute("select count(*) from users").fetchone() == (25,)
        st = check_status(loaded, code, summary, steps)
        if code == 3:
            assert env_url(app) == app.production_url
            assert healthy(app)
        if code == 1:
            assert env_url(app) == prov.connection_url(summary.snapshot)
            assert st["app_points_at"]["name"] == summary.snapshot
            assert healthy(app)
        if code == 4:
            assert summary.manual_steps
            from deploysafe.ops.recovery import manual_rollback

            result = manual_rollback(loaded, to=None, at=None, yes=True, dry_run=False, confirm=lambda q: False)
            assert result.snapshot == summary.snapshot
            assert env_url(app) == prov.connection_url(summary.snapshot)
            assert healthy(app)
    finally:
        proxy.close()
        kill_tools(app.root)


# Partial pushes by object kind: push applies only a change of this kind and then fails. The
# fingerprint must see it, so the deploy rolls back (exit 1) instead of reporting "nothing changed" (3).
_TOUCH = "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$"
PARTIAL_PUSHES: dict[str, tuple[str | None, dict[str, str]]] = {  # kind: (set-up SQL, the change)
    "rls-policy": (None, {
        "sql": "ALTER TABLE users ENABLE ROW LEVEL SECURITY; ALTER TABLE users FORCE ROW LEVEL SECURITY;"
               " CREATE POLICY nobody ON users USING (false)",
        "applied": "select count(*) = 1 from pg_policies where policyname = 'nobody'"}),
    "grant": (None, {
        "sql": "GRANT SELECT ON users TO PUBLIC",
        "applied": "select has_table_privilege('public', 'users', 'select')"}),
    "function": (None, {
        "sql": "CREATE FUNCTION n_users() RETURNS bigint LANGUAGE sql AS 'select count(*) from users'",
        "applied": "select count(*) = 1 from pg_proc where proname = 'n_users'"}),
    "trigger": (_TOUCH, {
        "sql": "CREATE TRIGGER touch_users BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION touch()",
        "applied": "select count(*) = 1 from pg_trigger where tgname = 'touch_users'"}),
}


@pytest.mark.e2e
@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.fault_matrix("push", f"partial-{k}"), id=k)
                                  for k in PARTIAL_PUSHES])
def test_partial_push_by_object_kind_rolls_back(live_app: Any, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = live_app
    monkeypatch.setenv("DATABASE_URL", app.production_url)
    setup, change = PARTIAL_PUSHES[kind]
    try:
        if setup:
            with psycopg.connect(app.production_url, autocommit=True) as c:
                c.execute(setup)
        loaded = load_config(str(prepare_app(app)))
        set_change(app.root, change)
        set_faults(app.root, push="exit")
        code, summary = run(loaded)
        set_faults(app.root)
        assert (code, summary.outcome) == (1, OUTCOMES[1]), summary.error
        steps = check_journal(loaded, code, summary)
        prov = LocalProvider(app.production_url)
        assert env_url(app) == prov.connection_url(summary.snapshot)
        assert healthy(app)
        with psycopg.connect(app.production_url) as c:  # the failed state is kept, with its rows and the change
            assert c.execute("select count(*) from pg_class where relname = 'users'").fetchone() == (1,)
            assert c.execute(change["applied"]).fetchone() == (True,)
        check_status(loaded, code, summary, steps)
    finally:
        kill_tools(app.root)


def test_matrix_is_the_meaningful_pairs() -> None:
    """Every call on the deploy and rollback paths is in the matrix, each with the faults it can meet."""
    calls = {c for c, _ in HTTP_CASES} | {c for c, _ in LOCAL_CASES}
    assert calls == {"provider.create", "provider.poll", "provider.resolve_url", "provider.delete", "platform.read",
                     "platform.set", "platform.pick_up", "platform.wait", "generate", "push", "restart", "probes"}
    assert len(HTTP_CASES) == 8 * 11 and len(LOCAL_CASES) == 3 * 3 + 7
    assert json.dumps(OUTCOMES)  # the documented outcomes: 0, 1, 3, 4
