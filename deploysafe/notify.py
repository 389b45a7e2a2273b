"""Post a short message to the team's webhook (Slack-compatible or generic JSON).

The webhook URL is a secret (it carries its own token): it is read from the environment
variable named by ``[notify] webhook_env``, registered for redaction and never printed.
A webhook that fails only warns: notification never changes a command's outcome.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from deploysafe.console import console
from deploysafe.http import RetryPolicy, make_client, send
from deploysafe.redact import redact_obj, register_secret

if TYPE_CHECKING:
    import httpx

    from deploysafe.config import NotifyConfig

TIMEOUT = 10.0


def webhook_url(cfg: NotifyConfig) -> str | None:
    """The webhook URL from the environment (registered as a secret), or None when not configured."""
    if not cfg.webhook_env:
        return None
    url = os.environ.get(cfg.webhook_env, "").strip()
    if not url:
        return None
    register_secret(url)
    return url


def payload(cfg: NotifyConfig, text: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Slack-compatible ``{"text": ...}`` or, for ``format = "json"``, ``{"text", "source", ...data}``."""
    if cfg.format == "slack":
        return {"text": text}
    return {"source": "deploysafe", "text": text, **(data or {})}


def notify(
    cfg: NotifyConfig, text: str, data: dict[str, Any] | None = None, *, transport: httpx.BaseTransport | None = None
) -> bool:
    """Post ``text`` to the configured webhook; True when delivered. Never raises: failures only warn."""
    url = webhook_url(cfg)
    if url is None:
        return False

    try:
        with make_client(transport=transport, timeout=TIMEOUT) as client:
            # POST is not idempotent: retry only statuses that say "nothing happened" (429/503...), not network errors.
            body = redact_obj(payload(cfg, text, data))  # the same redaction as every other sink
            policy = RetryPolicy(attempts=2, cap=2.0, deadline=TIMEOUT)
            resp = send(client, "POST", url, json=body, policy=policy)
    except Exception as e:  # noqa: BLE001 - a notification never changes a command's outcome
        # HTTP errors, an invalid URL, a socket error: the text can hold the URL, so say only what kind it was
        console.warn(f"notify: the webhook in ${cfg.webhook_env} could not be reached ({type(e).__name__}); outcome unchanged")
        return False
    if resp.status_code >= 300:
        console.warn(f"notify: the webhook in ${cfg.webhook_env} answered HTTP {resp.status_code}; outcome unchanged")
        return False
    return True
