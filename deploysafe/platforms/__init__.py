"""Deployment platforms. ``REGISTRY`` has one entry per ``[platform] type``: the class that serves it (imported
only when built, to keep start-up light), what its config requires, its default token variable, its
``deploysafe init`` block and how the runbook names where the variable lives. The config schema's allowed
types, ``init``'s choices and ``make_platform`` all derive from it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deploysafe.platforms.registry import REGISTRY, TYPES, starter

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import Platform

__all__ = ["REGISTRY", "TYPES", "make_platform", "starter"]


def make_platform(loaded: LoadedConfig, **kwargs: Any) -> Platform:
    """Build the platform named by ``[platform] type``."""
    entry = REGISTRY[loaded.config.platform.type]
    factory = getattr(importlib.import_module(entry.module), entry.cls)
    platform: Platform = factory.from_config(loaded, **kwargs)
    return platform
