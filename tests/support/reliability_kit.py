"""Shared pieces of the reliability tests: cheap app commands, a fault-injecting respx router,
an in-memory Render backend, and the checks every fault case makes."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import respx

from deploysafe.demo.run import DemoApp
from support.cli import CliResult

HERE = Path(__file__).resolve().parent


def psql_path() -> str:
    from deploysafe import pg

    return pg.find_tool("psql", 14)


def app_env_line() -> str:
    """The [app] env line that tells tool.sh where psql is."""
    return f'env = {{ PSQL = "{psql_path()}" }}'

SAFE = {
    "sql": "ALTER TABLE users ADD COLUMN nickname text",
    "applied": "select count(*) = 1 from information_schema.columns where table_name = 'users' and column_name = 'nickname'",
}
BREAKING = {
    "sql": "ALTER TABLE users DROP COLUMN name",
    "applied": "select count(*) = 0 from information_schema.columns where table_name = 'users' and column_name = 'name'",
}


# --- the app side: cheap generate/push/restart with fault knobs ------------------------------------


def install_tool(root: Path) -> None:
    shutil.copy2(HERE / "tool.sh", root / "tool.sh")


def set_change(root: Path, change: dict[str, str] | None) -> None:
    """The schema change the stand-in generate/push make (None: no change)."""
    (root / ".generated").unlink(missing_ok=True)
    for part in ("sql", "check"):
        path = root / f"change.{part}"
        if change is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(change["sql" if part == "sql" else "applied"])


def set_faults(root: Path, **faults: str) -> None:
    """Replace the stand-in commands' fault knobs (none: no fault)."""
    for old in root.glob("fault.*"):
        old.unlink()
    for command, knob in faults.items():
        (root / f"fault.{command}").write_text(knob)


def local_config(root: Path, *, probe_url: str | None, step_timeout: str = "3s", ready_timeout: str = "8s",
                 extra: str = "", restart: str = "sh tool.sh restart") -> Path:
    """deploysafe.toml for the real app: local provider, dotenv platform, cheap commands, quick probes
    (no HTTP probe when ``probe_url`` is None: the SQL probe alone, for runs without the node app)."""
    path = root / "deploysafe.toml"
    http = f"""[[probes.http]]
name = "health"
url = "{probe_url}"
expect_body = "ok"
timeout = "1s"
""" if probe_url else ""
    path.write_text(
        f"""[app]
dir = "."
generate = "sh tool.sh generate"
push = "sh tool.sh push"
step_timeout = "{step_timeout}"
migrations_dir = "drizzle"
{app_env_line()}

[provider]
type = "local"
database_url = "${{DATABASE_URL}}"
strategy = "dump"

[platform]
type = "dotenv"
env_file = ".env"
restart = "{restart}"
ready_timeout = "{ready_timeout}"

[probes]
deadline = "6s"
interval = "100ms"
failure_limit = 2
{http}[[probes.sql]]
name = "users readable"
query = "select count(*) from users"

[lint]
destructive = "warn"
{extra}""",
        encoding="utf-8",
    )
    return path


def prepare_app(app: DemoApp, *, probe_url: str | None = None, **cfg: Any) -> Path:
    install_tool(app.root)
    return local_config(app.root, probe_url=probe_url or f"http://127.0.0.1:{app.port}/health", **cfg)


