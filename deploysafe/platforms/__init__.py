"""Deployment platforms. ``ADAPTERS`` maps ``[platform] type`` to the module and class that serve it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig
    from deploysafe.platforms.base import Platform

ADAPTERS: dict[str, tuple[str, str]] = {
    "dotenv": ("deploysafe.platforms.dotenv", "DotenvPlatform"),
    "command": ("deploysafe.platforms.command", "CommandPlatform"),
    "vercel": ("deploysafe.platforms.vercel", "VercelPlatform"),
    "render": ("deploysafe.platforms.render", "RenderPlatform"),
    "railway": ("deploysafe.platforms.railway", "RailwayPlatform"),
    "fly": ("deploysafe.platforms.fly", "FlyPlatform"),
    "heroku": ("deploysafe.platforms.heroku", "HerokuPlatform"),
}


def make_platform(loaded: LoadedConfig, **kwargs: Any) -> Platform:
    """Build the platform named by ``[platform] type`` (imported only now, to keep start-up light)."""
    module, cls = ADAPTERS[loaded.config.platform.type]
    factory = getattr(importlib.import_module(module), cls)
    platform: Platform = factory.from_config(loaded, **kwargs)
    return platform
