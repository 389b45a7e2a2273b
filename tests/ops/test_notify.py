"""Webhook notification over a real HTTP socket: Slack and JSON shapes, failures only warn, URL never printed."""

from __future__ import annotations

import pytest

from deploysafe.config import NotifyConfig
from deploysafe.notify import notify, payload
from support.ops_helpers import Hook


def test_slack_and_json_shapes(hook: Hook) -> None:
    assert notify(NotifyConfig(webhook_env="OPS_WEBHOOK"), "check: FAIL") is True
    assert notify(NotifyConfig(webhook_env="OPS_WEBHOOK", format="json"), "check: WARN", {"checks": [1]}) is True
    assert hook.bodies == [{"text": "check: FAIL"}, {"source": "deploysafe", "text": "check: WARN", "checks": [1]}]
    assert payload(NotifyConfig(), "x") == {"text": "x"}


def test_a_failing_webhook_only_warns_and_never_shows_its_url(hook: Hook, capsys: pytest.CaptureFixture[str]) -> None:
    hook.status = 404
    assert notify(NotifyConfig(webhook_env="OPS_WEBHOOK"), "x") is False
    hook.server.shutdown()
    hook.server.server_close()
    assert notify(NotifyConfig(webhook_env="OPS_WEBHOOK"), "x") is False
    out = capsys.readouterr()
    text = out.out + out.err
    assert "HTTP 404" in text and "could not be reached" in text
    assert "SECRETTOKEN" not in text and "127.0.0.1" not in text


def test_the_body_passes_through_redaction(hook: Hook) -> None:
    # Issue 17: the webhook is one more sink; a registered secret or a URL password in the text never reaches it.
    from deploysafe.redact import register_secret

    register_secret("dht_notifytoken0123456789")
    text = 'restart failed: curl -H "Authorization: Bearer dht_notifytoken0123456789" postgres://app:pw-12345678@db/x'
    assert notify(NotifyConfig(webhook_env="OPS_WEBHOOK", format="json"), text, {"db_password": "pw-12345678"}) is True
    body = hook.bodies[-1]
    assert "dht_notifytoken0123456789" not in str(body) and "pw-12345678" not in str(body)
    assert body["db_password"] == "****" and "postgres://app:****@db/x" in body["text"]


def test_not_configured_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPS_WEBHOOK", raising=False)
    assert notify(NotifyConfig(), "x") is False
    assert notify(NotifyConfig(webhook_env="OPS_WEBHOOK"), "x") is False


@pytest.mark.parametrize("url", ["http://[::1/SECRETTOKEN", "not a url SECRETTOKEN", "ftp://hooks.invalid/SECRETTOKEN"])
def test_a_malformed_webhook_url_never_changes_the_outcome(url: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A rollback that happened is not turned into an internal error by its notification."""
    monkeypatch.setenv("OPS_WEBHOOK", url)
    assert notify(NotifyConfig(webhook_env="OPS_WEBHOOK"), "rolled back") is False
    out = capsys.readouterr()
    assert "could not be reached" in out.err + out.out and "SECRETTOKEN" not in out.err + out.out
