"""The Neon API client under the Neon provider: pacing, retries, operations and error mapping.

Raw httpx through :mod:`deploysafe.http` (no SDK). Every response is checked here: non-OK answers become
a ``ProviderError`` with Neon's code, message, request id and a fix hint; 423/429/503 are retried with
backoff (``shared/research/neon-api.md`` 1.2, 1.3); every returned operation is awaited (1.1), a failed one
re-read once because Neon retries internally; a client-side token bucket keeps one run under Neon's
account-wide rate limit. What the calls mean for snapshots lives in :mod:`deploysafe.providers.neon.provider`.
"""

from __future__ import annotations

import email.utils
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from deploysafe.errors import ProviderError
from deploysafe.http import RetryPolicy, json_body, make_client, poll, send
from deploysafe.providers.base import Json, utcnow
from deploysafe.redact import redact, register_secret

T = TypeVar("T")

SUCCEEDED = frozenset({"finished", "skipped"})
FAILED = frozenset({"failed", "error", "cancelled"})
OPERATION_DEADLINE = 120.0
RATE_PER_MINUTE = 700.0  # Neon's documented account-wide limit (research 1.3)
RATE_BURST = 40.0
UNSURE = (500, 502, 504)  # a create answered like this may still have happened


class Pacer:
    """Client-side token bucket so one run stays under Neon's account-wide rate limit instead of
    bouncing off 429s (the console and other tools share the same budget)."""

    def __init__(self, per_minute: float, burst: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.rate = per_minute / 60.0 * 0.97  # a little under the limit: clocks and buckets never agree exactly
        self.burst = burst
        self.tokens = burst
        self.clock = clock
        self.sleep = sleep
        self.last = clock()
        self.lock = threading.Lock()

    def take(self) -> None:
        if self.rate <= 0:
            return
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            self.tokens -= 1.0
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)


def hint(status: int | None, message: str, api_key_env: str, code: str = "") -> str | None:
    """What to do about a refused call, from Neon's error code, else its message and HTTP status."""
    if code == "ROOT_BRANCHES_LIMIT_EXCEEDED":
        return ("the plan's root-branch limit is reached (each in-place restore keeps the failed state as a root "
                "branch): run `deploysafe prune`, delete old failed-state branches, or raise the plan")
    if code == "BRANCHES_LIMIT_EXCEEDED":
        return "the plan's branch limit is reached: run `deploysafe prune`, delete unused branches, or raise the plan"
    low = message.lower()
    if not code and "limit" in low and "branch" in low:  # older answers carry no code
        return "the plan's branch limit is reached: run `deploysafe prune`, delete unused branches, or raise the plan"
    if status == 401:
        return f"check {api_key_env}: create a key at https://console.neon.tech/app/settings/api-keys and export it"
    if status == 403:
        return f"the key in {api_key_env} has no access to this project; use a key of the project's owner or org"
    if status == 404:
        return "check [provider] project_id and the branch name (`deploysafe snapshot list` shows what exists)"
    if status == 423:
        return "another operation holds the project; wait for it to finish and run the command again"
    if status == 429:
        return "Neon's rate limit (700 requests/minute per account) was hit; wait a minute and retry"
    if status is not None and status >= 500:
        return "Neon had a server error; retry in a few minutes, see https://neonstatus.com"
    return None


