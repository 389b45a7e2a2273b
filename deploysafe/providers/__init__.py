"""Snapshot backends. ``ADAPTERS`` maps ``[provider] type`` to the module and class that serve it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.providers.base import Provider

ADAPTERS: dict[str, tuple[str, str]] = {
    "local": ("deploysafe.providers.local", "LocalProvider"),
    "neon": ("deploysafe.providers.neon.provider", "NeonProvider"),
}


def make_provider(loaded: LoadedConfig, **kwargs: Any) -> Provider:
    """Build the provider named by ``[provider] type`` (imported only now, to keep start-up light)."""
    module, cls = ADAPTERS[loaded.config.provider.type]
    factory = getattr(importlib.import_module(module), cls)
    provider: Provider = factory.from_config(loaded, **kwargs)
    return provider
