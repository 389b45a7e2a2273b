"""One place that removes secrets from text.

Every line deploysafe prints, journals, reports, posts to a webhook or saves in a crash log
passes through :func:`redact` (or :func:`redact_obj` for JSON-like data). It hides:

- every value registered with :func:`register_secret` (API tokens, webhook URLs, passwords,
  every value ``${VAR}`` brought into the config), also in its JSON-escaped (``\\"``,
  ``\\uXXXX``, ``\\/``), URL-encoded (``%XX``, ``+``) and ``repr`` (``\\xNN``) forms, and
  mixtures of them;
- the password of any URL (``postgres://user:PASSWORD@host``), also with ``\\/``-escaped slashes;
- the value of ``key=value`` pairs whose key names a secret (``password=``, ``PGPASSWORD=``,
  ``access_token=``, ``NEON_API_KEY=``... in URLs, libpq strings and environment dumps);
- ``Authorization:`` header values and ``Bearer``/``Basic`` credentials;
- JSON string values and YAML values under a key naming a secret (``"db_password": "..."``,
  ``secret_key:``, ``"token": "..."``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

MASK = "****"

_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None  # every registered secret in every form, longest first

# A key names a secret when it ends with one of these words ("db_password", "secret_key",
# "access_token", "NEON_API_KEY"); "token_env" (the *name* of a variable) does not.
_SECRET_WORD = r"(?:password|passwd|pwd|secret|token|api_?key|apikey|access_?key|private_?key|secret_?key|credentials?)"
_SECRET_KEY = re.compile(r"(?i)[\w.\-]*" + _SECRET_WORD)

_SCHEME_SEP = r"(?::\/\/|:\\\/\\\/)"  # "://" or JSON's "\/"-escaped ":\/\/"
# scheme://user:password@host  -- the password is everything after the first ':' of the
# userinfo up to the LAST '@' before the host part (passwords may hold '@' unencoded).
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*" + _SCHEME_SEP + r")(?P<user>[^:/?#@\s\\]*):(?P<pw>[^\s/?#]*)@(?P<rest>[^\s@/?#\\]+)"
)
# PostgreSQL URLs as people paste them: an unencoded password may also hold '/', '?' or '#'.
# So for these schemes the password runs to the last '@' of the whole token (over-hiding a
# query string that holds an '@' is the price of never leaking a password).
_PG_URL_USERINFO = re.compile(
    r"(?P<scheme>\b(?i:postgres(?:ql)?)(?:\+[a-zA-Z0-9]+)?" + _SCHEME_SEP + r")(?P<user>[^:/?#@\s\"'<>\\]*):"
    r"(?P<pw>[^\s\"'<>]*)@(?P<rest>[^\s@/?#\"'<>\\]+)"
)
# key=value where the key names a secret: URL query parameters, libpq keyword strings,
# `env` dumps (PGPASSWORD=..., access_token=..., NEON_API_KEY=...). "..." (a placeholder in a hint) is kept.
_PASSWORD_PARAM = re.compile(
    r"(?i)(?P<key>(?<![\w.\-])[\w.\-]*" + _SECRET_WORD + r"\s*=\s*)(?!\.\.\.(?:[\s)]|$))(?P<val>'[^']*'|\"[^\"]*\"|[^\s;'\"]+)"
)
# Authorization: Bearer xyz / Basic xyz / a bare token (the header form, ':'; `Authorization = "ENV_NAME"` in
# [probes.http] headers_env names a variable); and a Bearer/Basic credential anywhere. A shell reference
# ($TOKEN, ${TOKEN}) names a variable and is kept.
_AUTH_HEADER = re.compile(
    r"(?i)(?P<key>\b(?:proxy-)?authorization\"?\s*:\s*\"?(?:(?:bearer|basic|token|bot|digest)\s+)?+)(?!\$\{?[A-Za-z_])(?P<val>[^\s\"',;]+)"
)
_BEARER = re.compile(r"(?i)(?P<key>\b(?:bearer|basic)\s+)(?!\$\{?[A-Za-z_])(?P<val>[^\s\"',;()<>\[\]{}]{8,})")
# "key": "value" in JSON text, for any key naming a secret (vendor responses quoted in errors).
_JSON_SECRET = re.compile(r'(?i)(?P<key>"[\w.\-]*' + _SECRET_WORD + r'"\s*:\s*)"(?:[^"\\]|\\.)*"')
# key: value at the start of a YAML line (config dumps, CI files quoted in errors).
_YAML_SECRET = re.compile(
    r"(?im)^(?P<key>[ \t]*(?:-[ \t]+)?[\"']?[\w.\-]*" + _SECRET_WORD + r"[\"']?[ \t]*:[ \t]+)(?P<val>\S[^\r\n]*?)[ \t]*$"
)


def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret (``password``, ``db_password``, ``secret_key``, ``token``...)."""
    return _SECRET_KEY.fullmatch(key) is not None


