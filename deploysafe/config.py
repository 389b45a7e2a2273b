"""The ``deploysafe.toml`` contract: pydantic models, discovery, ``${VAR}`` interpolation.

Keys here are the public contract: extend freely, never rename.
Secrets (API tokens, passwords) come only from environment variables; the file names
the variable (``api_key_env``, ``token_env``, ``webhook_env``) or interpolates it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import psycopg
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from deploysafe.childenv import claim
from deploysafe.durations import parse_duration
from deploysafe.errors import ConfigError, PreconditionError
from deploysafe.platforms import registry as platforms
from deploysafe.providers import registry as providers
from deploysafe.redact import redact, redact_obj, register_secret, url_password

CONFIG_NAME = "deploysafe.toml"
ENV_CONFIG = "DEPLOYSAFE_CONFIG"


def _serialize_duration(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(round(seconds * 1000))}ms"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(_serialize_duration, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d|w)$", "examples": ["500ms", "90s", "10m", "7d"]}
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_step(value: Any) -> Any:
    """``generate = false`` means the app has no generate step, as ``generate = ""`` does."""
    if value is False:
        return ""
    if value is True:
        raise ValueError('write the command, or "" / false when there is no generate step')
    return value


class AppConfig(_Model):
    """How to run the user's migration scripts."""

    dir: str = Field(default=".", description="Where package.json lives, relative to deploysafe.toml.")
    workflow: Literal["push", "migrate"] = Field(
        default="push",
        description="push: apply the schema with [app] push; migrate: apply the committed migrations with [app] migrate.",
    )
    generate: Annotated[str, BeforeValidator(_no_step)] = Field(
        default="npm run db:generate",
        description='Command that generates migration SQL; "" or false when the app has no generate step.',
    )
    push: str = Field(default="npm run db:push", description="workflow = push: command that applies the schema.")
    migrate: str = Field(
        default="npm run db:migrate",
        description="workflow = migrate: command that applies pending migrations (drizzle-kit migrate or the app's migrator).",
    )
    database_env: list[str] = Field(
        default_factory=lambda: ["DATABASE_URL"],
        description="Variables the app's tooling (drizzle.config.*) reads the connection URL from; each step gets "
        "them set to the database it must target.",
    )
    database_env_parts: dict[Literal["host", "port", "user", "password", "database"], str] = Field(
        default_factory=dict,
        description="When dbCredentials takes host/user/password/database fields: field -> variable, "
        "set from the target URL's parts.",
    )
    env_files: list[str] = Field(
        default_factory=list,
        description="Env files the app's tooling loads, relative to app.dir (checked: none may override the target).",
    )
    migrations_table: str | None = Field(
        default=None, description="Drizzle's migrations table (default: drizzle.config migrations.table, else __drizzle_migrations)."
    )
    migrations_schema: str | None = Field(
        default=None, description="Its schema (default: drizzle.config migrations.schema, else drizzle)."
    )
    step_timeout: Duration = Field(default=900.0, description="Hard timeout for each step; the process group is killed.")
    migrations_dir: str | None = Field(
        default=None, description="Drizzle `out` folder, relative to app.dir (default: read from drizzle.config.*, else 'drizzle')."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for the steps.")
    pass_env: list[str] = Field(
        default_factory=list,
        description="Variables the steps get even though deploysafe keeps them from children (e.g. NEON_API_KEY).",
    )

    @field_validator("database_env")
    @classmethod
    def _variable_names(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)]
        if bad:
            raise ValueError(f"not a variable name: {', '.join(bad)} (write the name, e.g. \"POSTGRES_URL\", not ${{...}})")
        return v


# The allowed ``type``s come from the registries (one entry per type); the type checker sees a plain str.
if TYPE_CHECKING:
    ProviderType = str
    PlatformType = str
else:
    ProviderType = Literal[providers.TYPES]
    PlatformType = Literal[platforms.TYPES]


def _one_of(types: tuple[str, ...], blurbs: dict[str, str] | None = None, quote: str = "") -> str:
    """``a, b or c``, each type optionally quoted and followed by its blurb in parentheses."""
    shown = [f"{quote}{t}{quote}" + (f" ({blurbs[t]})" if blurbs and blurbs.get(t) else "") for t in types]
    return (", ".join(shown[:-1]) + " or " + shown[-1]) if len(shown) > 1 else shown[0]


