"""Heroku adapter (Platform API v3): patch one config var, then wait for its release and the web dynos.

Request and response shapes follow shared/specs/heroku-platform-api-schema.json (the JSON hyper-schema
of api.heroku.com); tests/platforms/test_heroku.py validates every fixture against it. Behaviour follows
shared/research/platforms.md §5: a config-var change creates a release and restarts the dynos by itself
(so ``set_url`` already restarts the app, and ``pick_up`` returns that release), the release phase
re-runs on such a release, and an add-on attachment's var cannot be patched (422) - it is kept as a
reference and restored by re-attaching, as ``heroku pg:promote`` does (issue 5).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx

from deploysafe.config import secret
from deploysafe.console import console
from deploysafe.errors import PlatformError
from deploysafe.http import RetryPolicy, json_body, make_client, poll, send
from deploysafe.platforms.base import CurrentValue, Release
from deploysafe.redact import redact

if TYPE_CHECKING:
    from deploysafe.config import LoadedConfig

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
    )


def _to_dyno(body: dict[str, Any]) -> tuple[str, str, int | None, str]:
    """(name, type, release version, state) of one dyno."""
    release = body.get("release") or {}
    return str(body.get("name")), str(body.get("type")), release.get("version"), str(body.get("state"))


def _attachment_name(var: str) -> str:
    """The attachment whose add-on sets ``var``: DATABASE sets DATABASE_URL."""
    return var[: -len("_URL")] if var.endswith("_URL") else var


class HerokuPlatform:
    """One config var of one Heroku app."""

    name = "heroku"

    def __init__(
        self,
        *,
        token: str,
        app: str,
        var: str = "DATABASE_URL",
        token_var: str = "HEROKU_API_KEY",
        api_url: str = API_URL,
        ready_timeout: float = 900.0,
        poll_interval: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.app = app
        self.var = var
        self.token_var = token_var
        self.ready_timeout = ready_timeout
        self.poll_interval = poll_interval
        self.policy = policy or RetryPolicy()
        self._client = make_client(api_url, {"Authorization": f"Bearer {token}", "Accept": ACCEPT}, transport=transport)
        self._baseline: int | None = None  # newest release version before our change
        self._addon: str | None = None  # add-on that owns the var through an attachment, if any
        self._prepared = False

    @classmethod
    def from_config(
        cls,
        loaded: LoadedConfig,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        **_: Any,
    ) -> HerokuPlatform:
        pc = loaded.config.platform
        assert pc.app  # required for type = "heroku" by the config model
        token_var = pc.token_var or "HEROKU_API_KEY"
        return cls(
            token=secret(token_var, "Heroku API key"),
            app=pc.app,
            var=pc.var,
            token_var=token_var,
            api_url=pc.api_url or API_URL,
            ready_timeout=pc.ready_timeout,
            poll_interval=pc.poll_interval,
            transport=transport,
            policy=policy,
        )

    # --- the one place responses are checked ------------------------------------------------

    def _hint(self, status: int | None, error_id: str | None = None, message: str = "") -> str:
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
        if status == 422 and self.var in message:
            return (
                f"{self.var} is set by an add-on attachment and Heroku will not overwrite it; make the app read "
                f"another variable and set [platform] var to it"
            )
        return "check https://status.heroku.com and run again" + (f" (Heroku error id: {error_id})" if error_id else "")

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """Send one request and return its JSON body, or raise PlatformError with a hint."""
        try:
            resp = send(self._client, method, path, policy=self.policy, **kwargs)
        except httpx.HTTPError as e:
            raise PlatformError(
                f"Heroku {what}: network error ({type(e).__name__})",
                hint=self._hint(None),
                platform=self.name,
            ) from e
        if resp.is_success:
            try:
                return json_body(resp)
            except ValueError as e:
                raise PlatformError(f"Heroku {what}: {e}", hint=self._hint(None), platform=self.name) from e
        try:
            body = json_body(resp)
        except ValueError:
            body = {}
        error_id = body.get("id") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        if resp.status_code == 429:
            message = f"rate limited after {self.policy.attempts} attempts" + (f": {message}" if message else "")
        raise PlatformError(
            redact(f"Heroku {what} failed: HTTP {resp.status_code} {message or resp.reason_phrase}"),
            hint=self._hint(resp.status_code, error_id, str(message or "")),
            status=resp.status_code,
            platform=self.name,
        )

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
        """The release the change created. If none appeared (the value was already set), restart the dynos."""
        newest = self._newest()
        baseline = self._baseline or 0
        if newest and int(newest["version"]) > baseline:
            self._baseline = int(newest["version"])
            return _to_release(newest)
        self._request("DELETE", f"/apps/{self.app}/dynos", "restart all dynos")
        if not newest:
            raise PlatformError(
                f"Heroku app {self.app} has no release", hint="deploy the app once, then run again", platform=self.name
            )
        release = _to_release(newest)
        return release.model_copy(update={"detail": f"{release.detail} (dynos restarted)"})

    # --- waiting --------------------------------------------------------------------------------

    def _dynos_live(self, version: int) -> bool:
        dynos = [_to_dyno(d) for d in self._request("GET", f"/apps/{self.app}/dynos", "list dynos")]
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
        return all(d[2] == version and d[3] == "up" for d in web)

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
            return poll(
                check,
                interval=self.poll_interval,
                timeout=timeout,
                what=f"Heroku release v{version} with its web dynos",
                sleep=self.policy.sleep,
            )
        except TimeoutError as e:
            raise PlatformError(
                f"{e} (last release status: {seen[-1] if seen else 'unknown'})",
                hint=f"check `heroku ps --app {self.app}` and `heroku releases --app {self.app}`; "
                "raise [platform] ready_timeout if the release phase is slow",
                platform=self.name,
                release=str(version),
            ) from None

    def describe(self) -> Release | None:
        newest = self._newest()
        return _to_release(newest) if newest else None

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

    def close(self) -> None:
        self._client.close()
