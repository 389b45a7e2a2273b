"""Shared HTTP plumbing for vendor APIs: one client factory, one retry policy, one poll helper.

Adapters pass an optional ``transport`` (tests hand in a respx router or a MockTransport);
the real transport is built only when none is given. Timeouts are explicit.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """Which answers to retry and how long to wait between tries."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 20.0
    statuses: frozenset[int] = frozenset({423, 429, 502, 503, 504})
    # statuses retried for idempotent methods only (a 500 on a POST may have half-applied)
    idempotent_statuses: frozenset[int] = frozenset({500})
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap * 3)
        exp = min(self.cap, self.base * (2**attempt))
        return random.uniform(exp / 2, exp)  # "equal jitter"


def retry_after_seconds(resp: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP date), or None."""
    raw = resp.headers.get("retry-after")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RetryExhausted(Exception):
    """The last response after the retry budget ran out (status still retryable)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code} after retries")
        self.response = response


def make_client(
    base_url: str,
    headers: dict[str, str],
    *,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 60.0,
    connect_timeout: float = 10.0,
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        follow_redirects=False,
    )


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    policy: RetryPolicy | None = None,
    retry_network: bool | None = None,
    on_retry: Callable[[int, str], None] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send with retries on retryable statuses; network errors are retried only for idempotent methods
    (or when ``retry_network`` says so). Returns the final response, whatever its status; raises the
    last httpx.TransportError when the network never answered."""
    policy = policy or RetryPolicy()
    method = method.upper()
    idempotent = method in IDEMPOTENT
    net_ok = idempotent if retry_network is None else retry_network
    last_exc: httpx.TransportError | None = None
    for attempt in range(policy.attempts):
        try:
            resp = client.request(method, url, **kwargs)
        except httpx.TransportError as e:
            last_exc = e
            if not net_ok or attempt == policy.attempts - 1:
                raise
            if on_retry:
                on_retry(attempt + 1, f"{type(e).__name__}")
            policy.sleep(policy.backoff(attempt, None))
            continue
        retryable = resp.status_code in policy.statuses or (idempotent and resp.status_code in policy.idempotent_statuses)
        if not retryable or attempt == policy.attempts - 1:
            return resp
        if on_retry:
            on_retry(attempt + 1, f"HTTP {resp.status_code}")
        policy.sleep(policy.backoff(attempt, retry_after_seconds(resp)))
    assert last_exc is not None  # loop always returns or raises
    raise last_exc


def poll(
    check: Callable[[], T | None],
    *,
    interval: float,
    timeout: float,
    what: str,
    on_wait: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``check`` until it returns something other than None, or raise TimeoutError naming ``what``."""
    from deploysafe.console import console

    show = on_wait or (lambda elapsed: console.progress(what, elapsed))
    deadline = clock() + timeout
    start = clock()
    try:
        while True:
            result = check()
            if result is not None:
                return result
            now = clock()
            if now >= deadline:
                raise TimeoutError(f"{what} did not finish within {timeout:.0f}s")
            show(now - start)
            sleep(min(interval, max(0.0, deadline - now)))
    finally:
        console.end_progress()


def json_body(resp: httpx.Response) -> Any:
    """Parsed JSON body, or raise ValueError saying the body was not JSON (truncated, HTML error page...)."""
    try:
        return resp.json()
    except ValueError as e:
        snippet = resp.text[:120].replace("\n", " ")
        raise ValueError(f"HTTP {resp.status_code} body is not valid JSON: {snippet!r}") from e
