"""Property-based tests the other test files do not already hold.

Already elsewhere, not repeated here: the retention planner never selects an in-use, production, default,
protected, parent-of-another, not-ours or newest-of-its-kind snapshot for any set of snapshots and clocks
(tests/snapshots/test_retention.py::test_prune_never_selects_what_must_stay and
::test_headroom_is_as_safe_and_deletes_no_more_than_needed); URL and token redaction
(tests/test_redact.py); the env-file rewrite (tests/test_envfile.py); durations (tests/test_durations.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deploysafe.journal import Journal, read_journal, runs
from deploysafe.lock import lock_key
from deploysafe.providers.local import MAX_IDENT, db_name_for
from deploysafe.snapshots.manage import pre_deploy_name, validate_name

names = st.text(min_size=1, max_size=120)


@settings(max_examples=300, deadline=None)
@given(names, names)
def test_local_database_names_fit_and_never_collide(a: str, b: str) -> None:
    """A snapshot name maps to a PostgreSQL database name of at most 63 bytes; two names never share one."""
    for n in (a, b):
        db = db_name_for(n)
        assert len(db.encode("utf-8")) <= MAX_IDENT
        assert db == db_name_for(n)
        if len(n.encode("utf-8")) <= MAX_IDENT:
            assert db == n  # short names are kept as they are: what `snapshot list` shows is what exists
    if a != b:
        assert db_name_for(a) != db_name_for(b)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=60)), st.datetimes(timezones=st.just(UTC)))
def test_pre_deploy_names_are_always_valid_snapshot_names(sha: str | None, now: datetime) -> None:
    """Whatever --sha or $GITHUB_SHA holds (newlines, NUL, quotes), the pre-deploy name is a valid, short name."""
    name = pre_deploy_name(now, sha)
    assert validate_name(name) == name
    assert name.startswith("pre-deploy-")
    assert all(ch.isascii() and (ch.isalnum() or ch in "-TZ") for ch in name), name


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_lock_key_is_a_stable_signed_64_bit_key(db: str) -> None:
    k = lock_key(db)
    assert -(2**63) <= k < 2**63
    assert k == lock_key(db)


steps = st.lists(st.tuples(st.sampled_from(["preflight", "snapshot", "generate", "lint", "push", "probes", "rollback"]),
                           st.sampled_from(["ok", "failed"])), min_size=1, max_size=7)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps, st.integers(0, 10_000), st.text(max_size=30))
def test_a_journal_torn_anywhere_still_reads_and_says_where_it_was_cut(
    tmp_path: Path, done: list[tuple[str, str]], cut: int, detail: str
) -> None:
    """SIGKILL can land mid-write: any byte prefix of the journal reads without error, every complete line is
    kept, and a step whose end line is missing is reported as cut off."""
    state = tmp_path / f"s{abs(hash((tuple(done), cut, detail)))}"
    j = Journal(state, "deploy")
    for name, outcome in done:
        try:
            with j.step(name, note=detail):
                if outcome == "failed":
                    raise RuntimeError(detail or "x")
        except RuntimeError:
            pass
    with j.step("push", note=detail):  # the step the kill lands in: its end line is never written
        data = (state / "journal.jsonl").read_bytes()
    torn = data[: min(cut, len(data))]
    (state / "journal.jsonl").write_bytes(torn)
    recs = read_journal(state)
    complete, pos = [], 0  # the records whose bytes are all there (a cut just before "\n" leaves one whole)
    for line in data.split(b"\n")[:-1]:
        if pos + len(line) <= len(torn):
            complete.append(line)
        pos += len(line) + 1
    assert len(recs) == len(complete)
    for rec, line in zip(recs, complete, strict=True):
        assert rec == json.loads(line)
    grouped = runs(recs)
    if recs:
        (run,) = grouped
        assert run["outcome"] in ("ok", "failed", "cut off")
        if recs[-1]["outcome"] == "running":
            assert run["outcome"] == "cut off"
    else:
        assert grouped == []


passwords = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=8, max_size=24).filter(
    lambda p: len(set(p)) > 3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(passwords, st.sampled_from(["dotenv", "render", "command"]))
def test_manual_steps_never_carry_the_snapshot_password(tmp_path: Path, password: str, platform: str) -> None:
    """The steps printed for a person (exit 4) name the snapshot, never its connection string or password."""
    from deploysafe.config import LoadedConfig, parse_config
    from deploysafe.deploy.rollback import Prepared, manual_steps

    extra = {"dotenv": 'env_file = ".env"\nrestart = "systemctl restart app"',
             "render": 'service_id = "srv-1"', "command": 'set_command = "x"\nrestart = "y"'}[platform]
    text = f"""[provider]
type = "local"
database_url = "postgresql://app@127.0.0.1:5432/shop"
[platform]
type = "{platform}"
{extra}
"""
    loaded = LoadedConfig(parse_config(text, env={}), tmp_path / "deploysafe.toml")
    url = f"postgresql://app:{quote(password, safe='')}@127.0.0.1:5432/pre-deploy-x"
    prepared = Prepared("pre-deploy-x", url, None, "shop", 0.1)
    other = Prepared("pre-deploy-x", "postgresql://app:unrelated-secret@127.0.0.1:5432/pre-deploy-x", None, "shop", 0.1)
    for done in ([], ["set"], ["set", "pick_up"]):
        # a generated password that is a word of the steps themselves ("snapshot") proves nothing: skip it
        assume(password not in "\n".join(manual_steps(loaded, other, done)))
        text_out = "\n".join(manual_steps(loaded, prepared, done))
        assert password not in text_out and quote(password, safe="") not in text_out
        assert "pre-deploy-x" in text_out or done
