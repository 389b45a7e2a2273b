"""The platform registry: one entry per ``[platform] type``, from which the config schema, the required-key
checks, the default token variable, ``init``'s choices and ``make_platform`` derive."""

from __future__ import annotations

import importlib

import click
import pytest

from deploysafe import platforms
from deploysafe.cli import cli
from deploysafe.config import PlatformConfig, json_schema, parse_config
from deploysafe.errors import ConfigError

PROVIDER = '[provider]\ntype = "local"\ndatabase_url = "postgresql://u@localhost:5432/prod"\n\n'


@pytest.mark.parametrize("type_", platforms.TYPES)
def test_each_entry_names_its_class_and_real_config_keys(type_: str) -> None:
    entry = platforms.REGISTRY[type_]
    cls = getattr(importlib.import_module(entry.module), entry.cls)
    assert cls.name == type_  # the display name is the config type
    assert set(entry.required) <= set(PlatformConfig.model_fields)


@pytest.mark.parametrize("type_", platforms.TYPES)
def test_a_missing_required_key_is_named(type_: str) -> None:
    first = platforms.REGISTRY[type_].required[0]
    with pytest.raises(ConfigError, match=f"platform.{first}: required key is missing when type = \"{type_}\""):
        parse_config(PROVIDER + f'[platform]\ntype = "{type_}"\n', env={})


def test_the_starter_block_is_a_valid_config_for_every_type() -> None:
    for type_ in platforms.TYPES:
        cfg = parse_config(PROVIDER + platforms.starter(type_), env={"VERCEL_PROJECT_ID": "p", "VERCEL_ORG_ID": "t"})
        assert cfg.platform.type == type_
        assert cfg.platform.token_var == platforms.REGISTRY[type_].token_env


def test_schema_init_choices_and_unknown_types_follow_the_registry() -> None:
    schema = json_schema()["$defs"]["PlatformConfig"]["properties"]["type"]
    assert tuple(schema["enum"]) == platforms.TYPES
    init = cli.get_command(click.Context(cli), "init")
    assert init is not None
    choice = next(p.type for p in init.params if p.name == "platform")
    assert isinstance(choice, click.Choice) and tuple(choice.choices) == platforms.TYPES
    with pytest.raises(ConfigError, match="platform.type"):
        parse_config(PROVIDER + '[platform]\ntype = "fake"\nenv_file = ".env"\n', env={})
