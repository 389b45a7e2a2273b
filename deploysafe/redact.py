"""One place that removes secrets from text.

Every line deploysafe prints, journals or reports passes through :func:`redact`.
It hides the password of any PostgreSQL URL (``postgres://user:PASSWORD@host``),
``password=...`` parameters in URLs and libpq keyword strings, and every secret
value registered with :func:`register_secret` (API tokens, webhook URLs,
passwords read from the environment).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

MASK = "****"

_secrets: set[str] = set()

# scheme://user:password@host  -- the password is everything after the first ':' of the
# userinfo up to the LAST '@' before the host part (passwords may hold '@' unencoded).
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/?#@\s]*):(?P<pw>[^\s/?#]*)@(?P<rest>[^\s@/?#]+)"
)
# PostgreSQL URLs as people paste them: an unencoded password may also hold '/', '?' or '#'.
# So for these schemes the password runs to the last '@' of the whole token (over-hiding a
# query string that holds an '@' is the price of never leaking a password).
_PG_URL_USERINFO = re.compile(
    r"(?P<scheme>\b(?i:postgres(?:ql)?)(?:\+[a-zA-Z0-9]+)?://)(?P<user>[^:/?#@\s\"'<>]*):"
    r"(?P<pw>[^\s\"'<>]*)@(?P<rest>[^\s@/?#\"'<>]+)"
)
_PASSWORD_PARAM = re.compile(
    r"(?i)(?P<key>\b(?:pg)?(?:password|passwd|pwd|apikey|api_key|token)\s*=\s*)(?P<val>'[^']*'|[^\s;'\"]+)"
)


# Vendor responses quoted in errors (e.g. a Neon role's {"password": "..."}) and JSON-like
# details: a value under one of these exact keys is a secret whoever forgot to register it.
_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_key", "apikey", "access_token", "client_secret"})
_JSON_SECRET = re.compile(
    r'(?i)(?P<key>"(?:' + "|".join(sorted(_SECRET_KEYS)) + r')"\s*:\s*)"(?:[^"\\]|\\.)*"'
)


def _mask_param(m: re.Match[str]) -> str:
    # In a URL query ('?password=...&x=1') the value ends at '&' or '#'; in a libpq keyword
    # string ('host=h password=a&b') it ends only at whitespace, so '&' belongs to the password.
    val, tail = m.group("val"), ""
    if m.start() > 0 and m.string[m.start() - 1] in "?&" and not val.startswith("'"):
        cut = re.search(r"[&#]", val)
        if cut:
            val, tail = val[: cut.start()], val[cut.start() :]
    return m.group("key") + MASK + tail


def register_secret(value: str | None) -> None:
    """Remember a secret so that every later :func:`redact` call hides it (and its URL-encoded form)."""
    if not value or len(value) < 4:
        return
    _secrets.add(value)
    encoded = quote(value, safe="")
    if encoded != value:
        _secrets.add(encoded)
    decoded = unquote(value)
    if decoded != value and len(decoded) >= 4:
        _secrets.add(decoded)


def clear_secrets() -> None:
    """Forget registered secrets (tests)."""
    _secrets.clear()


def _mask_userinfo(m: re.Match[str]) -> str:
    pw = m.group("pw")
    if pw == "" or pw == MASK:
        return m.group(0)
    return f"{m.group('scheme')}{m.group('user')}:{MASK}@{m.group('rest')}"


def redact(text: str) -> str:
    """Return ``text`` with every known secret and URL password replaced by ``****``."""
    if not text:
        return text
    # Longest first, so a secret containing another is hidden whole.
    for s in sorted(_secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, MASK)
    prev = None
    while prev != text:  # a password holding '@' needs more than one pass
        prev = text
        text = _PG_URL_USERINFO.sub(_mask_userinfo, text)
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _PASSWORD_PARAM.sub(_mask_param, text)
    text = _JSON_SECRET.sub(lambda m: m.group("key") + f'"{MASK}"', text)
    return text


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {
            k: MASK if isinstance(k, str) and k.lower() in _SECRET_KEYS and isinstance(v, str) and v else redact_obj(v)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


def url_password(url: str) -> str | None:
    """The password of a PostgreSQL URL, decoded, or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return unquote(parts.password) if parts.password else None
    except ValueError:
        return None