def kill_tools(root: Path) -> None:
    """End the stand-in commands a run left behind, by recorded pid only: each ran in the process group
    deploysafe made for its step, so the group (the command and its `sleep`) is ended with it."""
    import os
    import signal

    for pid_file in root.glob("*.pid"):
        if pid_file.name == "app.pid":
            continue
        try:
            pid = int(pid_file.read_text())
            pgid = os.getpgid(pid)
            if pgid != os.getpgid(0):  # never our own group
                os.killpg(pgid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


def journal_records(state_dir: Path) -> list[dict[str, Any]]:
    """Every journal line, parsed: a line that does not parse fails the test (the journal must always parse)."""
    path = state_dir / "journal.jsonl"
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as e:  # pragma: no cover - the assertion is the point
                raise AssertionError(f"journal line {n} does not parse: {line[:200]!r}") from e
    return out


def step_started(state_dir: Path, step: str) -> bool:
    return any(r["step"] == step and r["outcome"] == "running" for r in journal_records(state_dir))


def neon_provider_toml(d: Any) -> str:
    """The [provider] table for the Neon API double ``d``."""
    return f"""[provider]
type = "neon"
project_id = "{d.project_id}"
database = "{d.database}"
role = "{d.role}"
api_url = "{d.base_url}"
"""


# --- HTTP faults at the adapter edge ------------------------------------------------------------------

HTTP_FAULTS = ("http500", "http502", "http503", "timeout", "reset", "http429", "http423", "malformed_json",
               "truncated_json", "failure_body", "slow_body")
SLOW_BODY_PERIOD = 0.1  # seconds between the bytes of a "slow_body" answer: it never ends within a deadline


class TrickleStream(httpx.SyncByteStream):
    """A body that arrives one byte per SLOW_BODY_PERIOD for a minute: the per-read timeout never fires."""

    def __iter__(self) -> Iterator[bytes]:
        import time

        yield b"{"
        for _ in range(int(60 / SLOW_BODY_PERIOD)):
            time.sleep(SLOW_BODY_PERIOD)
            yield b" "


@dataclass
class Call:
    """One external call, recognised by method and a path regex."""

    name: str
    method: str
    path: str  # regex searched in the URL path

    def matches(self, request: httpx.Request) -> bool:
        import re

        return request.method == self.method and re.search(self.path, request.url.path) is not None


FailureBody = Callable[[httpx.Request, Callable[[httpx.Request], httpx.Response]], httpx.Response]


@dataclass
class FaultRouter:
    """A respx router in front of a backend: requests matching the active call get the active fault
    (every time: a persistent fault, so retries cannot hide it); everything else reaches the backend."""

    backend: Callable[[httpx.Request], httpx.Response]
    failure_bodies: dict[str, FailureBody] = field(default_factory=dict)
    active: tuple[Call, str] | None = None
    hits: int = 0

    def __post_init__(self) -> None:
        self.router = respx.MockRouter(assert_all_called=False)
        self.router.route().mock(side_effect=self._handle)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.router.handler)

    def inject(self, call: Call, fault: str) -> None:
        self.active = (call, fault)
        self.hits = 0

    def clear(self) -> None:
        self.active = None

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if self.active is None or not self.active[0].matches(request):
            return self.backend(request)
        call, fault = self.active
        self.hits += 1
        status = {"http500": 500, "http502": 502, "http503": 503, "http429": 429, "http423": 423}.get(fault)
        if status is not None:
            headers = {"Retry-After": "0"} if status == 429 else {}
            return httpx.Response(status, json={"code": "", "message": f"injected {status}"}, headers=headers)
        if fault == "timeout":
            raise httpx.ReadTimeout("injected read timeout", request=request)
        if fault == "reset":
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        if fault == "malformed_json":
            return httpx.Response(200, content=b"<html><body>502 Bad Gateway</body></html>",
                                  headers={"Content-Type": "application/json"})
        if fault == "truncated_json":
            real = self.backend(request)  # the call happened; only its answer is cut short
            body = real.content
            return httpx.Response(real.status_code, content=body[: max(1, len(body) // 2)],
                                  headers={"Content-Type": "application/json"})
        if fault == "failure_body":
            return self.failure_bodies[call.name](request, self.backend)
        if fault == "slow_body":  # nothing reached the backend; the answer's body never finishes arriving
            return httpx.Response(200, headers={"Content-Type": "application/json"}, stream=TrickleStream())
        raise AssertionError(f"unknown fault {fault}")


def forward_to(base: httpx.BaseTransport) -> Callable[[httpx.Request], httpx.Response]:
    """A backend that sends the request over a real transport (the Neon double's socket)."""

    def send(request: httpx.Request) -> httpx.Response:
        resp = base.handle_request(request)
        content = resp.read()
        resp.close()
        return httpx.Response(resp.status_code, headers=resp.headers, content=content)

    return send


def json_of(resp: httpx.Response) -> Any:
    return json.loads(resp.content) if resp.content else None


# --- an in-memory Render service (shapes of tests/fixtures/render) ---------------------------------


@dataclass
class RenderBackend:
    """Render's env-var and deploy endpoints for one service, in memory."""

    service_id: str
    value: str
    fail_deploys: bool = False
    deploys: dict[str, dict[str, Any]] = field(default_factory=dict)
    sets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._new_deploy("live")

    def _new_deploy(self, status: str) -> dict[str, Any]:
        did = f"dep-{uuid.uuid4().hex[:20]}"
        d = {"id": did, "commit": {"id": "9f2c1e7a", "message": "m", "createdAt": "2026-11-20T08:58:00Z"},
             "status": status, "trigger": "api", "createdAt": "2026-11-25T10:00:00Z", "updatedAt": "2026-11-25T10:00:00Z"}
        self.deploys[did] = d
        return d

    def __call__(self, request: httpx.Request) -> httpx.Response:
        sid = self.service_id
        path = request.url.path.removeprefix("/v1")
        m = request.method
        if m == "GET" and path == f"/services/{sid}":
            return httpx.Response(200, json={"id": sid, "name": "shop", "type": "web_service",
                                             "serviceDetails": {"envSpecificDetails": {}}})
        if path == f"/services/{sid}/env-vars/DATABASE_URL" and m in ("GET", "PUT"):
            return self._database_url(request)
        if m == "GET" and path == "/env-groups":
            return httpx.Response(200, json=[])
        if m == "POST" and path == f"/services/{sid}/rollback":
            return self._rollback(request)
        if path == f"/services/{sid}/deploys":
            return self._deploys(request)
        if m == "GET" and path.startswith(f"/services/{sid}/deploys/"):
            return self._get_deploy(path.rsplit("/", 1)[1])
        return httpx.Response(404, json={"id": "not_found", "message": f"no route {m} {path}"})

    def _database_url(self, request: httpx.Request) -> httpx.Response:
        """GET or PUT the service's DATABASE_URL env var; each PUT is recorded in ``sets``."""
        if request.method == "PUT":
            self.value = json.loads(request.content)["value"]
            self.sets.append(self.value)
        return httpx.Response(200, json={"key": "DATABASE_URL", "value": self.value})

    def _rollback(self, request: httpx.Request) -> httpx.Response:
        """A new deploy of the target's build (render-oss/sdk rollbackDeploy: 201 with the new deploy)."""
        target = self.deploys.get(json.loads(request.content).get("deployId", ""))
        if target is None:
            return httpx.Response(404, json={"id": "not_found", "message": "deploy not found"})
        d = self._new_deploy("update_failed" if self.fail_deploys else "update_in_progress")
        d["commit"] = dict(target["commit"])
        return httpx.Response(201, json=d)

    def _deploys(self, request: httpx.Request) -> httpx.Response:
        """POST starts a deploy; any other method lists the live one."""
        if request.method == "POST":
            d = self._new_deploy("update_failed" if self.fail_deploys else "update_in_progress")
            return httpx.Response(201, json=d)
        live = [d for d in self.deploys.values() if d["status"] == "live"]
        return httpx.Response(200, json=[{"deploy": d, "cursor": "c"} for d in live[-1:]])

    def _get_deploy(self, deploy_id: str) -> httpx.Response:
        """One deploy; one in progress answers so once, then is live on the next look."""
        d = self.deploys.get(deploy_id)
        if d is None:
            return httpx.Response(404, json={"id": "not_found", "message": "deploy not found"})
        if d["status"] == "update_in_progress":
            d["status"] = "live"
            return httpx.Response(200, json={**d, "status": "update_in_progress"})
        return httpx.Response(200, json=d)

    @property
    def live_value(self) -> str:
        return self.value


# --- an app folder without the node app (SQL probe only) ------------------------------------------


def seed_users(url: str, rows: int = 25) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE users (id serial primary key, email text not null, name text)")
        c.execute("INSERT INTO users (email, name) SELECT 'u' || g || '@x.test', 'U ' || g FROM generate_series(1, %s) g",
                  (rows,))


def scratch_app(root: Path, database_url: str, **cfg: Any) -> Path:
    """A folder with the stand-in commands, a deploysafe.toml and a .env pointing at ``database_url``."""
    from deploysafe.envfile import write_var

    root.mkdir(parents=True, exist_ok=True)
    install_tool(root)
    write_var(root / ".env", "DATABASE_URL", database_url)
    (root / "restart.sh").write_text("#!/bin/sh\nexit 0\n")  # nothing runs: the SQL probe is the health check
    return local_config(root, probe_url=None, **cfg)


def assert_clean(r: CliResult, allowed: set[int]) -> None:
    """An allowed exit code, and no traceback or internal error in the output."""
    assert r.code in allowed, (r.code, r.output[-600:])
    assert "Traceback" not in r.output and "internal error" not in r.output, r.output[-600:]