class ProviderConfig(_Model):
    """Where snapshots come from."""

    type: ProviderType = Field(
        description=_one_of(providers.TYPES, {t: e.blurb for t, e in providers.REGISTRY.items()}, "'") + "."
    )
    # neon
    project_id: str | None = Field(None, description="neon: the project id.")
    api_key_env: str = Field("NEON_API_KEY", description="neon: environment variable holding the API key.")
    production_branch: str = Field("production", description="neon: name of the production branch.")
    database: str | None = Field(None, description="neon: database name (e.g. neondb).")
    role: str | None = Field(None, description="neon: role name (e.g. neondb_owner).")
    api_url: str = Field("https://console.neon.tech/api/v2", description="neon: API base URL.")
    snapshot_endpoint: Literal["eager", "lazy"] = Field(
        "eager", description="neon: give pre-deploy snapshots a compute at creation ('eager') or at rollback ('lazy')."
    )
    pooled: bool | None = Field(None, description="neon: use the -pooler host (default: as production's URL).")
    # local
    database_url: str | None = Field(
        None, description="local: URL of the production database; write '${DATABASE_URL}' (passwords come from env)."
    )
    strategy: Literal["dump", "template"] = Field(
        "dump", description="local: 'dump' (pg_dump/pg_restore, online) or 'template' (fast, needs no other sessions)."
    )

    @model_validator(mode="after")
    def _required_per_type(self) -> ProviderConfig:
        for key, example in providers.REGISTRY[self.type].required.items():
            if not getattr(self, key):
                raise ValueError(f"'{key}' is required when type = \"{self.type}\"{example}")
        return self


_DEFAULT_TOKEN_ENV = {t: e.token_env for t, e in platforms.REGISTRY.items() if e.token_env}


class PlatformConfig(_Model):
    """Where the app runs and how its DATABASE_URL is changed."""

    type: PlatformType = Field(description=_one_of(platforms.TYPES) + ".")
    var: str = Field("DATABASE_URL", description="The variable that holds the connection string.")
    # dotenv / command
    env_file: str | None = Field(None, description="dotenv: the env file, relative to deploysafe.toml.")
    restart: str | None = Field(None, description="dotenv/command: shell command run after the variable changes.")
    get_command: str | None = Field(None, description="command: prints the current value on stdout.")
    set_command: str | None = Field(
        None, description="command: sets the variable; the new value arrives in $DEPLOYSAFE_NEW_URL, never on argv."
    )
    wait_command: str | None = Field(None, description="command: exits 0 once the new release is live.")
    release_command: str | None = Field(
        None, description="dotenv/command: prints the id of the app release running now (e.g. a git SHA)."
    )
    rollback_command: str | None = Field(
        None,
        description="dotenv/command: brings back the app release whose id is in $DEPLOYSAFE_RELEASE (and restarts it).",
    )
    # HTTP platforms
    token_env: str | None = Field(None, description="Environment variable holding the platform API token.")
    project: str | None = Field(None, description="vercel: project id or name; railway: project id.")
    team_id: str | None = Field(None, description="vercel: team id for team-owned projects.")
    service_id: str | None = Field(None, description="render/railway: service id.")
    environment_id: str | None = Field(None, description="railway: environment id.")
    app: str | None = Field(None, description="fly/heroku: app name.")
    api_url: str | None = Field(None, description="Override the platform API base URL.")
    ready_timeout: Duration = Field(900.0, description="How long to wait for the new release to be live.")
    poll_interval: Duration = Field(5.0, description="How often to poll the platform while waiting.")

    @model_validator(mode="after")
    def _required_per_type(self) -> PlatformConfig:
        for key in platforms.REGISTRY[self.type].required:
            if not getattr(self, key):
                raise ValueError(f"'{key}' is required when type = \"{self.type}\"")
        return self

    @property
    def token_var(self) -> str | None:
        return self.token_env or _DEFAULT_TOKEN_ENV.get(self.type)


class HttpProbe(_Model):
    """One HTTP check of the app; it passes when the status (and body, if set) match."""

    name: str = Field(description="Label shown in results and the journal.")
    url: str = Field(description="http:// or https:// URL to GET, e.g. http://127.0.0.1:3000/health.")
    expect_status: int = Field(default=200, description="The HTTP status that means healthy.")
    expect_body: str | None = Field(default=None, description="A substring the response body must contain.")
    timeout: Duration = Field(
        default=5.0, description="Wall-clock bound on the whole request (connect, headers, body); slower is a failure."
    )
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="Header name -> environment variable holding its value."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if any(c.isspace() for c in v):
            raise ValueError("must not contain spaces (percent-encode them as %20)")
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError as e:  # "Invalid IPv6 URL" (http://[::1), "Port out of range 0-65535"...
            raise ValueError(f"is not a valid URL ({e})") from None
        if not parts.hostname:
            raise ValueError("has no host (for example http://127.0.0.1:3000/health)")
        return v


