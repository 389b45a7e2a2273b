"""Env file rewrite: only the one variable changes; every other byte, the mode and the owner stay."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploysafe.envfile import read_var, replace_var, write_var

KEY = "DATABASE_URL"
# An independent reading of "this line assigns KEY" (not the module's own regex).
_ASSIGNS_KEY = re.compile(rf"^[ \t]*(export[ \t]+)?{KEY}[ \t]*=")

LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKS), max_size=30)
urls = st.builds(
    "postgresql://app:{}@ep-x-{}.neon.tech/neondb?sslmode=require".format,
    st.text("abcXYZ0123456789%@:/?#$\"'\\ ", min_size=1, max_size=20),
    st.text("abcdef0123456789", min_size=1, max_size=8),
)
other_line = st.one_of(
    st.just(""),
    st.builds("# {}".format, values),
    st.builds("{}={}".format, st.sampled_from(["PORT", "NODE_ENV", "DATABASE_URL_UNPOOLED", "XDATABASE_URL", "database_url"]), values),
    st.builds('export SECRET="{}"'.format, values),
    values.filter(lambda s: not _ASSIGNS_KEY.match(s)),
)
key_line = st.builds(
    "{}{}{}{}".format,
    st.sampled_from(["", "  ", "export "]),
    st.just(KEY),
    st.sampled_from(["=", " = ", "= "]),
    st.one_of(values.map(lambda v: f'"{v}"'), st.text("abc:/@?=.", max_size=20), st.just("'x y' # old")),
)
files = st.tuples(st.lists(st.one_of(other_line, other_line, key_line), max_size=8), st.sampled_from(["\n", "\r\n"]), st.booleans()).map(
    lambda t: t[1].join(t[0]) + (t[1] if t[2] and t[0] else "")
)


def _others(text: str) -> list[str]:
    """Every line that does not assign KEY ('\r' kept; a missing final '\n' may be added on append)."""
    return [ln.rstrip("\n") for ln in re.findall(r"[^\n]*\n|[^\n]+$", text) if not _ASSIGNS_KEY.match(ln)]


@given(files, st.one_of(values.filter(lambda v: v == v.strip()), urls))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_replace_changes_only_the_variable(text: str, value: str) -> None:
    new = replace_var(text, KEY, value)
    assert _others(new) == _others(text)
    assigned = [ln for ln in re.findall(r"[^\n]*\n|[^\n]+$", new) if _ASSIGNS_KEY.match(ln)]
    assert assigned, "the variable must be present afterwards"
    # Idempotent: writing the same value again changes nothing.
    assert replace_var(new, KEY, value) == new


@given(files, st.one_of(values.filter(lambda v: v == v.strip()), urls))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_written_value_reads_back(tmp_path: Path, text: str, value: str) -> None:
    env = tmp_path / ".env"
    env.write_bytes(text.encode("utf-8"))
    write_var(env, KEY, value)
    assert read_var(env, KEY) == value
    assert _others(env.read_bytes().decode("utf-8")) == _others(text)


def test_exact_rewrite_keeps_comments_quotes_and_export() -> None:
    text = '# prod\nexport DATABASE_URL = "postgres://a@old/db" # was\nPORT=3000\n\nDATABASE_URL=\'x\'\r\nTAIL=1'
    assert replace_var(text, KEY, 'postgres://u:p"w\\@new/db') == (
        '# prod\nexport DATABASE_URL = "postgres://u:p\\"w\\\\@new/db"\nPORT=3000\n\n'
        'DATABASE_URL="postgres://u:p\\"w\\\\@new/db"\r\nTAIL=1'
    )


def test_empty_assignment_is_filled_in_place() -> None:
    # "KEY=" followed by a newline: the value goes on KEY's line and the newline after it stays.
    assert replace_var("DATABASE_URL=\nPORT=1\n", KEY, "v") == 'DATABASE_URL="v"\nPORT=1\n'
    assert replace_var("DATABASE_URL=\r\n", KEY, "v") == 'DATABASE_URL="v"\r\n'


def test_crlf_file_keeps_its_line_endings(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"# x\r\nDATABASE_URL=old\r\nPORT=1\r\n")
    write_var(env, KEY, "new")
    assert env.read_bytes() == b'# x\r\nDATABASE_URL="new"\r\nPORT=1\r\n'


def test_absent_variable_is_appended_after_a_final_newline() -> None:
    assert replace_var("PORT=1", KEY, "v") == 'PORT=1\nDATABASE_URL="v"\n'
    assert replace_var("", KEY, "v") == 'DATABASE_URL="v"\n'


@pytest.mark.parametrize("bad", ["a\nb", "a\rb"])
def test_value_with_a_line_break_is_refused(tmp_path: Path, bad: str) -> None:
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=old\n")
    with pytest.raises(ValueError, match="a value with a newline cannot be written to an env file"):
        write_var(env, KEY, bad)
    assert env.read_text() == "DATABASE_URL=old\n"
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temp file left behind


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_mode_is_kept(tmp_path: Path, mode: int) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\nDATABASE_URL=old\n")
    os.chmod(env, mode)
    write_var(env, KEY, "postgres://new")
    assert stat.S_IMODE(env.stat().st_mode) == mode
    assert env.read_text() == 'A=1\nDATABASE_URL="postgres://new"\n'


def test_new_file_is_private(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    write_var(env, KEY, "postgres://u:pw@h/db")
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert read_var(env, KEY) == "postgres://u:pw@h/db"


def test_read_var_last_assignment_wins_and_missing_file_is_none(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    assert read_var(env, KEY) is None
    env.write_text("DATABASE_URL=first\nDATABASE_URL=second # comment\nOTHER=x\n")
    assert read_var(env, KEY) == "second"
    assert read_var(env, "MISSING") is None
