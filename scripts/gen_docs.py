"""Generators for the docs that must never drift from the code.

Called from cog blocks in docs/*.md (and README.md's exit-code table):

    cog -r docs/cli-reference.md docs/configuration.md docs/exit-codes.md README.md

``tests/test_docs.py`` runs ``cog --check`` on the same files, so CI fails when a command,
an option, a config key or an exit code changes and the docs were not regenerated.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # cog runs this from any folder
    sys.path.insert(0, str(ROOT))

from deploysafe.cli import cli  # noqa: E402
from deploysafe.config import Config, _serialize_duration  # noqa: E402
from deploysafe.durations import parse_duration  # noqa: E402
from deploysafe.errors import EXIT_CODES, DeploysafeError  # noqa: E402

# Fixed width, so the output does not depend on the terminal that ran cog.
WIDTH = 100


# --- commands -------------------------------------------------------------------------------


def walk_commands(
    cmd: click.Command = cli, path: tuple[str, ...] = ("deploysafe",), parent: click.Context | None = None
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    """Every command and group, depth first, in the order ``--help`` lists them."""
    settings = {**cmd.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    ctx = click.Context(cmd, info_name=path[-1], parent=parent, **settings)
    yield path, cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk_commands(sub, path + (name,), ctx)


def _anchor(path: tuple[str, ...]) -> str:
    return "-".join(path)


def cli_reference() -> str:
    """docs/cli-reference.md body: every command's --help, with a contents list."""
    entries = list(walk_commands())
    out = ["## Commands", ""]
    for path, cmd, _ in entries[1:]:
        summary = cmd.get_short_help_str(limit=WIDTH)
        out.append(f"- [`{' '.join(path)}`](#{_anchor(path)}): {summary}")
    out.append("")
    for path, cmd, ctx in entries:
        out += [f'<a id="{_anchor(path)}"></a>', "", f"## `{' '.join(path)}`", "", "```text"]
        out += [line.rstrip() for line in cmd.get_help(ctx).splitlines()]
        out += ["```", ""]
    return "\n".join(out).rstrip() + "\n"


# --- configuration --------------------------------------------------------------------------


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _is_duration(field: FieldInfo | None, tp: Any = None) -> bool:
    metadata = list(field.metadata) if field is not None else []
    if tp is not None and typing.get_origin(tp) is typing.Annotated:
        metadata += list(typing.get_args(tp)[1:])
    return any(getattr(m, "func", None) is parse_duration for m in metadata)


def _type_name(tp: Any, field: FieldInfo | None = None) -> str:
    if _is_duration(field, tp):
        return "duration"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' for a in args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        names = [_type_name(a, field if len(rest) == 1 else None) for a in rest]
        return " or ".join(names) + (" (optional)" if len(rest) < len(args) else "")
    if origin is list:
        return f"list of {_type_name(args[0])}s" if not _is_model(args[0]) else "array of tables"
    if origin is dict:
        return f"table of {_type_name(args[1])}s"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, getattr(tp, "__name__", str(tp)))


def _toml(value: Any, duration: bool) -> str:
    if value is None:
        return ""
    if duration and isinstance(value, (int, float)):
        return f'`"{_serialize_duration(float(value))}"`'
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]`" if value else "`[]`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    return f"`{value}`"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return ""
    else:
        value = field.default
    return _toml(value, _is_duration(field, field.annotation))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _sections(model: type[BaseModel], prefix: str, array: bool) -> Iterator[tuple[str, type[BaseModel], bool]]:
    yield prefix, model, array
    for name, field in model.model_fields.items():
        tp = field.annotation
        if _is_model(tp):
            yield from _sections(typing.cast(type[BaseModel], tp), f"{prefix}.{name}", False)
        elif typing.get_origin(tp) is list and _is_model(typing.get_args(tp)[0]):
            yield from _sections(typing.get_args(tp)[0], f"{prefix}.{name}", True)


def config_sections() -> Iterator[tuple[str, type[BaseModel], bool]]:
    """(key path, model, is an array of tables) for every table of deploysafe.toml."""
    for name, field in Config.model_fields.items():
        yield from _sections(typing.cast(type[BaseModel], field.annotation), name, False)


def config_keys() -> Iterator[tuple[str, str, FieldInfo]]:
    """(section, key, field) for every scalar-ish key (nested tables are their own sections)."""
    for section, model, _ in config_sections():
        for name, field in model.model_fields.items():
            tp = field.annotation
            if _is_model(tp) or (typing.get_origin(tp) is list and _is_model(typing.get_args(tp)[0])):
                continue
            yield section, name, field


def configuration() -> str:
    """docs/configuration.md body: each table, key, type, default and description."""
    out: list[str] = []
    for section, model, array in config_sections():
        header = f"[[{section}]]" if array else f"[{section}]"
        required = section in {n for n, f in Config.model_fields.items() if f.is_required()}
        out += [f"## `{header}`", ""]
        doc = model.__dict__.get("__doc__")  # the model's own docstring, not BaseModel's
        if doc:
            out += [inspect.cleandoc(doc), ""]
        if required:
            out += ["This table is required.", ""]
        if array:
            out += ["An array of tables: repeat the header for each entry.", ""]
        out += ["| key | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            tp = field.annotation
            if _is_model(tp) or (typing.get_origin(tp) is list and _is_model(typing.get_args(tp)[0])):
                continue
            out.append(f"| `{name}` | {_type_name(tp, field)} | {_default(field)} | {_cell(field.description or '')} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# --- exit codes -----------------------------------------------------------------------------


def error_classes(base: type[DeploysafeError] = DeploysafeError) -> list[type[DeploysafeError]]:
    """``base`` and every subclass, depth first."""
    found = [base]
    for sub in base.__subclasses__():
        found += error_classes(sub)
    return found


def exit_codes_table() -> str:
    """The code | meaning table (README.md and docs/exit-codes.md use this same text)."""
    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| {code} | {_cell(meaning)} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(rows) + "\n"


def error_table() -> str:
    """Which error class ends a run with which code."""
    rows = ["| error | code | when |", "|---|---|---|"]
    for cls in error_classes():
        if cls.__module__ != "deploysafe.errors":
            continue
        depth = len([c for c in cls.__mro__ if isinstance(c, type) and issubclass(c, DeploysafeError)]) - 1
        name = "&nbsp;&nbsp;" * depth + f"`{cls.__name__}`"
        rows.append(f"| {name} | {cls.exit_code} | {_cell(inspect.getdoc(cls) or '')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "cli"
    sys.stdout.write({"cli": cli_reference, "config": configuration, "exit": exit_codes_table, "errors": error_table}[what]())
