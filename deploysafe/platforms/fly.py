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


def auth_header(token: str) -> str:
    """fly-go sends macaroon tokens (``fm1r_``/``fm2_``, from ``fly tokens deploy``) as ``FlyV1``, others as Bearer."""
    token = token.strip()
    if token.startswith("FlyV1 "):
        return token
    if token.startswith(("fm1r_", "fm2_")):
        return f"FlyV1 {token}"
    return f"Bearer {token}"


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

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": auth_header(token)}

    @classmethod
    def _ids(cls, pc: PlatformConfig) -> dict[str, Any]:
        return {"app": pc.app}

    def _api(self, method: str, path: str, what: str, **kw: Any) -> Any:
        return self._request(method, f"/v1/apps/{self.app}{path}", what, **kw)

    def _error_text(self, body: Any) -> str:
        return str(body.get("error") or "")  # {"error": "...", "status": "..."} (fly-go flaps_error.go)

    def _hint(self, status: int) -> str | None:
        if status in (401, 403):
            return (
                f"the token in ${self.token_var} is invalid or cannot manage app {self.app!r}: create one with "
                f"`fly tokens create deploy -a {self.app}` (it may set secrets and update Machines)"
            )
        if status == 404:
            return f"app {self.app!r} (or one of its Machines) does not exist: check [platform] app (`fly apps list`)"
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
        if self.var in names:
            return CurrentValue(readable=False)  # the API only ever returns name + digest
        # not a secret: maybe a plain [env] value from fly.toml, which each Machine's config carries
        for m in self._list_machines():
            env = (m.get("config") or {}).get("env") or {}
            if self.var in env:
                self._plain_env = True
                return CurrentValue(readable=True, value=env[self.var])
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

    def pick_up(self) -> Release:
        if self._secrets_version is None:
            raise PlatformError(
                "Fly.io: no secrets version to roll out (set_url was not called in this run)",
                hint="this is a bug in deploysafe's rollback order; run `fly secrets deploy` by hand",
                platform=self.name,
            )
        # fresh configs: an update replaces the whole config, so a stale copy would undo a later `fly deploy`
        machines = self._list_machines()
        self._pending = {}
        updated = []
        for m in machines:
            stopped = m.get("state") in ("stopped", "suspended")
            body = {"config": m["config"], "min_secrets_version": self._secrets_version, "skip_launch": stopped}
            new = self._api("POST", f"/machines/{m['id']}", f"update Machine {m['id']}", json=body)
            if not stopped:
                self._pending[str(m["id"])] = str(new.get("instance_id") or "")
            updated.append(new)
        return Release(
            id=f"secrets-v{self._secrets_version}",
            status=f"{len(updated)} machines updated",
            detail=f"{len(self._pending)} to start, {len(updated) - len(self._pending)} left stopped",
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
        machines = self._list_machines()
        return self._to_release(machines, f"{self.app}")

    def caveats(self) -> list[str]:
        return [
            f"Fly.io: secrets are write-only, so {self.var}'s current value cannot be read; deploysafe restores "
            "the connection string it recorded itself.",
            f"Fly.io: a rollback updates every Machine of {self.app} at once (each restarts with the new secret); "
            "expect a short gap per Machine.",
        ] + (
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
