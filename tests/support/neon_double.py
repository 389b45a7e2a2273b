"""A Neon management API double: real HTTP on 127.0.0.1, branches backed by real databases.

A branch is a database on the test PostgreSQL server (``CREATE DATABASE ... TEMPLATE parent``), so a
snapshot really holds the parent's rows. Operations are asynchronous (``running`` for ``op_polls``
polls), branch lists use cursor pagination (``page_size``), and knobs inject 409/423/429/500 answers,
lost responses and latency. Every request and response is validated against
``tests/fixtures/specs/neon-api-v2.yaml``; a mismatch is answered with HTTP 599 and recorded, and the
``neon_double`` fixture fails the test at teardown if any was recorded.

Use it from any test module: the ``neon_double`` fixture (a running double with a ``production`` branch) is
registered for every test by ``tests/conftest.py``, so a test only names it; the rest is imported::

    from support.neon_double import NeonDouble, make_double, seed_production

    def test_x(neon_double: NeonDouble) -> None: ...

    def test_y(pg_server) -> None:
        d = make_double(pg_server, page_size=2)  # knobs: see NeonDouble's fields
        try:
            seed_production(d)
            ...
        finally:
            d.stop()

Connection URIs point at the real server (``127.0.0.1:port``) so psycopg and node can connect; the
endpoint ``host`` reported by the API is a Neon-shaped name (``ep-...neon.test``) and
:meth:`NeonDouble.branch_for_url` maps a URI back to its branch.
"""

from __future__ import annotations

import email.utils
import functools
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "neon-api-v2.yaml"  # origin: tests/fixtures/specs/SOURCES.md
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


def _parse(ts: str) -> datetime:
    dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _lsn(n: int) -> str:
    return f"0/{n:X}"


