"""The provider registry: one entry per ``[provider] type``, from which the config schema, the required-key
checks, ``init``'s choices and ``make_provider`` derive."""

from __future__ import annotations

import importlib

import click
import pytest

from deploysafe import providers
from deploysafe.cli import cli
from deploysafe.config import ProviderConfig, json_schema, parse_config
from deploysafe.errors import ConfigError

PLATFORM = '\n[platform]\ntype = "dotenv"\nenv_file = ".env"\n'


@pytest.mark.parametrize("type_", providers.TYPES)
def test_each_entry_names_its_class_and_real_config_keys(type_: str) -> None:
    entry = providers.REGISTRY[type_]
    cls = getattr(importlib.import_module(entry.module), entry.cls)
    assert cls.name == type_  # the display name is the config type
    assert set(entry.required) <= set(ProviderConfig.model_fields)


def test_missing_required_keys_are_named_with_their_example() -> None:
    with pytest.raises(ConfigError, match="provider.project_id: required key is missing when type = \"neon\""):
        parse_config('[provider]\ntype = "neon"\n' + PLATFORM, env={})
    with pytest.raises(ConfigError, match=r"provider.database_url: required key is missing when type = \"local\" \(for ex"):
        parse_config('[provider]\ntype = "local"\n' + PLATFORM, env={})


def test_the_starter_block_is_a_valid_config_for_every_type() -> None:
    env = {"NEON_PROJECT_ID": "p", "DATABASE_URL": "postgresql://u@localhost:5432/prod"}
    for type_ in providers.TYPES:
        assert parse_config(providers.starter(type_) + PLATFORM, env=env).provider.type == type_


def test_schema_init_choices_and_unknown_types_follow_the_registry() -> None:
    schema = json_schema()["$defs"]["ProviderConfig"]["properties"]["type"]
    assert tuple(schema["enum"]) == providers.TYPES
    assert schema["description"] == "'neon' or 'local' (any PostgreSQL reachable by URL)."
    init = cli.get_command(click.Context(cli), "init")
    assert init is not None
    choice = next(p.type for p in init.params if p.name == "provider")
    assert isinstance(choice, click.Choice) and tuple(choice.choices) == providers.TYPES
    with pytest.raises(ConfigError, match="provider.type"):
        parse_config('[provider]\ntype = "fake"\n' + PLATFORM, env={})
