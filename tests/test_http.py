"""The shared HTTP plumbing: retry policy, Retry-After, network errors, and progress while polling."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from deploysafe.http import DeadlineExceeded, RetryPolicy, fetch, make_client, poll, retry_after_seconds, send
from support.slow_server import slow_server


def client(router: respx.MockRouter) -> httpx.Client:
    return httpx.Client(base_url="https://api.example.test", transport=httpx.MockTransport(router.handler))


def test_retries_429_honouring_retry_after_then_succeeds() -> None:
    router = respx.MockRouter(base_url="https://api.example.test")
    route = router.get("/x").mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)])
    slept: list[float] = []
    resp = send(client(router), "GET", "/x", policy=RetryPolicy(sleep=slept.append))
    assert resp.status_code == 200 and route.call_count == 2 and slept == [7.0]


def test_post_is_not_retried_on_a_network_error_but_get_is() -> None:
    router = respx.MockRouter(base_url="https://api.example.test")
    post = router.post("/x").mock(side_effect=httpx.ConnectError("reset"))
    with pytest.raises(httpx.ConnectError):
        send(client(router), "POST", "/x", policy=RetryPolicy(sleep=lambda s: None))
    assert post.call_count == 1
    get = router.get("/y").mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200)])
    assert send(client(router), "GET", "/y", policy=RetryPolicy(sleep=lambda s: None)).status_code == 200
    assert get.call_count == 2


def test_500_is_retried_only_for_idempotent_methods() -> None:
    router = respx.MockRouter(base_url="https://api.example.test")
    post = router.post("/x").mock(return_value=httpx.Response(500))
    assert send(client(router), "POST", "/x", policy=RetryPolicy(sleep=lambda s: None)).status_code == 500
    assert post.call_count == 1


def test_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    resp = httpx.Response(429, headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)})
    assert 25 <= (retry_after_seconds(resp) or 0) <= 31
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"})) is None


def test_backoff_is_capped_and_jittered() -> None:
    p = RetryPolicy(base=1.0, cap=8.0)
    waits = [p.backoff(10, None) for _ in range(50)]
    assert all(4.0 <= w <= 8.0 for w in waits) and len(set(waits)) > 1


def test_poll_times_out_naming_what_it_waited_for() -> None:
    t = iter(range(0, 1000, 5))
    with pytest.raises(TimeoutError, match="release live did not finish within 20s"):
        poll(lambda: None, interval=5, timeout=20, what="release live", clock=lambda: float(next(t)), sleep=lambda s: None)


def test_long_waits_report_progress_every_10s_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from deploysafe.console import console

    clock = iter(range(0, 100, 3))
    ticks = iter([None] * 9 + ["done"])
    console.configure()
    assert poll(lambda: next(ticks), interval=3, timeout=60, what="release live",
                clock=lambda: float(next(clock)), sleep=lambda s: None) == "done"
    out = capsys.readouterr().out
    assert out.count("release live: still waiting after") == 2  # once per 10 s, not at every poll


# --- the wall-clock deadline of one request (connect + headers + body) -------------------------------
# Real sockets, one byte a second: httpx's read timeout (here 5s) never fires on such a server. The
# bounds are generous (the point is "ends", not "ends fast"); without the deadline these run ~70 minutes.


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_server_trickling_one_byte_a_second_is_cut_at_the_deadline(mode: str) -> None:
    with slow_server(mode, period=1.0) as server, make_client(server.url, timeout=5.0) as c:
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="within 1.5s"):
            fetch(c, "GET", "/health", deadline=1.5)
        assert time.monotonic() - t0 < 1.5 + 3.0
        assert server.closed_by_client.wait(10), "the connection was left open after the deadline"


def test_a_quick_answer_is_read_whole_within_the_deadline() -> None:
    with slow_server("body", period=0.0) as server, make_client(server.url) as c:
        resp = fetch(c, "GET", "/", deadline=10.0)
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert len(resp.content) == len(server.body)


def test_send_retries_an_idempotent_call_past_its_deadline_then_gives_up() -> None:
    with slow_server("body", period=1.0) as server, make_client(server.url, timeout=5.0) as c:
        policy = RetryPolicy(attempts=2, deadline=1.0, sleep=lambda s: None)
        with pytest.raises(DeadlineExceeded):
            send(c, "GET", "/", policy=policy)
        assert server.connections == 2  # each try opened its own connection (the one its watchdog can close)


def test_the_deadline_is_checked_between_body_chunks_on_an_injected_clock() -> None:
    """A transport with no socket (in-process): the body stream itself stops at the deadline."""
    now = [0.0]

    class Trickle(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for _ in range(1000):
                now[0] += 1.0  # one byte a "second" on the injected clock
                yield b" "

    c = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, stream=Trickle())))
    with pytest.raises(DeadlineExceeded):
        fetch(c, "GET", "https://api.example.test/", deadline=30.0, clock=lambda: now[0])
    assert 30.0 < now[0] <= 32.0  # cut at the first chunk past the deadline, not after 1000


def test_a_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError):
        fetch(httpx.Client(), "GET", "https://api.example.test/", deadline=0)


def test_a_read_timeout_shorter_than_the_deadline_stays_a_read_timeout() -> None:
    with slow_server("headers", period=3.0) as server, make_client(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout) as exc:
            fetch(client, "GET", server.url, deadline=10.0)
    assert not isinstance(exc.value, DeadlineExceeded)


def test_a_read_timeout_once_the_budget_is_spent_is_the_deadline() -> None:
    ticks = iter([0.0])  # the start; every later reading is past the end of the budget

    def clock() -> float:
        return next(ticks, 100.0)

    with slow_server("headers", period=3.0) as server, make_client(timeout=0.3) as client:
        with pytest.raises(DeadlineExceeded, match="within 10s"):
            fetch(client, "GET", server.url, deadline=10.0, clock=clock)