class NeonApi:
    """One Neon project's API: paced, retried calls whose answers are checked, and operations awaited."""

    def __init__(
        self,
        *,
        project_id: str,
        api_key: str,
        api_url: str = "https://console.neon.tech/api/v2",
        api_key_env: str = "NEON_API_KEY",
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        poll_interval: float | None = None,
        operation_deadline: float = OPERATION_DEADLINE,
        rate_per_minute: float = RATE_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        register_secret(api_key)
        self.project_id = project_id
        self.api_key_env = api_key_env
        # 423 "another operation holds the project" is ridden out for about 2 minutes (terraform waits 120 s)
        self.policy = policy or RetryPolicy(attempts=12, cap=15.0)
        self.wall = wall
        self._server_offset: timedelta | None = None  # Neon's clock minus ours, from the last Date header
        self.poll_interval = 2.0 if poll_interval is None else poll_interval
        self.operation_deadline = operation_deadline
        self.clock = clock
        self._pacer = Pacer(rate_per_minute, RATE_BURST, clock, self.policy.sleep)
        self._client = make_client(
            api_url.rstrip("/") + "/",
            {"Authorization": f"Bearer {api_key}", "Accept": "application/json", "User-Agent": "deploysafe"},
            transport=transport,
            timeout=60.0,
        )

    def path(self, suffix: str = "") -> str:
        return f"projects/{self.project_id}{suffix}"

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        ok: Iterable[int] = (200, 201),
        retry_network: bool | None = None,
        policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One API call (with the shared retry policy); non-OK answers become ProviderError.
        httpx.TransportError propagates: callers that can reconcile (create) catch it, ``call`` wraps it."""
        self._pacer.take()
        headers = {"X-Request-ID": str(uuid.uuid4())}
        resp = send(
            self._client, method, path, policy=policy or self.policy, retry_network=retry_network, headers=headers,
            **kwargs,
        )
        self._note_server_time(resp)
        if resp.status_code not in set(ok):
            raise self.error(resp, what, headers["X-Request-ID"])
        return resp

    def _note_server_time(self, resp: httpx.Response) -> None:
        raw = resp.headers.get("date")
        if not raw:
            return
        try:
            server = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            server = server.replace(tzinfo=UTC)
        self._server_offset = server - self.wall()

    def server_now(self) -> datetime:
        """Neon's wall clock as the last response's Date header showed it (ours until a response came)."""
        return self.wall() + (self._server_offset or timedelta(0))

    def call(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.request(method, path, what=what, **kwargs)
        except httpx.TransportError as e:
            raise ProviderError(
                f"Neon API: {what}: no answer ({type(e).__name__}: {redact(str(e))})",
                hint="check the network and https://neonstatus.com, then run the command again",
            ) from e

    def json(self, resp: httpx.Response, what: str) -> Json:
        try:
            body = json_body(resp)
        except ValueError as e:
            raise ProviderError(
                f"Neon API: {what}: {redact(str(e))}", status=resp.status_code, hint="retry; if it persists, report it"
            ) from None
        if not isinstance(body, dict):
            raise ProviderError(f"Neon API: {what}: expected a JSON object, got {type(body).__name__}")
        return body

    def error(self, resp: httpx.Response, what: str, sent_request_id: str) -> ProviderError:
        message = ""
        code = ""
        request_id = resp.headers.get("x-request-id")
        try:
            body = resp.json()
            if isinstance(body, dict):
                message = str(body.get("message") or "")
                code = str(body.get("code") or "")
                request_id = request_id or (body.get("request_id") or None)
        except ValueError:
            message = resp.text[:200].replace("\n", " ")
        request_id = request_id or sent_request_id
        text = f"Neon API: {what} failed: HTTP {resp.status_code}"
        if code:
            text += f" {code}"
        if message:
            text += f": {message}"
        text += f" (request id {request_id})"
        return ProviderError(
            redact(text),
            status=resp.status_code,
            request_id=request_id,
            code=code or None,
            hint=hint(resp.status_code, message, self.api_key_env, code),
        )

    @staticmethod
    def field(obj: Mapping[str, Any], key: str, what: str) -> Any:
        try:
            return obj[key]
        except (KeyError, TypeError):
            raise ProviderError(
                f"Neon API: {what}: response has no '{key}' (the API shape changed?)",
                hint="upgrade deploysafe; if it persists, report it with the request id",
            ) from None

    # --- operations ------------------------------------------------------------------------------------

    def wait_operations(self, operations: Any, what: str, deadline: float | None = None) -> None:
        """Poll every operation to a terminal state; a failure is re-read once (Neon retries internally)."""
        if not isinstance(operations, list):
            return
        deadline = deadline or (self.clock() + self.operation_deadline)
        for op in operations:
            if not isinstance(op, dict):
                raise ProviderError(f"Neon API: {what}: an operation is not an object", hint="report it")
            op_id = self.field(op, "id", what)
            status = op.get("status")
            if status in SUCCEEDED:
                continue
            reread = False
            last = ""

            def check(op_id: str = op_id) -> str | None:
                nonlocal reread, last
                body = self.json(self.call("GET", self.path(f"/operations/{op_id}"), what=f"{what}: operation"), what)
                current = self.field(body, "operation", what)
                if not isinstance(current, dict):
                    raise ProviderError(f"Neon API: {what}: operation {op_id} is not an object")
                st = str(current.get("status", ""))
                if st in SUCCEEDED:  # `skipped`: Neon found nothing to do
                    return st
                if st == "failed" and (current.get("retry_at") or int(current.get("failures_count") or 0) > 0):
                    last = f"failed {current.get('failures_count') or 1} time(s), Neon retries it" + (
                        f": {current['error']}" if current.get("error") else "")
                    return None  # Neon retries it (failures_count, retry_at): wait within the deadline
                if st == "failed" and not reread:
                    reread = True  # a retry may not be scheduled yet: read it once more before giving up
                    return None
                if st in FAILED:
                    raise ProviderError(
                        f"Neon operation {current.get('action')} ({op_id}) for {what} ended '{st}'"
                        + (f": {current['error']}" if current.get("error") else ""),
                        hint="see the project's Operations tab in the Neon console, then run the command again"
                        if st != "cancelled" else "someone cancelled it in Neon; run the command again",
                    )
                return None  # scheduling/running/cancelling, or a status this version does not know yet

            try:
                self.wait_until(check, deadline=deadline, what=f"Neon operation {op.get('action', '?')} ({op_id})")
            except TimeoutError as e:
                raise ProviderError(
                    f"{e} while {what}" + (f" ({last})" if last else ""),
                    hint="Neon is slow or stuck; check the console's Operations tab and retry later",
                ) from None

    def wait_until(self, check: Callable[[], T | None], *, deadline: float, what: str) -> T:
        """Poll ``check`` at this API's pace until it returns a value or the ``deadline`` (on :attr:`clock`)
        passes: then TimeoutError naming ``what``."""
        return poll(check, interval=self.poll_interval, timeout=max(0.0, deadline - self.clock()), what=what,
                    clock=self.clock, sleep=self.policy.sleep)

    def close(self) -> None:
        self._client.close()
