"""Secret audit: the flows a team runs, with unique marker values for every secret, scanned
everywhere deploysafe writes: stdout, stderr, JSON output, every journal line, every report and state file,
the GitHub step summary, and what the webhook receives.

Markers: the database password of a role made for the test (ALTER ROLE ... PASSWORD, special characters so
the URL holds it percent-encoded), the embedded server's random superuser password, the Neon key, the
platform token, and the webhook URL (its path is the marker; Slack webhook URLs carry their token there).
The Neon and Render flows are audited in test_fault_matrix.py::test_http_rollback_prints_no_secret.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from deploysafe.demo.run import DemoApp
from deploysafe.envfile import write_var
from deploysafe.pg import with_dbname
from support.cli import run_cli
from support.e2e import healthy
from support.reliability_kit import BREAKING, SAFE, prepare_app, set_change, set_faults

pytestmark = pytest.mark.e2e


class Webhook:
    """A local Slack-compatible webhook; its URL path is a secret marker."""

    def __init__(self, marker: str) -> None:
        self.bodies: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                hook.bodies.append(self.rfile.read(n).decode(errors="replace"))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/{marker}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def audited(live_app: DemoApp, pg_server: Any, tmp_path: Path) -> Iterator[tuple[DemoApp, dict[str, str], dict[str, str], Webhook]]:
    """The live app re-pointed at production through a role whose password is a marker."""
    tag = secrets.token_hex(6)
    role = f"audit_{tag}"
    password = f"Db{tag}$ecret/%@:?"
    with psycopg.connect(pg_server.url(), autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(role)))
        c.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    base = with_dbname(pg_server.url(), live_app.production_url.rsplit("/", 1)[1])
    url = base.replace(f"{pg_server.user}:{quote(pg_server.password, safe='')}@", f"{role}:{quote(password, safe='')}@")
    assert url != base
    app = DemoApp(live_app.root, url, live_app.port)
    write_var(app.root / ".env", "DATABASE_URL", url)
    subprocess.run(["sh", "restart.sh"], cwd=app.root, check=True, capture_output=True, timeout=60)
    assert healthy(app)
    neon_key = f"napi_{secrets.token_hex(16)}"
    token = f"rnd_{secrets.token_hex(16)}"
    hook = Webhook(f"hook{secrets.token_hex(10)}")
    summary_file = tmp_path / "step-summary.md"
    env = {**os.environ, "DATABASE_URL": url, "NEON_API_KEY": neon_key, "RENDER_API_KEY": token,
           "AUDIT_WEBHOOK": hook.url, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary_file),
           "NO_COLOR": "1"}
    markers = {
        "database password": password,
        "database password, percent-encoded": quote(password, safe=""),
        "server superuser password": pg_server.password,
        "Neon key": neon_key,
        "platform token": token,
        "webhook URL": hook.url,
        "webhook token": hook.url.rsplit("/", 1)[1],
    }
    try:
        yield app, env, markers, hook
    finally:
        hook.close()


def scan(markers: dict[str, str], where: str, text: str) -> None:
    for what, value in markers.items():
        assert value not in text, f"the {what} leaked into {where}"


def test_no_secret_in_any_output_journal_report_or_summary(
    audited: tuple[DemoApp, dict[str, str], dict[str, str], Webhook],
) -> None:
    app, env, markers, hook = audited
    prepare_app(app, extra='\n[notify]\nwebhook_env = "AUDIT_WEBHOOK"\non_success = true\n')
    outputs: list[tuple[str, int, str, str]] = []

    def run(*args: str) -> tuple[int, str, str]:
        r = run_cli(*args, cwd=app.root, env=env)
        outputs.append((" ".join(args), r.code, r.stdout, r.stderr))
        assert "Traceback" not in r.stderr, r.stderr
        return r.code, r.stdout, r.stderr

    set_change(app.root, SAFE)
    code, out, err = run("--json", "deploy")
    assert code == 0, err
    set_change(app.root, BREAKING)
    code, out, err = run("--json", "deploy")
    assert code == 1, err
    snap = json.loads(out[out.index("{"):])["snapshot"]
    code, _, err = run("rollback", "--yes", "--to", snap)
    assert code == 0, err
    for args in (["--verbose", "status"], ["--json", "status"], ["history"], ["--json", "probe"], ["prune", "--json"],
                 ["snapshot", "list", "--all"], ["snapshot", "list", "--json"], ["check", "--json"], ["drill"],
                 ["config", "show"], ["rollback", "--dry-run"]):
        code, _, err = run(*args)
        assert code not in (70,), err
    assert len(hook.bodies) >= 2, "the webhook was never called: the audit of what it receives is empty"
    for cmd, _, out, err in outputs:
        scan(markers, f"stdout of `{cmd}`", out)
        scan(markers, f"stderr of `{cmd}`", err)
    for i, body in enumerate(hook.bodies):
        scan(markers, f"webhook post {i}", body)
    summary = Path(env["GITHUB_STEP_SUMMARY"])
    assert summary.exists() and "deploysafe" in summary.read_text()
    scan(markers, "the GitHub step summary", summary.read_text())
    state = app.root / ".deploysafe"
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name == "journal.jsonl" for p in files)
    for p in files:
        text = p.read_text(errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if p.suffix == ".jsonl":
                json.loads(line)  # every journal line parses
            scan(markers, f"{p.relative_to(app.root)} line {n}", line)
    # a crash log, if any, is a state file: scanned above


# --- interpolated tokens, a failing restart during a rollback, and what every child process got ---

AUDIT_SH = r"""#!/bin/sh
# Stand-in wrapper: records the environ and argv of its own process and of the `sh -c` deploysafe
# started for it (as the kernel shows them in /proc), says the hook token aloud the way a chatty tool would,
# then runs the reliability stand-in.
d="$AUDIT_DIR"
n="$1.$(date +%s%N).$$"
cat /proc/$$/environ > "$d/$n.env"; cat /proc/$$/cmdline > "$d/$n.argv"
case "$(tr '\0' ' ' < /proc/$PPID/cmdline)" in
  *python*) ;;
  *) cat /proc/$PPID/environ > "$d/$n.parent.env"; cat /proc/$PPID/cmdline > "$d/$n.parent.argv" ;;
