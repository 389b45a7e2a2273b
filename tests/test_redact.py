"""Redaction: no password or registered secret survives, whatever the URL looks like."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from deploysafe.redact import MASK, clear_secrets, redact, redact_obj, register_secret, url_password

# Passwords real users have: letters, digits and the characters that break naive parsers.
_SPECIAL = "@:/?#[]!$&'()*+,;=%~ -._\"\\{}|^`<>"
_alphabet = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + _SPECIAL))
# Long enough that finding it in the output is not a coincidence with the host or user names.
passwords = st.text(alphabet=_alphabet, min_size=8, max_size=40).filter(lambda p: p.strip() == p and len(set(p)) > 3)
# Raw (unencoded) passwords: what a person pastes; no whitespace, no quotes (those end a token in any log).
raw_passwords = st.text(
    alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz0123456789@:/?#!$&*+,;=~-._%^")), min_size=8, max_size=40
).filter(lambda p: len(set(p)) > 3 and ("@" in p or ":" in p or "/" in p))

schemes = st.sampled_from(["postgres", "postgresql", "postgresql+psycopg", "postgres+asyncpg"])
users = st.sampled_from(["neondb_owner", "app", "u", "user.name", "app-rw"])
hosts = st.sampled_from(
    [
        "ep-cool-darkness-123456.us-east-2.aws.neon.tech",
        "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech",
        "127.0.0.1:5432",
        "[::1]:5432",
        "db.internal",
    ]
)
tails = st.sampled_from(["/neondb", "/neondb?sslmode=require", "/app?sslmode=require&channel_binding=require", "", "/"])
contexts = st.sampled_from(
    [
        "{}",
        "connecting to {} failed",
        "DATABASE_URL={}",
        'DATABASE_URL="{}"',
        "url='{}'",
        "{{\"url\": \"{}\", \"x\": 1}}",
        "error: could not reach {}: timeout",
        "a@b.c {} x@y.z",
    ]
)


@given(schemes, users, passwords, hosts, tails, contexts)
@settings(max_examples=200, deadline=None)
def test_percent_encoded_url_password_never_escapes(
    scheme: str, user: str, pw: str, host: str, tail: str, ctx: str
) -> None:
    url = f"{scheme}://{user}:{quote(pw, safe='')}@{host}{tail}"
    # Exactly the password goes; user, host and database stay readable.
    assert redact(ctx.format(url)) == ctx.format(f"{scheme}://{user}:{MASK}@{host}{tail}")


@given(schemes, users, raw_passwords, hosts, tails)
@settings(max_examples=200, deadline=None)
def test_raw_url_password_with_at_colon_slash_never_escapes(
    scheme: str, user: str, pw: str, host: str, tail: str
) -> None:
    url = f"{scheme}://{user}:{pw}@{host}{tail}"
    safe = f"{scheme}://{user}:{MASK}@{host}{tail}"
    for text in ("{}", "connecting to {} failed", 'DATABASE_URL="{}"'):
        assert redact(text.format(url)) == text.format(safe)


@given(users, passwords, hosts)
@settings(max_examples=200, deadline=None)
def test_password_query_parameter_never_escapes(user: str, pw: str, host: str) -> None:
    url = "postgresql://{}/neondb?user={}&password={}&sslmode=require"
    out = redact("cannot connect: " + url.format(host, user, quote(pw, safe="")))
    assert out == "cannot connect: " + url.format(host, user, MASK)


@given(st.text(alphabet=st.sampled_from(list("abcdefXYZ0123456789!#$%&*+,-./:<>?@[]^_{|}~")), min_size=8, max_size=30))
@settings(max_examples=200, deadline=None)
def test_libpq_keyword_password_never_escapes(pw: str) -> None:
    assert redact(f"host=h port=5432 password={pw} dbname=x") == f"host=h port=5432 password={MASK} dbname=x"
    assert redact(f"host=h password='{pw} x' dbname=x") == f"host=h password={MASK} dbname=x"


@given(st.text(min_size=4, max_size=60).filter(lambda s: s.strip() != "" and len(set(s)) > 2), st.text(max_size=40), st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_registered_secret_hidden_in_any_text(secret: str, before: str, after: str) -> None:
    clear_secrets()
    register_secret(secret)
    try:
        out = redact(before + secret + after)
        assert secret not in out
        out_enc = redact(before + quote(secret, safe="") + after)
        assert quote(secret, safe="") not in out_enc
    finally:
        clear_secrets()


def test_registered_token_hidden_in_nested_json() -> None:
    token = "napi_0123456789abcdefTOKEN"
    webhook = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"
    register_secret(token)
    register_secret(webhook)
    obj = {"a": [f"Bearer {token}", {"hook": webhook}], "n": 3, "t": (token,)}
    out = json.dumps(redact_obj(obj))
    assert token not in out and webhook not in out
    assert json.loads(out)["n"] == 3


def test_known_forms_exact() -> None:
    assert redact("postgres://app:s3cret@db:5432/x") == f"postgres://app:{MASK}@db:5432/x"
    assert redact("postgresql://app:p@ss:w/rd@ep-x-pooler.neon.tech/db?sslmode=require") == (
        f"postgresql://app:{MASK}@ep-x-pooler.neon.tech/db?sslmode=require"
    )
    assert redact("postgres://h/db?password=abc123&x=1") == f"postgres://h/db?password={MASK}&x=1"
    assert redact("postgres://h/db?x=1&password=abc123#frag") == f"postgres://h/db?x=1&password={MASK}#frag"
    assert redact("host=h password=a&b dbname=x") == f"host=h password={MASK} dbname=x"
    assert redact("PGPASSWORD=hunter22 psql") == f"PGPASSWORD={MASK} psql"
    # No password: nothing to hide, and the text is unchanged.
    assert redact("postgres://app@db/x") == "postgres://app@db/x"
    assert redact("mail me at a@b.c") == "mail me at a@b.c"


def test_short_values_are_not_registered() -> None:
    # A 1-3 character "secret" would mask every occurrence of common letters.
    register_secret("ab")
    assert redact("abc") == "abc"


def test_url_password_decodes() -> None:
    assert url_password("postgres://u:p%40ss%2Fw@h/db") == "p@ss/w"
    assert url_password("postgres://u@h/db") is None
    assert url_password("postgres://u:pw@[bad") is None


@given(st.text(max_size=40), st.sampled_from(["password", "Password", "token", "api_key", "client_secret"]))
@settings(max_examples=200, deadline=None)
def test_secret_keys_in_quoted_json_never_escape(value: str, key: str) -> None:
    body = json.dumps({"role": {"name": "neondb_owner", key: value}, "id": 7})
    out = redact(f"Neon answered 500: {body}")
    assert json.loads(out.split(": ", 1)[1]) == {"role": {"name": "neondb_owner", key: MASK}, "id": 7}


def test_secret_keys_in_objects_are_masked_but_their_env_names_are_not() -> None:
    obj = {"password": "pw123456", "Token": "tok", "token_env": "NEON_API_KEY", "nested": [{"secret": "s"}], "token": ""}
    assert redact_obj(obj) == {
        "password": MASK, "Token": MASK, "token_env": "NEON_API_KEY", "nested": [{"secret": MASK}], "token": ""
    }


# --- every secret pattern, and registered secrets in every encoding ---------------------

# Values as tokens look: no whitespace or quotes (those end a token in any log line).
token_values = st.text(
    alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/=!$%*@:")),
    min_size=8, max_size=40,
).filter(lambda v: len(set(v)) > 3 and v != MASK and not v.startswith("$"))  # "$X": a shell reference


@given(token_values, st.sampled_from(["PGPASSWORD", "access_token", "NEON_API_KEY", "db_password", "client_secret",
                                      "RENDER_API_KEY", "secret_key", "token", "apikey"]),
       st.sampled_from(["{k}={v}", "export {k}={v}", "env: {k}={v} HOME=/root", "{k}='{v}'", '{k}="{v}"',
                        "https://api.example.com/cb?state=1&{k}={v}", "https://x.test/?{k}={v}#frag"]))
@settings(max_examples=300, deadline=None)
def test_secret_assignments_never_escape(value: str, key: str, form: str) -> None:
    assume(value not in form.format(k=key, v=""))  # a value inside the fixed text cannot be checked for absence
    out = redact(form.format(k=key, v=value))
    assert value not in out
    assert f"{key}=" in out  # the key stays readable


def test_secret_assignment_keeps_neighbours_and_placeholders() -> None:
    assert redact("PGPASSWORD=hunter22 pg_dump -d x") == f"PGPASSWORD={MASK} pg_dump -d x"
    assert redact("https://x.test/cb?access_token=abc123456&state=ok") == f"https://x.test/cb?access_token={MASK}&state=ok"
    assert redact('token_env = "RENDER_API_KEY"') == 'token_env = "RENDER_API_KEY"'  # a variable *name* is no secret
    assert redact("export NEON_API_KEY=... (in CI)") == "export NEON_API_KEY=... (in CI)"


@given(token_values.filter(lambda v: not v.startswith("=")), st.sampled_from(["Bearer", "bearer", "Basic"]),
       st.sampled_from(["Authorization: {s} {v}", "authorization:{s} {v}", "Authorization = \"{s} {v}\"", '{{"Authorization": "{s} {v}"}}',
                        "curl -H 'Authorization: {s} {v}' https://api.render.com"]))
@settings(max_examples=300, deadline=None)
def test_authorization_header_never_escapes(value: str, scheme: str, form: str) -> None:
    assume(value not in form.format(s=scheme, v=""))  # "Authoriz" is in "Authorization: Bearer ****" anyway
    out = redact(form.format(s=scheme, v=value))
    assert value not in out and MASK in out


@given(token_values)
@settings(max_examples=100, deadline=None)
def test_bare_bearer_credential_never_escapes(value: str) -> None:
    assume(value not in "request failed (Bearer ) 401")
    assert value not in redact(f"request failed (Bearer {value}) 401")


@given(st.text(max_size=40), st.sampled_from(["db_password", "secret_key", "api_key", "token", "DB_PASSWORD", "access_token",
                                             "stripeSecretKey", "github-token", "private_key", "credentials"]))
@settings(max_examples=300, deadline=None)
def test_json_secret_keys_never_escape(value: str, key: str) -> None:
    body = json.dumps({"name": "app", key: value, "n": 1})
    out = redact(f"answered 400: {body}")
    assert json.loads(out.split(": ", 1)[1]) == {"name": "app", key: MASK, "n": 1}
    assert redact_obj({"name": "app", key: value}) == {"name": "app", key: MASK if value else ""}


def test_non_secret_keys_are_kept() -> None:
    obj = {"token_env": "RENDER_API_KEY", "api_key_env": "NEON_API_KEY", "webhook_env": "HOOK", "keys": "a", "monkey": "b"}
    assert redact_obj(obj) == obj
    assert redact(json.dumps(obj)) == json.dumps(obj)


@given(token_values.filter(lambda v: v.strip("-") != "" and not v.startswith(("-", "*"))),
       st.sampled_from(["password", "db_password", "secret_key", "api_token", "DATABASE_PASSWORD"]),
       st.sampled_from(["{k}: {v}", "  {k}: {v}", "- {k}: {v}", "{k}: '{v}'", '  "{k}": {v}', "{k}:   {v}  "]))
@settings(max_examples=300, deadline=None)
def test_yaml_secret_values_never_escape(value: str, key: str, form: str) -> None:
    assume(value not in form.format(k=key, v=""))  # "password: ****" holds the key "password" anyway
    text = "services:\n  db:\n" + form.format(k=key, v=value) + "\n  image: postgres:16\n"
    out = redact(text).split("\n")
    assert value not in out[2] and key in out[2] and MASK in out[2]
    assert out[3] == "  image: postgres:16"


@given(schemes, users, passwords, hosts, tails)
@settings(max_examples=200, deadline=None)
def test_slash_escaped_url_password_never_escapes(scheme: str, user: str, pw: str, host: str, tail: str) -> None:
    url = f"{scheme}://{user}:{quote(pw, safe='')}@{host}{tail}"
    escaped = json.dumps({"url": url}).replace("/", "\\/")  # PHP's and some loggers' JSON
    out = redact(escaped)
    assert quote(pw, safe="") not in out
    assert json.loads(out)["url"] == f"{scheme}://{user}:{MASK}@{host}{tail}"


def _forms(secret: str) -> dict[str, str]:
    from urllib.parse import quote_plus

    return {
        "plain": secret,
        "json": json.dumps(secret)[1:-1],
        "json ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "json in json": json.dumps(json.dumps(secret))[1:-1],
        "json slash-escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "every char as \\u": "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c for c in secret),
        "url-encoded": quote(secret, safe=""),
        "url-encoded, upper-case hex": quote(secret, safe="").upper() if secret.isascii() and secret.upper() == secret else quote(secret, safe=""),
        "form-encoded": quote_plus(secret, safe=""),
        "repr": repr(secret)[1:-1],
        "ascii()": ascii(secret)[1:-1],
    }


secrets_any = st.text(min_size=4, max_size=30).filter(lambda s: len(set(s)) > 2 and s.strip() != "")


@given(secrets_any, st.text(max_size=20), st.text(max_size=20))
@settings(max_examples=300, deadline=None)
def test_registered_secret_hidden_in_every_encoding(secret: str, before: str, after: str) -> None:
    clear_secrets()
    register_secret(secret)
    try:
        for name, form in _forms(secret).items():
            out = redact(before + form + after)
            assert form not in out, f"{name} form survived: {out!r}"
    finally:
        clear_secrets()


def test_registered_secret_forms_exact() -> None:
    register_secret('tok"en/é\\x1')
    assert redact('{"text": "hook tok\\"en\\/\\u00e9\\\\x1 failed"}') == '{"text": "hook **** failed"}'
    assert redact("restart: 'tok\"en/\\xe9\\\\x1'") == "restart: '****'"
    assert redact("q=tok%22en%2F%C3%A9%5Cx1&x=1") == "q=****&x=1"


def test_shell_references_are_not_credentials() -> None:
    text = 'curl -H "Authorization: Bearer ${DEPLOY_HOOK_TOKEN}" -H "Authorization: Basic $BASIC" x'
    assert redact(text) == text
