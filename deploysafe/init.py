"""``deploysafe init``: write a commented starter deploysafe.toml for an app."""

from __future__ import annotations

import json
from pathlib import Path

from deploysafe.config import CONFIG_NAME
from deploysafe.drizzle import normalise, read_app
from deploysafe.errors import PreconditionError, UsageError

_PROVIDER = {
    "neon": '''[provider]
type = "neon"
project_id = "${NEON_PROJECT_ID}"  # from the Neon console: Settings > General
api_key_env = "NEON_API_KEY"       # the API key is read from this variable, never from this file
production_branch = "production"
database = "neondb"
role = "neondb_owner"
''',
    "local": '''[provider]
type = "local"                      # any PostgreSQL reachable by URL; a snapshot is a database copy
database_url = "${DATABASE_URL}"    # the production database; the password stays in the environment
strategy = "dump"                   # "dump" (online) or "template" (fast, needs no other sessions)
''',
}

_PLATFORM = {
    "dotenv": '''[platform]
type = "dotenv"
env_file = ".env"                   # the file your app reads DATABASE_URL from
restart = "systemctl restart app"   # run after DATABASE_URL changes; edit to fit
''',
    "command": '''[platform]
type = "command"
get_command = "kubectl get secret app-db -o jsonpath='{.data.DATABASE_URL}' | base64 -d"
set_command = "kubectl create secret generic app-db --from-literal=DATABASE_URL=\\"$DEPLOYSAFE_NEW_URL\\" --dry-run=client -o yaml | kubectl apply -f -"
restart = "kubectl rollout restart deployment/app"
wait_command = "kubectl rollout status deployment/app --timeout=5m"
''',
    "vercel": '''[platform]
type = "vercel"
project = "${VERCEL_PROJECT_ID}"
team_id = "${VERCEL_ORG_ID}"        # remove for a personal account
token_env = "VERCEL_TOKEN"
''',
    "render": '''[platform]
type = "render"
service_id = "srv-..."              # from the service's URL in the Render dashboard
token_env = "RENDER_API_KEY"
''',
    "railway": '''[platform]
type = "railway"
project = "..."
environment_id = "..."
service_id = "..."
token_env = "RAILWAY_API_TOKEN"
''',
    "fly": '''[platform]
type = "fly"
app = "my-app"
token_env = "FLY_API_TOKEN"
''',
    "heroku": '''[platform]
type = "heroku"
app = "my-app"
token_env = "HEROKU_API_KEY"
''',
}


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML), so odd paths cannot break the file."""
    return json.dumps(text, ensure_ascii=False)


def render_starter(app_dir: Path, *, provider: str, platform: str) -> str:
    app = read_app(app_dir)
    if not (app_dir / "package.json").is_file():
        raise PreconditionError(
            f"no package.json in {app_dir}", hint="run `deploysafe init` in your Node app's folder, or pass --dir"
        )
    generate = "npm run db:generate" if "db:generate" in app.scripts else "npx drizzle-kit generate"
    push = "npm run db:push" if "db:push" in app.scripts else "npx drizzle-kit push"
    found = []
    if app.config_file:
        found.append(f"# Read {app.config_file.name}: schema = {', '.join(app.schema) or '?'}, out = {app.out}")
    paths = [normalise(p) for p in app.schema] + [normalise(app.out)]
    return "\n".join(
        [
            "# deploysafe.toml: written by `deploysafe init`. Reference: docs/configuration.md",
            *found,
            "",
            "[app]",
            'dir = "."',
            f"generate = {_q(generate)}",
            f"push = {_q(push)}",
            'step_timeout = "15m"',
            f"migrations_dir = {_q(normalise(app.out))}",
            "",
            _PROVIDER[provider],
            _PLATFORM[platform],
            "[probes]",
            'deadline = "60s"',
            'interval = "2s"',
            "[[probes.http]]",
            'name = "health"',
            'url = "http://127.0.0.1:3000/health"',
            "expect_status = 200",
            "",
            "[retention]",
            'pre_deploy = "7d"',
            'daily = "30d"',
            'weekly = "90d"',
            "",
            "[lint]",
            'destructive = "block"              # "block" | "warn" | "allow"',
            "",
            "[hook]",
            "paths = [" + ", ".join(_q(p) for p in paths) + "]",
            "",
        ]
    )


def write_starter(app_dir: Path, *, provider: str, platform: str, force: bool) -> Path:
    target = app_dir / CONFIG_NAME
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", hint="edit it, or pass --force to overwrite it")
    text = render_starter(app_dir, provider=provider, platform=platform)
    tmp = target.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target
