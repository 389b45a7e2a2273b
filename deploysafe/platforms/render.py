"""Render adapter: set the service's env var, roll back to the deploy that is live (same build, current
variables), wait for ``live``.

Shapes: Render public API v1 (https://api-docs.render.com), research/platforms.md §2 and
tests/fixtures/render/README.md. Issue 5.

A value that comes from a linked environment group is a reference: deploysafe reports it as
``envgroup:<id>`` and restores it by removing the service-level override, never by copying the
group's value onto the service.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
PAGE = 100  # Render's maximum ``limit``
MAX_PAGES = 50  # never page forever through a list that keeps answering
# a queued (202) deploy is looked for among deploys created after the request, less this much clock skew
CLOCK_SKEW = timedelta(minutes=2)


class RenderPlatform(HttpAdapter):
    """DATABASE_URL as an environment variable of one Render service."""

    name = "render"
    label = "Render"
    status_page = "https://status.render.com"
    default_token_var = "RENDER_API_KEY"

    api_base = API_URL
    secret_what = "Render API key"

    def __init__(
        self, *, service_id: str, now: Callable[[], datetime] = lambda: datetime.now(UTC), **common: Any
    ) -> None:
        super().__init__(**common)
        self.service_id = service_id
        self._now = now  # wall clock, to find a queued deploy by its creation time
        self._service: dict[str, Any] | None = None
        self._current: CurrentValue | None = None

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    @classmethod
    def _ids(cls, pc: PlatformConfig) -> dict[str, Any]:
        return {"service_id": pc.service_id}

    def _error_text(self, body: Any) -> str:
        return str(body.get("message") or "")  # Render's ``error`` schema: {"id", "message"}

    def _hint(self, status: int, text: str = "") -> str | None:
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
        commit = _build_of(deploy)
        return Release(
            id=str(deploy["id"]),
            status=status,
            live=status == "live",
            failed=status in _FAILED,
            detail=f"{status} (commit {commit})" if commit else status,
            code=commit,
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

    def _env_groups(self) -> list[dict[str, Any]]:
        """Every environment group, page by page (``cursor`` from the last item: its cursor when the list is
        cursor-wrapped, else its id), until a page is short."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        params = {"limit": str(PAGE)}
        for _ in range(MAX_PAGES):
            page = self._request("GET", "/env-groups", "list environment groups", params=params) or []
            fresh = [item for item in page if str(item.get("envGroup", item).get("id")) not in seen]
            out += [item.get("envGroup", item) for item in fresh]
            seen.update(str(item.get("envGroup", item).get("id")) for item in fresh)
            if len(page) < PAGE or not fresh:
                return out
            last = page[-1]
            params = {"limit": str(PAGE), "cursor": str(last.get("cursor") or last.get("envGroup", last).get("id"))}
        raise PlatformError(
            f"Render: the environment group list did not end after {MAX_PAGES * PAGE} groups",
            hint=f"check whether {self.var} is set on service {self.service_id} or in one of its linked groups",
            platform=self.name,
        )

    def _group_holding_var(self) -> str | None:
        """Id of a linked environment group that defines ``var`` (the service itself does not)."""
        for meta in self._env_groups():
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
        # take, and a rollback must not report the app repointed. Neither value goes in the message.
        if isinstance(saved, dict) and "value" in saved and saved["value"] != url:
            raise PlatformError(
                f"Render: {self.var} was not updated: the API answered 200 but with a different value",
                hint=f"check {self.var} of service {self.service_id} in the Render dashboard",
                platform=self.name,
            )

    def pick_up(self) -> Release:
        """Roll back to the deploy that is live now: its build artifact, started again with the service's current
        variables. (``deployMode: deploy_only`` would deploy the last successful *build*, which can be newer
        code than what is live.)"""
        live = self._live_deploy()
        if live is None:
            raise PlatformError(
                f"Render: service {self.service_id} has no live deploy to restart with the new {self.var}",
                hint="deploy the service once from the dashboard, then run again",
                platform=self.name,
            )
        return self._rollback(live)

    def _live_deploy(self) -> dict[str, Any] | None:
        found = self._request(
            "GET", f"/services/{self.service_id}/deploys", "list deploys", params={"limit": "1", "status": "live"}
        )
        return dict(found[0].get("deploy", found[0])) if found else None

    def _rollback(self, target: dict[str, Any]) -> Release:
        """``POST /services/{id}/rollback {deployId}``: a new deploy of the target's build artifact. 201 carries it;
        a 202 (queued) is found by what it deploys and when it was created, never as "the newest deploy"."""
        asked = self._now()
        created = self._request(
            "POST", f"/services/{self.service_id}/rollback", f"roll back to deploy {target['id']}",
            json={"deployId": target["id"]},
        )
        if created.get("id") or created.get("deploy"):
            return self._to_release(created)
        return self._find_queued(_build_of(target), asked)

    def _find_queued(self, build: str | None, asked: datetime) -> Release:
        since = (asked - CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%SZ")
        found = self._request(
            "GET", f"/services/{self.service_id}/deploys", "list deploys",
            params={"limit": "20", "createdAfter": since},
        ) or []
        ours = [d.get("deploy", d) for d in found if build and _build_of(d.get("deploy", d)) == build]
        if len(ours) != 1:
            raise PlatformError(
                "Render: the rollback deploy was queued, and "
                + ("no deploy of that build shows in the deploy list" if not ours
                   else f"{len(ours)} deploys of that build were created since; deploysafe cannot tell which is its own"),
                hint=f"open the Events page of service {self.service_id} in the Render dashboard and check the deploy there",
                platform=self.name,
            )
        return self._to_release(ours[0])

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
        live = self._live_deploy()
        return self._to_release(live) if live else None

    def how(self) -> str:
        return (
            "Render: set the variable, then roll back to the recorded deploy (its build artifact, started with the "
            "service's current variables: one release action)"
        )

    def return_to(self, release: Release, url: str | None) -> Release:
        if url is not None:
            self.set_url(url)
        target: dict[str, Any] = {"id": release.id}
        if release.code:
            target["commit"] = {"id": release.code}  # what a queued (202) rollback is recognised by
        return self._rollback(target)

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


def _build_of(deploy: dict[str, Any]) -> str | None:
    """What a deploy runs: its commit, or its image reference (image-backed services)."""
    commit = (deploy.get("commit") or {}).get("id")
    image = (deploy.get("image") or {}).get("ref")
    return str(commit or image) if (commit or image) else None
