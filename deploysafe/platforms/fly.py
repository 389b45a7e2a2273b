"""Fly.io adapter: set the app secret, update every app Machine to the new secrets version, wait until started.

Shapes: Fly Machines API (https://fly.io/docs/machines/api/, Go client superfly/fly-go ``flaps``), as
``fly secrets set`` does it; research/platforms.md §4 and tests/fixtures/fly/README.md. Issue 5.

Secrets are write-only on Fly: the current value can never be read back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploysafe.errors import PlatformError
from deploysafe.platforms.base import CurrentValue, Release
from deploysafe.platforms.http_base import HttpAdapter
from deploysafe.redact import redact

if TYPE_CHECKING:
    from deploysafe.config import PlatformConfig

API_URL = "https://api.machines.dev"
# process groups flyctl leaves alone on a secrets change (one-off release/console/test machines)
_SKIP_GROUPS = frozenset({"fly_app_release_command", "fly_app_console", "fly_app_test_machine_command"})
_GONE = frozenset({"destroyed", "destroying"})
# flyctl's skipLaunch (internal/command/deploy/machines_launchinput.go): only these come back started after an
# update; stopped, suspended, created, stopping... stay as they are (autostart boots them on the next request)
_START = frozenset({"started", "starting", "failed"})
_MACAROON_PREFIXES = frozenset({"fm1r", "fm1a", "fm2"})
LEASE_HEADER = "fly-machine-lease-nonce"  # fly-go flaps NonceHeader
LEASE_TTL = 120  # seconds; released as soon as the Machine is updated


def _strip_scheme(token: str) -> str:
    token = token.strip()
    scheme, _, rest = token.partition(" ")
    if rest and scheme.lower() in ("bearer", "flyv1"):
        return _strip_scheme(rest)
    return token


def auth_header(token: str) -> str:
    """The header fly-go's ``tokens.Parse(...).FlapsHeader()`` builds: comma-separated tokens whose prefix is
    ``fm1r``/``fm1a``/``fm2`` are macaroons, sent alone as ``FlyV1 <macaroons>``; otherwise ``Bearer <tokens>``."""
    parts = [t.strip() for t in _strip_scheme(token).split(",") if t.strip()]
    macaroons = [t for t in parts if t.partition("_")[0] in _MACAROON_PREFIXES]
    if macaroons:
        return "FlyV1 " + ",".join(macaroons)
    return "Bearer " + ",".join(parts)


def _starts(machine: dict[str, Any]) -> bool:
    """Whether flyctl would launch this Machine after an update (standbys never are)."""
    return machine.get("state") in _START and not (machine.get("config") or {}).get("standbys")


class FlyPlatform(HttpAdapter):
    """DATABASE_URL as a Fly app secret, injected into each Machine at boot."""

    name = "fly"
    label = "Fly.io"
    status_page = "https://status.flyio.net"
    default_token_var = "FLY_API_TOKEN"

    api_base = API_URL
    secret_what = "Fly.io API token"

    def __init__(self, *, app: str, **common: Any) -> None:
        common.setdefault("poll_interval", 2.0)  # Machines restart in seconds
        super().__init__(**common)
        self.app = app
        self._machine_ids: list[str] | None = None
        self._secrets_version: int | None = None
        # machine id -> instance id the update produced, for the machines that must come up started
        self._pending: dict[str, str] = {}
        self._plain_env = False  # ``var`` found in the Machines' [env], not among the secrets
        self._shadowed = False  # ``var`` is a secret AND a plain [env] value of the same name

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": auth_header(token)}

    @classmethod
    def _ids(cls, pc: PlatformConfig) -> dict[str, Any]:
        return {"app": pc.app}

    def _api(self, method: str, path: str, what: str, **kw: Any) -> Any:
        return self._request(method, f"/v1/apps/{self.app}{path}", what, **kw)

    def _error_text(self, body: Any) -> str:
        return str(body.get("error") or "")  # {"error": "...", "status": "..."} (fly-go flaps_error.go)

    def _hint(self, status: int, text: str = "") -> str | None:
        if status in (401, 403):
            return (
                f"the token in ${self.token_var} is invalid or cannot manage app {self.app!r}: create one with "
                f"`fly tokens create deploy -a {self.app}` (it may set secrets and update Machines)"
            )
        if status == 404:
            return f"app {self.app!r} (or one of its Machines) does not exist: check [platform] app (`fly apps list`)"
        if status == 409:
            return (
                "another operation (a `fly deploy` or `fly secrets set` in progress?) holds a lease on the Machine: "
                f"wait for it to finish (`fly status -a {self.app}`), then run again"
            )
        if status == 429:
            return "the Machines API rate limited the requests even after backing off: wait a minute and run again"
        return None

    # -- parsing -----------------------------------------------------------------------------------

    def _to_app_machines(self, body: Any) -> list[dict[str, Any]]:
        """The app's own Machines: not destroyed, not release-command/console machines."""
        keep = []
        for m in body or []:
            metadata = (m.get("config") or {}).get("metadata") or {}
            if m.get("state") in _GONE or metadata.get("fly_process_group") in _SKIP_GROUPS:
                continue
            keep.append(m)
        return keep

    def _to_release(self, machines: list[dict[str, Any]], release_id: str) -> Release:
        started = [m for m in machines if _is_up(m)]
        versions = {((m.get("config") or {}).get("metadata") or {}).get("fly_release_version") for m in machines}
        versions.discard(None)
        detail = "; ".join(_machine_summary(m) for m in machines if not _is_up(m)) or None
        return Release(
            id=release_id,
            status=f"{len(started)}/{len(machines)} machines started"
            + (f" (release v{', v'.join(sorted(str(v) for v in versions))})" if versions else ""),
            live=bool(machines) and len(started) == len(machines),
            failed=any(m.get("state") in _GONE or m.get("state") == "failed" for m in machines),
            detail=detail,
        )

    # -- Platform ----------------------------------------------------------------------------------

    def _list_machines(self) -> list[dict[str, Any]]:
        machines = self._to_app_machines(self._api("GET", "/machines", f"list Machines of {self.app}"))
        if not machines:
            raise PlatformError(
                f"Fly.io: app {self.app!r} has no Machines to restart",
                hint="deploy the app once with `fly deploy`, then run again",
                platform=self.name,
            )
        self._machine_ids = [str(m["id"]) for m in machines]
        return machines

    def read_current(self) -> CurrentValue:
        body = self._api("GET", "/secrets", f"list secrets of {self.app}")
        names = {s.get("name") for s in body.get("secrets") or []}
        plain = next(
            (env[self.var] for m in self._list_machines() if self.var in (env := (m.get("config") or {}).get("env") or {})),
            None,
        )
        if self.var in names:
            # a plain [env] value of the same name may win over the secret (precedence not documented by Fly)
            self._shadowed = plain is not None
            return CurrentValue(readable=False)  # the API only ever returns name + digest
        if plain is not None:  # not a secret: a plain [env] value from fly.toml, which each Machine's config carries
            self._plain_env = True
            return CurrentValue(readable=True, value=plain)
        return CurrentValue(readable=True, value=None)

    def prepare(self) -> None:
        self._list_machines()

    def set_url(self, url: str) -> None:
        body = self._api("POST", "/secrets", f"set secret {self.var}", json={"values": {self.var: url}})
        version = body.get("version")
        if not isinstance(version, int):
            raise PlatformError(
                "Fly.io: the secrets update answered without a secrets version",
                hint="update flyctl's view with `fly secrets list`, then run `fly secrets deploy` by hand",
                platform=self.name,
            )
        self._secrets_version = version

    def _lease(self, machine_id: str) -> str:
        """Take the Machine's lease as flyctl does, so no deploy updates it at the same time (409: one holds it)."""
        body = self._api(
            "POST", f"/machines/{machine_id}/lease", f"take the lease on Machine {machine_id}", params={"ttl": str(LEASE_TTL)}
        )
        nonce = ((body or {}).get("data") or {}).get("nonce")
        if not nonce:
            raise PlatformError(
                f"Fly.io: the lease on Machine {machine_id} was granted without a nonce",
                hint=f"run `fly secrets deploy -a {self.app}` by hand",
                platform=self.name,
            )
        return str(nonce)

    def _release_lease(self, machine_id: str, nonce: str) -> None:
        try:
            self._api("DELETE", f"/machines/{machine_id}/lease", f"release the lease on Machine {machine_id}",
                      headers={LEASE_HEADER: nonce}, missing_ok=True)
        except PlatformError:
            pass  # the lease expires by itself after LEASE_TTL seconds

    def pick_up(self) -> Release:
        """Roll the new secrets version out to every app Machine (as ``fly secrets deploy``), or, when no secret was
        set in this run ([rollback] strategy = "restore": the URL did not change), restart the running ones."""
        return self._roll(None)

    def _roll(self, image: str | None) -> Release:
        """Update every app Machine (under its lease) to the secrets version set in this run and, given ``image``,
        to that image; with neither, restart the running ones."""
        # fresh configs: an update replaces the whole config, so a stale copy would undo a later `fly deploy`
        machines = self._list_machines()
        plain_restart = self._secrets_version is None and image is None
        self._pending = {}
        touched = 0
        for m in machines:
            mid = str(m["id"])
            start = _starts(m)
            if plain_restart and not start:
                continue  # a restart only concerns Machines that run; the others boot fresh on the next request
            nonce = self._lease(mid)
            try:
                if plain_restart:
                    self._api("POST", f"/machines/{mid}/restart", f"restart Machine {mid}", headers={LEASE_HEADER: nonce})
                    self._pending[mid] = ""  # a restart keeps the instance id
                else:
                    config = {**m["config"], "image": image} if image else m["config"]
                    body: dict[str, Any] = {"config": config, "skip_launch": not start}
                    if self._secrets_version is not None:
                        body["min_secrets_version"] = self._secrets_version
                    new = self._api("POST", f"/machines/{mid}", f"update Machine {mid}", json=body,
                                    headers={LEASE_HEADER: nonce})
                    if start:
                        self._pending[mid] = str(new.get("instance_id") or "")
            finally:
                self._release_lease(mid, nonce)
            touched += 1
        if plain_restart:
            return Release(id=f"restart-{self.app}", status=f"{touched} machines restarted",
                           detail=f"{touched} restarted, {len(machines) - touched} not running")
        return Release(
            id=f"image-{image}" if image else f"secrets-v{self._secrets_version}",
            code=image,
            status=f"{touched} machines updated",
            detail=f"{len(self._pending)} to start, {touched - len(self._pending)} left stopped",
        )

    def wait_live(self, release: Release, timeout: float) -> Release:
        if not self._pending:
            # every Machine was stopped (autostop): each boots with the new secrets version when traffic comes
            return release.model_copy(update={"live": True, "status": "no running Machines to wait for"})

        def check() -> Release | None:
            machines = [self._api("GET", f"/machines/{mid}", f"read Machine {mid}") for mid in self._pending]
            for m in machines:
                if m.get("state") in _GONE or m.get("state") == "failed":
                    raise PlatformError(
                        f"Fly.io: Machine {m.get('id')} is {m.get('state')} after the update{_last_event(m)}",
                        hint=f"see `fly logs -a {self.app}` and `fly machine status {m.get('id')}`",
                        platform=self.name,
                    )
            ready = all(_is_up(m) and self._pending[str(m["id"])] in ("", m.get("instance_id")) for m in machines)
            return self._to_release(machines, release.id) if ready else None

        return self._wait(
            check,
            what=f"Fly.io Machines of {self.app}",
            timeout=timeout,
            hint=f"not all started with passing checks: see `fly status -a {self.app}` and `fly logs -a {self.app}`; "
            "the secret is already set",
        )

    def describe(self) -> Release | None:
        """What the app's Machines run: their image (the release id flyctl deploys), when they all run one."""
        machines = self._list_machines()
        images = {str((m.get("config") or {}).get("image") or "") for m in machines}
        image = images.pop() if len(images) == 1 else None
        release = self._to_release(machines, image or self.app)
        return release.model_copy(update={"code": image or None})

    def how(self) -> str:
        return (
            "Fly.io: set the secret, then update every app Machine to the recorded image with the new secrets "
            "version (one update per Machine, under its lease)"
        )

    def return_to(self, release: Release, url: str | None) -> Release:
        if not release.code:
            raise PlatformError(
                f"Fly.io: the Machines of {self.app} ran more than one image before the deploy; deploysafe cannot "
                "tell which one to bring back",
                hint=f"pick the image in `fly releases -a {self.app} --image` and run `fly deploy --image <it>`",
                platform=self.name,
            )
        if url is not None:
            self.set_url(url)
        return self._roll(release.code)

    def caveats(self) -> list[str]:
        return [
            f"Fly.io: secrets are write-only, so {self.var}'s current value cannot be read; deploysafe restores "
            "the connection string it recorded itself.",
            f"Fly.io: a rollback updates every Machine of {self.app} at once (each restarts with the new secret); "
            "expect a short gap per Machine.",
        ] + (
            [
                f"Fly.io: {self.var} is both a secret and a plain [env] value in fly.toml; the [env] value may win "
                "over the secret, so a rollback that sets the secret might not reach the app. Remove it from [env] "
                "and run `fly deploy`."
            ]
            if self._shadowed
            else []
        ) + (
            [
                f"Fly.io: {self.var} is a plain [env] value in fly.toml, not a secret; a rollback sets a secret of the "
                "same name, and the next `fly deploy` may bring the [env] value back. Move it to `fly secrets set`."
            ]
            if self._plain_env
            else []
        )


def _is_up(machine: dict[str, Any]) -> bool:
    """Started, and every health check passing (a Machine without checks counts when started)."""
    checks = machine.get("checks") or []
    return machine.get("state") == "started" and all(c.get("status") == "passing" for c in checks)


def _machine_summary(machine: dict[str, Any]) -> str:
    failing = [f"{c.get('name')}={c.get('status')}" for c in machine.get("checks") or [] if c.get("status") != "passing"]
    text = f"{machine.get('id')} {machine.get('state')}"
    return redact(f"{text} ({', '.join(failing)})" if failing else text)


def _last_event(machine: dict[str, Any]) -> str:
    """The newest Machine event (fly-go ``MachineEvent``: type, status, request.exit_event.exit_code), as a suffix."""
    events = machine.get("events") or []
    if not events:
        return ""
    newest = max(events, key=lambda e: e.get("timestamp") or 0)
    exit_code = ((newest.get("request") or {}).get("exit_event") or {}).get("exit_code")
    text = f"{newest.get('type')} {newest.get('status')}" + (f", exit code {exit_code}" if exit_code is not None else "")
    return redact(f" (last event: {text})")