esac
if [ "$1" = restart ]; then
  echo "calling the deploy hook with token $2"
  set -- restart
fi
exec sh "$(dirname "$0")/tool.sh" "$@"
"""

PG_WRAPPER = """#!/bin/sh
[ "$1" = --version ] || {{ n="{tool}.$(date +%s%N).$$"; cat /proc/$$/environ > "{dir}/$n.env"; cat /proc/$$/cmdline > "{dir}/$n.argv"; }}
exec {real} "$@"
"""


def _records(folder: Path) -> list[tuple[str, dict[str, str], str]]:
    """(what, environment, argv) of every recorded child process."""
    out = []
    for argv_file in sorted(folder.glob("*.argv")):
        env = dict(i.split("=", 1) for i in argv_file.with_suffix(".env").read_text().split("\0") if "=" in i)
        what = argv_file.name.split(".")[0] + (" (sh -c)" if argv_file.name.endswith(".parent.argv") else "")
        out.append((what, env, argv_file.read_text().replace("\0", " ")))
    return out


def test_rollback_with_failing_restart_leaks_no_interpolated_token_and_children_get_least_privilege(
    audited: tuple[DemoApp, dict[str, str], dict[str, str], Webhook], tmp_path: Path,
) -> None:
    app, env, markers, hook = audited
    records = tmp_path / "children"
    records.mkdir()
    hook_token = f"dht_{secrets.token_hex(12)}"
    stripe = f"sk_live_{secrets.token_hex(12)}"
    env = {**env, "DEPLOY_HOOK_TOKEN": hook_token, "STRIPE_KEY": stripe, "AUDIT_DIR": str(records),
           "DEPLOYSAFE_PG_BIN": str(_pg_wrappers(tmp_path / "pgbin", records))}
    markers = {**markers, "hook token interpolated into [platform] restart": hook_token,
               "STRIPE_KEY interpolated into [app] env": stripe}
    _audited_config(app)
    outputs: list[tuple[str, str, str]] = []

    def run(*args: str) -> tuple[int, str]:
        r = run_cli(*args, cwd=app.root, env=env)
        outputs.append((" ".join(args), r.stdout, r.stderr))
        assert "Traceback" not in r.stderr, r.stderr
        return r.code, r.stdout

    set_change(app.root, SAFE)
    code, _ = run("--json", "deploy")
    assert code == 0, outputs[-1]
    set_change(app.root, BREAKING)
    set_faults(app.root, restart="exit")  # the restart fails during the rollback
    code, out = run("--json", "deploy")
    assert code not in (0, 70), outputs[-1]
    summary = json.loads(out[out.index("{"):])
    assert summary["outcome"] in ("rolled back", "needs a person"), summary
    code, _ = run("rollback", "--yes", "--to", summary["snapshot"])  # by hand: the restart fails again
    assert code not in (0, 70), outputs[-1]
    for args in (["config", "show"], ["--json", "config", "show"], ["--json", "status"], ["history"], ["drill"]):
        run(*args)
    restart_said = [o for o in outputs if "calling the deploy hook with token" in o[1] + o[2]]
    assert any("calling the deploy hook with token ****" in o[1] + o[2] for o in outputs), \
        "the restart's output (which names its token) was never shown: the audit proves nothing"
    assert restart_said
    shown = json.loads(next(o[1] for o in outputs if o[0] == "--json config show"))
    assert shown["platform"]["restart"] == "sh audit.sh restart ${DEPLOY_HOOK_TOKEN}"
    assert shown["app"]["env"]["STRIPE_KEY"] == "${STRIPE_KEY}"

    _scan_every_sink(app, env, markers, hook, outputs)
    assert any("${DEPLOY_HOOK_TOKEN}" in line for line in (app.root / ".deploysafe" / "journal.jsonl").read_text().splitlines())

    # every child process: no password or token on argv; deploysafe's credentials in no environment but
    # through [app] pass_env; the restart gets its own token from its environment
    children = _records(records)
    kinds = {what for what, _, _ in children}
    assert {"generate", "push", "restart", "pg_dump", "pg_restore"} <= kinds, kinds
    for what, _, argv in children:
        if what == "restart (sh -c)":
            assert "${DEPLOY_HOOK_TOKEN}" in argv  # the shell expands the reference from its environment
    on_argv = {k: v for k, v in markers.items() if k != "webhook URL"} | {"webhook URL": hook.url}
    for what, child_env, argv in children:
        # The user's restart command hands its token to its own program as an argument (its choice, like
        # `curl -H "Authorization: Bearer ${TOKEN}"`); the `sh -c` deploysafe starts holds only the reference.
        own_argument = {"hook token interpolated into [platform] restart"} if what == "restart" else set()
        scan({k: v for k, v in on_argv.items() if k not in own_argument}, f"the argv of a {what} child ({argv[:60]})", argv)
        _check_child_env(what, child_env, env, hook)


def _pg_wrappers(folder: Path, records: Path) -> Path:
    """pg_dump/pg_restore wrappers that record what deploysafe's snapshot and restore children got."""
    import shlex

    from deploysafe import pg

    folder.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        (folder / tool).write_text(PG_WRAPPER.format(tool=tool, dir=records, real=shlex.quote(pg.find_tool(tool, 14))))
        (folder / tool).chmod(0o755)
    return folder


