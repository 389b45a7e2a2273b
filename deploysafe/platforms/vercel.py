"""Vercel adapter: edit the production env var by id, redeploy the production deployment, wait for READY + alias.

Shapes: Vercel REST API (https://vercel.com/docs/rest-api) and ``vercel redeploy`` in the Vercel CLI; see
research/platforms.md §1 and tests/fixtures/vercel/README.md. Issue 5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploysafe.errors import PlatformError
from deploysafe.platforms.base import CurrentValue, Release
from deploysafe.platforms.http_base import HttpAdapter
from deploysafe.redact import redact

if TYPE_CHECKING:
    from deploysafe.config import PlatformConfig

API_URL = "https://api.vercel.com"
# readyState values that end a deployment without it ever serving (BLOCKED needs a human: checks, limits).
_FAILED_STATES = frozenset({"ERROR", "CANCELED", "BLOCKED"})
_WRITE_ONLY_TYPES = frozenset({"sensitive", "secret"})


def _targets(env: dict[str, Any]) -> list[str]:
    """An entry's ``target``: the API gives a list, older entries and the SDK's union type also a single string."""
    target = env.get("target")
    if isinstance(target, str):
        return [target]
    return [str(t) for t in target or []]


class VercelPlatform(HttpAdapter):
    """DATABASE_URL as a Vercel project environment variable (production target)."""

    name = "vercel"
    label = "Vercel"
    status_page = "https://www.vercel-status.com"
    default_token_var = "VERCEL_TOKEN"

    api_base = API_URL
    secret_what = "Vercel API token"

    def __init__(self, *, project: str, team_id: str | None = None, **common: Any) -> None:
        super().__init__(**common)
        self.project = project
        self._params = {"teamId": team_id} if team_id else {}
        self._env: dict[str, Any] | None = None  # the production entry of ``var``
        self._project_name: str | None = None
        self._production_id: str | None = None  # deployment serving production when prepare() ran

    @classmethod
    def _ids(cls, pc: PlatformConfig) -> dict[str, Any]:
        return {"project": pc.project, "team_id": pc.team_id}

    def _call(self, method: str, path: str, what: str, *, params: dict[str, str] | None = None, **kw: Any) -> Any:
        # every Vercel call names the team of a team-owned project
        return self._request(method, path, what, params={**self._params, **(params or {})}, **kw)

    def _error_text(self, body: Any) -> str:
        # {"error": {"code", "message"}} per vercel.com/docs/rest-api/errors
        err = body.get("error") or {}
        return f"{err.get('code', '')}: {err.get('message', '')}".strip(": ")

    def _hint(self, status: int, text: str = "") -> str | None:
        if status in (401, 403):
            return (
                f"the token in ${self.token_var} is invalid or lacks access: create one at "
                "https://vercel.com/account/tokens scoped to the team that owns the project "
                "(and set [platform] team_id for team projects)"
            )
        if status == 404:
            return f"project {self.project!r} (or the deployment/variable) was not found: check [platform] project and team_id"
        if status == 429:
            return "Vercel rate limited the requests even after backing off: wait a minute and run again"
        return None

    # -- parsing -----------------------------------------------------------------------------------

    def _to_env(self, body: Any) -> dict[str, Any]:
        envs = body.get("envs", []) if isinstance(body, dict) else body
        for env in envs or []:
            # the plain production entry: not a branch-specific preview or a custom environment
            if (
                env.get("key") == self.var
                and "production" in _targets(env)
                and not env.get("gitBranch")
                and not env.get("customEnvironmentIds")
            ):
                return dict(env)
        raise PlatformError(
            f"Vercel: project {self.project!r} has no production variable {self.var}",
            hint=f"add {self.var} for Production in the project settings (Environment Variables), then run again",
            platform=self.name,
        )

    def _to_release(self, d: dict[str, Any]) -> Release:
        state = str(d.get("readyState") or d.get("state") or "UNKNOWN")
        alias_error = d.get("aliasError")
        detail = d.get("errorMessage") or d.get("errorCode")
        if alias_error:
            detail = f"alias: {alias_error.get('message') or alias_error.get('code')}"
        return Release(
            id=str(d.get("id") or d.get("uid")),
            status=state,
            live=state == "READY" and bool(d.get("aliasAssigned")) and not alias_error,
            failed=state in _FAILED_STATES or bool(alias_error),
            url=d.get("url"),
            detail=redact(str(detail)) if detail else None,
            code=(d.get("meta") or {}).get("githubCommitSha") or None,
        )

    # -- Platform ----------------------------------------------------------------------------------

    def _entry(self) -> dict[str, Any]:
        if self._env is None:
            body = self._call("GET", f"/v10/projects/{self.project}/env", f"list variables of {self.project}")
            self._env = self._to_env(body)
        return self._env

    def read_current(self) -> CurrentValue:
        env = self._entry()
        if env.get("type") in _WRITE_ONLY_TYPES:
            return CurrentValue(readable=False, var_id=env["id"])
        body = self._call("GET", f"/v1/projects/{self.project}/env/{env['id']}", f"read {self.var}")
        if not body.get("decrypted", True) or body.get("value") is None:
            return CurrentValue(readable=False, var_id=env["id"])
        return CurrentValue(readable=True, value=body["value"], var_id=env["id"])

    def prepare(self) -> None:
        self._entry()
        project = self._call("GET", f"/v9/projects/{self.project}", f"read project {self.project}")
        self._project_name = project.get("name") or self.project
        production = (project.get("targets") or {}).get("production") or {}
        if not production.get("id"):
            raise PlatformError(
                f"Vercel: project {self.project!r} has no production deployment to redeploy",
                hint="deploy the project to production once (vercel --prod), then run again",
                platform=self.name,
            )
        self._production_id = str(production["id"])

    def set_url(self, url: str) -> None:
        env = self._entry()
        # PATCH by id keeps type and targets as they are (an upsert with other targets fails ENV_CONFLICT)
        self._call("PATCH", f"/v9/projects/{self.project}/env/{env['id']}", f"update {self.var}", json={"value": url})

    def pick_up(self) -> Release:
        """Redeploy what serves production NOW: the deployment recorded by prepare() may be older code, and bringing
        that back is the coordinated rollback's decision ([rollback] app), never a side effect."""
        live = self.describe()
        if live is None:
            self.prepare()  # raises: no production deployment
        assert live is not None
        return self._redeploy(live.id)

    def _redeploy(self, deployment_id: str) -> Release:
        if self._project_name is None:
            self.prepare()
        # what `vercel redeploy` sends: a new build of that deployment's source with today's variables
        body = {
            "deploymentId": deployment_id,
            "name": self._project_name,
            "target": "production",
            "meta": {"action": "redeploy"},
        }
        created = self._call(
            "POST",
            "/v13/deployments",
            "redeploy production",
            params={"forceNew": "1", "skipAutoDetectionConfirmation": "1"},
            json=body,
        )
        return self._to_release(created)

    def _promote(self, deployment_id: str) -> None:
        """``POST /v10/projects/{id}/promote/{deploymentId}`` (SDK ``requestPromote``; 201/202, no body): point the
        production domains at a READY deployment that was built without them (STAGED)."""
        self._call("POST", f"/v10/projects/{self.project}/promote/{deployment_id}", f"promote deployment {deployment_id}")

    def _serving(self, deployment_id: str) -> bool:
        """Whether production serves ``deployment_id``: the project's production target is it (and no alias job
        for it failed; ``lastAliasRequest`` is what `vercel promote`/`vercel rollback` poll)."""
        project = self._call("GET", f"/v9/projects/{self.project}", f"read project {self.project}")
        job = project.get("lastAliasRequest") or {}
        if job.get("toDeploymentId") == deployment_id and job.get("jobStatus") == "failed":
            raise PlatformError(
                f"Vercel: production domains could not all be moved to deployment {deployment_id}",
                hint="see the project's Domains page and `vercel promote` / `vercel rollback` status",
                platform=self.name,
            )
        production = (project.get("targets") or {}).get("production") or {}
        return production.get("id") == deployment_id and job.get("jobStatus") not in ("pending", "in-progress")

    def wait_live(self, release: Release, timeout: float) -> Release:
        """Live = READY and serving production. A READY deployment left STAGED (production domains not auto-assigned)
        is promoted; one in a Rolling Release (ROLLING) is reported as such, not waited on."""
        promoted: list[str] = []

        def check() -> Release | None:
            body = self._call("GET", f"/v13/deployments/{release.id}", f"read deployment {release.id}")
            now = self._to_release(body)
            if now.failed:
                raise PlatformError(
                    f"Vercel: deployment {now.id} ended {now.status}: {now.detail or 'no detail given'}",
                    hint=f"open the deployment's build logs in the Vercel dashboard ({now.url or now.id})",
                    platform=self.name,
                )
            if now.live:
                return now
            if now.status != "READY":
                return None
            substate = body.get("readySubstate")
            if substate == "ROLLING":
                raise PlatformError(
                    f"Vercel: deployment {now.id} is READY but in a Rolling Release: only part of production "
                    "traffic reaches it, so the rollback is not complete",
                    hint="complete (or abort) the rolling release in the project's Rolling Releases page, or turn "
                    "Rolling Releases off for deploysafe's redeploys; then run `deploysafe probe`",
                    platform=self.name,
                    release=now.id,
                )
            if substate == "STAGED" and not promoted:
                self._promote(now.id)
                promoted.append(now.id)
                return None
            if promoted and self._serving(now.id):
                return now.model_copy(update={"live": True, "detail": "promoted to production by deploysafe"})
            return None

        return self._wait(
            check,
            what=f"Vercel deployment {release.id}",
            timeout=timeout,
            hint="not READY with its production alias yet: check the build in the Vercel dashboard; "
            "raise [platform] ready_timeout if builds are slow",
        )

    def describe(self) -> Release | None:
        project = self._call("GET", f"/v9/projects/{self.project}", f"read project {self.project}")
        production = (project.get("targets") or {}).get("production")
        return self._to_release(production) if production else None

    def how(self) -> str:
        return (
            "Vercel: set the variable, then redeploy the recorded production deployment (a new build of its source "
            "with the current variables: one release action), promoted if staged"
        )

    def return_to(self, release: Release, url: str | None) -> Release:
        # not Instant Rollback: that serves the old build with the variables it was built with (the old URL),
        # and turns off auto-assignment of production domains afterwards
        if url is not None:
            self.set_url(url)
        return self._redeploy(release.id)

    def caveats(self) -> list[str]:
        env = self._entry()
        notes = [
            "Vercel: the app picks up the new value only through a redeploy, which is a full build (minutes, "
            "counted against the plan's deployment limits)."
        ]
        if env.get("type") in _WRITE_ONLY_TYPES:
            notes.append(
                f"Vercel: {self.var} is a sensitive variable, so its value cannot be read back; deploysafe restores "
                "the connection string it recorded itself."
            )
        others = [t for t in _targets(env) if t != "production"]
        if others:
            notes.append(
                f"Vercel: {self.var} is one entry for production and {', '.join(others)}; changing it changes "
                "those targets too. Split it into a production-only entry to avoid that."
            )
        return notes