def _mask_param(m: re.Match[str]) -> str:
    # In a URL query ('?password=...&x=1') the value ends at '&' or '#'; in a libpq keyword
    # string ('host=h password=a&b') it ends only at whitespace, so '&' belongs to the password.
    val, tail = m.group("val"), ""
    if val == MASK:
        return m.group(0)
    if m.start() > 0 and m.string[m.start() - 1] in "?&" and not val.startswith(("'", '"')):
        cut = re.search(r"[&#]", val)
        if cut:
            val, tail = val[: cut.start()], val[cut.start() :]
    return m.group("key") + MASK + tail


def _mask_val(m: re.Match[str]) -> str:
    return m.group(0) if m.group("val") in (MASK, f'"{MASK}"', f"'{MASK}'") else m.group("key") + MASK


def _hex(n: int, width: int) -> str:
    """Regex for ``n`` as hex digits of either case."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{n:0{width}x}")


_SHORT_ESCAPES = {"\n": "n", "\t": "t", "\r": "r", "\b": "b", "\f": "f"}


def _char_forms(c: str) -> str:
    """Every way ``c`` shows up in JSON, URL-encoded, repr or shell-escaped text, as one regex group."""
    bs = r"\\+"  # one or more backslashes: escaped once, or again inside a JSON string
    forms = [re.escape(c)]
    o = ord(c)
    if o < 0x10000:
        forms.append(bs + "u" + _hex(o, 4))
    else:
        hi, lo = 0xD800 + ((o - 0x10000) >> 10), 0xDC00 + ((o - 0x10000) & 0x3FF)
        forms.append(bs + "u" + _hex(hi, 4) + bs + "u" + _hex(lo, 4))
        forms.append(bs + "U" + _hex(o, 8))
    if o < 0x100:
        forms.append(bs + "x" + _hex(o, 2))
    if c in _SHORT_ESCAPES:
        forms.append(bs + _SHORT_ESCAPES[c])
    if not c.isalnum() and c not in " \n\t\r":
        forms.append(bs + re.escape(c))  # \" \\ \/ \' and shell escapes
    if not (c.isascii() and (c.isalnum() or c in "-._~")):
        forms.append("".join("%" + _hex(b, 2) for b in c.encode("utf-8")))
    if c == " ":
        forms.append(r"\+")
    return "(?:" + "|".join(forms) + ")" if len(forms) > 1 else forms[0]


def _compiled() -> re.Pattern[str] | None:
    global _secret_re
    if _secret_re is None and _secrets:
        alts = ["".join(_char_forms(c) for c in s) for s in sorted(_secrets, key=len, reverse=True)]
        _secret_re = re.compile("|".join(alts))
    return _secret_re


def register_secret(value: str | None) -> None:
    """Remember a secret so that every later :func:`redact` call hides it, in any encoding (module docstring)."""
    global _secret_re
    if not value or len(value) < 4:
        return
    new = {value}
    decoded = unquote(value)  # given percent-encoded (a URL password): hide the decoded form too
    if decoded != value and len(decoded) >= 4:
        new.add(decoded)
    if not new <= _secrets:
        _secrets.update(new)
        _secret_re = None


def clear_secrets() -> None:
    """Forget registered secrets (tests)."""
    global _secret_re
    _secrets.clear()
    _secret_re = None


def _mask_userinfo(m: re.Match[str]) -> str:
    pw = m.group("pw")
    if pw == "" or pw == MASK:
        return m.group(0)
    return f"{m.group('scheme')}{m.group('user')}:{MASK}@{m.group('rest')}"


def redact(text: str) -> str:
    """Return ``text`` with every known secret and secret-shaped value replaced by ``****``."""
    if not text:
        return text
    pattern = _compiled()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    prev = None
    while prev != text:  # a password holding '@' needs more than one pass
        prev = text
        text = _PG_URL_USERINFO.sub(_mask_userinfo, text)
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _JSON_SECRET.sub(lambda m: m.group("key") + f'"{MASK}"', text)
    text = _AUTH_HEADER.sub(_mask_val, text)
    text = _BEARER.sub(_mask_val, text)
    text = _PASSWORD_PARAM.sub(_mask_param, text)
    text = _YAML_SECRET.sub(_mask_val, text)
    return text


_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::public)?\}")


def _masked_whole(key: Any, value: Any) -> bool:
    # A value that is only a ${VAR} reference (config show) names a variable: it holds no secret.
    return (isinstance(key, str) and is_secret_key(key) and isinstance(value, str) and value != ""
            and _REFERENCE.fullmatch(value) is None)


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure; a non-empty string under a secret-naming key is masked whole."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: MASK if _masked_whole(k, v) else redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


def url_password(url: str) -> str | None:
    """The password of a PostgreSQL URL (``user:PASSWORD@`` or ``?password=``), decoded, or None."""
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(url)
        if parts.password:
            return unquote(parts.password)
        given = parse_qs(parts.query).get("password")
        return given[-1] if given and given[-1] else None
    except ValueError:
        return None

