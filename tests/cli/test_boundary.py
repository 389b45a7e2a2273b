"""One error boundary for the CLI and the pre-push hook (deploysafe/crash.py), the adapters every
command opens and closes, the shared options, and no import cycle in the package."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
import pytest

import deploysafe
from deploysafe import errors
from deploysafe.cli.context import adapters
from deploysafe.crash import boundary
from support.cli import run_cli_in_process

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig

ROOT = Path(__file__).resolve().parents[2]
_STAMP = re.compile(r"^\d\d:\d\d:\d\d (✗ |✓ )?", re.M)
SECRET = "Sup3r-S3cret-pw"
DB_URL = f"postgres://app:{SECRET}@db.internal:5432/prod"
CONFIG = '[provider]\ntype = "local"\ndatabase_url = "${DATABASE_URL}"\n\n[platform]\ntype = "dotenv"\nenv_file = ".env"\n'

# One error of each kind that reaches the top, and the code docs/exit-codes.md documents for it.
RAISED = [
    (errors.UsageError("bad use"), 2), (errors.ConfigError("bad config"), 2), (errors.StepTimeout("slow"), 3),
    (errors.PointInTimeError("too old"), 3), (errors.DeployFailedRolledBack("rolled back"), 1),
    (errors.RollbackFailed("stuck"), 4), (errors.PartialChange("half"), 4), (errors.LockHeld("busy"), 5),
    (errors.Interrupted("stopped"), 130), (KeyboardInterrupt(), 130), (RuntimeError("a bug"), 70),
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    monkeypatch.setenv("DATABASE_URL", DB_URL)
    (tmp_path / "deploysafe.toml").write_text(CONFIG)
    return tmp_path


@pytest.mark.parametrize(("exc", "code"), RAISED, ids=[type(e).__name__ for e, _ in RAISED])
def test_a_command_exits_with_the_mapped_code(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, exc: BaseException, code: int
) -> None:
    # The same mapper decides the exit code for the CLI, the hook and tests/test_errors.py.
    assert errors.exit_code_for(exc) == code and code in errors.EXIT_CODES

    def raising(state_dir: Path) -> list[object]:
        raise exc

    monkeypatch.setattr("deploysafe.journal.read_journal", raising)
    r = run_cli_in_process(capsys, "history")
    assert r.code == code
    out, err = r.stdout, r.stderr
    err = _STAMP.sub("", err)
    assert out == "" and "Traceback" not in err
    if isinstance(exc, errors.DeploysafeError):
        assert err == f"{exc}\n"
    elif isinstance(exc, KeyboardInterrupt):
        assert err.strip() == "interrupted"
    else:
        assert err.startswith("internal error (a bug in deploysafe): RuntimeError: a bug; the traceback is in ")


def test_the_hook_entry_uses_the_same_boundary_and_crash_log(tmp_path: Path) -> None:
    """`python -c ... prepush.main` (the installed script) reports a bug like every command: exit 70,
    one redacted line, the traceback in a new 0600 file under $XDG_STATE_HOME/deploysafe."""
    code = (
        "import sys\nfrom deploysafe.hook import prepush\n"
        "def boom(*a, **k):\n    raise RuntimeError(sys.argv[1])\n"
        "prepush.run_pre_push = boom\nfrom deploysafe.redact import register_secret\nregister_secret(sys.argv[2])\n"
        "sys.exit(prepush.main(['origin', 'url']))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DEPLOYSAFE_CONFIG"} | {"XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-c", code, f"cannot reach {DB_URL}", SECRET], input="", env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 70
    m = re.fullmatch(r"internal error \(a bug in deploysafe\): RuntimeError: cannot reach postgres://app:\*\*\*\*@db\.internal"
                     r":5432/prod; the traceback is in (\S+)\n", proc.stderr)
    assert m, proc.stderr
    log = Path(m.group(1))
    assert log.parent == tmp_path / "state" / "deploysafe" and log.stat().st_mode & 0o777 == 0o600
    assert "Traceback" in log.read_text() and SECRET not in log.read_text()


def test_the_hook_entry_says_a_deploysafe_error_and_returns_its_code(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys; from deploysafe.hook.prepush import main; sys.exit(main(['one']))"],
                          input="", cwd=tmp_path, capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stderr) == (
        2, "usage: python -m deploysafe.hook.prepush [--legacy PATH] REMOTE URL\n  fix: git passes REMOTE and URL\n")


def test_boundary_passes_exit_codes_through() -> None:
    assert boundary(lambda: 4) == 4

    def exits() -> int:
        sys.exit(3)

    assert boundary(exits) == 3


# --- adapters ---------------------------------------------------------------------------------


class _Closable:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def close(self) -> None:
        self.log.append(f"close {self.name}")


def test_adapters_close_the_provider_and_the_platform_built_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []

    def make_provider(loaded: object) -> _Closable:
        log.append("open provider")
        return _Closable(log, "provider")

    def try_platform(loaded: object) -> _Closable:
        log.append("open platform")
        return _Closable(log, "platform")

    monkeypatch.setattr("deploysafe.providers.make_provider", make_provider)
    monkeypatch.setattr("deploysafe.snapshots.manage.try_platform", try_platform)
    loaded = cast("LoadedConfig", object())  # the fakes above never read it
    with adapters(loaded) as a:
        assert log == ["open provider"]  # the platform only when a command asks for it
    assert log == ["open provider", "close provider"]
    log.clear()
    with pytest.raises(RuntimeError), adapters(loaded) as a:
        assert a.platform is a.platform  # built once
        raise RuntimeError("the command failed")
    assert log == ["open provider", "open platform", "close provider", "close platform"]


# --- shared options ---------------------------------------------------------------------------


def test_a_commands_json_flag_is_the_global_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPLOYSAFE_CONFIG", raising=False)
    (tmp_path / "0001.sql").write_text('ALTER TABLE "users" ADD COLUMN "age" integer;\n')
    outputs = []
    for args in (["lint", "--json", "0001.sql"], ["--json", "lint", "0001.sql"]):
        r = run_cli_in_process(capsys, *args)
        assert r.code == 0
        outputs.append(r.json)
    assert outputs[0] == outputs[1] and outputs[0]["files"] == ["0001.sql"]


def test_json_flag_decorator_keeps_the_commands_help() -> None:
    from deploysafe.cli.options import json_option

    @click.command()
    @json_option("Every row as JSON.")
    def cmd() -> None:
        """A command."""

    assert "--json  Every row as JSON." in cmd.get_help(click.Context(cmd))


# --- imports ----------------------------------------------------------------------------------


def _module_imports() -> dict[str, set[str]]:
    """Every deploysafe module and the deploysafe modules it imports, at module level or inside a function."""
    base = Path(deploysafe.__file__).parent
    files = {}
    for path in base.rglob("*.py"):
        parts = list(path.relative_to(base.parent).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                found = resolve(t) if t.startswith("deploysafe") else None
                if found and found != mod:
                    edges[mod].add(found)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle_in_the_package() -> None:
    edges = _module_imports()
    assert "deploysafe.crash" in edges["deploysafe.hook.prepush"]  # sanity: function-level imports are seen too
    assert "deploysafe.ops.recovery" in edges["deploysafe.cli.deploy"]
    assert _cycle(edges) is None, " -> ".join(_cycle(edges) or [])


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_hook_entry_imports_the_boundary_not_the_cli() -> None:
    """The installed hook script imports the boundary (standard library only), not the CLI, click or the error classes."""
    code = "import sys\nfrom deploysafe.hook.prepush import main\nprint(sorted(m for m in sys.modules if m.startswith('deploysafe')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == str(["deploysafe", "deploysafe.crash", "deploysafe.hook", "deploysafe.hook.prepush"])


def test_every_command_module_command_is_registered_under_its_own_name() -> None:
    """The group imports a command's module when the command runs; the registry must name every command."""
    import importlib

    from deploysafe.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    defined: list[click.Command] = []
    nested: list[click.Command] = []
    for module in {m for m, _ in COMMANDS.values()}:
        for value in vars(importlib.import_module(f"deploysafe.cli.{module}")).values():
            if isinstance(value, click.Command):
                defined.append(value)
            if isinstance(value, click.Group):
                nested += value.commands.values()
    assert sorted(c.name or "" for c in defined if all(c is not n for n in nested)) == sorted(COMMANDS)
    assert cli.get_command(ctx, "frobnicate") is None
