"""Secret audit (issue 10): the flows a team runs, with unique marker values for every secret, scanned
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
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from deploysafe.demo import DemoApp
from deploysafe.envfile import write_var
from deploysafe.pg import with_dbname
from e2e import healthy
from reliability_kit import BREAKING, SAFE, prepare_app, set_change

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


def _cli(app: DemoApp, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = subprocess.run([sys.executable, "-m", "deploysafe", *args], cwd=app.root, env=env, capture_output=True,
                       text=True, timeout=240, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


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
        code, out, err = _cli(app, env, *args)
        outputs.append((" ".join(args), code, out, err))
        assert "Traceback" not in err, err
        return code, out, err

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
    crash = Path("/tmp/deploysafe-crash.log")
    if crash.exists():
        scan(markers, "the crash log", crash.read_text(errors="replace"))
