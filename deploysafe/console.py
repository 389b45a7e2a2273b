"""Human output on stderr (or stdout without --json), machine output on stdout.

Everything printed passes through :func:`deploysafe.redact.redact`. On a TTY lines are
short and coloured; elsewhere each line carries a UTC timestamp. On GitHub Actions,
``group()`` wraps output in ``::group::`` and warnings/errors become annotations.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from deploysafe.redact import redact, redact_obj


class Console:
    def __init__(self) -> None:
        self.json_mode = False
        self.verbose = False
        self.color = True
        self._progress_open = False  # a progress line is on screen, waiting for its newline
        self._progress_said: dict[str, int] = {}  # what -> last 10-second mark reported (not a TTY)

    def configure(self, *, json_mode: bool = False, verbose: bool = False, no_color: bool = False) -> None:
        self.json_mode = json_mode
        self.verbose = verbose
        self.color = not no_color and "NO_COLOR" not in os.environ

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self.json_mode else sys.stdout

    @property
    def tty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def github(self) -> bool:
        return os.environ.get("GITHUB_ACTIONS") == "true"

    @property
    def _gh_stream(self) -> TextIO:
        # The runner reads workflow commands on stdout and stderr alike; with --json, stdout
        # carries only the JSON result, so `deploysafe --json deploy | jq` works on Actions too.
        return sys.stderr if self.json_mode else sys.stdout

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and self.tty else text

    def _emit(self, text: str, stream: TextIO | None = None) -> None:
        stream = stream or self.stream
        text = redact(text)
        if not self.tty:
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            text = "\n".join(f"{stamp} {line}" if line else line for line in text.split("\n"))
        print(text, file=stream, flush=True)

    def info(self, text: str) -> None:
        self._emit(text)

    def plain(self, text: str) -> None:
        """Print without timestamps (tables, reports)."""
        print(redact(text), file=self.stream, flush=True)

    def detail(self, text: str) -> None:
        if self.verbose:
            self._emit(text)

    def ok(self, text: str) -> None:
        self._emit(self._paint("✓ ", "32") + text)

    def warn(self, text: str) -> None:
        if self.github:
            print(f"::warning::{_gh_escape(redact(text))}", file=self._gh_stream, flush=True)
        self._emit(self._paint("! ", "33") + text)

    def error(self, text: str) -> None:
        if self.github:
            print(f"::error::{_gh_escape(redact(text))}", file=self._gh_stream, flush=True)
        self._emit(self._paint("✗ ", "31") + text, sys.stderr)

    def progress(self, what: str, elapsed: float) -> None:
        """A long wait: on a terminal one line rewritten in place; elsewhere a timestamped line every 10 s."""
        if self.json_mode and not self.tty:
            return
        if self.tty:
            print(f"\r… {redact(what)}: {elapsed:4.0f}s", end="", file=self.stream, flush=True)
            self._progress_open = True
            return
        mark = int(elapsed // 10)
        if mark > self._progress_said.get(what, 0):
            self._progress_said[what] = mark
            self._emit(f"… {what}: still waiting after {elapsed:.0f}s")

    def end_progress(self) -> None:
        self._progress_said.clear()  # the next wait starts counting from zero
        if self._progress_open:
            print(file=self.stream, flush=True)
            self._progress_open = False

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        if self.github:
            print(f"::group::{redact(title)}", file=self._gh_stream, flush=True)
        try:
            yield
        finally:
            if self.github:
                print("::endgroup::", file=self._gh_stream, flush=True)

    def result(self, obj: Any) -> None:
        """The machine-readable result of a --json command, on stdout."""
        print(json.dumps(redact_obj(obj), indent=2, default=str, ensure_ascii=False), file=sys.stdout, flush=True)


def _gh_escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


console = Console()
