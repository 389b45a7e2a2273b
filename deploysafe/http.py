"""Shared HTTP plumbing: one client factory, one request with a wall-clock deadline, one retry policy,
one poll helper. Every HTTP call deploysafe makes (vendor APIs, health probes, the webhook) goes
through :func:`fetch`.

Adapters pass an optional ``transport`` (tests hand in a respx router or a MockTransport);
the real transport is built only when none is given. Timeouts are explicit.

Why a deadline on top of httpx's timeouts
    httpx's read timeout bounds each read, not the request: a server that trickles one byte a
    second (in its headers or its body) never trips it. :func:`fetch` gives every request a total
    budget (connect + headers + body): a watchdog timer shuts the request's socket down when the
    budget is spent, which wakes the blocked read at once. The socket is learnt from httpx's
    ``trace`` extension when the connection is opened, so clients made here keep no idle
    connections: every request opens the connection its watchdog can close. The body is also
    read through a stream that checks the deadline between chunks, which bounds transports that
    have no socket (a proxy in-process, the tests' mock transports).
"""

from __future__ import annotations

import email.utils
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
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
    # the wall-clock budget of one try: connect, headers and body (see fetch)
    deadline: float = 90.0

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


def make_client(
    base_url: str = "",
    headers: dict[str, str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 60.0,
    connect_timeout: float = 10.0,
) -> httpx.Client:
    """A client for :func:`fetch`: explicit timeouts, no redirects, no idle connections kept (module docstring)."""
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        limits=httpx.Limits(max_keepalive_connections=0),
        follow_redirects=False,
    )


class DeadlineExceeded(httpx.TimeoutException):
    """A request took longer than its whole wall-clock deadline (connect, headers and body together)."""


class _Watchdog:
    """Shuts the request's socket down when the deadline passes; learns the socket from httpx's trace."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.fired = False
        self._done = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sock = sock
            late = self.fired
        if late:  # the deadline passed while connecting
            _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)

    def finish(self) -> None:
        with self._lock:
            self._done = True


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread; close() would not
    except OSError:
        pass


def _capped(timeout: Any, deadline: float) -> httpx.Timeout:
    t = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)

    def cap(v: float | None) -> float:
        return deadline if v is None else min(v, deadline)

    return httpx.Timeout(connect=cap(t.connect), read=cap(t.read), write=cap(t.write), pool=cap(t.pool))


class _DeadlineStream(httpx.SyncByteStream):
    """A response body that raises DeadlineExceeded between chunks once the deadline has passed."""

    def __init__(self, inner: httpx.SyncByteStream, end: float, clock: Callable[[], float], request: httpx.Request,
                 deadline: float) -> None:
        self._inner, self._end, self._clock, self._request, self._deadline = inner, end, clock, request, deadline

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            if self._clock() > self._end:
                raise DeadlineExceeded(f"no complete answer within {self._deadline:g}s", request=self._request)
            yield chunk

    def close(self) -> None:
        self._inner.close()


def fetch(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    **kwargs: Any,
) -> httpx.Response:
    """One request whose connect, headers and body together take at most ``deadline`` seconds; the
    response comes back with its body read. Raises :class:`DeadlineExceeded` (an httpx timeout) when
    the budget is spent, else what httpx raises. ``kwargs`` are :meth:`httpx.Client.build_request`'s."""
    if deadline <= 0:
        raise ValueError("the request deadline must be positive")
    dog = _Watchdog()
    extensions = {**(kwargs.pop("extensions", None) or {}), "trace": dog.trace}
    timeout = _capped(kwargs.pop("timeout", client.timeout), deadline)
    request = client.build_request(method, url, timeout=timeout, extensions=extensions, **kwargs)
    end = clock() + deadline
    timer = threading.Timer(deadline, dog.fire)
    timer.daemon = True
    timer.start()
    try:
        resp = client.send(request, stream=True)
        try:
            if isinstance(resp.stream, httpx.SyncByteStream):
                resp.stream = _DeadlineStream(resp.stream, end, clock, request, deadline)
            resp.read()
        finally:
            resp.close()
        return resp
    except httpx.TransportError as e:
        # a per-read timeout is capped at the deadline, so one that fires once the budget is spent is the deadline
        # too, whichever of the two fired first
        if dog.fired or (isinstance(e, httpx.TimeoutException) and clock() >= end):
            raise DeadlineExceeded(f"no complete answer within {deadline:g}s", request=request) from e
        raise
    finally:
        dog.finish()
        timer.cancel()


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
    """Send with retries on retryable statuses; network errors (a try past ``policy.deadline`` included)
    are retried only for idempotent methods (or when ``retry_network`` says so). Returns the final
    response, whatever its status; raises the last httpx.TransportError when the network never answered."""
    policy = policy or RetryPolicy()
    method = method.upper()
    idempotent = method in IDEMPOTENT
    net_ok = idempotent if retry_network is None else retry_network
    last_exc: httpx.TransportError | None = None
    for attempt in range(policy.attempts):
        try:
            resp = fetch(client, method, url, deadline=policy.deadline, **kwargs)
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
