"""Every error class maps to a documented exit code; README and docs list every code."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import deploysafe
from deploysafe import errors
from deploysafe.crash import boundary, remember_state_dir
from deploysafe.errors import EXIT_CODES, DeploysafeError, RollbackFailed, exit_code_for

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gen_docs  # noqa: E402


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def _import_everything() -> None:
    # Error classes defined in adapters only exist once their module is imported.
    for mod in pkgutil.walk_packages(deploysafe.__path__, "deploysafe."):
        if mod.name != "deploysafe.__main__":
            importlib.import_module(mod.name)


def test_every_error_class_maps_to_a_documented_code() -> None:
    _import_everything()
    classes = {DeploysafeError} | _all_subclasses(DeploysafeError)
    assert len(classes) >= 15
    undocumented = {c.__qualname__: c.exit_code for c in classes if c.exit_code not in EXIT_CODES}
    assert not undocumented
    for cls in classes:
        assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__qualname__} needs a one-line docstring"


def test_error_tree_in_the_docstring_matches_the_classes() -> None:
    # The errors.py docstring draws the tree with each code; keep it true.
    drawn = dict(re.findall(r"(\w+)\s+\[(\d+)\]", errors.__doc__ or ""))
    own = [c for c in gen_docs.error_classes() if c.__module__ == "deploysafe.errors"]
    assert {c.__name__: str(c.exit_code) for c in own} == drawn


@pytest.mark.parametrize(
    ("exc", "code"),
    [(errors.ConfigError("x"), 2), (errors.StepTimeout("x"), 3), (errors.PointInTimeError("x"), 3),
     (errors.DeployFailedRolledBack("x"), 1), (RollbackFailed("x"), 4), (errors.LockHeld("x"), 5),
     (KeyboardInterrupt(), 130), (ValueError("bug"), 70)],
)
def test_exit_code_for(exc: BaseException, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code_for(exc) == code
    # The boundary the CLI and the hook run through (deploysafe.crash) maps with exit_code_for.
    remember_state_dir(tmp_path)  # a bug's crash log lands here

    def raising() -> int:
        raise exc

    assert boundary(raising) == code
    assert "Traceback" not in capsys.readouterr().err


def test_message_and_hint() -> None:
    e = errors.PlatformError("vercel refused the token (401)", hint="create a token with project scope", status=401, platform="vercel")
    assert str(e) == "vercel refused the token (401)\n  fix: create a token with project scope"
    assert (e.status, e.platform, e.exit_code) == (401, "vercel", 3)
    assert str(errors.UsageError("bad")) == "bad"


def test_rollback_failed_prints_numbered_manual_steps() -> None:
    e = RollbackFailed("platform refused", manual_steps=["set DATABASE_URL to the snapshot URL", "restart the app"])
    assert str(e) == "platform refused\nDo these steps by hand now:\n  1. set DATABASE_URL to the snapshot URL\n  2. restart the app"


def _readme_table() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- exit-codes:start -->\n(.*?)<!-- exit-codes:end -->", text, re.S)
    assert m, "README.md needs the exit-code table between <!-- exit-codes:start --> and <!-- exit-codes:end -->"
    # A cog block may sit inside the markers; only its output counts.
    return re.sub(r"<!-- \[\[\[cog.*?\]\]\] -->\n|<!-- \[\[\[end\]\]\] -->\n", "", m.group(1), flags=re.S)


def test_readme_lists_every_exit_code() -> None:
    table = _readme_table()
    rows = dict(re.findall(r"^\| (\d+) \| (.*) \|$", table, re.M))
    assert set(map(int, rows)) == set(EXIT_CODES)
    # Same generator as docs/exit-codes.md, so the two never disagree.
    assert table == gen_docs.exit_codes_table(), "regenerate: python scripts/gen_docs.py exit"


def test_exit_codes_doc_and_help_list_every_code() -> None:
    doc = (ROOT / "docs/exit-codes.md").read_text(encoding="utf-8")
    assert gen_docs.exit_codes_table() in doc
    from deploysafe.cli import EXIT_TABLE

    for code, meaning in EXIT_CODES.items():
        assert f"  {code:<4} {meaning}" in EXIT_TABLE.splitlines()
