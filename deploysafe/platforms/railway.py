"""Railway adapter (GraphQL API v2): upsert the variable with deploys skipped, redeploy, poll the deployment.

Every query and mutation below is validated against shared/specs/railway-graphql-schema.json (the
introspection result shipped in railwayapp/cli) by tests/platforms/test_railway.py. Behaviour follows
shared/research/platforms.md §3: ``variableUpsert`` would redeploy on its own but returns only a
Boolean, so we pass ``skipDeploys: true`` and redeploy ourselves to get a deployment id to poll.
The redeployed deployment is the one serving production when ``prepare()`` ran. Requests, retries
and error mapping come from the shared :class:`HttpAdapter`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploysafe.console import console
from deploysafe.errors import PlatformError
from deploysafe.platforms.base import CurrentValue, Release
from deploysafe.platforms.http_base import HttpAdapter
from deploysafe.redact import redact

if TYPE_CHECKING:
    from deploysafe.config import PlatformConfig

API_URL = "https://backboard.railway.com/graphql/v2"
# RAILWAY_TOKEN holds a project token, sent as Project-Access-Token; any other variable is an
# account/workspace token sent as a Bearer token (Railway docs "Public API", the CLI's convention).
PROJECT_TOKEN_ENV = "RAILWAY_TOKEN"

LIVE = frozenset({"SUCCESS", "SLEEPING"})  # SLEEPING: serverless apps that went idle after starting
# REMOVED/SKIPPED: superseded by another deployment before it went live; NEEDS_APPROVAL waits for a
# person in the dashboard, which an unattended rollback must not wait on silently.
FAILED = frozenset({"FAILED", "CRASHED", "REMOVED", "SKIPPED", "NEEDS_APPROVAL"})

Q_VARIABLES = """
query variables($projectId: String!, $environmentId: String!, $serviceId: String, $unrendered: Boolean) {
  variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId, unrendered: $unrendered)
}"""

Q_SERVICE = """
query serviceInstance($environmentId: String!, $serviceId: String!) {
  serviceInstance(environmentId: $environmentId, serviceId: $serviceId) {
    id
    serviceName
    preDeployCommand
    latestDeployment { id status canRedeploy url staticUrl }
    activeDeployments { id status canRedeploy url staticUrl }
  }
}"""

M_UPSERT = """
mutation variableUpsert($input: VariableUpsertInput!) {
  variableUpsert(input: $input)
}"""

M_REDEPLOY = """
mutation deploymentRedeploy($id: String!) {
  deploymentRedeploy(id: $id) { id status url staticUrl }
}"""

Q_DEPLOYMENT = """
query deployment($id: String!) {
  deployment(id: $id) { id status statusUpdatedAt url staticUrl }
}"""

Q_LOGS = """
query deploymentLogs($deploymentId: String!, $limit: Int) {
  deploymentLogs(deploymentId: $deploymentId, limit: $limit) { message severity timestamp }
}"""

DOCUMENTS = (Q_VARIABLES, Q_SERVICE, M_UPSERT, M_REDEPLOY, Q_DEPLOYMENT, Q_LOGS)


def _is_reference(value: str | None) -> bool:
    return value is not None and "${{" in value


def _to_release(node: dict[str, Any]) -> Release:
    status = str(node.get("status") or "UNKNOWN")
    url = node.get("url") or node.get("staticUrl")
    if url and "://" not in url:
        url = f"https://{url}"
    return Release(id=str(node["id"]), status=status, live=status in LIVE, failed=status in FAILED, url=url)


def _to_pre_deploy(raw: Any) -> str | None:
    """``preDeployCommand`` is a JSON scalar: a string or a list of strings (one per command)."""
    if not raw:
        return None
    if isinstance(raw, list):
        return " && ".join(str(c) for c in raw if c) or None
    return str(raw)


class RailwayPlatform(HttpAdapter):
    """DATABASE_URL of one Railway service in one environment."""

    name = "railway"
    label = "Railway"
    status_page = "https://status.railway.com"
    default_token_var = "RAILWAY_API_TOKEN"

    api_base = API_URL
    secret_what = "Railway API token"

    def __init__(self, *, project_id: str, environment_id: str, service_id: str, **common: Any) -> None:
        # posted to the full URL: an empty path on a base_url would gain a trailing slash (/graphql/v2/)
        self._url = common.get("api_url") or API_URL
        super().__init__(**common)
        self.project_id = project_id
        self.environment_id = environment_id
        self.service_id = service_id
        self._pre_deploy: str | None = None
        self._prepared = False

    def _headers(self, token: str) -> dict[str, str]:
        auth = {"Project-Access-Token": token} if self.token_var == PROJECT_TOKEN_ENV else {"Authorization": f"Bearer {token}"}
        return {**auth, "Content-Type": "application/json"}

    @classmethod
    def _ids(cls, pc: PlatformConfig) -> dict[str, Any]:
        return {"project_id": pc.project, "environment_id": pc.environment_id, "service_id": pc.service_id}

    def _error_text(self, body: Any) -> str:
        errors = body.get("errors") or []
        return "; ".join(str(e.get("message", e)) for e in errors) if errors else str(body.get("message") or "")

    def _hint(self, status: int, text: str = "") -> str | None:
        if status in (401, 403):
            kind = "a project token (Project-Access-Token)" if self.token_var == PROJECT_TOKEN_ENV else "an account or workspace token"
            return (
                f"check {self.token_var}: it must hold {kind} that can read and change variables and deployments "
                f"of project {self.project_id} (create one under Account Settings > Tokens, or a project token "
                f"for this environment in RAILWAY_TOKEN)"
            )
        if status == 404:
            return (
                f"project = {self.project_id!r}, environment_id = {self.environment_id!r} or "
                f"service_id = {self.service_id!r} in [platform] is wrong; copy the ids from the service's "
                "Settings page or `railway status --json`"
            )
        if status == 429:
            return "Railway rate-limited the token (Hobby: 1000 requests/hour); wait for the reset and run again"
        return f"check {self.status_page} and run again"

    def _call(self, document: str, variables: dict[str, Any], what: str, *, mutation: bool = False) -> dict[str, Any]:
        """POST one GraphQL document; return ``data`` or raise PlatformError. Queries are safe to
        resend after a network error; mutations are not (a redeploy could run twice)."""
        body = self._request(
            "POST", self._url, what, retry_network=not mutation, json={"query": document, "variables": variables}
        )
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            # GraphQL reports most failures with HTTP 200 and an ``errors`` list (research §3.6)
            message = self._error_text(body)
            low = message.lower()
            status = 401 if ("not authorized" in low or "unauthorized" in low) else 404 if "not found" in low else None
            raise PlatformError(
                redact(f"Railway: {what} failed: {message}"),
                hint=self._hint(status) if status else self._hint(0),
                status=status,
                platform=self.name,
            )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise PlatformError(f"Railway: {what}: response has no data", hint=self._hint(0), platform=self.name)
        return data

    # --- Platform ------------------------------------------------------------------------------

    def read_current(self) -> CurrentValue:
        """The unrendered value: a ``${{Service.VAR}}`` reference is returned as the reference text."""
        data = self._call(
            Q_VARIABLES,
            {
                "projectId": self.project_id,
                "environmentId": self.environment_id,
                "serviceId": self.service_id,
                "unrendered": True,
            },
            f"read {self.var}",
        )
        variables = data.get("variables") or {}
        value = variables.get(self.var)
        if self.var in variables and value is None:
            # a sealed variable: Railway never returns its value (docs "Sealed Variables"), it is not unset
            return CurrentValue(readable=False)
        return CurrentValue(readable=True, value=value, reference=_is_reference(value))

    def _service(self) -> dict[str, Any]:
        data = self._call(
            Q_SERVICE, {"environmentId": self.environment_id, "serviceId": self.service_id}, "read the service"
        )
        instance: dict[str, Any] = data["serviceInstance"]
        self._pre_deploy = _to_pre_deploy(instance.get("preDeployCommand"))
        return instance

    def _serving(self, instance: dict[str, Any]) -> dict[str, Any]:
        """The deployment serving production: an active SUCCESS one, else the latest (as `railway redeploy`)."""
        for dep in instance.get("activeDeployments") or []:
            if dep.get("status") in LIVE:
                return dict(dep)
        latest = instance.get("latestDeployment")
        if not latest:
            raise PlatformError(
                f"Railway service {self.service_id} has no deployment to redeploy",
                hint="deploy the service once (railway up or a git push), then run again",
                platform=self.name,
            )
        return dict(latest)

    def prepare(self) -> None:
        self._serving(self._service())  # a service without any deployment fails here, before production changes
        self._prepared = True

    def set_url(self, url: str) -> None:
        """Upsert the variable without triggering a deploy; a ``${{...}}`` reference is written back as text."""
        ok = self._call(
            M_UPSERT,
            {
                "input": {
                    "projectId": self.project_id,
                    "environmentId": self.environment_id,
                    "serviceId": self.service_id,
                    "name": self.var,
                    "value": url,
                    "skipDeploys": True,
                }
            },
            f"set {self.var}",
            mutation=True,
        )
        if ok.get("variableUpsert") is not True:
            raise PlatformError(
                f"Railway did not confirm the change of {self.var}", hint=self._hint(0), platform=self.name
            )

    def pick_up(self) -> Release:
        """Redeploy the deployment serving production NOW, with the new variables (the one recorded by prepare() may
        be older code: bringing that back is the coordinated rollback's decision, [rollback] app)."""
        dep = self._serving(self._service())
        if not dep.get("canRedeploy", True):
            raise PlatformError(
                f"Railway cannot redeploy deployment {dep['id']} now (status {dep.get('status')})",
                hint="wait until the running build/deploy finishes, or redeploy the service from the dashboard",
                platform=self.name,
            )
        data = self._call(M_REDEPLOY, {"id": dep["id"]}, f"redeploy {dep['id']}", mutation=True)
        return _to_release(data["deploymentRedeploy"])

    def _status(self, deployment_id: str) -> Release:
        data = self._call(Q_DEPLOYMENT, {"id": deployment_id}, f"read deployment {deployment_id}")
        return _to_release(data["deployment"])

    def _failure_detail(self, release: Release) -> str:
        """The last log lines of a failed deployment, best effort (the logs may be gone already)."""
        try:
            data = self._call(Q_LOGS, {"deploymentId": release.id, "limit": 5}, "read deployment logs")
        except PlatformError:
            return ""
        lines = [str(entry.get("message", "")) for entry in data.get("deploymentLogs") or []]
        return redact(" | ".join(line for line in lines if line))[:500]

    def wait_live(self, release: Release, timeout: float) -> Release:
        seen: list[str] = []

        def check() -> Release | None:
            current = self._status(release.id)
            if not seen or seen[-1] != current.status:
                seen.append(current.status)
                console.info(f"railway: deployment {current.id} is {current.status}")
            if current.failed:
                detail = self._failure_detail(current)
                raise PlatformError(
                    f"Railway deployment {current.id} ended {current.status}" + (f": {detail}" if detail else ""),
                    hint=(
                        "approve the deployment in the Railway dashboard"
                        if current.status == "NEEDS_APPROVAL"
                        else f"read its logs: railway logs --deployment {current.id}"
                    ),
                    platform=self.name,
                    release=current.id,
                )
            return current if current.live else None

        try:
            return self._wait(
                check,
                what=f"Railway deployment {release.id}",
                timeout=timeout,
                hint="open the deployment in the Railway dashboard; raise [platform] ready_timeout if builds are slow",
            )
        except PlatformError as e:
            if e.status is None and "did not finish" in e.message:
                e.message = f"{e.message} (last status: {seen[-1] if seen else 'unknown'})"
                e.context["release"] = release.id
            raise

    def describe(self) -> Release | None:
        instance = self._service()
        try:
            return _to_release(self._serving(instance))
        except PlatformError:
            return None

    def how(self) -> str:
        return (
            "Railway: set the variable (deploys skipped), then redeploy the recorded deployment "
            "(deploymentRedeploy: its image with the current variables: one release action)"
        )

    def return_to(self, release: Release, url: str | None) -> Release:
        # not deploymentRollback: that also brings back the old deployment's variables (the old URL)
        if url is not None:
            self.set_url(url)
        data = self._call(M_REDEPLOY, {"id": release.id}, f"redeploy {release.id}", mutation=True)
        return _to_release(data["deploymentRedeploy"])

    def caveats(self) -> list[str]:
        out: list[str] = []
        if not self._prepared:
            self._service()
        if self._pre_deploy:
            out.append(
                f"Railway runs the pre-deploy command `{self._pre_deploy}` on every deploy, including the "
                f"redeploy a rollback makes: if it migrates, it will run against the snapshot. Make it safe to "
                f"re-run, or move migrations out of it."
            )
        return out
