"""A real socket server that answers one byte at a time: the "slow body" and "slow headers" faults.

httpx's read timeout bounds each read, so a server that sends a byte every second never trips it;
only a wall-clock deadline on the whole request does (deploysafe.http.fetch). The server writes a
complete, valid HTTP/1.1 answer, just slowly, and stops when the client goes away.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class SlowServer:
    """``mode`` "body": the status line and headers at once, then the body one byte per ``period``;
    "headers": the status line and headers themselves one byte per ``period``."""

    def __init__(self, mode: str = "body", period: float = 1.0, body: bytes = b'{"status": "ok"}' + b" " * 4000) -> None:
        assert mode in ("body", "headers")
        self.mode, self.period, self.body = mode, period, body
        self.connections = 0
        self.closed_by_client = threading.Event()
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)  # the request (small: one read is enough for these tests)
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
                        "\r\n").encode()
                if self.mode == "body":
                    conn.sendall(head)
                    slow = self.body
                else:
                    slow = head + self.body
                for i in range(len(slow)):
                    if self._stop.is_set():
                        return
                    conn.sendall(slow[i : i + 1])
                    time.sleep(self.period)
            except OSError:  # the client hung up: what a deadline does
                self.closed_by_client.set()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


@contextmanager
def slow_server(mode: str = "body", period: float = 1.0) -> Iterator[SlowServer]:
    server = SlowServer(mode, period)
    try:
        yield server
    finally:
        server.close()
