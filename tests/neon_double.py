"""A Neon management API double: real HTTP on 127.0.0.1, branches backed by real databases (issue 3).

A branch is a database on the test PostgreSQL server (``CREATE DATABASE ... TEMPLATE parent``), so a
snapshot really holds the parent's rows. Operations are asynchronous (``running`` for ``op_polls``
polls), branch lists use cursor pagination (``page_size``), and knobs inject 409/423/429/500 answers,
lost responses and latency. Every request and response is validated against
``tests/fixtures/specs/neon-api-v2.yaml``; a mismatch is answered with HTTP 599 and recorded, and the
``neon_double`` fixture fails the test at teardown if any was recorded.

Use it from any test module (tests/ is on sys.path; there is no tests/__init__.py)::

    from neon_double import neon_double  # noqa: F401  (the fixture)

    def test_x(neon_double): ...

Connection URIs point at the real server (``127.0.0.1:port``) so psycopg and node can connect; the
endpoint ``host`` reported by the API is a Neon-shaped name (``ep-...neon.test``) and
:meth:`NeonDouble.branch_for_url` maps a URI back to its branch.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import psycopg
import pytest
import yaml
from psycopg import sql

SPEC_PATH = Path(__file__).resolve().parent / "fixtures" / "specs" / "neon-api-v2.yaml"  # origin: tests/fixtures/specs/SOURCES.md
SPEC_HOST = "https://console.neon.tech"  # the spec's server is https://console.neon.tech/api/v2
Json = dict[str, Any]


def _stringify_keys(obj: Any) -> Any:
    # YAML reads `200:` as an int; OpenAPI wants string status keys.
    if isinstance(obj, dict):
        return {str(k): _stringify_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_stringify_keys(v) for v in obj]
    return obj


@functools.cache
def load_spec() -> Json:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open(encoding="utf-8") as f:
        spec: Json = _stringify_keys(yaml.load(f, Loader=loader))
    return spec


@functools.cache
def openapi() -> Any:
    from openapi_core import Config, OpenAPI

    return OpenAPI.from_dict(load_spec(), config=Config(spec_validator_cls=None))


def spec_errors(method: str, path: str, *, query: str = "", body: bytes | None = None, status: int | None = None,
                response: bytes | None = None, api_key: str = "k") -> list[str]:
    """Validate one request (and its response, when given) against the Neon spec; return the problems."""
    from openapi_core.testing import MockRequest, MockResponse

    args = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(query, keep_blank_values=True).items()}
    req = MockRequest(
        SPEC_HOST, method.lower(), "/api/v2" + path, args=args, data=body or b"",
        content_type="application/json" if body else "", headers={"Authorization": f"Bearer {api_key}"},
    )
    problems: list[str] = []
    api = openapi()
    try:
        api.validate_request(req)
    except Exception as e:  # openapi-core raises a family of validation errors
        problems.append(f"request {method} {path}: {_explain(e)}")
    if status is not None:
        resp = MockResponse(response or b"", status_code=status, content_type="application/json" if response else "")
        try:
            api.validate_response(req, resp)
        except Exception as e:
            problems.append(f"response {status} to {method} {path}: {_explain(e)}")
    return problems


def _explain(e: BaseException) -> str:
    parts = [str(e)]
    cause = e.__cause__
    while cause is not None:
        parts.append(str(getattr(cause, "schema_errors", "")) or str(cause))
        cause = cause.__cause__
    return " / ".join(p for p in parts if p)[:1500]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_WORDS = ("aged", "wispy", "sweet", "raspy", "cool", "shiny", "small", "quiet", "green", "bold")
_NOUNS = ("salad", "meadow", "breeze", "hill", "darkness", "wind", "term", "river", "cloud", "leaf")


class _Drop(Exception):
    """Close the connection without answering (a lost response)."""


@dataclass
class Injection:
    method: str | None
    pattern: re.Pattern[str]
    status: int
    remaining: int
    retry_after: str | None = None
    message: str = ""


@dataclass
class NeonDouble:
    """State + knobs of the fake Neon API. Start with :meth:`start`; stop with :meth:`stop`."""

    server_url: str | None  # admin URL of the backing PostgreSQL server (None: branches without databases)
    project_id: str = "proj-double-1"
    api_key: str = "neon-double-key-" + secrets.token_hex(6)
    page_size: int = 50
    op_polls: int = 1  # polls an operation stays `running` before `finished`
    history_seconds: int = 21600
    branches_limit: int | None = 10
    subscription_type: str = "free_v3"
    database: str = "neondb"
    role: str = "postgres"
    role_password: str = ""
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    validate: bool = True
    latency: float = 0.0
    rate_per_minute: float | None = None  # Neon: 700/min per account
    rate_burst: float = 40.0
    retry_after: bool = True  # send Retry-After on 429 (Neon does not document it)
    store_passwords: bool = True

    branches: dict[str, Json] = field(default_factory=dict)
    annotations: dict[str, Json] = field(default_factory=dict)
    endpoints: dict[str, Json] = field(default_factory=dict)
    operations: dict[str, Json] = field(default_factory=dict)
    schedules: dict[str, list[Json]] = field(default_factory=dict)
    dbnames: dict[str, str] = field(default_factory=dict)  # branch id -> backing database
    spec_problems: list[str] = field(default_factory=list)
    log: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path?query, status)
    uri_requests: list[Json] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    drop_creates: int = 0
    fail_ops: int = 0  # the next N operations created end `failed`
    rate_limited: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.tag = secrets.token_hex(3)
        self._seq = itertools.count(1)
        self._tokens = self.rate_burst
        self._last_refill = time.monotonic()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> NeonDouble:
        double = self

        class Handler(_Handler):
            pass

        Handler.double = double
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/api/v2"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="neon-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self.server_url:
            with psycopg.connect(self.server_url, autocommit=True) as c:
                for db in set(self.dbnames.values()):
                    c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))

    # --- knobs -------------------------------------------------------------------------------------

    def inject(self, route: str, status: int, *, times: int = 1, method: str | None = None,
               retry_after: str | None = None, message: str | None = None) -> None:
        """The next ``times`` requests whose path matches the regex ``route`` get ``status``."""
        default = {409: "branch already exists", 423: "project already has running operations, scheduling of new ones is prohibited",
                   429: "rate limit exceeded", 500: "internal server error", 503: "service unavailable"}
        self.injections.append(Injection(method, re.compile(route), status, times, retry_after,
                                         message if message is not None else default.get(status, "error")))

    def count(self, method: str, pattern: str) -> int:
        rx = re.compile(pattern)
        return sum(1 for m, p, _ in self.log if m == method and rx.search(p))

    # --- state helpers -----------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        n = next(self._seq)
        return f"{prefix}-{_WORDS[n % 10]}-{_NOUNS[(n // 10) % 10]}-{self.tag}{n:05d}"

    def add_branch(self, name: str, *, parent: str | None = None, default: bool = False, protected: bool = False,
                   annotation: dict[str, str] | None = None, endpoint: bool = False, database: bool = True,
                   created_at: datetime | None = None, expires_at: str | None = None) -> str:
        """Seed a ready branch (``parent`` is a branch name); return its id."""
        with self.lock:
            parent_id = self.by_name(parent)["id"] if parent else None
            bid = self._new_id("br")
            self._make_branch(bid, name, parent_id, database=database, created_at=created_at)
            b = self.branches[bid]
            b.update(current_state="ready", default=default, protected=protected)
            b.pop("pending_state", None)
            if expires_at:
                b["expires_at"] = expires_at
            if annotation is not None:
                self._annotate(bid, annotation)
            if endpoint:
                self._make_endpoint(bid, ready=True)
            return bid

    def by_name(self, name: str) -> Json:
        for b in self.branches.values():
            if b["name"] == name:
                return b
        raise KeyError(name)

    def branch_for_url(self, url: str) -> str | None:
        """Name of the branch whose database a connection URI points at."""
        db = unquote(urlsplit(url).path.lstrip("/"))
        for bid, name in self.dbnames.items():
            if name == db and bid in self.branches:
                return str(self.branches[bid]["name"])
        return None

    def branch_url(self, name: str) -> str:
        return self._uri(self.by_name(name)["id"])

    def _uri(self, bid: str) -> str:
        db = self.dbnames.get(bid, f"nodb_{bid}")
        pw = quote(self.role_password, safe="")
        return f"postgresql://{quote(self.role, safe='')}:{pw}@{self.pg_host}:{self.pg_port}/{quote(db, safe='')}"

    def _admin(self) -> psycopg.Connection[Any]:
        assert self.server_url
        return psycopg.connect(self.server_url, autocommit=True)

    def _make_branch(self, bid: str, name: str, parent_id: str | None, *, database: bool,
                     created_at: datetime | None = None) -> Json:
        now = _iso(created_at or _now())
        b: Json = {
            "id": bid, "project_id": self.project_id, "name": name, "current_state": "init", "pending_state": "ready",
            "state_changed_at": now, "creation_source": "console", "created_at": now, "updated_at": now,
            "default": False, "protected": False, "cpu_used_sec": 0, "active_time_seconds": 0,
            "compute_time_seconds": 0, "written_data_bytes": 0, "data_transfer_bytes": 0, "init_source": "parent-data",
        }
        if parent_id:
            b["parent_id"] = parent_id
            b["parent_lsn"] = f"0/{next(self._seq):X}0"
        db = f"nd{self.tag}_{bid.rsplit('-', 1)[-1]}"
        if database and self.server_url:
            with self._admin() as c:
                if parent_id and parent_id in self.dbnames:
                    self._copy_db(c, self.dbnames[parent_id], db)
                else:
                    c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
                row = c.execute("SELECT pg_database_size(%s)", (db,)).fetchone()
                b["logical_size"] = int(row[0]) if row else 0
            self.dbnames[bid] = db
        self.branches[bid] = b
        return b

    @staticmethod
    def _copy_db(c: psycopg.Connection[Any], source: str, target: str) -> None:
        # TEMPLATE needs the source free of sessions: terminate them (a test double may; Neon does not need to).
        for _ in range(20):
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                      (source,))
            try:
                c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(target), sql.Identifier(source)))
                return
            except psycopg.errors.ObjectInUse:
                time.sleep(0.05)
        raise RuntimeError(f"could not copy {source}: sessions kept reconnecting")

    def _annotate(self, bid: str, value: dict[str, str]) -> None:
        now = _iso(_now())
        self.annotations[bid] = {"object": {"type": "console/branch", "id": bid}, "value": dict(value),
                                 "created_at": now, "updated_at": now}

    def _make_endpoint(self, bid: str, *, ready: bool) -> Json:
        eid = self._new_id("ep")
        now = _iso(_now())
        ep: Json = {
            "host": f"{eid}.c-2.us-east-2.aws.neon.test", "id": eid, "project_id": self.project_id, "branch_id": bid,
            "region_id": "aws-us-east-2", "autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 2,
            "type": "read_write", "current_state": "active" if ready else "init", "pooler_enabled": False,
            "pooler_mode": "transaction", "disabled": False, "passwordless_access": True, "creation_source": "console",
            "created_at": now, "updated_at": now, "settings": {}, "proxy_host": "c-2.us-east-2.aws.neon.test",
            "suspend_timeout_seconds": 0, "provisioner": "k8s-neonvm",
        }
        if not ready:
            ep["pending_state"] = "active"
        self.endpoints[eid] = ep
        return ep

    def _op(self, action: str, *, branch_id: str | None = None, endpoint_id: str | None = None) -> Json:
        now = _iso(_now())
        failing = self.fail_ops > 0
        if failing:
            self.fail_ops -= 1
        op: Json = {
            "id": str(uuid.uuid4()), "project_id": self.project_id, "action": action,
            "status": "running" if self.op_polls > 0 else "finished", "failures_count": 0,
            "created_at": now, "updated_at": now, "total_duration_ms": 0,
        }
        if branch_id:
            op["branch_id"] = branch_id
        if endpoint_id:
            op["endpoint_id"] = endpoint_id
        if self.op_polls <= 0 and failing:
            op["status"] = "failed"
        self.operations[op["id"]] = {"op": op, "polls_left": self.op_polls, "fail": failing}
        if self.op_polls <= 0:
            self._settle(op)
        return dict(op)

    def _settle(self, op: Json) -> None:
        """An operation finished: what it was creating becomes ready."""
        if op["status"] != "finished":
            return
        bid, eid = op.get("branch_id"), op.get("endpoint_id")
        if bid in self.branches and self.branches[bid]["current_state"] == "init":
            still = any(o["op"].get("branch_id") == bid and o["op"]["status"] == "running" for o in self.operations.values())
            if not still:
                self.branches[bid]["current_state"] = "ready"
                self.branches[bid].pop("pending_state", None)
        if eid in self.endpoints and self.endpoints[eid]["current_state"] == "init":
            self.endpoints[eid]["current_state"] = "active"
            self.endpoints[eid].pop("pending_state", None)

    def _rate_ok(self) -> float | None:
        """None when the request may pass; else seconds until a token is free."""
        if not self.rate_per_minute:
            return None
        rate = self.rate_per_minute / 60.0
        now = time.monotonic()
        self._tokens = min(self.rate_burst, self._tokens + (now - self._last_refill) * rate)
        self._last_refill = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / rate

    # --- routing -----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: Json, body: Json | None) -> tuple[int, Json | None, dict[str, str]]:
        """Answer one API call: (status, JSON body or None, extra headers)."""
        p = "/projects/" + self.project_id
        if not path.startswith(p):
            return 404, {"code": "", "message": "project not found"}, {}
        rest = path[len(p):]
        routes: list[tuple[str, str, Any]] = [
            ("GET", r"", self._get_project),
            ("GET", r"/branches", self._list_branches),
            ("POST", r"/branches", self._create_branch),
            ("GET", r"/branches/count", self._count_branches),
            ("GET", r"/branches/(?P<b>[^/]+)", self._get_branch),
            ("DELETE", r"/branches/(?P<b>[^/]+)", self._delete_branch),
            ("PATCH", r"/branches/(?P<b>[^/]+)", self._patch_branch),
            ("GET", r"/branches/(?P<b>[^/]+)/endpoints", self._branch_endpoints),
            ("POST", r"/branches/(?P<b>[^/]+)/restore", self._restore),
            ("GET", r"/branches/(?P<b>[^/]+)/backup_schedule", self._get_schedule),
            ("PUT", r"/branches/(?P<b>[^/]+)/backup_schedule", self._put_schedule),
            ("GET", r"/endpoints", self._list_endpoints),
            ("POST", r"/endpoints", self._create_endpoint),
            ("GET", r"/operations/(?P<o>[^/]+)", self._get_operation),
            ("GET", r"/connection_uri", self._connection_uri),
        ]
        for m, rx, fn in routes:
            match = re.fullmatch(rx, rest)
            if m == method and match:
                with self.lock:
                    result: tuple[int, Json | None, dict[str, str]] = fn(query=query, body=body or {}, **match.groupdict())
                return result
        return 404, {"code": "", "message": f"no route {method} {path}"}, {}

    @staticmethod
    def _err(status: int, message: str) -> tuple[int, Json, dict[str, str]]:
        return status, {"code": "", "message": message}, {}

    def _get_project(self, **_: Any) -> tuple[int, Json, dict[str, str]]:
        now = _iso(_now())
        size = sum(int(b.get("logical_size", 0)) for b in self.branches.values())
        project: Json = {
            "consumption_period_end": now, "consumption_period_start": now, "active_time_seconds": 0,
            "compute_time_seconds": 0, "written_data_bytes": 0, "data_transfer_bytes": 0, "data_storage_bytes_hour": 0,
            "id": self.project_id, "platform_id": "aws", "region_id": "aws-us-east-2", "name": "double",
            "pg_version": 17, "proxy_host": "c-2.us-east-2.aws.neon.test", "branch_logical_size_limit": 0,
            "branch_logical_size_limit_bytes": 0, "store_passwords": self.store_passwords, "cpu_used_sec": 0,
            "provisioner": "k8s-neonvm", "creation_source": "console", "history_retention_seconds": self.history_seconds,
            "created_at": now, "updated_at": now, "owner_id": "owner-1", "synthetic_storage_size": size,
        }
        if self.branches_limit is not None:
            project["owner"] = {"email": "owner@example.com", "name": "Owner", "branches_limit": self.branches_limit,
                                "subscription_type": self.subscription_type}
        return 200, {"project": project}, {}

    def _list_branches(self, query: Json, **_: Any) -> tuple[int, Json, dict[str, str]]:
        items = list(self.branches.values())
        search = query.get("search")
        if search:
            items = [b for b in items if search in b["name"] or search in b["id"]]
        sort_by = query.get("sort_by", "updated_at")
        reverse = query.get("sort_order", "desc") == "desc"
        items.sort(key=lambda b: (b[sort_by], b["id"]), reverse=reverse)
        offset = 0
        if query.get("cursor"):
            try:
                offset = int(query["cursor"].removeprefix("c"))
            except ValueError:
                return self._err(400, "invalid cursor")
        limit = min(int(query.get("limit", self.page_size)), self.page_size)
        page = items[offset:offset + limit]
        pagination: Json = {"sort_by": sort_by, "sort_order": "desc" if reverse else "asc"}
        if offset + limit < len(items):
            pagination["next"] = f"c{offset + limit}"
        ann = {b["id"]: self.annotations[b["id"]] for b in page if b["id"] in self.annotations}
        return 200, {"branches": page, "annotations": ann, "pagination": pagination}, {}

    def _count_branches(self, **_: Any) -> tuple[int, Json, dict[str, str]]:
        return 200, {"count": len(self.branches)}, {}

    def _branch(self, b: str) -> Json | None:
        return self.branches.get(b)

    def _get_branch(self, b: str, **_: Any) -> tuple[int, Json, dict[str, str]]:
        br = self._branch(b)
        if br is None:
            return self._err(404, "branch not found")
        self._tick_branch(b)
        body: Json = {"branch": br}
        if b in self.annotations:
            body["annotation"] = self.annotations[b]
        return 200, body, {}

    def _create_branch(self, body: Json, **_: Any) -> tuple[int, Json, dict[str, str]]:
        spec = body.get("branch") or {}
        name = spec.get("name") or f"br-auto-{next(self._seq)}"
        if any(b["name"] == name for b in self.branches.values()):
            return self._err(409, "branch already exists")
        if self.branches_limit is not None and len(self.branches) >= self.branches_limit:
            return self._err(422, f"branches limit exceeded: your plan allows {self.branches_limit} branches")
        parent_id = spec.get("parent_id") or next((b["id"] for b in self.branches.values() if b["default"]), None)
        if parent_id not in self.branches:
            return self._err(404, "parent branch not found")
        ts = spec.get("parent_timestamp")
        if ts:
            when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            if when < _now() - timedelta(seconds=self.history_seconds) or when > _now():
                return self._err(400, "parent_timestamp is outside the project's history retention window")
        expires = spec.get("expires_at")
        if expires:
            when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
            if when <= _now() or when > _now() + timedelta(days=30):
                return self._err(400, "expires_at must be in the future and at most 30 days ahead")
        bid = self._new_id("br")
        br = self._make_branch(bid, name, parent_id, database=True)
        if ts:
            br["parent_timestamp"] = ts  # a database cannot go back in time: recorded, current data served
        if expires:
            br["expires_at"] = expires
            br["ttl_interval_seconds"] = 3600
        if body.get("annotation_value"):
            self._annotate(bid, body["annotation_value"])
        ops = [self._op("create_branch", branch_id=bid)]
        eps = []
        for _e in body.get("endpoints") or []:
            ep = self._make_endpoint(bid, ready=False)
            ops.append(self._op("start_compute", branch_id=bid, endpoint_id=ep["id"]))
            eps.append(ep)
        if self.op_polls <= 0:
            for op in ops:
                self._settle(self.operations[op["id"]]["op"])
        out = {"branch": br, "endpoints": eps, "operations": ops, "roles": [], "databases": []}
        if self.drop_creates > 0:
            self.drop_creates -= 1
            raise _Drop()
        return 201, out, {}

    def _delete_branch(self, b: str, **_: Any) -> tuple[int, Json | None, dict[str, str]]:
        br = self._branch(b)
        if br is None:
            return 204, None, {}
        if any(o.get("parent_id") == b for o in self.branches.values()):
            return self._err(422, "branch has children and cannot be deleted")
        if br["default"] or br["protected"]:
            return self._err(422, "cannot delete the default or a protected branch")
        del self.branches[b]
        self.annotations.pop(b, None)
        for eid in [e for e, ep in self.endpoints.items() if ep["branch_id"] == b]:
            del self.endpoints[eid]
        db = self.dbnames.pop(b, None)
        if db and self.server_url:
            with self._admin() as c:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        ops = [self._op("delete_timeline", branch_id=b)]
        return 200, {"branch": br, "operations": ops}, {}

    def _patch_branch(self, b: str, body: Json, **_: Any) -> tuple[int, Json, dict[str, str]]:
        br = self._branch(b)
        if br is None:
            return self._err(404, "branch not found")
        change = body.get("branch") or {}
        if "name" in change:
            if any(o["name"] == change["name"] and o["id"] != b for o in self.branches.values()):
                return self._err(409, "branch already exists")
            br["name"] = change["name"]
        if "protected" in change:
            br["protected"] = bool(change["protected"])
        if "expires_at" in change:
            if change["expires_at"] is None:
                br.pop("expires_at", None)
            else:
                br["expires_at"] = change["expires_at"]
        br["updated_at"] = _iso(_now())
        return 200, {"branch": br, "operations": []}, {}

    def _branch_endpoints(self, b: str, **_: Any) -> tuple[int, Json, dict[str, str]]:
        if b not in self.branches:
            return self._err(404, "branch not found")
        self._tick_branch(b)
        return 200, {"endpoints": [e for e in self.endpoints.values() if e["branch_id"] == b]}, {}

    def _list_endpoints(self, **_: Any) -> tuple[int, Json, dict[str, str]]:
        return 200, {"endpoints": list(self.endpoints.values())}, {}

    def _create_endpoint(self, body: Json, **_: Any) -> tuple[int, Json, dict[str, str]]:
        spec = body.get("endpoint") or {}
        bid = spec.get("branch_id")
        if bid not in self.branches:
            return self._err(404, "branch not found")
        if spec.get("type") == "read_write" and any(
            e["branch_id"] == bid and e["type"] == "read_write" for e in self.endpoints.values()
        ):
            return self._err(409, "read-write endpoint already exists")
        ep = self._make_endpoint(bid, ready=False)
        op = self._op("start_compute", branch_id=bid, endpoint_id=ep["id"])
        if self.op_polls <= 0:
            self._settle(self.operations[op["id"]]["op"])
        return 201, {"endpoint": ep, "operations": [op]}, {}

    def _restore(self, b: str, body: Json, **_: Any) -> tuple[int, Json, dict[str, str]]:
        """Restore ``b`` from the head of ``source_branch_id``; the old state lives on as ``preserve_under_name``."""
        target = self._branch(b)
        source = self._branch(body.get("source_branch_id", ""))
        if target is None or source is None:
            return self._err(404, "branch not found")
        if source["id"] == b:
            return self._err(400, "restoring a branch onto itself needs source_lsn or source_timestamp")
        keep = body.get("preserve_under_name")
        if not keep and any(o.get("parent_id") == b for o in self.branches.values()):
            return self._err(400, "preserve_under_name is required when the branch has children")
        ops: list[Json] = []
        backup_id: str | None = None
        if keep:
            backup_id = self._new_id("br")
            now = _iso(_now())
            backup = dict(target, id=backup_id, name=keep, default=False, protected=False, created_at=now, updated_at=now)
            if target.get("parent_id"):
                backup["parent_id"] = target["parent_id"]
            else:
                backup.pop("parent_id", None)  # restoring a root makes the backup a separate root
            self.branches[backup_id] = backup
            for o in self.branches.values():  # children move under the backup
                if o.get("parent_id") == b:
                    o["parent_id"] = backup_id
        old_db = self.dbnames.get(b)
        if self.server_url and old_db and source["id"] in self.dbnames:
            new_db = f"nd{self.tag}_r{next(self._seq):05d}"
            with self._admin() as c:
                self._copy_db(c, self.dbnames[source["id"]], new_db)
                if not backup_id:
                    c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(old_db)))
            self.dbnames[b] = new_db
            if backup_id:
                self.dbnames[backup_id] = old_db
        target["updated_at"] = _iso(_now())
        target["last_reset_at"] = target["updated_at"]
        ops.append(self._op("create_timeline", branch_id=b))
        return 200, {"branch": target, "operations": ops}, {}

    def _get_schedule(self, b: str, **_: Any) -> tuple[int, Json, dict[str, str]]:
        if b not in self.branches:
            return self._err(404, "branch not found")
        return 200, {"schedule": self.schedules.get(b, [])}, {}

    def _put_schedule(self, b: str, body: Json, **_: Any) -> tuple[int, Json, dict[str, str]]:
        if b not in self.branches:
            return self._err(404, "branch not found")
        if self.subscription_type.startswith("free"):
            return self._err(403, "backup schedules are not available on the Free plan")
        self.schedules[b] = list(body.get("schedule") or [])
        return 200, {}, {}

    def _tick(self, rec: Json) -> None:
        op = rec["op"]
        if op["status"] == "running":
            rec["polls_left"] -= 1
            if rec["polls_left"] <= 0:
                op["status"] = "failed" if rec["fail"] else "finished"
                op["updated_at"] = _iso(_now())
                self._settle(op)

    def _tick_branch(self, bid: str) -> None:
        """Operations progress on their own, not only when polled: reading a branch advances its work."""
        for rec in list(self.operations.values()):
            if rec["op"].get("branch_id") == bid:
                self._tick(rec)

    def _get_operation(self, o: str, **_: Any) -> tuple[int, Json, dict[str, str]]:
        rec = self.operations.get(o)
        if rec is None:
            return self._err(404, "operation not found")
        self._tick(rec)
        return 200, {"operation": rec["op"]}, {}

    def _connection_uri(self, query: Json, **_: Any) -> tuple[int, Json, dict[str, str]]:
        bid = query.get("branch_id") or next((b["id"] for b in self.branches.values() if b["default"]), "")
        if bid not in self.branches:
            return self._err(404, "branch not found")
        if query.get("database_name") != self.database or query.get("role_name") != self.role:
            return self._err(404, f"database {query.get('database_name')!r} or role {query.get('role_name')!r} not found")
        if not any(e["branch_id"] == bid and e["type"] == "read_write" for e in self.endpoints.values()):
            return self._err(404, "read-write endpoint not found for branch")
        self.uri_requests.append({"branch_id": bid, "pooled": query.get("pooled") == "true"})
        return 200, {"uri": self._uri(bid)}, {}


class _Handler(BaseHTTPRequestHandler):
    double: NeonDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _serve(self) -> None:
        d = self.double
        if d.latency:
            time.sleep(d.latency)
        parts = urlsplit(self.path)
        path = parts.path.removeprefix("/api/v2")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        method = self.command
        with d.lock:
            wait = d._rate_ok()
        if wait is not None:
            d.rate_limited += 1
            headers = {"Retry-After": f"{wait:.3f}"} if d.retry_after else {}
            return self._send(method, parts, 429, {"code": "", "message": "rate limit exceeded"}, headers, raw, validate=False)
        if self.headers.get("Authorization") != f"Bearer {d.api_key}":
            return self._send(method, parts, 401, {"code": "", "message": "authentication required"}, {}, raw, validate=False)
        if d.validate:
            problems = spec_errors(method, path, query=parts.query, body=raw or None, api_key=d.api_key)
            if problems:
                d.spec_problems.extend(problems)
                return self._send(method, parts, 599, {"code": "", "message": "; ".join(problems)}, {}, raw, validate=False)
        with d.lock:
            for inj in d.injections:
                if inj.remaining > 0 and (inj.method in (None, method)) and inj.pattern.search(path):
                    inj.remaining -= 1
                    headers = {"Retry-After": inj.retry_after} if inj.retry_after else {}
                    return self._send(method, parts, inj.status, {"code": "", "message": inj.message}, headers, raw)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._send(method, parts, 400, {"code": "", "message": "invalid JSON"}, {}, raw)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            status, out, headers = d.handle(method, path, query, body)
        except _Drop:
            d.log.append((method, self.path, 0))
            self.close_connection = True
            self.connection.shutdown(2)  # the branch exists; the client never hears so
            return None
        return self._send(method, parts, status, out, headers, raw)

    def _send(self, method: str, parts: Any, status: int, out: Json | None, headers: dict[str, str], raw: bytes,
              *, validate: bool = True) -> None:
        d = self.double
        payload = json.dumps(out).encode() if out is not None else b""
        if status >= 400 and out is not None:
            out.setdefault("request_id", self.headers.get("X-Request-ID") or str(uuid.uuid4()))
            payload = json.dumps(out).encode()
        if d.validate and validate:
            path = parts.path.removeprefix("/api/v2")
            problems = spec_errors(method, path, query=parts.query, body=raw or None, status=status,
                                   response=payload or None, api_key=d.api_key)
            d.spec_problems.extend(p for p in problems if p.startswith("response"))
        d.log.append((method, self.path, status))
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.headers.get("X-Request-ID"):
            self.send_header("X-Request-ID", self.headers["X-Request-ID"])
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


def make_double(pg_server: Any | None, **knobs: Any) -> NeonDouble:
    """A started double backed by ``pg_server`` (an EmbeddedPostgres), or branches without databases."""
    if pg_server is not None:
        knobs.setdefault("role", pg_server.user)
        knobs.setdefault("role_password", pg_server.password)
        knobs.setdefault("pg_port", pg_server.port)
    return NeonDouble(server_url=pg_server.url() if pg_server is not None else None, **knobs).start()


def seed_production(d: NeonDouble, name: str = "production") -> str:
    """A default, root production branch with a running read-write compute."""
    return d.add_branch(name, default=True, endpoint=True)


@pytest.fixture
def neon_double(pg_server: Any) -> Iterator[NeonDouble]:
    """A running double with a ``production`` branch (database + endpoint); spec drift fails the test."""
    d = make_double(pg_server)
    seed_production(d)
    try:
        yield d
    finally:
        d.stop()
    if d.spec_problems:
        pytest.fail("Neon double saw requests/responses that do not match the spec:\n" + "\n".join(d.spec_problems))


__all__ = ["NeonDouble", "make_double", "neon_double", "seed_production", "spec_errors", "load_spec"]