class SqlProbe(_Model):
    """One SQL check, run on the database the app points at."""

    name: str = Field(description="Label shown in results and the journal.")
    query: str = Field(description="A read-only query, e.g. select 1 from users limit 1; it passes when it runs.")
    expect: str | None = Field(default=None, description="Expected value of the first column of the first row, as text.")
    timeout: Duration = Field(default=5.0, description="Statement timeout for the query.")


class ProbesConfig(_Model):
    """How deploysafe decides the app is healthy after a push or a rollback."""

    deadline: Duration = Field(default=60.0, description="Give up and call the app unhealthy after this long.")
    interval: Duration = Field(default=2.0, description="Pause between probe attempts.")
    initial_delay: Duration = Field(default=0.0, description="Wait this long before the first attempt.")
    failure_limit: int = Field(default=3, ge=1, description="Consecutive failures that decide 'unhealthy'.")
    success_threshold: int = Field(default=1, ge=1, description="Consecutive passes that decide 'healthy'.")
    http: list[HttpProbe] = Field(default_factory=list, description="HTTP probes ([[probes.http]]).")
    sql: list[SqlProbe] = Field(default_factory=list, description="SQL probes ([[probes.sql]]).")


class RetentionConfig(_Model):
    """How long `deploysafe prune` keeps each kind of snapshot (the newest of each kind is always kept)."""

    pre_deploy: Duration = Field(default=7 * 86400.0, description="Snapshots taken before each deploy.")
    daily: Duration = Field(default=30 * 86400.0, description="Daily backups (`deploysafe backup`).")
    weekly: Duration = Field(default=90 * 86400.0, description="Weekly backups (taken on [backup] weekly_day).")
    manual: Duration | None = Field(default=None, description="Keep manual snapshots this long (default: forever).")
    restore: Duration = Field(default=7 * 86400.0, description="Branches made by restore-table and rollback --at.")
    drill: Duration = Field(default=7 * 86400.0, description="Branches made by `deploysafe drill`.")
    failed_state: Duration = Field(
        default=14 * 86400.0, description="neon: branches keeping production's state from before an in-place restore."
    )


class LintConfig(_Model):
    """What to do when new migration SQL drops or rewrites data."""

    destructive: Literal["block", "warn", "allow"] = Field(
        default="block", description="block: stop before push (exit 3); warn: report and go on; allow: say nothing."
    )


class StateConfig(_Model):
    """Where deploysafe keeps its own files."""

    dir: str = Field(default=".deploysafe", description="State folder (journal, drills), relative to deploysafe.toml.")


class RollbackConfig(_Model):
    """How a rollback puts the app back on the snapshot."""

    strategy: Literal["auto", "repoint", "restore"] = Field(
        default="auto",
        description="auto: restore in place where the provider allows it, else repoint; repoint: point DATABASE_URL at "
        "the snapshot; restore (neon, root production): restore production from its own history in place.",
    )
    app: Literal["auto", "keep"] = Field(
        default="auto",
        description="auto: when the app's live release changed during the deploy, bring the recorded one back with the "
        "database; keep: only the database moves.",
    )


class DeployConfig(_Model):
    """Extra steps of `deploysafe deploy`."""

    app_deploy: str | None = Field(default=None, description="Command run after push that deploys the app and waits for it.")
    app_deploy_timeout: Duration = Field(default=900.0, description="Hard timeout for app_deploy.")


class NotifyConfig(_Model):
    """Where to post when a deploy rolls back or needs a person (a failing webhook never changes the outcome)."""

    webhook_env: str | None = Field(default=None, description="Environment variable holding a Slack-compatible webhook URL.")
    format: Literal["slack", "json"] = Field(
        default="slack", description='slack: {"text": ...}; json: the text plus the run\'s summary fields.'
    )
    on_success: bool = Field(default=False, description="Also post when a deploy succeeds.")


