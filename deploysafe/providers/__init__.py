"""Snapshot backends. ``REGISTRY`` has one entry per ``[provider] type``: the class that serves it (imported
only when built, to keep start-up light), what its config requires, and its ``deploysafe init`` block. The
config schema's allowed types, ``init``'s choices and ``make_provider`` all derive from it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deploysafe.providers.registry import REGISTRY, TYPES, starter

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.providers.base import Provider

__all__ = ["REGISTRY", "TYPES", "make_provider", "starter"]


def make_provider(loaded: LoadedConfig, **kwargs: Any) -> Provider:
    """Build the provider named by ``[provider] type``."""
    entry = REGISTRY[loaded.config.provider.type]
    factory = getattr(importlib.import_module(entry.module), entry.cls)
    provider: Provider = factory.from_config(loaded, **kwargs)
    return provider
