"""Plumbing shared by the HTTP platform adapters (Vercel, Render, Fly.io, Heroku, Railway): one client, one place
that judges answers, one deadline wrapper."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

import httpx

from deploysafe.config import secret
from deploysafe.errors import PlatformError
from deploysafe.http import RetryPolicy, json_body, make_client, poll, send
from deploysafe.platforms.base import Release, ReleaseRollback
from deploysafe.redact import redact

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig, PlatformConfig


class HttpAdapter(ABC):
    """Base of the HTTP adapters: subclasses name the vendor and their ``[platform]`` keys."""

    name: str
    label: str  # the vendor's name in messages
    status_page: str
    default_token_var: str

    api_base: str
    secret_what: str  # how the token is named in "variable is empty" errors

    def __init__(
        self,
        *,
        token: str,
        token_var: str | None = None,
        var: str = "DATABASE_URL",
        api_url: str | None = None,
        poll_interval: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.var = var
        self.token_var = token_var or self.default_token_var
        self.poll_interval = poll_interval
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._client = make_client(api_url or self.api_base, self._headers(token), transport=transport)

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @classmethod
    @abstractmethod
    def _ids(cls, pc: PlatformConfig) -> dict[str, Any]:
        """The adapter's own ``[platform]`` keys (project, service_id, app...)."""

    @classmethod
    def from_config(
        cls,
        loaded: LoadedConfig,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> Self:
        """Build from ``[platform]``; the token comes from the environment through ``config.secret``."""
        pc = loaded.config.platform
        token_var = pc.token_var or cls.default_token_var
        return cls(
            token=secret(token_var, cls.secret_what),
            token_var=token_var,
            var=pc.var,
            api_url=pc.api_url,
            poll_interval=pc.poll_interval,
            transport=transport,
            policy=policy,
            **cls._ids(pc),
            **kwargs,
        )

    def _request(self, method: str, path: str, what: str, *, missing_ok: bool = False, **kw: Any) -> Any:
        """Send with retries and judge the answer: parsed JSON (``{}`` when empty), None for an allowed 404,
        else PlatformError with the vendor's message (redacted) and a fix hint."""
        resp = self._send(method, path, what, allow=frozenset({404}) if missing_ok else frozenset(), **kw)
        if missing_ok and resp.status_code == 404:
            return None
        if not resp.content:
            return {}
        try:
            return json_body(resp)
        except ValueError as e:
            raise PlatformError(f"{self.label}: {what}: {redact(str(e))}", status=resp.status_code, platform=self.name) from None

    def _send(
        self, method: str, path: str, what: str, *, allow: frozenset[int] = frozenset(), **kw: Any
    ) -> httpx.Response:
        """Send with retries; the response when it succeeded (or its status is in ``allow``), else PlatformError
        with the vendor's message (redacted) and a fix hint."""
        try:
            resp = send(self._client, method, path, policy=self._policy, **kw)
        except httpx.TransportError as e:
            raise PlatformError(
                f"{self.label}: {what}: the API did not answer ({type(e).__name__})",
                hint=f"check the network and {self.status_page}, then run again",
                platform=self.name,
            ) from None
        if not resp.is_success and resp.status_code not in allow:
            try:
                text = self._error_text(resp.json())
            except (ValueError, AttributeError, TypeError):
                text = resp.text[:200]
            raise PlatformError(
                f"{self.label}: {what} failed: HTTP {resp.status_code}: {redact(text or resp.reason_phrase)}",
                hint=self._hint(resp.status_code, text or ""),
                status=resp.status_code,
                platform=self.name,
            )
        return resp

    @abstractmethod
    def _error_text(self, body: Any) -> str:
        """The vendor's error message inside an error body."""

    @abstractmethod
    def _hint(self, status: int, text: str = "") -> str | None:
        """How to fix a failed call with this status (401: the token, 404: the configured id...)."""

    def _wait(self, check: Callable[[], Release | None], *, what: str, timeout: float, hint: str) -> Release:
        """Poll ``check`` every ``poll_interval`` until it returns a release; the deadline is a PlatformError."""
        try:
            return poll(
                check, interval=self.poll_interval, timeout=timeout, what=what, clock=self._clock, sleep=self._policy.sleep
            )
        except TimeoutError as e:
            raise PlatformError(f"{self.label}: {e}", hint=hint, platform=self.name) from None

    # -- bringing back a release: every HTTP platform can -----------------------------------------------

    def release_rollback(self) -> ReleaseRollback | None:
        return self

    def release_rollback_fix(self) -> str:
        return ""

    @abstractmethod
    def how(self) -> str:
        """One line for the plan: how a previous release is brought back."""

    @abstractmethod
    def return_to(self, release: Release, url: str | None) -> Release:
        """Run ``release``'s code again, with ``url`` set when given (see ``ReleaseRollback``)."""

    def close(self) -> None:
        self._client.close()