class HookConfig(_Model):
    """The git pre-push hook (`deploysafe hooks install`)."""

    branches: list[str] = Field(
        default_factory=lambda: ["main", "production"], description="Branches (glob patterns) whose pushes are checked."
    )
    paths: list[str] = Field(default_factory=list, description="Schema/migration paths (default: from drizzle.config.*).")
    snapshot: bool = Field(default=False, description="Take a pre-deploy snapshot when a checked push changes the schema.")
    offline: Literal["warn", "block"] = Field(
        default="warn", description="When that snapshot cannot be taken: warn and push, or block the push."
    )
    missing: Literal["allow", "block"] = Field(
        default="allow", description="When deploysafe itself is not installed where the hook runs: allow or block the push."
    )


class BackupConfig(_Model):
    """`deploysafe backup` (run daily)."""

    weekly_day: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = Field(
        default="sunday", description="The day whose backup is kept as a weekly one."
    )


class DrillCheck(_Model):
    """A read-only query a drill runs on the restored copy to prove the data is there."""

    name: str = Field(description="Label shown in the drill report.")
    query: str = Field(description="Read-only SQL; its first value is compared.")
    expect: str | None = Field(default=None, description="Expected first value, as text.")
    min: float | None = Field(default=None, description="The first value must be a number at least this.")
    max: float | None = Field(default=None, description="The first value must be a number at most this.")


class DrillTargets(_Model):
    """Time targets a drill is measured against."""

    branch: Duration = Field(default=120.0, description="Making the point-in-time copy.")
    verify: Duration = Field(default=600.0, description="Running the checks on it.")
    total: Duration = Field(default=900.0, description="The whole recovery (the guide's 15 minutes).")


class DrillConfig(_Model):
    """The disaster-recovery drill (`deploysafe drill`)."""

    checks: list[DrillCheck] = Field(default_factory=list, description="Checks ([[drill.checks]]).")
    targets: DrillTargets = Field(default_factory=DrillTargets, description="Targets ([drill.targets]).")


class CheckConfig(_Model):
    """Thresholds of `deploysafe check`, the backup and recovery checklist."""

    min_history: Duration = Field(default=86400.0, description="Minimum point-in-time window.")
    daily_max_age: Duration = Field(default=26 * 3600.0, description="Fail when the newest daily or weekly backup is older.")
    weekly_max_age: Duration = Field(default=8 * 86400.0, description="Fail when the newest weekly backup is older.")
    drill_max_age: Duration = Field(default=35 * 86400.0, description="Warn when the last drill is older.")
    size_limit_bytes: int | None = Field(default=None, description="Size limit in bytes: warn above 80%, fail at it (default: Neon's free-plan limit there, else none).")


