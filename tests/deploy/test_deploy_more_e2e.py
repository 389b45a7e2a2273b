"""More of `deploysafe deploy` end to end: GitHub Actions output, webhook, --no-rollback, --rehearse, --watch,
`deploysafe watch`, and Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploysafe.demo.run import BREAKING_CHANGE, SAFE_CHANGE, DemoApp, edit_schema, stop_app
from support.cli import DEPLOYSAFE
from support.e2e import assert_no_secret, ds, env_url, healthy, journal_lines, rows, set_config

pytestmark = pytest.mark.e2e

HOOK_PATH = "/services/T000/B000/webhook-secret-marker-0f9e8d"


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            received.append({"path": self.path, "body": json.loads(body)})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}{HOOK_PATH}", received
    server.shutdown()


def force_push(app: DemoApp) -> None:
    set_config(app, **{'push = "npm run db:push"': 'push = "npm run db:push -- --force"'})


def add_notify(app: DemoApp) -> None:
    with (app.root / "deploysafe.toml").open("a") as f:
        f.write('\n[notify]\nwebhook_env = "DEPLOY_WEBHOOK"\n')


def test_github_actions_output_step_summary_and_webhook_on_rollback(live_app: DemoApp, webhook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, received = webhook
    force_push(live_app)
    add_notify(live_app)
    edit_schema(live_app.root, BREAKING_CHANGE)
    summary_file = tmp_path / "step-summary.md"
    r = ds(live_app, "deploy", env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary_file),
                                   "DEPLOY_WEBHOOK": url})
    assert r.code == 1, r.stderr
    assert "::group::push" in r.stdout and "::endgroup::" in r.stdout
    assert "::warning::" in r.stdout  # the destructive lint finding, as an annotation
    assert "::error::" in r.stdout
    text = summary_file.read_text()
    assert "## deploysafe: rolled back" in text and "| push | ok |" in text and "Rolled back to `pre-deploy-" in text
    assert len(received) == 1 and received[0]["path"] == HOOK_PATH
    assert "rolled back" in str(received[0]["body"]["text"])
    assert_no_secret(live_app, r.stdout, r.stderr, text)
    assert HOOK_PATH not in r.stdout + r.stderr + text + "".join(journal_lines(live_app))


def test_no_rollback_exits_4_with_manual_steps_and_notifies(live_app: DemoApp, webhook) -> None:  # type: ignore[no-untyped-def]
    url, received = webhook
    force_push(live_app)
    add_notify(live_app)
    edit_schema(live_app.root, BREAKING_CHANGE)
    r = ds(live_app, "deploy", "--no-rollback", env={"DEPLOY_WEBHOOK": url})
    assert r.code == 4, r.stderr
    assert "--no-rollback" in r.stderr and "Set DATABASE_URL in" in r.stderr and "Restart the app: sh restart.sh" in r.stderr
    assert env_url(live_app) == live_app.production_url and not healthy(live_app)
    assert received and "needs a person" in str(received[0]["body"]["text"])


def test_rehearsal_catches_a_migration_that_fails_on_real_data(live_app: DemoApp) -> None:
    # A type change drizzle-kit 0.31 asks nothing about, which PostgreSQL refuses on the real rows ("User 1").
    # (A NOT NULL column on a filled table makes push ask to truncate: its read-only plan stops that first.)
    schema = live_app.root / "src" / "schema.ts"
    schema.write_text(schema.read_text().replace(
        '  name: text("name"),\n', '  name: integer("name"),\n').replace(
        "import { pgTable, serial, text, timestamp }", "import { integer, pgTable, serial, text, timestamp }"))
    before = rows(live_app.production_url, "select count(*) from information_schema.columns where table_name='users'")
    r = ds(live_app, "--json", "deploy", "--rehearse")
    assert r.code == 3, r.stderr
    steps = {e["step"]: e["outcome"] for e in r.json["timeline"]}
    assert steps["rehearse"] == "failed" and "push" not in steps
    assert "rehearsal failed" in r.json["error"] and "cannot be cast automatically" in r.json["error"]
    assert rows(live_app.production_url,
                "select count(*) from information_schema.columns where table_name='users'") == before
    assert not [n for n in _databases(live_app) if n.startswith("rehearse-")]  # the throwaway copy is gone


def _databases(app: DemoApp) -> list[str]:
    from deploysafe.providers.local import LocalProvider

    return [s.name for s in LocalProvider(app.production_url).list_snapshots()]


def test_deploy_watch_keeps_probing_then_succeeds(live_app: DemoApp) -> None:
    edit_schema(live_app.root, SAFE_CHANGE)
    r = ds(live_app, "--json", "deploy", "--watch", "2s")
    assert r.code == 0, r.stderr
    watch = next(e for e in r.json["timeline"] if e["step"] == "watch")
    assert watch["outcome"] == "ok" and watch["seconds"] >= 2


def test_watch_command_rolls_back_when_the_app_turns_unhealthy(live_app: DemoApp) -> None:
    edit_schema(live_app.root, SAFE_CHANGE)
    assert ds(live_app, "deploy").code == 0
    # the app breaks after the deploy: a column it reads disappears behind deploysafe's back
    import psycopg

    with psycopg.connect(live_app.production_url, autocommit=True) as c:
        c.execute("ALTER TABLE users RENAME COLUMN name TO full_name")
    r = ds(live_app, "watch", "--for", "30s")
    assert r.code == 1, r.stderr
    assert "unhealthy during the watch window; rolled back to pre-deploy-" in r.stderr
    assert healthy(live_app) and env_url(live_app) != live_app.production_url


def test_bad_watch_duration_is_a_usage_error(live_app: DemoApp) -> None:
    r = ds(live_app, "deploy", "--watch", "10 minutes")
    assert r.code == 2 and "--watch" in r.stderr and "Traceback" not in r.stderr


def _start(app: DemoApp) -> subprocess.Popen[str]:
    return subprocess.Popen([str(DEPLOYSAFE), "--json", "deploy"], cwd=app.root, env=app.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _wait(app: DemoApp, step: str, outcome: str = "running", timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in journal_lines(app):
            rec = json.loads(line)
            if rec["step"] == step and rec["outcome"] == outcome:
                return
        time.sleep(0.05)
    raise AssertionError(f"{step} never {outcome}")


def test_ctrl_c_before_production_changed_stops_after_the_step_and_changes_nothing(live_app: DemoApp) -> None:
    set_config(live_app, **{'generate = "npm run db:generate"': 'generate = "sleep 2 && npm run db:generate"'})
    edit_schema(live_app.root, SAFE_CHANGE)
    proc = _start(live_app)
    _wait(live_app, "generate")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    summary = json.loads(out[out.index("{"):])
    assert [e["step"] for e in summary["timeline"]] == ["preflight", "snapshot", "generate"]  # generate finished
    assert summary["timeline"][-1]["outcome"] == "ok"
    assert rows(live_app.production_url, "select count(*) from information_schema.columns "
                "where table_name='users' and column_name='nickname'") == (0,)


def test_ctrl_c_after_production_changed_rolls_back(live_app: DemoApp) -> None:
    with (live_app.root / "deploysafe.toml").open("a") as f:
        f.write('\n[deploy]\napp_deploy = "sleep 2"\n')
    edit_schema(live_app.root, SAFE_CHANGE)
    proc = _start(live_app)
    _wait(live_app, "app")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err
    summary = json.loads(out[out.index("{"):])
    assert summary["outcome"] == "rolled back" and "interrupted" in summary["rollback"]["reason"]
    assert env_url(live_app) != live_app.production_url and healthy(live_app)


def test_stopped_app_is_reported_unhealthy_by_probe(live_app: DemoApp) -> None:
    stop_app(live_app.root)
    r = ds(live_app, "--json", "probe")
    assert r.code == 7
    assert r.json["healthy"] is False and "ConnectError" in json.dumps(r.json)
