"""Neon provider: a snapshot is a child branch of the production branch.

The HTTP layer (pacing, retries, operations, error mapping) is :mod:`deploysafe.providers.neon.api`.
Pitfalls handled here, each from ``shared/research/neon-api.md``: a POST whose answer was lost is
reconciled by re-listing before it is retried, and a 409 on create becomes get-by-exact-name (6.2, 6.7); ``search`` is a substring match, so
names are always matched exactly client-side (2.2); connection URLs are fetched per branch, never
derived from production's (3.2); timestamps are checked against the history window with a margin (6.5).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from deploysafe.config import secret
from deploysafe.errors import PointInTimeError, ProviderError
from deploysafe.http import RetryPolicy
from deploysafe.providers import record
from deploysafe.providers.base import (
    ANNOTATION_KEY,
    Capabilities,
    Json,
    ProductionInfo,
    ProjectInfo,
    RestorePlan,
    Snapshot,
    SnapshotKind,
    parse_time,
    utcnow,
)
from deploysafe.providers.neon.api import OPERATION_DEADLINE, RATE_PER_MINUTE, UNSURE, NeonApi
from deploysafe.redact import redact, register_secret, url_password

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig, RetentionConfig

MAX_EXPIRY = timedelta(days=30)  # Neon refuses expires_at further ahead, on its own clock
EXPIRY_MARGIN = timedelta(minutes=5)  # clock skew and request latency, kept off Neon's 30-day cap
PITR_MARGIN = 300.0  # seconds kept off the history window's edge (GC horizon race, neon#10639)
# Root branches per project by plan (docs: introduction/plans); the API does not report this cap.
ROOT_BRANCH_LIMITS = {"free": 3, "launch": 5, "scale": 25, "business": 25, "agent": 3}
LIST_CACHE_TTL = 120.0  # a prune re-uses one listing for this long instead of re-listing per delete


def root_branch_limit(subscription_type: str | None) -> int | None:
    """The plan's root-branch cap (None: plan unknown)."""
    plan = (subscription_type or "").lower().split("_")[0]
    return ROOT_BRANCH_LIMITS.get(plan)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _endpoint_host_key(host: str) -> str:
    """Endpoint host without the ``-pooler`` suffix of its first label (the pooled host of the same compute)."""
    host = host.lower().rstrip(".")
    first, _, rest = host.partition(".")
    if first.endswith("-pooler"):
        first = first[: -len("-pooler")]
    return f"{first}.{rest}" if rest else first


def retention_seconds(retention: RetentionConfig, kind: SnapshotKind) -> float | None:
    field = kind.value.replace("-", "_")
    value = getattr(retention, field, None)
    return float(value) if value is not None else None