class Config(_Model):
    app: AppConfig = Field(default_factory=AppConfig)
    provider: ProviderConfig
    platform: PlatformConfig
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    lint: LintConfig = Field(default_factory=LintConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    rollback: RollbackConfig = Field(default_factory=RollbackConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    hook: HookConfig = Field(default_factory=HookConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    drill: DrillConfig = Field(default_factory=DrillConfig)
    check: CheckConfig = Field(default_factory=CheckConfig)


class LoadedConfig:
    """A validated config plus where it came from; resolves paths relative to the file."""

    def __init__(self, config: Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.root = path.parent

    def resolve(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else (self.root / p)

    @property
    def app_dir(self) -> Path:
        return self.resolve(self.config.app.dir)

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.config.state.dir)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:public)?\}")

# Shell commands: ``${VAR}`` stays a reference the shell expands from the child's environment,
# so a token never sits on a command line; the command's child gets VAR.
_COMMAND_KEYS = frozenset({
    ("app", "generate"), ("app", "push"), ("deploy", "app_deploy"),
    ("platform", "restart"), ("platform", "get_command"), ("platform", "set_command"), ("platform", "wait_command"),
})
# Interpolated values for the app's own steps: secret, but the app's, so its steps get them.
_APP_KEYS = frozenset({("app", "env"), ("app", "generate"), ("app", "push"), ("deploy", "app_deploy")})
# Keys whose values are public by nature (ids, names, folders, variable names): never registered as secrets.
_PUBLIC_KEYS = frozenset({
    ("app", "dir"), ("app", "migrations_dir"), ("state", "dir"),
    ("provider", "project_id"), ("provider", "production_branch"), ("provider", "database"), ("provider", "role"),
    ("platform", "project"), ("platform", "team_id"), ("platform", "service_id"), ("platform", "environment_id"),
    ("platform", "app"), ("platform", "var"), ("platform", "env_file"),
    ("probes", "http", "name"), ("probes", "sql", "name"), ("drill", "checks", "name"),
})
# URL keys: an interpolated scheme://host[:port] (a URL host) is public; anything more may carry a token.
_URL_KEYS = frozenset({("provider", "api_url"), ("platform", "api_url"), ("probes", "http", "url")})
_ORIGIN = re.compile(r"https?://[^/@?#\s:]+(?::\d+)?/?")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _is_public(key: tuple[str, ...], value: str) -> bool:
    if key in _PUBLIC_KEYS or key[-1].endswith("_env") or key[-1] == "type":
        return True
    return key in _URL_KEYS and _ORIGIN.fullmatch(value) is not None


def _single_quoted_refs(command: str) -> list[str]:
    """``${VAR}`` references inside single quotes, where the shell does not expand them."""
    found: list[str] = []
    i, single, double = 0, False, False
    while i < len(command):
        c = command[i]
        if single:
            m = _VAR.match(command, i)
            if m:
                found.append(m.group(0))
                i = m.end()
                continue
            single = c != "'"
        elif c == "\\":
            i += 1
        elif c == "'" and not double:
            single = True
        elif c == '"':
            double = not double
        i += 1
    return found


def _interpolate(obj: Any, env: dict[str, str], loc: tuple[Any, ...], problems: list[str]) -> Any:
    """``obj`` (the parsed TOML at ``loc``) with every ``${VAR}`` replaced; what is wrong goes to ``problems``."""
    if isinstance(obj, str):
        return _interpolate_str(obj, env, loc, problems)
    if isinstance(obj, dict):
        return {k: _interpolate(v, env, loc + (k,), problems) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_interpolate(v, env, loc + (i,), problems) for i, v in enumerate(obj)]
    return obj


def _interpolate_str(text: str, env: dict[str, str], loc: tuple[Any, ...], problems: list[str]) -> str:
    key = tuple(p for p in loc if not isinstance(p, int))
    command = key in _COMMAND_KEYS
    database_url = loc[:2] == ("provider", "database_url")
    if database_url and not _VAR.search(text) and url_password(text):
        problems.append(
            f"{_loc(loc)}: the file holds a password; secrets come only from the environment: "
            'write database_url = "${DATABASE_URL}"'
        )
    if command:
        for ref in _single_quoted_refs(text):
            problems.append(
                f"{_loc(loc)}: {ref} is inside single quotes, where the shell does not expand it; "
                f"""close the quotes around it: '...'"{ref}"'...'"""
            )
    value = _VAR.sub(_substitute(env, key, loc, command, problems), text)
    if database_url and value:
        bad = postgres_url_problem(value)
        if bad:
            names = [m.group(1) for m in _VAR.finditer(text)]
            where = f" (the value of ${names[0]})" if names else ""
            problems.append(f"{_loc(loc)}{where}: {bad}")
    return value


def _substitute(
    env: dict[str, str], key: tuple[Any, ...], loc: tuple[Any, ...], command: bool, problems: list[str]
) -> Callable[[re.Match[str]], str]:
    """The replacement for one ``${VAR}`` match: its value (a command keeps the reference, for the shell to expand
    from the child's environment), registered as a secret unless public."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            problems.append(f"{_loc(loc)}: environment variable {name} is not set; export it or edit the file")
            return ""
        value = env[name]
        if not m.group(2) and not _is_public(key, value):
            # Secret by default, before anything can print it. Of a database URL only the password is:
            # user, host and database name keep messages readable.
            register_secret(url_password(value) if key == ("provider", "database_url") else value)
            if key[:2] not in _APP_KEYS:
                claim(name)  # deploysafe's own: the app's steps do not get it
        return "${" + name + "}" if command else value

    return sub


def references(path: Path) -> dict[tuple[Any, ...], str]:
    """Every string of the config file that interpolates ``${VAR}``, by key path, as written."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    found: dict[tuple[Any, ...], str] = {}

    def walk(obj: Any, loc: tuple[Any, ...]) -> None:
        if isinstance(obj, str) and _VAR.search(obj):
            found[loc] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, loc + (k,))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, loc + (i,))

    walk(raw, ())
    return found


