"""Render adapter: set the service's env var, deploy the last build without rebuilding, wait for ``live``.

Shapes: Render public API v1 (https://api-docs.render.com), research/platforms.md §2 and
tests/fixtures/render/README.md. Issue 5.

A value that comes from a linked environment group is a reference: deploysafe reports it as
``envgroup:<id>`` and restores it by removing the service-level override, never by copying the
group's value onto the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploysafe.errors import PlatformError
from deploysafe.platforms.base import CurrentValue, Release
from deploysafe.platforms.http_base import HttpAdapter
from deploysafe.redact import redact

if TYPE_CHECKING:
    from deploysafe.config import PlatformConfig

API_URL = "https://api.render.com/v1"
GROUP_PREFIX = "envgroup:"
_FAILED = frozenset({"build_failed", "update_failed", "pre_deploy_failed", "canceled", "deactivated"})


class RenderPlatform(HttpAdapter):
    """DATABASE_URL as an environment variable of one Render service."""

    name = "render"
    label = "Render"
    status_page = "https://status.render.com"
    default_token_var = "RENDER_API_KEY"

    api_base = API_URL
    secret_what = "Render API key"

    def __init__(self, *, service_id: str, **common: Any) -> None:
        super().__init__(**common)
        self.service_id = service_id
        self._service: dict[str, Any] | None = None
        self._current: CurrentValue | None = None
        self._live: Release | None = None

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    @classmethod
    def _ids(cls, pc: PlatformConfig) -> dict[str, Any]:
        return {"service_id": pc.service_id}

    def _error_text(self, body: Any) -> str:
        return str(body.get("message") or "")  # Render's ``error`` schema: {"id", "message"}

    def _hint(self, status: int) -> str | None:
        return {
            401: f"the API key in ${self.token_var} is invalid or revoked: create one under Account Settings > API Keys",
            403: f"the API key in ${self.token_var} has no access to service {self.service_id}: use a key of its workspace",
            404: f"service {self.service_id!r} was not found: check [platform] service_id (srv-...) in the dashboard URL",
            429: "Render rate limited the requests even after backing off (deploys: 10 a minute per service); "
            "wait a minute and run again",
        }.get(status)

    # -- parsing -----------------------------------------------------------------------------------

    def _to_release(self, d: dict[str, Any]) -> Release:
        deploy = d.get("deploy", d)  # list endpoints wrap each deploy with its cursor
        status = str(deploy.get("status") or "unknown")
        commit = (deploy.get("commit") or {}).get("id") or (deploy.get("image") or {}).get("ref")
        return Release(
            id=str(deploy["id"]),
            status=status,
            live=status == "live",
            failed=status in _FAILED,
            detail=f"{status} (commit {commit})" if commit else status,
        )

    def _to_pre_deploy(self, service: dict[str, Any]) -> str | None:
        details = (service.get("serviceDetails") or {}).get("envSpecificDetails") or {}
        command = details.get("preDeployCommand")
        return str(command) if command else None

    # -- Platform ----------------------------------------------------------------------------------

    def _load_service(self) -> dict[str, Any]:
        if self._service is None:
            self._service = self._request("GET", f"/services/{self.service_id}", f"read service {self.service_id}")
        return self._service

    def _group_holding_var(self) -> str | None:
        """Id of a linked environment group that defines ``var`` (the service itself does not)."""
        groups = self._request("GET", "/env-groups", "list environment groups", params={"limit": "100"})
        for item in groups or []:
            meta = item.get("envGroup", item)  # tolerate the cursor-wrapped list form
            if not any(link.get("id") == self.service_id for link in meta.get("serviceLinks") or []):
                continue
            group = self._request("GET", f"/env-groups/{meta['id']}", f"read environment group {meta['id']}")
            if any(v.get("key") == self.var for v in group.get("envVars") or []):
                return str(meta["id"])
        return None

    def read_current(self) -> CurrentValue:
        self._load_service()  # a wrong service id is a 404 here, not "variable missing"
        found = self._request(
            "GET", f"/services/{self.service_id}/env-vars/{self.var}", f"read {self.var}", missing_ok=True
        )
        if found is not None:
            self._current = CurrentValue(readable=True, value=found.get("value"))
            return self._current
        group = self._group_holding_var()
        if group:
            self._current = CurrentValue(readable=True, value=f"{GROUP_PREFIX}{group}", reference=True)
        else:
            self._current = CurrentValue(readable=True, value=None)
        return self._current

    def prepare(self) -> None:
        self._load_service()
        if self._current is None:
            self.read_current()
        self._live = self.describe()

    def set_url(self, url: str) -> None:
        if url.startswith(GROUP_PREFIX):
            # restoring the group reference: drop the service override so the group's value applies again
            self._request(
                "DELETE", f"/services/{self.service_id}/env-vars/{self.var}", f"remove the {self.var} override",
                missing_ok=True,
            )
            return
        saved = self._request(
            "PUT", f"/services/{self.service_id}/env-vars/{self.var}", f"update {self.var}", json={"value": url}
        )
        # Render answers with the variable as saved: a 200 carrying another value means the write did not
        # take, and a rollback must not report the app repointed (issue 10). Neither value goes in the message.
        if isinstance(saved, dict) and "value" in saved and saved["value"] != url:
            raise PlatformError(
                f"Render: {self.var} was not updated: the API answered 200 but with a different value",
                hint=f"check {self.var} of service {self.service_id} in the Render dashboard",
                platform=self.name,
            )

    def pick_up(self) -> Release:
        # an env-var update alone does not reach running instances; deploy the last build without rebuilding
        created = self._request(
            "POST", f"/services/{self.service_id}/deploys", "start a deploy", json={"deployMode": "deploy_only"}
        )
        if created.get("id"):
            return self._to_release(created)
        # 202: queued behind a deploy in progress; the newest deploy is ours
        newest = self._request("GET", f"/services/{self.service_id}/deploys", "list deploys", params={"limit": "1"})
        if not newest:
            raise PlatformError(
                "Render: the deploy was queued but does not show in the deploy list",
                hint="open the service's Events page in the Render dashboard and check the deploy there",
                platform=self.name,
            )
        return self._to_release(newest[0])

    def wait_live(self, release: Release, timeout: float) -> Release:
        path = f"/services/{self.service_id}/deploys/{release.id}"

        def check() -> Release | None:
            now = self._to_release(self._request("GET", path, f"read deploy {release.id}"))
            if now.failed:
                raise PlatformError(
                    f"Render: deploy {now.id} ended {now.status}; the previous deploy keeps serving",
                    hint=f"read the deploy's logs in the Render dashboard (service {self.service_id}, deploy {now.id})",
                    platform=self.name,
                )
            return now if now.live else None

        return self._wait(
            check,
            what=f"Render deploy {release.id}",
            timeout=timeout,
            hint="not live yet: check the deploy in the dashboard; raise [platform] ready_timeout if it is still starting",
        )

    def describe(self) -> Release | None:
        live = self._request(
            "GET", f"/services/{self.service_id}/deploys", "list deploys", params={"limit": "1", "status": "live"}
        )
        return self._to_release(live[0]) if live else None

    def caveats(self) -> list[str]:
        notes: list[str] = []
        command = self._to_pre_deploy(self._load_service())
        if command:
            notes.append(
                f"Render: service {self.service_id} has a pre-deploy command ({redact(command)!r}); a rollback "
                "deploy runs it again, against the snapshot. Make sure it is safe to re-run (or that it does "
                "not migrate)."
            )
        current = self._current or self.read_current()
        if current.reference and current.value:
            notes.append(
                f"Render: {self.var} comes from environment group {current.value[len(GROUP_PREFIX):]}; a rollback "
                "sets a service-level value over it and a restore removes that override. deploysafe assumes the "
                "service value wins over the group's (not stated in Render's API reference): check with a dry run."
            )
        return notes