class NeonProvider:
    """Snapshots as Neon branches. Construct with :meth:`from_config`; tests pass ``transport``."""

    name = "neon"

    def __init__(
        self,
        *,
        project_id: str,
        api_key: str,
        production_branch: str,
        database: str,
        role: str,
        api_url: str = "https://console.neon.tech/api/v2",
        snapshot_endpoint: str = "eager",
        pooled: bool | None = None,
        retention: RetentionConfig | None = None,
        api_key_env: str = "NEON_API_KEY",
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        poll_interval: float | None = None,
        operation_deadline: float = OPERATION_DEADLINE,
        rate_per_minute: float = RATE_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.project_id = project_id
        self.production_branch = production_branch
        self.database = database
        self.role = role
        self.snapshot_endpoint = snapshot_endpoint
        self.pooled = pooled
        self.retention = retention
        self.api = NeonApi(
            project_id=project_id, api_key=api_key, api_url=api_url, api_key_env=api_key_env, transport=transport,
            policy=policy, poll_interval=poll_interval, operation_deadline=operation_deadline,
            rate_per_minute=rate_per_minute, clock=clock, wall=wall,
        )
        self._listing: tuple[float, list[Json], dict[str, Json]] | None = None
        self._failed_state_name = re.compile(re.escape(production_branch) + r"-failed-\d{8}T\d{6}Z")
        self._prod: Json | None = None

    @classmethod
    def from_config(
        cls,
        loaded: LoadedConfig,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        poll_interval: float | None = None,
        **kwargs: Any,
    ) -> NeonProvider:
        p = loaded.config.provider
        assert p.project_id and p.database and p.role  # the config validator requires them for type = "neon"
        return cls(
            project_id=p.project_id,
            api_key=secret(p.api_key_env, "Neon API key"),
            production_branch=p.production_branch,
            database=p.database,
            role=p.role,
            api_url=p.api_url,
            snapshot_endpoint=p.snapshot_endpoint,
            pooled=p.pooled,
            retention=loaded.config.retention,
            api_key_env=p.api_key_env,
            transport=transport,
            policy=policy,
            poll_interval=poll_interval,
            **kwargs,
        )

    def _wait_branch_ready(self, branch_id: str, what: str, deadline: float) -> Json:
        def check() -> Json | None:
            b = self._get_branch_by_id(branch_id, what)
            return b if b.get("current_state") == "ready" else None

        try:
            return self.api.wait_until(check, deadline=deadline, what=f"branch {branch_id} becoming ready")
        except TimeoutError as e:
            raise ProviderError(f"{e} ({what})", hint="check the branch in the Neon console; retry later") from None

    # --- branches --------------------------------------------------------------------------------------

    def _list_all(self, *, fresh: bool = True) -> tuple[list[Json], dict[str, Json]]:
        """Every branch plus annotations keyed by branch id (cursor pagination, stable order)."""
        if not fresh and self._listing and self.api.clock() - self._listing[0] < LIST_CACHE_TTL:
            return self._listing[1], self._listing[2]
        branches: list[Json] = []
        annotations: dict[str, Json] = {}
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"sort_by": "created_at", "sort_order": "asc", "limit": 10000}
            if cursor:
                params["cursor"] = cursor
            body = self.api.json(self.api.call("GET", self.api.path("/branches"), what="list branches", params=params), "list branches")
            page = self.api.field(body, "branches", "list branches")
            if not isinstance(page, list) or not all(isinstance(b, dict) for b in page):
                raise ProviderError("Neon API: list branches: 'branches' is not a list of objects", hint="report it")
            branches.extend(page)
            ann = body.get("annotations") or {}
            if isinstance(ann, dict):
                annotations.update(ann)
            nxt = (body.get("pagination") or {}).get("next")
            if not nxt or not page:
                break
            if nxt in seen:
                raise ProviderError("Neon API: list branches: the pagination cursor repeats", hint="report it")
            seen.add(nxt)
            cursor = str(nxt)
        self._listing = (self.api.clock(), branches, annotations)
        return branches, annotations

    def _forget_listing(self) -> None:
        self._listing = None

    def _find(self, name: str, *, fresh: bool = True) -> tuple[Json | None, Json | None]:
        branches, annotations = self._list_all(fresh=fresh)
        matches = [b for b in branches if b.get("name") == name]
        if not matches:
            return None, None
        if len(matches) > 1:  # names are unique per project; refuse to guess if that ever breaks
            raise ProviderError(f"Neon project has {len(matches)} branches named '{name}'", hint="rename all but one")
        b = matches[0]
        return b, annotations.get(str(b.get("id")))

    def _require(self, name: str, *, fresh: bool = True) -> Json:
        b, _ = self._find(name, fresh=fresh)
        if b is None:
            raise ProviderError(
                f"Neon branch '{name}' not found in project {self.project_id}",
                hint="`deploysafe snapshot list` shows the branches that exist",
            )
        return b

    def _get_branch_by_id(self, branch_id: str, what: str) -> Json:
        body = self.api.json(self.api.call("GET", self.api.path(f"/branches/{branch_id}"), what=what), what)
        branch: Json = self.api.field(body, "branch", what)
        return branch

    def _production_branch(self) -> Json:
        if self._prod is None:
            b, _ = self._find(self.production_branch)
            if b is None:
                raise ProviderError(
                    f"production branch '{self.production_branch}' not found in Neon project {self.project_id}",
                    hint="set [provider] production_branch to the exact branch name (names are case-sensitive)",
                )
            self._prod = b
        return self._prod

    def _to_snapshot(self, b: Json, annotation: Json | None, branches: list[Json]) -> Snapshot:
        try:
            return self._to_snapshot_unchecked(b, annotation, branches)
        except (ValidationError, TypeError, ValueError, AttributeError) as e:
            raise ProviderError(
                f"Neon API: branch {b.get('id') if isinstance(b, dict) else '?'} has an unexpected shape: "
                f"{redact(str(e).splitlines()[0] if str(e) else type(e).__name__)}",
                hint="upgrade deploysafe; if it persists, report it with the branch id",
            ) from None

    def _to_snapshot_unchecked(self, b: Json, annotation: Json | None, branches: list[Json]) -> Snapshot:
        what = "read branch"
        value = (annotation or {}).get("value") or {}
        if not isinstance(value, dict):
            value = {}
        marker = value.get(ANNOTATION_KEY)
        ours = marker is not None and value.get("created_by", "deploysafe") == "deploysafe"
        kind: SnapshotKind | None = None
        if ours:
            try:
                kind = SnapshotKind(str(marker))
            except ValueError:
                kind = None  # a kind from a newer deploysafe: ours, but prune leaves it alone
        bid = str(self.api.field(b, "id", what))
        name = str(self.api.field(b, "name", what))
        source = value.get("source") or None
        if name == self.production_branch:
            # production is known by its name, never by an annotation it inherited (a promoted snapshot keeps its
            # pre-deploy annotation: Neon annotations cannot be edited)
            ours, kind = False, None
        elif not ours and self._failed_state_name.fullmatch(name):
            # Neon's restore cannot annotate the branch it keeps the old state in: its name says it is ours
            ours, kind, source = True, SnapshotKind.FAILED_STATE, self.production_branch
        created = parse_time(self.api.field(b, "created_at", what))
        if created is None:
            raise ProviderError(f"Neon API: branch {bid} has an unreadable created_at")
        size = b.get("logical_size")
        return Snapshot(
            id=bid,
            name=name,
            kind=kind,
            ours=ours,
            created_at=created,
            source=source,
            git_sha=value.get("git_sha") or None,
            size_bytes=int(size) if isinstance(size, int) else None,
            protected=bool(b.get("protected")),
            is_production=b.get("name") == self.production_branch,
            is_default=bool(b.get("default")),
            parent_id=b.get("parent_id"),
            has_children=any(o.get("parent_id") == bid for o in branches),
            expires_at=parse_time(b.get("expires_at")),
            at=parse_time(value.get("at")),
            state=b.get("current_state"),
        )

    # --- Provider protocol -----------------------------------------------------------------------------

    def production(self) -> ProductionInfo:
        """Production's direct URL: session-level work (the advisory lock, pg_dump) cannot go through PgBouncer's
        transaction pooling."""
        b = self._production_branch()
        return ProductionInfo(id=str(b["id"]), name=self.production_branch, url=self._uri(str(b["id"]), pooled=False))

    def _pooled_like(self, like: str | None) -> bool:
        """``[provider] pooled`` when set; else pooled exactly when the app's current URL is (``-pooler`` host)."""
        if self.pooled is not None:
            return self.pooled
        try:
            host = urlsplit(like or "").hostname or ""
        except ValueError:
            host = ""
        return host.split(".", 1)[0].endswith("-pooler")

    def _uri(self, branch_id: str, *, pooled: bool) -> str:
        params = {
            "branch_id": branch_id,
            "database_name": self.database,
            "role_name": self.role,
            "pooled": "true" if pooled else "false",
        }
        what = "get the connection URI"
        body = self.api.json(self.api.call("GET", self.api.path("/connection_uri"), what=what, params=params), what)
        uri = self.api.field(body, "uri", what)
        if not isinstance(uri, str) or not uri:
            raise ProviderError(f"Neon API: {what}: empty URI for branch {branch_id}")

        register_secret(url_password(uri))
        return uri

    def _validate_at(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise PointInTimeError(
                f"timestamp {at.isoformat()} has no time zone", hint="write it with one, e.g. 2026-01-31T12:00:00Z"
            )
        window = self.history_window()
        if not window:
            raise PointInTimeError(
                f"Neon project {self.project_id} keeps no history (history_retention_seconds = 0)",
                hint="raise the history window in the Neon console (Settings > Instant restore)",
            )
        now = self.api.server_now()
        margin = min(PITR_MARGIN, window / 10)  # a few minutes off the edge, never a share of a long window
        oldest = now - timedelta(seconds=window - margin)
        hours = window / 3600
        if at > now:
            raise PointInTimeError(f"timestamp {_iso(at)} is in the future", hint="pick a time in the past")
        if at < oldest:
            raise PointInTimeError(
                f"timestamp {_iso(at)} is outside the history window: the project keeps {hours:g} h of history, "
                f"so the earliest safe time is {_iso(oldest)} (a {margin:.0f} s safety margin before the edge)",
                hint="pick a later time, or raise history_retention_seconds (plan maximum: Free 6 h, Launch 7 d, Scale 30 d)",
            )

    def _expires_at(self, kind: SnapshotKind) -> str | None:
        """Server-side expiry for a new snapshot of ``kind``: its retention from Neon's now (the last Date header),
        capped a margin inside Neon's 30-day maximum. None when the retention is unset or far longer (prune
        deletes those)."""
        if self.retention is None:
            return None
        seconds = retention_seconds(self.retention, kind)
        if seconds is None or seconds <= 0 or timedelta(seconds=seconds) > MAX_EXPIRY + timedelta(days=1):
            return None
        ahead = min(timedelta(seconds=seconds), MAX_EXPIRY - EXPIRY_MARGIN)
        return _iso(self.api.server_now() + ahead)  # create_snapshot has read production by now: Neon's Date is known

    def create_snapshot(
        self,
        name: str,
        kind: SnapshotKind,
        *,
        at: datetime | None = None,
        git_sha: str | None = None,
        serve: bool = False,
    ) -> Snapshot:
        if not name or name != name.strip():
            raise ProviderError(f"invalid snapshot name {name!r}", hint="use a non-empty name without surrounding spaces")
        if at is not None:
            self._validate_at(at)
        prod = self._production_branch()
        serve = serve or (kind == SnapshotKind.PRE_DEPLOY and self.snapshot_endpoint == "eager")
        body = self._snapshot_body(prod, name, kind, at=at, git_sha=git_sha, serve=serve)
        what = f"create branch '{name}'"
        deadline = self.api.clock() + self.api.operation_deadline
        self._forget_listing()
        created = self._post_snapshot(name, body, kind, serve, what, deadline)
        if isinstance(created, Snapshot):  # it existed already: our own rerun, adopted
            return created
        b = self.api.field(created, "branch", what)
        self.api.wait_operations(created.get("operations"), what, deadline)
        ready = self._wait_branch_ready(str(self.api.field(b, "id", what)), what, deadline)
        if serve:
            self._wait_endpoint(ready["id"], what, deadline)
        self._forget_listing()
        branches, annotations = self._list_all()
        return self._to_snapshot(ready, annotations.get(ready["id"]) or {"value": body["annotation_value"]}, branches)

    def _snapshot_body(self, prod: Json, name: str, kind: SnapshotKind, *, at: datetime | None, git_sha: str | None,
                       serve: bool) -> Json:
        """The create-branch request: a child of production (at ``at``), annotated as ours, expiring per retention."""
        annotation = {ANNOTATION_KEY: kind.value, "source": self.production_branch, "created_by": "deploysafe"}
        if git_sha:
            annotation["git_sha"] = git_sha
        if at is not None:
            annotation["at"] = _iso(at)
        branch: Json = {"parent_id": prod["id"], "name": name}
        if at is not None:
            branch["parent_timestamp"] = _iso(at)
        expires = self._expires_at(kind)
        if expires:
            branch["expires_at"] = expires
        body: Json = {"branch": branch, "annotation_value": annotation}
        if serve:
            body["endpoints"] = [{"type": "read_write"}]
        return body

    def _post_snapshot(self, name: str, body: Json, kind: SnapshotKind, serve: bool, what: str,
                       deadline: float) -> Json | Snapshot:
        """POST the branch: Neon's answer, or the snapshot adopted when the name exists already as our rerun."""
        created: Json | None = None
        # 423/429/503 mean "not done, safe to resend" (spec L7217-7236); a gateway error or a lost answer may
        # hide a created branch, so those are reconciled by listing instead of being resent blindly.
        post_policy = replace(self.api.policy, statuses=frozenset({423, 429, 503}))
        for attempt in range(3):
            lost: str | None = None
            try:
                resp = self.api.request(
                    "POST", self.api.path("/branches"), what=what, ok=(201, 200, 409, *UNSURE), json=body, policy=post_policy
                )
                if resp.status_code in UNSURE:
                    lost = f"HTTP {resp.status_code}"
            except httpx.TransportError as e:
                lost = type(e).__name__
            if lost is not None:
                existing, ann = self._find(name)  # it may exist even though the answer was lost
                if existing is not None:
                    return self._adopt(existing, ann, kind, serve, what, deadline)
                if attempt == 2:
                    raise ProviderError(
                        f"Neon API: {what}: no usable answer after 3 tries ({lost}); the branch does not exist",
                        hint="check the network and https://neonstatus.com, then run the command again",
                    )
                self.api.policy.sleep(self.api.policy.backoff(attempt, None))
                continue
            if resp.status_code == 409:
                existing, ann = self._find(name)
                if existing is None:
                    raise self.api.error(resp, what, "")
                return self._adopt(existing, ann, kind, serve, what, deadline)
            created = self.api.json(resp, what)
            break
        assert created is not None
        return created

    def _adopt(
        self, existing: Json, ann: Json | None, kind: SnapshotKind, serve: bool, what: str, deadline: float
    ) -> Snapshot:
        """A branch with the name already exists: ours and of the same kind is a rerun; anything else is refused."""
        branches, _ = self._list_all(fresh=False)
        snap = self._to_snapshot(existing, ann, branches)
        if not snap.ours or snap.kind != kind:
            owner = f"a deploysafe {snap.kind} snapshot" if snap.ours else "not created by deploysafe"
            raise ProviderError(
                f"a Neon branch named '{snap.name}' already exists ({owner})",
                hint="choose another --name, or delete that branch first if it is no longer needed",
            )
        self._wait_branch_ready(snap.id, what, deadline)
        if serve:
            self._ensure_endpoint(existing, snap.name)
        return snap

    def list_snapshots(self) -> list[Snapshot]:
        branches, annotations = self._list_all()
        return [self._to_snapshot(b, annotations.get(str(b.get("id"))), branches) for b in branches]

    def get(self, name: str) -> Snapshot:
        b = self._require(name)
        branches, annotations = self._list_all(fresh=False)
        return self._to_snapshot(b, annotations.get(str(b["id"])), branches)

    def _endpoints(self, branch_id: str) -> list[Json]:
        what = f"list endpoints of branch {branch_id}"
        body = self.api.json(self.api.call("GET", self.api.path(f"/branches/{branch_id}/endpoints"), what=what), what)
        eps = self.api.field(body, "endpoints", what)
        return [e for e in eps if isinstance(e, dict)] if isinstance(eps, list) else []

    def _wait_endpoint(self, branch_id: str, what: str, deadline: float) -> Json:
        def check() -> Json | None:
            for ep in self._endpoints(branch_id):
                if ep.get("type") == "read_write" and ep.get("branch_id") == branch_id:
                    return ep if ep.get("current_state") in ("active", "idle") else None
            return None

        try:
            return self.api.wait_until(check, deadline=deadline, what=f"read-write endpoint of branch {branch_id}")
        except TimeoutError as e:
            raise ProviderError(f"{e} ({what})", hint="check the compute in the Neon console; retry later") from None

    def ensure_serving(self, name: str) -> None:
        """Give the branch a ready read-write compute, waking an archived branch or an idle compute. The expiry
        stays: a snapshot that only stands ready to serve is not in use (:meth:`hold` clears it)."""
        b = self._require(name)
        self._ensure_endpoint(b, name)

    def hold(self, name: str) -> None:
        b = self._require(name, fresh=False)
        if b.get("expires_at"):
            self._patch_branch(str(b["id"]), {"expires_at": None}, f"clear the expiry of '{name}'")

    def _ensure_endpoint(self, b: Json, name: str) -> None:
        bid = str(b["id"])
        what = f"start a compute for branch '{name}'"
        deadline = self.api.clock() + self.api.operation_deadline  # its own deadline, inside the caller's budget
        rw = [e for e in self._endpoints(bid) if e.get("type") == "read_write" and e.get("branch_id") == bid]
        if not rw:
            body = {"endpoint": {"branch_id": bid, "type": "read_write"}}
            resp = self.api.call("POST", self.api.path("/endpoints"), what=what, json=body, ok=(200, 201, 409))
            if resp.status_code != 409:  # 409: "read-write endpoint already exists" -- someone beat us to it
                self.api.wait_operations(self.api.json(resp, what).get("operations"), what, deadline)
        elif b.get("current_state") == "archived" or rw[0].get("current_state") == "idle":
            # an archived branch (idle for a while, docs: branch archiving) or a suspended compute: wake it now,
            # within the deadline, rather than on the app's first connection
            what = f"wake branch '{name}' ({b.get('current_state')}, compute {rw[0].get('current_state')})"
            resp = self.api.call("POST", self.api.path(f"/endpoints/{rw[0]['id']}/start"), what=what)
            self.api.wait_operations(self.api.json(resp, what).get("operations"), what, deadline)
        self._wait_endpoint(bid, what, deadline)
        if b.get("current_state") == "archived":
            self._wait_branch_ready(bid, what, deadline)
            self._forget_listing()

    def connection_url(self, name: str, *, like: str | None = None) -> str:
        b = self._require(name)
        return self._uri(str(b["id"]), pooled=self._pooled_like(like))

    def delete(self, name: str) -> None:
        b, _ = self._find(name, fresh=False)
        if b is None:
            return  # already gone
        bid = str(b["id"])
        branches, _ = self._list_all(fresh=False)
        children = [str(o.get("name")) for o in branches if o.get("parent_id") == bid]
        if children:
            raise ProviderError(
                f"Neon branch '{name}' has child branches ({', '.join(sorted(children))}); Neon cannot delete it",
                hint="delete the children first (leaf-first), or keep this branch",
            )
        if b.get("protected") or b.get("default") or name == self.production_branch:
            raise ProviderError(
                f"Neon branch '{name}' is the production, default or a protected branch; deploysafe never deletes it",
                hint="remove protection or delete it in the Neon console if you really mean to",
            )
        what = f"delete branch '{name}'"
        # resending a DELETE is safe: a branch that is already gone answers 204
        resp = self.api.call("DELETE", self.api.path(f"/branches/{bid}"), what=what, ok=(200, 202, 204, 404), retry_network=True)
        if resp.status_code in (200, 202):
            self.api.wait_operations(self.api.json(resp, what).get("operations"), what)
        if self._listing is not None:  # keep the cached listing true without a re-list per delete
            stamp, bl, ann = self._listing
            self._listing = (stamp, [o for o in bl if o.get("id") != bid], ann)

    def _patch_branch(self, branch_id: str, fields: Json, what: str) -> Json:
        resp = self.api.call("PATCH", self.api.path(f"/branches/{branch_id}"), what=what, json={"branch": fields})
        body = self.api.json(resp, what)
        self.api.wait_operations(body.get("operations"), what)
        self._forget_listing()
        branch: Json = self.api.field(body, "branch", what)
        return branch

    def rename(self, name: str, new_name: str) -> None:
        existing, _ = self._find(new_name)
        if existing is not None:
            raise ProviderError(f"a Neon branch named '{new_name}' already exists", hint="pick another name")
        b = self._require(name, fresh=False)
        self._patch_branch(str(b["id"]), {"name": new_name}, f"rename branch '{name}' to '{new_name}'")
        self._prod = None

    def identify(self, url: str) -> str | None:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None
        if not host:
            return None
        key = _endpoint_host_key(host)
        what = "list endpoints"
        body = self.api.json(self.api.call("GET", self.api.path("/endpoints"), what=what), what)
        eps = body.get("endpoints") or []
        branch_ids = {str(e.get("branch_id")) for e in eps if _endpoint_host_key(str(e.get("host", ""))) == key}
        if len(branch_ids) != 1:
            return None
        (bid,) = branch_ids
        branches, _ = self._list_all()
        for b in branches:
            if b.get("id") == bid:
                return str(b.get("name"))
        return None

    def record_app_target(self, name: str) -> None:
        record.write(self.production().url, name)

    def recorded_app_target(self) -> str | None:
        return record.read(self.production().url)

    def branch_allowance(self) -> int | None:
        return self.project_info().branches_limit

    def history_window(self) -> float | None:
        return float(self.project_info().history_retention_seconds)

    def plan_restore(self, snapshot: str | None = None, *, at: datetime | None = None) -> RestorePlan:
        """Instant restore rules (docs: introduction/branch-restore, guides/backup-restore, introduction/plans):
        only a root branch is restored, from its own history or another root branch's; the snapshot's
        ``parent_lsn`` names the moment, which must still be inside the history window; the kept failed state
        becomes a root branch, so one root-branch and one branch slot must be free."""
        self._forget_listing()
        prod = self._production_branch()
        branches, _ = self._list_all(fresh=False)
        by_id = {str(b.get("id")): b for b in branches}
        name = self.production_branch
        if prod.get("parent_id"):
            parent = by_id.get(str(prod["parent_id"]), {}).get("name", prod["parent_id"])
            return RestorePlan.refused(
                f"production branch '{name}' is a child of '{parent}'; Neon restores only root branches in place",
                "make the project's root branch production (`deploysafe setup` explains how), "
                'or use [rollback] strategy = "repoint"',
            )
        info = self.project_info()
        if info.branches_limit is not None and len(branches) >= info.branches_limit:
            return RestorePlan.refused(
                f"the project has {len(branches)} of its {info.branches_limit} branches; the restore keeps the "
                "failed state in one more", "run `deploysafe prune` or delete unused branches, then retry",
            )
        roots = sum(1 for b in branches if not b.get("parent_id"))
        root_cap = root_branch_limit(info.subscription_type)
        if root_cap is not None and roots >= root_cap:
            return RestorePlan.refused(
                f"the project has {roots} of its {root_cap} root branches; the restore keeps the failed state "
                "in a new root branch",
                "delete old failed-state branches (`deploysafe prune`), or raise the plan",
            )
        if at is not None:
            try:
                self._validate_at(at)
            except PointInTimeError as e:
                return RestorePlan.refused(e.message, e.hint or "pick a later time")
            return RestorePlan(possible=True, target=name, source=name, source_id=str(prod["id"]),
                               source_timestamp=at, own_history=True)
        assert snapshot is not None
        snap, _ = self._find(snapshot, fresh=False)
        if snap is None:
            return RestorePlan.refused(f"Neon branch '{snapshot}' not found", "`deploysafe snapshot list` shows them")
        lsn = snap.get("parent_lsn")
        parent = by_id.get(str(snap.get("parent_id")))
        if parent is None or not lsn:
            return RestorePlan.refused(f"'{snapshot}' has no parent branch and LSN to restore from",
                                       'roll back with [rollback] strategy = "repoint"')
        if parent.get("parent_id"):
            return RestorePlan.refused(
                f"'{snapshot}' was branched from '{parent.get('name')}', which is not a root branch; Neon restores "
                "only from a root branch's history", 'roll back with [rollback] strategy = "repoint"',
            )
        taken = parse_time(snap.get("parent_timestamp")) or parse_time(snap.get("created_at"))
        window = float(info.history_retention_seconds)
        if taken is None or taken < self.api.server_now() - timedelta(seconds=max(0.0, window - PITR_MARGIN)):
            return RestorePlan.refused(
                f"'{snapshot}' was taken before the project's {window / 3600:g} h history window; its moment can no "
                "longer be restored in place", 'roll back with [rollback] strategy = "repoint" (the branch is intact)',
            )
        own = parent.get("id") == prod.get("id")
        notes = () if own else (
            f"restores from root branch '{parent.get('name')}': Neon then keeps the failed state in a branch that "
            "cannot be deleted",
        )
        return RestorePlan(possible=True, target=name, source=str(parent.get("name")), source_id=str(parent["id"]),
                           source_lsn=str(lsn), own_history=own, notes=notes)

    def restore_in_place(self, plan: RestorePlan, preserve_as: str) -> None:
        """POST restore once; a lost or gateway answer is reconciled by looking for ``preserve_as`` (made only by
        that restore) before the request is ever sent again (spec: POST is not safe to resend blindly)."""
        if not plan.possible:
            raise ProviderError(plan.reason, hint=plan.fix)
        prod = self._production_branch()
        what = f"restore '{plan.target}' from '{plan.source}'"
        body: Json = {"source_branch_id": plan.source_id, "preserve_under_name": preserve_as}
        if plan.source_lsn:
            body["source_lsn"] = plan.source_lsn
        elif plan.source_timestamp is not None:
            body["source_timestamp"] = _iso(plan.source_timestamp)
        deadline = self.api.clock() + self.api.operation_deadline
        post_policy = replace(self.api.policy, statuses=frozenset({423, 429, 503}))
        path = self.api.path(f"/branches/{prod['id']}/restore")
        operations: Any = None
        for attempt in range(3):
            lost: str | None = None
            try:
                resp = self.api.request("POST", path, what=what, ok=(200, *UNSURE), json=body, policy=post_policy)
                if resp.status_code in UNSURE:
                    lost = f"HTTP {resp.status_code}"
                else:
                    operations = self.api.json(resp, what).get("operations")
            except httpx.TransportError as e:
                lost = type(e).__name__
            if lost is None:
                break
            kept, _ = self._find(preserve_as)
            if kept is not None:  # the restore happened; only its answer was lost
                break
            if attempt == 2:
                raise ProviderError(
                    f"Neon API: {what}: no usable answer after 3 tries ({lost}); production was not restored",
                    hint="check https://neonstatus.com, then run the rollback again",
                )
            self.api.policy.sleep(self.api.policy.backoff(attempt, None))
        self.api.wait_operations(operations, what, deadline)
        self._wait_branch_ready(str(prod["id"]), what, deadline)
        self._forget_listing()
        self._prod = None

    # --- Neon extras, offered through capabilities(): ProjectFacts and BackupSchedules -----------------

    def branch_endpoints(self, branch_id: str) -> list[Json]:
        """The computes of one branch, as Neon's ``Endpoint`` JSON (id, type, current_state, host, ...)."""
        return self._endpoints(branch_id)

    def protect(self, name: str) -> None:
        b = self._require(name)
        self._patch_branch(str(b["id"]), {"protected": True}, f"protect branch '{name}'")

    def project_info(self, *, details: bool = False) -> ProjectInfo:
        """The project and its plan; ``details`` adds production's size, the root-branch count and Neon's backup
        schedule (each one that cannot be read is named in ``unread``)."""
        what = "read the project"
        body = self.api.json(self.api.call("GET", self.api.path(), what=what), what)
        p = self.api.field(body, "project", what)
        owner = p.get("owner") or {}
        limit = p.get("branch_logical_size_limit_bytes")
        info = ProjectInfo(
            id=str(p.get("id", self.project_id)),
            name=str(p.get("name", "")),
            history_retention_seconds=int(self.api.field(p, "history_retention_seconds", what)),
            branches_limit=owner.get("branches_limit"),
            subscription_type=owner.get("subscription_type"),
            branch_logical_size_limit_bytes=int(limit) if isinstance(limit, int) and limit > 0 else None,
            root_branches_limit=root_branch_limit(owner.get("subscription_type")),
            store_passwords=p.get("store_passwords"),
        )
        if not details:
            return info
        unread: list[str] = []
        branches, _ = self._list_all()
        prod = next((b for b in branches if b.get("name") == self.production_branch), None)
        size = prod.get("logical_size") if prod else None
        schedule: list[Json] | None = None
        try:
            schedule = self.backup_schedule_get()
        except ProviderError as e:
            unread.append(f"Neon's backup schedule ({e.message})")
        if not isinstance(size, int):
            unread.append("production's logical size")
        return info.model_copy(update={
            "logical_size_bytes": size if isinstance(size, int) else None,
            "root_branches": sum(1 for b in branches if not b.get("parent_id")),
            "schedule": schedule,
            "unread": tuple(unread),
        })

    def count_branches(self) -> int:
        what = "count branches"
        body = self.api.json(self.api.call("GET", self.api.path("/branches/count"), what=what), what)
        return int(self.api.field(body, "count", what))

    def backup_schedule_get(self) -> list[Json]:
        prod = self._production_branch()
        what = "read the backup schedule"
        body = self.api.json(self.api.call("GET", self.api.path(f"/branches/{prod['id']}/backup_schedule"), what=what), what)
        items = self.api.field(body, "schedule", what)
        return list(items) if isinstance(items, list) else []

    def backup_schedule_set(self, items: list[Json]) -> None:
        prod = self._production_branch()
        what = "set the backup schedule"
        self.api.call("PUT", self.api.path(f"/branches/{prod['id']}/backup_schedule"), what=what, json={"schedule": items})

    def capabilities(self) -> Capabilities:
        return Capabilities(backup_schedules=self, project_facts=self)

    def lock_url(self, production_url: str) -> str:
        return production_url  # a branch is its own server: the lock lives on production itself

    def close(self) -> None:
        self.api.close()
