"""Generated docs never drift, and every command, option and config key is documented."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gen_docs  # noqa: E402

from deploysafe.config import Config, json_schema, parse_config  # noqa: E402

GENERATED = ["docs/cli-reference.md", "docs/configuration.md", "docs/exit-codes.md"]
COMMANDS = [(" ".join(path), cmd) for path, cmd, _ in gen_docs.walk_commands()]
# Groups that only hold subcommands have no example of their own; their subcommands do.
RUNNABLE = [(name, cmd) for name, cmd in COMMANDS if not isinstance(cmd, click.Group) or cmd.invoke_without_command]


def _cogged() -> list[str]:
    files = list(GENERATED)
    if "[[[cog" in (ROOT / "README.md").read_text(encoding="utf-8"):
        files.append("README.md")  # README's exit-code table may be a cog block too
    return files


def test_generated_docs_are_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "--diff", *_cogged()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, (
        "generated docs are stale; run: .venv/bin/cog -r " + " ".join(_cogged()) + "\n" + proc.stdout + proc.stderr
    )


def test_cog_check_fails_when_a_doc_drifts(tmp_path: Path) -> None:
    # The check above can fail: edit a generated line and cog --check says so.
    doc = tmp_path / "exit-codes.md"
    text = (ROOT / "docs/exit-codes.md").read_text(encoding="utf-8").replace("| 5 |", "| 6 |", 1)
    doc.write_text(text.replace("cog.inFile", repr(str(ROOT / "docs/exit-codes.md"))), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "cogapp", "--check", str(doc)], capture_output=True, text=True, check=False)
    assert proc.returncode == 5, proc.stdout + proc.stderr  # cog's "check failed", not a crash
    assert "(changed)" in proc.stdout


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_is_in_the_reference(name: str, cmd: click.Command) -> None:
    ref = (ROOT / "docs/cli-reference.md").read_text(encoding="utf-8")
    assert f"## `{name}`" in ref, f"{name} is missing from docs/cli-reference.md; run cog -r docs/cli-reference.md"


@pytest.mark.parametrize(("name", "cmd"), RUNNABLE, ids=[n for n, _ in RUNNABLE])
def test_every_command_has_a_summary_and_an_example(name: str, cmd: click.Command) -> None:
    doc = cmd.help or ""
    assert doc.strip(), f"{name} has no docstring"
    assert re.search(r"^\s*Example\b[^\n]*:\s*\S", doc, re.M), f"{name}'s docstring has no 'Example: ...' line"


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_option_has_help(name: str, cmd: click.Command) -> None:
    missing = [p.opts[0] for p in cmd.params if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not missing, f"{name}: options without help text: {missing}"


def test_every_config_key_is_described_and_documented() -> None:
    doc = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    undocumented = [f"{section}.{key}" for section, key, field in gen_docs.config_keys() if not (field.description or "").strip()]
    assert not undocumented, f"config keys without a description in deploysafe/config.py: {undocumented}"
    for section, model, array in gen_docs.config_sections():
        assert (f"## `[[{section}]]`" if array else f"## `[{section}]`") in doc
        assert model.__dict__.get("__doc__"), f"[{section}] ({model.__name__}) has no docstring"
    assert set(Config.model_fields) <= {s.split(".")[0] for s, _, _ in gen_docs.config_sections()}


def _example_toml() -> str:
    doc = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    m = re.search(r"## A complete example\n\n```toml\n(.*?)```", doc, re.S)
    assert m, "docs/configuration.md lost its example"
    return m.group(1)


def test_documented_example_is_valid() -> None:
    cfg = parse_config(_example_toml(), env={"NEON_PROJECT_ID": "cool-darkness-123456"})
    assert cfg.provider.project_id == "cool-darkness-123456"
    assert cfg.probes.http[0].url == "http://127.0.0.1:3000/health"
    assert cfg.retention.pre_deploy == 7 * 86400


def test_example_validates_against_the_schema() -> None:
    from jsonschema import Draft202012Validator

    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema).validate(tomllib.loads(_example_toml()))


HAND_WRITTEN = ["docs/recovery-scenarios.md", "docs/exit-codes.md"]


def _invocations(text: str) -> list[str]:
    """Every `deploysafe ...` in inline code or a shell block (comments cut)."""
    found = re.findall(r"`(deploysafe [^`]+)`", text)
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        found += [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("deploysafe ")]
    return found


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    cmd: click.Command = gen_docs.cli
    ctx = click.Context(cmd)
    rest = list(words)
    while rest and isinstance(cmd, click.Group) and not rest[0].startswith("-"):
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            break
        cmd, rest = sub, rest[1:]
    return cmd, rest


@pytest.mark.parametrize("doc", HAND_WRITTEN)
def test_commands_named_in_the_guides_exist(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    calls = _invocations(text)
    assert calls
    for call in calls:
        words = call.split()[1:]
        cmd, rest = _resolve(words)
        unknown = isinstance(cmd, click.Group) and rest and not rest[0].startswith("-")
        assert not unknown, f"{doc}: unknown command in `{call}`"
        known = {o for p in [*cmd.params, *gen_docs.cli.params] for o in getattr(p, "opts", [])}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"{doc}: `{call}`: {cmd.name} has no option {word}"