def shown(loaded: LoadedConfig) -> dict[str, Any]:
    """The resolved config as `config show` prints it: defaults filled in, ``${VAR}`` as written (not its value)."""
    data: dict[str, Any] = redact_obj(loaded.config.model_dump(mode="json"))
    for loc, text in references(loaded.path).items():
        node: Any = data
        for part in loc[:-1]:
            node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
        if isinstance(node, (dict, list)) and _has(node, loc[-1]):
            node[loc[-1]] = redact(text)  # a reference names a variable; redact() still hides a literal password
    return data


def _has(node: dict[Any, Any] | list[Any], part: Any) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and 0 <= part < len(node)


_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def postgres_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable PostgreSQL URL, or None. Never quotes the URL: it may hold a password."""
    if not url.startswith(("postgresql://", "postgres://")):
        return "is not a PostgreSQL URL: it must start with postgresql:// (or postgres://)"
    if any(c.isspace() for c in url):
        return "contains a space or another blank; percent-encode it (a space is %20) or remove it"
    if _BAD_PERCENT.search(url):
        return "has a % not followed by two hex digits; write a literal % as %25"
    try:
        urlsplit(url).port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        return "has a port that is not a number between 1 and 65535"

    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "cannot be parsed as a PostgreSQL connection URL; check its percent-encoding and parameters"
    return None


def find_config(explicit: str | None = None, cwd: Path | None = None) -> Path:
    """``--config``, then ``$DEPLOYSAFE_CONFIG``, then deploysafe.toml from cwd upward."""
    given = explicit or os.environ.get(ENV_CONFIG)
    if given:
        p = Path(given)
        if not p.is_file():
            raise ConfigError(
                f"config file {p} does not exist", hint="pass an existing file with --config, or run `deploysafe init`"
            )
        return p.resolve()
    here = (cwd or Path.cwd()).resolve()
    for d in (here, *here.parents):
        cand = d / CONFIG_NAME
        if cand.is_file():
            return cand
    raise ConfigError(
        f"no {CONFIG_NAME} found in {here} or any parent folder",
        hint="run `deploysafe init` in your app, or pass --config PATH",
    )


def parse_config(text: str, *, env: dict[str, str] | None = None, source: str = CONFIG_NAME) -> Config:
    """Parse and validate config text; raise ConfigError listing each problem with its key path."""
    env = dict(os.environ) if env is None else env
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}", hint="fix the syntax at the line shown") from None
    problems: list[str] = []
    data = _interpolate(raw, env, (), problems)
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError("\n".join(_describe(err) for err in e.errors())) from None
    _register_secrets(cfg, env)
    return cfg


def _describe(err: Any) -> str:
    loc = _loc(tuple(err["loc"]))
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key; check the spelling (see `deploysafe config schema`)"
    if kind == "missing":
        return f"{loc}: required key is missing"
    if kind == "literal_error":
        return f"{loc}: {msg}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    # A per-type requirement is raised by the section's validator; name the key itself.
    needed = re.match(r"'(\w+)' is required (when .*)$", msg)
    if needed:
        return f"{loc}.{needed.group(1)}: required key is missing {needed.group(2)}"
    return f"{loc}: {msg}" if loc else msg


def _register_secrets(cfg: Config, env: dict[str, str]) -> None:
    # Every platform's default token variable too: whichever platform is configured, none of them is
    # for the app's steps (a user hands one over on purpose with [app] pass_env).
    names = [cfg.provider.api_key_env, cfg.platform.token_var, cfg.notify.webhook_env, *_DEFAULT_TOKEN_ENV.values()]
    names += [v for p in cfg.probes.http for v in p.headers_env.values()]
    for name in names:
        claim(name)  # deploysafe's own credentials: children get them only through [app] pass_env
        if name and env.get(name):
            register_secret(env[name])
    for url in (cfg.provider.database_url,):
        if url:
            register_secret(url_password(url))


def load_config(explicit: str | None = None, cwd: Path | None = None) -> LoadedConfig:
    path = find_config(explicit, cwd)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}", hint="check the file's permissions and encoding (UTF-8)") from None
    return LoadedConfig(parse_config(text, source=str(path)), path)


def secret(name: str | None, what: str) -> str:
    """Read a secret from the environment, registering it for redaction."""
    if not name or not os.environ.get(name):
        raise PreconditionError(
            f"{what}: environment variable {name or '(unset)'} is empty",
            hint=f"export {name}=... (in CI, from a repository secret)",
        )
    value = os.environ[name]
    register_secret(value)
    return value


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "deploysafe.toml"
    return schema
