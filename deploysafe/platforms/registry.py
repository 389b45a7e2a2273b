"""One entry per ``[platform] type``: the config schema's allowed types, the required-key checks, ``init``'s
choices and starter blocks and ``make_platform`` all derive from it. A leaf module (nothing from
deploysafe): ``config.py`` imports it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class PlatformEntry:
    """One ``[platform] type``. A plain class (no dataclass or NamedTuple): this module is imported at start-up.

    ``required``: the config keys the type requires, checked in this order; ``where``: the runbook's "the app
    reads the variable from ..." (given the ``PlatformConfig``); ``starter``: ``deploysafe init``'s lines after ``type = ...``; ``token_env``:
    the default ``[platform] token_env`` (HTTP platforms)."""

    __slots__ = ("module", "cls", "required", "where", "starter", "token_env")

    def __init__(self, module: str, cls: str, required: tuple[str, ...], where: Callable[[Any], str],
                 starter: str, *, token_env: str | None = None) -> None:
        self.module, self.cls, self.required, self.where = module, cls, required, where
        self.starter, self.token_env = starter, token_env


REGISTRY: dict[str, PlatformEntry] = {
    "dotenv": PlatformEntry(
        "deploysafe.platforms.dotenv", "DotenvPlatform", ("env_file",),
        lambda p: f"the env file `{p.env_file}`" + (f", restarted with `{p.restart}`" if p.restart else ""),
        '''env_file = ".env"                   # the file your app reads DATABASE_URL from
restart = "systemctl restart app"   # run after DATABASE_URL changes; edit to fit
''',
    ),
    "command": PlatformEntry(
        "deploysafe.platforms.command", "CommandPlatform", ("set_command",),
        lambda p: f"the command `{p.set_command}`",
        '''get_command = "kubectl get secret app-db -o jsonpath='{.data.DATABASE_URL}' | base64 -d"
set_command = "kubectl create secret generic app-db --from-literal=DATABASE_URL=\\"$DEPLOYSAFE_NEW_URL\\" --dry-run=client -o yaml | kubectl apply -f -"
restart = "kubectl rollout restart deployment/app"
wait_command = "kubectl rollout status deployment/app --timeout=5m"
''',
    ),
    "vercel": PlatformEntry(
        "deploysafe.platforms.vercel", "VercelPlatform", ("project",),
        lambda p: f"Vercel project `{p.project}`",
        '''project = "${VERCEL_PROJECT_ID}"
team_id = "${VERCEL_ORG_ID}"        # remove for a personal account
token_env = "VERCEL_TOKEN"
''',
        token_env="VERCEL_TOKEN",
    ),
    "render": PlatformEntry(
        "deploysafe.platforms.render", "RenderPlatform", ("service_id",),
        lambda p: f"Render service `{p.service_id}`",
        '''service_id = "srv-..."              # from the service's URL in the Render dashboard
token_env = "RENDER_API_KEY"
''',
        token_env="RENDER_API_KEY",
    ),
    "railway": PlatformEntry(
        "deploysafe.platforms.railway", "RailwayPlatform", ("project", "environment_id", "service_id"),
        lambda p: f"Railway service `{p.service_id}` (project `{p.project}`)",
        '''project = "..."
environment_id = "..."
service_id = "..."
token_env = "RAILWAY_API_TOKEN"
''',
        token_env="RAILWAY_API_TOKEN",
    ),
    "fly": PlatformEntry(
        "deploysafe.platforms.fly", "FlyPlatform", ("app",),
        lambda p: f"Fly app `{p.app}`",
        '''app = "my-app"
token_env = "FLY_API_TOKEN"
''',
        token_env="FLY_API_TOKEN",
    ),
    "heroku": PlatformEntry(
        "deploysafe.platforms.heroku", "HerokuPlatform", ("app",),
        lambda p: f"Heroku app `{p.app}`",
        '''app = "my-app"
token_env = "HEROKU_API_KEY"
''',
        token_env="HEROKU_API_KEY",
    ),
}
TYPES: tuple[str, ...] = tuple(REGISTRY)


def starter(type_: str) -> str:
    """The ``[platform]`` block ``deploysafe init`` writes for ``type_``."""
    return f'[platform]\ntype = "{type_}"\n{REGISTRY[type_].starter}'


