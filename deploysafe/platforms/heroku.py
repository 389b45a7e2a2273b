"""Heroku adapter (Platform API v3): patch one config var, then wait for its release and the web dynos.

Request and response shapes follow tests/fixtures/specs/heroku-platform-api-schema.json (the JSON hyper-schema
of api.heroku.com); tests/platforms/test_heroku.py validates every fixture against it. Behaviour follows
shared/research/platforms.md §5: a config-var change creates a release and restarts the dynos by itself
(so ``set_url`` already restarts the app, and ``pick_up`` returns that release), the release phase
re-runs on such a release, and an add-on attachment's var cannot be patched (422) - it is kept as a
reference and restored by re-attaching, as ``heroku pg:promote`` does. Requests, retries and
error mapping come from the shared :class:`HttpAdapter`.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deploysafe.console import console
from deploysafe.errors import PlatformError
from deploysafe.platforms.base import CurrentValue, Release
from deploysafe.platforms.http_base import HttpAdapter

if TYPE_CHECKING:
    from deploysafe.config import PlatformConfig

API_URL = "https://api.heroku.com"
ACCEPT = "application/vnd.heroku+json; version=3"
# Reference text for a var owned by an add-on attachment: restoring it re-attaches that add-on.
ADDON_PREFIX = "heroku-addon:"
NEWEST = "version ..; order=desc, max=1"  # Range header: newest release first (research §5.5)
_MIGRATES = re.compile(
    r"migrat|db:push|drizzle|prisma|knex|sequelize|typeorm|alembic|flyway|liquibase|rake db|manage\.py", re.I
)


def _to_release(body: dict[str, Any]) -> Release:
    status = str(body.get("status") or "unknown")
    version = body.get("version")
    return Release(
        id=str(version),
        status=status,
        live=status == "succeeded" and bool(body.get("current")),
        failed=status in ("failed", "expired"),
        detail=f"v{version}: {body.get('description') or ''}".strip(),
        code=(body.get("slug") or {}).get("id"),  # the code it runs; None for container (OCI image) releases
    )


def _to_dyno(body: dict[str, Any]) -> tuple[str, str, int | None, str]:
    """(name, type, release version, state) of one dyno."""
    release = body.get("release") or {}
    return str(body.get("name")), str(body.get("type")), release.get("version"), str(body.get("state"))


def _since(body: dict[str, Any]) -> datetime | None:
    """When the dyno process last started or changed state (``created_at``/``updated_at``, whichever is newer)."""
    stamps = [_parse_time(body.get(k)) for k in ("created_at", "updated_at")]
    known = [t for t in stamps if t is not None]
    return max(known) if known else None


def _parse_time(raw: Any) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def _attachment_name(var: str) -> str:
    """The attachment whose add-on sets ``var``: DATABASE sets DATABASE_URL."""
    return var[: -len("_URL")] if var.endswith("_URL") else var


class HerokuPlatform(HttpAdapter):
    """One config var of one Heroku app."""

    name = "heroku"
    label = "Heroku"
    status_page = "https://status.heroku.com"
    default_token_var = "HEROKU_API_KEY"

    api_base = API_URL
    secret_what = "Heroku API key"

    def __init__(self, *, app: str, now: Callable[[], datetime] = lambda: datetime.now(UTC), **common: Any) -> None:
        super().__init__(**common)
        self.app = app
        self._now = now  # wall clock, when the API's Date header is missing
        self._baseline: int | None = None  # newest release version before our change
        self._addon: str | None = None  # add-on that owns the var through an attachment, if any
        self._prepared = False
        # release version -> when deploysafe restarted all dynos on it (pick_up's fallback): only dynos that
        # (re)started after that moment count as live
        self._restarted: dict[int, datetime] = {}

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": ACCEPT}

    @classmethod
    def _ids(cls, pc: PlatformConfig) -> dict[str, Any]:
        return {"app": pc.app}

    def _error_text(self, body: Any) -> str:
        return str(body.get("message") or body.get("id") or "")  # {"id", "message", "url"} per the schema

    def _hint(self, status: int, text: str = "") -> str | None:
        if status in (401, 403):
            return (
                f"check {self.token_var}: it needs an API key or an authorization made with `heroku "
                f"authorizations:create --scope read-protected,write-protected` (config vars are protected) of an "
                f"account that can change config vars of app {self.app}"
            )
        if status == 404:
            return f"app = {self.app!r} in [platform] is wrong, or the token's account cannot see it (`heroku apps`)"
        if status == 429:
            return "Heroku rate-limited the account (4500 requests, refilled ~75/minute); wait a minute and run again"
        if status == 422 and ("attachment" in text.lower() or self.var in text):
            return (
                f"{self.var} is set by an add-on attachment and Heroku will not overwrite it; make the app read "
                f"another variable and set [platform] var to it"
            )
        return f"check {self.status_page} and run again"

    # --- reads ----------------------------------------------------------------------------------

    def _find_addon(self) -> str | None:
        attachments = self._request("GET", f"/apps/{self.app}/addon-attachments", "list add-on attachments")
        wanted = _attachment_name(self.var)
        for att in attachments:
            if att.get("name") == wanted:
                return str(att["addon"]["name"])
        return None

    def _newest(self) -> dict[str, Any] | None:
        releases = self._request("GET", f"/apps/{self.app}/releases", "list releases", headers={"Range": NEWEST})
        return dict(releases[0]) if releases else None

    def read_current(self) -> CurrentValue:
        """The value, or ``heroku-addon:<add-on>`` when an add-on attachment owns the variable."""
        self._addon = self._find_addon()
        if self._addon:
            return CurrentValue(readable=True, value=ADDON_PREFIX + self._addon, reference=True)
        config = self._request("GET", f"/apps/{self.app}/config-vars", "read config vars")
        return CurrentValue(readable=True, value=config.get(self.var), reference=False)

    def prepare(self) -> None:
        self._addon = self._find_addon()
        newest = self._newest()
        self._baseline = int(newest["version"]) if newest else 0
        self._prepared = True

    # --- changes --------------------------------------------------------------------------------

    def set_url(self, url: str) -> None:
        """PATCH the var (Heroku makes a release and restarts the dynos at once); a ``heroku-addon:``
        reference re-attaches that add-on under the var's attachment name instead."""
        if self._baseline is None:
            newest = self._newest()
            self._baseline = int(newest["version"]) if newest else 0
        if url.startswith(ADDON_PREFIX):
            addon = url[len(ADDON_PREFIX) :]
            body = {"addon": addon, "app": self.app, "name": _attachment_name(self.var), "confirm": self.app}
            self._request("POST", "/addon-attachments", f"attach {addon} as {body['name']}", json=body)
            return
        if not self._prepared:
            self._addon = self._find_addon()
        if self._addon:
            raise PlatformError(
                f"Heroku: {self.var} belongs to add-on {self._addon} (attachment {_attachment_name(self.var)}); "
                "Heroku refuses to overwrite it",
                hint="make the app read another variable and set [platform] var to it (see docs/platforms/heroku.md)",
                platform=self.name,
            )
        updated = self._request("PATCH", f"/apps/{self.app}/config-vars", f"set {self.var}", json={self.var: url})
        if updated.get(self.var) != url:
            raise PlatformError(
                f"Heroku accepted the change but {self.var} does not hold the new value",
                hint="check the app's config vars in the dashboard and run again",
                platform=self.name,
            )

    def pick_up(self) -> Release:
        """The release the change created. If none appeared (the value was already set, or [rollback] strategy =
        "restore" left the URL alone), restart all dynos; live then means dynos started after that restart."""
        newest = self._newest()
        baseline = self._baseline or 0
        if newest and int(newest["version"]) > baseline:
            self._baseline = int(newest["version"])
            return _to_release(newest)
        if not newest:
            raise PlatformError(
                f"Heroku app {self.app} has no release", hint="deploy the app once, then run again", platform=self.name
            )
        resp = self._send("DELETE", f"/apps/{self.app}/dynos", "restart all dynos")
        version = int(newest["version"])
        self._restarted[version] = _server_time(resp.headers.get("date")) or self._now()
        release = _to_release(newest)
        return release.model_copy(update={"detail": f"{release.detail} (dynos restarted)", "live": False})

    # --- waiting --------------------------------------------------------------------------------

    def _dynos_live(self, version: int) -> bool:
        bodies = self._request("GET", f"/apps/{self.app}/dynos", "list dynos")
        restarted = self._restarted.get(version)
        # after a restart, a dyno still up from before it is not live on the new process yet
        fresh = {str(b.get("name")) for b in bodies if restarted is None or (_since(b) or restarted) >= restarted}
        dynos = [_to_dyno(d) for d in bodies]
        web = [d for d in dynos if d[1] == "web"] or dynos
        crashed = [d[0] for d in web if d[2] == version and d[3] == "crashed"]
        if crashed:
            raise PlatformError(
                f"Heroku dyno {', '.join(crashed)} crashed on release v{version}",
                hint=f"read the logs: heroku logs --app {self.app} --dyno {crashed[0]}",
                platform=self.name,
                release=str(version),
            )
        # no dynos at all: the formation is scaled to zero, so nothing is left to come up
        return all(d[2] == version and d[3] == "up" and d[0] in fresh for d in web)

    def wait_live(self, release: Release, timeout: float) -> Release:
        version = int(release.id)
        seen: list[str] = []

        def check() -> Release | None:
            body = self._request("GET", f"/apps/{self.app}/releases/{version}", f"read release v{version}")
            current = _to_release(body)
            if not seen or seen[-1] != current.status:
                seen.append(current.status)
                console.info(f"heroku: release v{version} is {current.status}")
            if current.failed:
                raise PlatformError(
                    f"Heroku release v{version} {current.status}: {current.detail}",
                    hint=f"read the release phase output: heroku releases:output v{version} --app {self.app}",
                    platform=self.name,
                    release=str(version),
                )
            if current.status != "succeeded" or not self._dynos_live(version):
                return None
            return current.model_copy(update={"live": True})

        try:
            return self._wait(
                check,
                what=f"Heroku release v{version} with its web dynos",
                timeout=timeout,
                hint=f"check `heroku ps --app {self.app}` and `heroku releases --app {self.app}`; "
                "raise [platform] ready_timeout if the release phase is slow",
            )
        except PlatformError as e:
            if e.status is None and "did not finish" in e.message:
                e.message = f"{e.message} (last release status: {seen[-1] if seen else 'unknown'})"
                e.context["release"] = str(version)
            raise

    def describe(self) -> Release | None:
        newest = self._newest()
        return _to_release(newest) if newest else None

    def how(self) -> str:
        return (
            "Heroku: create a release of the recorded slug (the config vars stay as they are now), then set the "
            "variable (a second release; Heroku cannot do both in one)"
        )

    def return_to(self, release: Release, url: str | None) -> Release:
        """A new release of the recorded slug (Platform API "Create" release), not "Rollback": that would also bring
        back the old release's config vars, undoing any other change. The slug goes first so the release phase that a
        config change re-runs is the old code's, never the failed deploy's against the snapshot."""
        if not release.code:
            raise PlatformError(
                f"Heroku: release v{release.id} of {self.app} has no slug (a container release) to bring back",
                hint=f"roll back by hand: heroku releases:rollback v{release.id} --app {self.app}, then set {self.var}",
                platform=self.name,
            )
        created = self._request(
            "POST", f"/apps/{self.app}/releases", f"release the slug of v{release.id}",
            json={"slug": release.code, "description": f"deploysafe: back to the code of v{release.id}"},
        )
        if url is None:
            return _to_release(created)
        self._baseline = int(created.get("version") or 0) or self._baseline
        self.set_url(url)
        return self.pick_up()

    # --- warnings -------------------------------------------------------------------------------

    def _release_command(self) -> str | None:
        """The Procfile ``release:`` command of the running slug, or of the formation (container apps)."""
        newest = self._newest()
        slug = (newest or {}).get("slug") or {}
        if slug.get("id"):
            body = self._request("GET", f"/apps/{self.app}/slugs/{slug['id']}", "read the slug")
            command = (body.get("process_types") or {}).get("release")
            if command:
                return str(command)
        for proc in self._request("GET", f"/apps/{self.app}/formation", "read the formation"):
            if proc.get("type") == "release":
                return str(proc.get("command") or "release")
        return None

    def caveats(self) -> list[str]:
        out: list[str] = []
        command = self._release_command()
        if command:
            migrates = " and it looks like it migrates" if _MIGRATES.search(command) else ""
            out.append(
                f"Heroku re-runs the release phase (`{command}`) on every config-var change{migrates}: a rollback "
                f"would run it against the snapshot. Make it safe to re-run, or move migrations out of it."
            )
        if not self._prepared:
            self._addon = self._find_addon()
        if self._addon:
            out.append(
                f"{self.var} is set by add-on {self._addon}; Heroku will not let deploysafe point it at a "
                f"snapshot. Make the app read another variable and set [platform] var to it."
            )
        return out


def _server_time(raw: str | None) -> datetime | None:
    """The API's ``Date`` header: the restart's moment on Heroku's clock, comparable with dyno timestamps."""
    if not raw:
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