def _lsn_int(text: str) -> int | None:
    hi, sep, lo = text.partition("/")
    try:
        return (int(hi, 16) << 32) + int(lo, 16) if sep else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Point:
    """One moment of a branch's history the double can serve again: ``db`` is a frozen copy (None: empty)."""

    ts: datetime
    lsn: int
    db: str | None


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
    clock: Callable[[], datetime] = _now  # the server's wall clock: Date header, expiry, history window
    root_branches_limit: int | None = 3  # Free 3, Launch 5, Scale 25 (docs: plans)
    lock_while_running: bool = True  # mutations answer 423 while an operation runs (spec: 423 "Locked")
    retrying_ops: int = 0  # the next N operations show `failed` (failures_count, retry_at) before Neon's retry finishes them

    branches: dict[str, Json] = field(default_factory=dict)
    annotations: dict[str, Json] = field(default_factory=dict)
    endpoints: dict[str, Json] = field(default_factory=dict)
    operations: dict[str, Json] = field(default_factory=dict)
    schedules: dict[str, list[Json]] = field(default_factory=dict)
    dbnames: dict[str, str] = field(default_factory=dict)  # branch id -> backing database
    history: dict[str, list[Point]] = field(default_factory=dict)  # branch id -> recorded moments, oldest first
    undeletable: set[str] = field(default_factory=set)  # backups of a root restored from another branch
    frozen: set[str] = field(default_factory=set)  # databases holding history points
    spec_problems: list[str] = field(default_factory=list)
    log: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path?query, status)
    uri_requests: list[Json] = field(default_factory=list)
    restore_bodies: list[Json] = field(default_factory=list)  # every restore request, accepted or not
    injections: list[Injection] = field(default_factory=list)
    drop_creates: int = 0
    gateway_after: int = 0  # the next N restores happen, then the gateway answers 502 (the client cannot tell)
    fail_ops: int = 0  # the next N operations created end `failed`
    rate_limited: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.tag = secrets.token_hex(3)
        self._seq = itertools.count(1)
        self._lsns = itertools.count(0x1000000, 0x100)
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
                for db in set(self.dbnames.values()) | self.frozen:
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

    def checkpoint(self, name: str, at: datetime | None = None) -> str:
        """Record the branch's current data as its state at ``at`` (default: the server's now); return the LSN.

        Neon keeps every moment; the double keeps the moments recorded here and by the calls that read history
        (branching at head, restore). Asked for a time between two points, it serves the earlier one.
        """
        with self.lock:
            return _lsn(self._record_point(self.by_name(name)["id"], at).lsn)

    def archive(self, name: str) -> None:
        """Neon archives branches idle for a while: state ``archived``, computes ``idle``, no connections until woken."""
        with self.lock:
            b = self.by_name(name)
            b["current_state"] = "archived"
            for ep in self.endpoints.values():
                if ep["branch_id"] == b["id"]:
                    ep["current_state"] = "idle"
            self._allow_connections(b["id"], False)

    def _allow_connections(self, bid: str, allow: bool) -> None:
        db = self.dbnames.get(bid)
        if db and self.server_url:
            with self._admin() as c:
                c.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(db), sql.SQL("true" if allow else "false")))
                if not allow:
                    c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))

    def _record_point(self, bid: str, at: datetime | None = None) -> Point:
        """Freeze the branch's live data as a history point (a template copy of its database)."""
        when = at or self.clock()
        points = self.history.setdefault(bid, [])
        if points and when < points[-1].ts:
            raise ValueError(f"history point {when} is older than the branch's newest point {points[-1].ts}")
        frozen: str | None = None
        if self.server_url and bid in self.dbnames:
            frozen = f"nd{self.tag}_p{next(self._seq):05d}"
            with self._admin() as c:
                self._copy_db(c, self.dbnames[bid], frozen)
            self.frozen.add(frozen)
        point = Point(when, next(self._lsns), frozen)
        points.append(point)
        return point

    def _point_at(self, bid: str, *, ts: str | None = None, lsn: str | None = None) -> Point | str:
        """The history point a timestamp or LSN names, or why Neon would refuse it."""
        points = self.history.get(bid) or []
        now = self.clock()
        if ts is not None:
            when = _parse(ts)
            if when > now:
                return "timestamp is in the future"
            if when < now - timedelta(seconds=self.history_seconds):
                return "timestamp is outside the project's history retention window"
            older = [p for p in points if p.ts <= when]
            if not older:
                return "timestamp is before the branch was created"
            return older[-1]
        assert lsn is not None
        n = _lsn_int(lsn)
        if n is None:
            return f"invalid LSN {lsn!r}"
        older = [p for p in points if p.lsn <= n]
        if not older:
            return f"LSN {lsn} is not in the branch's history"
        if older[-1].ts < now - timedelta(seconds=self.history_seconds):
            return "LSN is outside the project's history retention window"
        return older[-1]

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

    def branch_url(self, name: str, *, pooled: bool = False) -> str:
        bid = self.by_name(name)["id"]
        return self._pooled_uri(bid) if pooled else self._uri(bid)

    def _pooled_uri(self, bid: str) -> str:
        """Neon: the endpoint's host with ``-pooler`` on its first label; ``hostaddr`` reaches the real server."""
        ep = next(e for e in self.endpoints.values() if e["branch_id"] == bid and e["type"] == "read_write")
        first, _, rest = ep["host"].partition(".")
        direct = urlsplit(self._uri(bid))
        return direct._replace(netloc=direct.netloc.replace(f"@{self.pg_host}:", f"@{first}-pooler.{rest}:"),
                               query=f"hostaddr={self.pg_host}").geturl()

    def _uri(self, bid: str) -> str:
        db = self.dbnames.get(bid, f"nodb_{bid}")
        pw = quote(self.role_password, safe="")
        return f"postgresql://{quote(self.role, safe='')}:{pw}@{self.pg_host}:{self.pg_port}/{quote(db, safe='')}"

    def _admin(self) -> psycopg.Connection[Any]:
        assert self.server_url
        return psycopg.connect(self.server_url, autocommit=True)

    def _make_branch(self, bid: str, name: str, parent_id: str | None, *, database: bool,
                     created_at: datetime | None = None, point: Point | None = None) -> Json:
        """A branch from ``point`` of its parent's history (default: the parent's head, recorded now)."""
        created = created_at or self.clock()
        now = _iso(created)
        b: Json = {
            "id": bid, "project_id": self.project_id, "name": name, "current_state": "init", "pending_state": "ready",
            "state_changed_at": now, "creation_source": "console", "created_at": now, "updated_at": now,
            "default": False, "protected": False, "cpu_used_sec": 0, "active_time_seconds": 0,
            "compute_time_seconds": 0, "written_data_bytes": 0, "data_transfer_bytes": 0, "init_source": "parent-data",
        }
        if parent_id:
            point = point or self._record_point(parent_id)
            b["parent_id"] = parent_id
            b["parent_lsn"] = _lsn(point.lsn)
            b["parent_timestamp"] = _iso(point.ts)
        db = f"nd{self.tag}_{bid.rsplit('-', 1)[-1]}"
        if database and self.server_url:
            with self._admin() as c:
                if point is not None and point.db:
                    self._copy_db(c, point.db, db)
                else:
                    c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
                row = c.execute("SELECT pg_database_size(%s)", (db,)).fetchone()
                b["logical_size"] = int(row[0]) if row else 0
            self.dbnames[bid] = db
        # the branch's own history starts with the data it was made from
        self.history[bid] = [Point(created, next(self._lsns), point.db if point is not None else None)]
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

    @staticmethod
    def _rename_db(c: psycopg.Connection[Any], source: str, target: str) -> None:
        for _ in range(40):
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                      (source,))
            try:
                c.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(source), sql.Identifier(target)))
                return
            except psycopg.errors.ObjectInUse:
                time.sleep(0.05)
        raise RuntimeError(f"could not rename {source}: sessions kept reconnecting")

    def _annotate(self, bid: str, value: dict[str, str]) -> None:
        now = _iso(self.clock())
        self.annotations[bid] = {"object": {"type": "console/branch", "id": bid}, "value": dict(value),
                                 "created_at": now, "updated_at": now}

    def _make_endpoint(self, bid: str, *, ready: bool) -> Json:
        eid = self._new_id("ep")
        now = _iso(self.clock())
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
        now = _iso(self.clock())
        failing = self.fail_ops > 0
        if failing:
            self.fail_ops -= 1
        retrying = not failing and self.retrying_ops > 0
        if retrying:
            self.retrying_ops -= 1
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
        self.operations[op["id"]] = {"op": op, "polls_left": self.op_polls, "fail": failing, "retries": 2 if retrying else 0}
        if self.op_polls <= 0 and not retrying:
            self._settle(op)
        elif retrying:
            op["status"] = "running"
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
        if eid in self.endpoints and self.endpoints[eid]["current_state"] in ("init", "idle"):
            self.endpoints[eid]["current_state"] = "active"
            self.endpoints[eid].pop("pending_state", None)
        if op["action"] == "timeline_unarchive" and bid in self.branches:
            self.branches[bid]["current_state"] = "ready"
            self._allow_connections(bid, True)

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
            ("POST", r"/endpoints/(?P<e>[^/]+)/start", self._start_endpoint),
            ("POST", r"/endpoints", self._create_endpoint),
            ("GET", r"/operations/(?P<o>[^/]+)", self._get_operation),
            ("GET", r"/connection_uri", self._connection_uri),
        ]
        for m, rx, fn in routes:
            match = re.fullmatch(rx, rest)
            if m == method and match:
                with self.lock:
                    self._expire()
                    if method != "GET" and self.lock_while_running and self._running():
                        for rec in self.operations.values():  # time passes for the operation holding the project
                            self._tick(rec)
                        return self._err(423, "project already has running operations, scheduling of new ones is prohibited")
                    result: tuple[int, Json | None, dict[str, str]] = fn(query=query, body=body or {}, **match.groupdict())
                return result
        return 404, {"code": "", "message": f"no route {method} {path}"}, {}

    @staticmethod
    def _err(status: int, message: str, code: str = "") -> tuple[int, Json, dict[str, str]]:
        return status, {"code": code, "message": message}, {}

    def _running(self) -> bool:
        return any(r["op"]["status"] in ("running", "scheduling") or r.get("retries", 0) > 0
                   or (r["op"]["status"] == "failed" and r["op"].get("failures_count") and not r["fail"])
                   for r in self.operations.values())

    def _expire(self) -> None:
        """Neon's expiry job: a branch past its expires_at is deleted (with its computes)."""
        now = self.clock()
        for bid, b in list(self.branches.items()):
            if b.get("expires_at") and _parse(b["expires_at"]) <= now and not self._children(bid):
                self._drop_branch(bid)

    def _children(self, bid: str) -> list[Json]:
        return [o for o in self.branches.values() if o.get("parent_id") == bid]

    def _roots(self) -> int:
        return sum(1 for o in self.branches.values() if not o.get("parent_id"))

    def _drop_branch(self, bid: str) -> None:
        self.branches.pop(bid, None)
        self.annotations.pop(bid, None)
        self.history.pop(bid, None)
        for eid in [e for e, ep in self.endpoints.items() if ep["branch_id"] == bid]:
            del self.endpoints[eid]
        db = self.dbnames.pop(bid, None)
        if db and self.server_url:
            with self._admin() as c:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))

    def _get_project(self, **_: Any) -> tuple[int, Json, dict[str, str]]:
        now = _iso(self.clock())
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
        if page:  # Neon answers `next` on the last page too: the client must stop at an empty page
            pagination["next"] = f"c{offset + len(page)}"
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
        # the spec requires `annotation`: a branch never annotated answers an empty value
        body: Json = {"branch": br, "annotation": self.annotations.get(b) or {
            "object": {"type": "console/branch", "id": b}, "value": {}}}
        return 200, body, {}

    def _create_branch(self, body: Json, **_: Any) -> tuple[int, Json, dict[str, str]]:
        spec = body.get("branch") or {}
        name = spec.get("name") or f"br-auto-{next(self._seq)}"
        parent_id = spec.get("parent_id") or next((b["id"] for b in self.branches.values() if b["default"]), None)
        refused = self._refuse_create(name, parent_id)
        if refused is not None:
            return refused
        ts, lsn = spec.get("parent_timestamp"), spec.get("parent_lsn")
        point = self._point_at(parent_id, ts=ts, lsn=lsn if not ts else None) if ts or lsn else None
        if isinstance(point, str):
            return self._err(400, point)
        expires = spec.get("expires_at")
        if expires and not self._expiry_allowed(expires):
            return self._err(400, "expires_at must be in the future and at most 30 days ahead")
        bid = self._new_id("br")
        br = self._make_branch(bid, name, parent_id, database=True, point=point)
        if ts:
            br["parent_timestamp"] = ts
        if expires:
            br["expires_at"] = expires
            br["ttl_interval_seconds"] = int((_parse(expires) - self.clock()).total_seconds())
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

    def _refuse_create(self, name: str, parent_id: str | None) -> tuple[int, Json, dict[str, str]] | None:
        """Neon's answer when a branch named ``name`` cannot be created under ``parent_id``; None when it can."""
        if any(b["name"] == name for b in self.branches.values()):
            return self._err(409, "branch already exists")
        if self.branches_limit is not None and len(self.branches) >= self.branches_limit:
            return self._err(422, f"branches limit exceeded: your plan allows {self.branches_limit} branches",
                             "BRANCHES_LIMIT_EXCEEDED")
        if parent_id not in self.branches:
            return self._err(404, "parent branch not found")
        if self.branches[parent_id].get("expires_at"):  # docs: a branch with an expiration cannot have children
            return self._err(400, "cannot create a child of a branch with an expiration time")
        return None

    def _expiry_allowed(self, expires_at: str) -> bool:
        """Neon accepts an expiration in the future and at most 30 days ahead."""
        when = _parse(expires_at)
        return self.clock() < when <= self.clock() + timedelta(days=30)

    def _delete_branch(self, b: str, **_: Any) -> tuple[int, Json | None, dict[str, str]]:
        br = self._branch(b)
        if br is None:
            return 204, None, {}
        if self._children(b):
            return self._err(422, "branch has children and cannot be deleted")
        if br["default"] or br["protected"]:
            return self._err(422, "cannot delete the default or a protected branch")
        if b in self.undeletable:
            return self._err(422, "the backup of a root branch restored from another branch cannot be deleted")
        if not br.get("parent_id") and self._roots() <= 1:
            return self._err(422, "cannot delete the project's last root branch")
        self._drop_branch(b)
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
                br.pop("ttl_interval_seconds", None)
            else:
                if not self._expiry_allowed(change["expires_at"]):
                    return self._err(400, "expires_at must be in the future and at most 30 days ahead")
                if self._children(b) or br.get("default") or br.get("protected") or not br.get("parent_id"):
                    return self._err(400, "expiration can only be set on a child branch without children")
                br["expires_at"] = change["expires_at"]
        br["updated_at"] = _iso(self.clock())
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

    def _start_endpoint(self, e: str, **_: Any) -> tuple[int, Json, dict[str, str]]:
        ep = self.endpoints.get(e)
        if ep is None:
            return self._err(404, "endpoint not found")
        br = self.branches[ep["branch_id"]]
        ops = []
        if br["current_state"] == "archived":
            ops.append(self._op("timeline_unarchive", branch_id=br["id"]))
        ops.append(self._op("start_compute", branch_id=br["id"], endpoint_id=e))
        if self.op_polls <= 0:
            for op in ops:
                self._settle(self.operations[op["id"]]["op"])
        return 200, {"endpoint": ep, "operations": ops}, {}

    def _restore(self, b: str, body: Json, **_: Any) -> tuple[int, Json, dict[str, str]]:
        """Instant restore (docs: branch-restore): a root branch from its own or another root branch's history.

        The target keeps its id, name and computes (connection string unchanged) and gets the source's data at
        the point asked for; with ``preserve_under_name`` its previous state becomes a separate root branch that
        takes over its children. That backup is not deletable when the source was another branch.
        """
        self.restore_bodies.append(dict(body))
        target = self._branch(b)
        source = self._branch(body.get("source_branch_id", ""))
        if target is None or source is None:
            return self._err(404, "branch not found")
        ts, lsn = body.get("source_timestamp"), body.get("source_lsn")
        keep = body.get("preserve_under_name")
        refused = self._refuse_restore(b, target, source, at_point=bool(ts or lsn), keep=keep)
        if refused is not None:
            return refused
        if ts or lsn:
            found = self._point_at(source["id"], ts=ts, lsn=lsn if not ts else None)
            if isinstance(found, str):
                return self._err(400, found)
            point = found
        else:
            point = self._record_point(source["id"])
        now = self.clock()
        new_history = [p for p in self.history.get(source["id"], []) if p.lsn <= point.lsn]
        backup_id = self._preserve_before_restore(b, target, keep, now=now, from_other=source["id"] != b) if keep else None
        self._restore_databases(b, backup_id, point)
        self.history[b] = [*new_history, Point(now, next(self._lsns), point.db)]
        target["updated_at"] = _iso(now)
        target["last_reset_at"] = target["updated_at"]
        ops = [self._op("create_timeline", branch_id=b)]
        if self.gateway_after > 0:
            self.gateway_after -= 1
            return 502, {"code": "", "message": "bad gateway"}, {}
        return 200, {"branch": target, "operations": ops}, {}

    def _refuse_restore(self, b: str, target: Json, source: Json, *, at_point: bool,
                        keep: str | None) -> tuple[int, Json, dict[str, str]] | None:
        """Neon's answer when root branch ``b`` cannot be restored from ``source`` this way; None when it can."""
        if target.get("parent_id"):
            return self._err(400, "instant restore is only supported for root branches")
        if source.get("parent_id"):
            return self._err(400, "a branch can only be restored from its own or another root branch's history")
        if source["id"] == b and not at_point:
            return self._err(400, "restoring a branch to its own history needs source_lsn or source_timestamp")
        if source["id"] == b and not keep:
            return self._err(400, "preserve_under_name is required when restoring a branch to its own history")
        if not keep:
            if self._children(b):
                return self._err(400, "preserve_under_name is required when the branch has children")
            return None
        if any(o["name"] == keep for o in self.branches.values()):
            return self._err(409, "branch already exists")
        if self.branches_limit is not None and len(self.branches) >= self.branches_limit:
            return self._err(422, f"branches limit exceeded: your plan allows {self.branches_limit} branches",
                             "BRANCHES_LIMIT_EXCEEDED")
        if self.root_branches_limit is not None and self._roots() >= self.root_branches_limit:
            return self._err(422, f"root branches limit exceeded: your plan allows {self.root_branches_limit} root branches",
                             "ROOT_BRANCHES_LIMIT_EXCEEDED")
        return None

    def _preserve_before_restore(self, b: str, target: Json, keep: str, *, now: datetime, from_other: bool) -> str:
        """``preserve_under_name``: the target's state before the restore becomes a separate root branch named
        ``keep`` that takes over the target's children; not deletable when restored from another branch."""
        backup_id = self._new_id("br")
        backup = dict(target, id=backup_id, name=keep, default=False, protected=False, created_at=_iso(now),
                      updated_at=_iso(now))
        backup.pop("parent_id", None)  # restoring a root makes the backup a separate root
        self.branches[backup_id] = backup
        self.history[backup_id] = self.history.get(b, [])
        if from_other:
            self.undeletable.add(backup_id)
        for o in self._children(b):  # children move under the backup
            o["parent_id"] = backup_id
        return backup_id

    def _restore_databases(self, b: str, backup_id: str | None, point: Point) -> None:
        """The connection string stays: production's database name now holds the restored data, and the old data
        moves to the backup's database, or is dropped without one (the compute moves; sessions on it are cut, as
        on Neon)."""
        prod_db = self.dbnames.get(b)
        if not (self.server_url and prod_db):
            return
        with self._admin() as c:
            if backup_id:
                kept_db = f"nd{self.tag}_k{next(self._seq):05d}"
                self._rename_db(c, prod_db, kept_db)
                self.dbnames[backup_id] = kept_db
            else:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(prod_db)))
            if point.db:
                self._copy_db(c, point.db, prod_db)
            else:
                c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(prod_db)))

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
        if rec.get("retries", 0) > 0 and op["status"] in ("running", "failed"):
            # Neon retries a failing operation itself: it reads `failed` with failures_count/retry_at meanwhile
            rec["retries"] -= 1
            op["status"] = "failed"
            op["failures_count"] = op.get("failures_count", 0) + 1
            op["retry_at"] = _iso(self.clock() + timedelta(seconds=1))
            op["error"] = "compute start timed out; retrying"
            return
        if op["status"] in ("running", "failed") and not rec["fail"] and op.get("failures_count"):
            op["status"] = "finished"
            op.pop("error", None)
            op["updated_at"] = _iso(self.clock())
            self._settle(op)
            return
        if op["status"] == "running":
            rec["polls_left"] -= 1
            if rec["polls_left"] <= 0:
                op["status"] = "failed" if rec["fail"] else "finished"
                op["updated_at"] = _iso(self.clock())
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
        pooled = query.get("pooled") == "true"
        self.uri_requests.append({"branch_id": bid, "pooled": pooled})
        return 200, {"uri": self._pooled_uri(bid) if pooled else self._uri(bid)}, {}


class _Handler(BaseHTTPRequestHandler):
    double: NeonDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header comes from the double's clock, which tests may set apart from the client's."""
        return email.utils.format_datetime(self.double.clock().astimezone(UTC), usegmt=True)

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
    """A default, root production branch with a running read-write compute, made a day ago (its history starts then)."""
    return d.add_branch(name, default=True, endpoint=True, created_at=d.clock() - timedelta(days=1))


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


__all__ = ["NeonDouble", "Point", "make_double", "neon_double", "seed_production", "spec_errors", "load_spec"]