def _audited_config(app: DemoApp) -> None:
    """The app's steps and restart run through audit.sh; the restart command and [app] env interpolate tokens;
    [app] pass_env hands NEON_API_KEY to the app's steps; the webhook hears every outcome."""
    (app.root / "audit.sh").write_text(AUDIT_SH)
    cfg = prepare_app(app, restart="sh audit.sh restart ${DEPLOY_HOOK_TOKEN}",
                      extra='\n[notify]\nwebhook_env = "AUDIT_WEBHOOK"\non_success = true\n')
    text = cfg.read_text()
    text = text.replace("sh tool.sh generate", "sh audit.sh generate").replace("sh tool.sh push", "sh audit.sh push")
    text = text.replace("env = { PSQL = ", 'pass_env = ["NEON_API_KEY"]\nenv = { STRIPE_KEY = "${STRIPE_KEY}", PSQL = ')
    cfg.write_text(text)


def _scan_every_sink(app: DemoApp, env: dict[str, str], markers: dict[str, str], hook: Webhook,
                     outputs: list[tuple[str, str, str]]) -> None:
    """stdout/stderr (with GitHub annotations), JSON, step summary, journal, state files, webhook: no marker."""
    for cmd, out, err in outputs:
        scan(markers, f"stdout of `{cmd}`", out)
        scan(markers, f"stderr of `{cmd}`", err)
    assert hook.bodies, "the webhook was never called"
    for i, body in enumerate(hook.bodies):
        scan(markers, f"webhook post {i}", body)
    scan(markers, "the GitHub step summary", Path(env["GITHUB_STEP_SUMMARY"]).read_text())
    for p in (app.root / ".deploysafe").rglob("*"):
        if p.is_file():
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
                scan(markers, f"{p.relative_to(app.root)} line {n}", line)


def _check_child_env(what: str, child_env: dict[str, str], env: dict[str, str], hook: Webhook) -> None:
    """Least privilege: each child's environment holds only the credentials its job needs."""
    for own in ("RENDER_API_KEY", "AUDIT_WEBHOOK"):
        assert own not in child_env, f"{own} reached a {what} child"
    values = "\n".join(child_env.values())
    assert env["RENDER_API_KEY"] not in values and hook.url not in values
    if what in ("generate", "push", "generate (sh -c)", "push (sh -c)"):
        assert child_env["NEON_API_KEY"] == env["NEON_API_KEY"]  # handed over on purpose: [app] pass_env
        assert child_env["STRIPE_KEY"] == env["STRIPE_KEY"] and child_env["DATABASE_URL"]
        assert "DEPLOY_HOOK_TOKEN" not in child_env
    else:
        assert "NEON_API_KEY" not in child_env and env["NEON_API_KEY"] not in values, what
    if what.startswith("restart"):
        assert child_env["DEPLOY_HOOK_TOKEN"] == env["DEPLOY_HOOK_TOKEN"]
    if what in ("pg_dump", "pg_restore"):
        assert child_env["PGPASSWORD"] and "DATABASE_URL" not in child_env and "STRIPE_KEY" not in child_env
        assert "DEPLOY_HOOK_TOKEN" not in child_env and "AUDIT_DIR" not in child_env
