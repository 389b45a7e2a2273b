"""deploysafe points the app's own tooling at the database it chose, and proves it.

The fixture app's drizzle.config.ts is changed to read ``POSTGRES_URL`` from ``.env.local``
(dotenv ``config({ path })``, as vercel/ai-chatbot does), and ``.env.local`` names production.
Production carries an event trigger that logs every DDL statement with its transaction and
time, so the tests see exactly when and how often production's schema was changed. Real
PostgreSQL, real drizzle-kit and dotenv from the fixture app's node_modules.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
import pytest

from deploysafe.demo.run import SAFE_CHANGE, DemoApp, edit_schema
from deploysafe.envfile import write_var
from support.e2e import assert_no_secret, ds, env_url, healthy, journal_lines, rows, set_config

pytestmark = pytest.mark.e2e

CONFIG_READS_POSTGRES_URL = """import { config } from "dotenv";
import { defineConfig } from "drizzle-kit";

config({ path: ".env.local" });

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/schema.ts",
  out: "./drizzle",
  dbCredentials: {
    url: %s,
  },
});
"""

AUDIT = """
CREATE SCHEMA audit;
CREATE TABLE audit.ddl (tag text, xid bigint DEFAULT txid_current(), at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION audit.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_database() = %s THEN INSERT INTO audit.ddl (tag) VALUES (tg_tag); END IF;
END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION audit.log_ddl();
"""


def _reads_postgres_url(app: DemoApp, url_expr: str = "process.env.POSTGRES_URL!") -> None:
    (app.root / "drizzle.config.ts").write_text(CONFIG_READS_POSTGRES_URL % url_expr)
    write_var(app.root / ".env.local", "POSTGRES_URL", app.production_url)
    with psycopg.connect(app.production_url, autocommit=True) as c:
        dbname = c.execute("select current_database()").fetchone()[0]  # type: ignore[index]
        c.execute(AUDIT.replace("%s", "'" + dbname + "'"))  # copies of production log nothing into their own table


def _production_ddl(app: DemoApp) -> list[tuple[str, int, datetime]]:
    with psycopg.connect(app.production_url) as c:
        return [tuple(r) for r in c.execute("select tag, xid, at from audit.ddl order by at").fetchall()]  # type: ignore[misc]


def _step(app: DemoApp, name: str) -> dict[str, Any]:
    done = [json.loads(line) for line in journal_lines(app)]
    return next(e for e in reversed(done) if e["step"] == name and e["outcome"] != "running")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("rehearse", [False, True], ids=["deploy", "deploy --rehearse"])
def test_an_app_reading_postgres_url_from_env_local_migrates_the_intended_databases_only(
    live_app: DemoApp, rehearse: bool
) -> None:
    _reads_postgres_url(live_app)
    set_config(live_app, **{'dir = "."\n': 'dir = "."\ndatabase_env = ["POSTGRES_URL"]\nenv_files = [".env.local"]\n'})
    edit_schema(live_app.root, SAFE_CHANGE)
    r = ds(live_app, "--json", "deploy", *(["--rehearse"] if rehearse else []))
    assert r.code == 0, r.stderr
    steps = [e["step"] for e in r.json["timeline"]]
    assert ("rehearse" in steps) is rehearse and all(e["outcome"] == "ok" for e in r.json["timeline"])
    # production changed exactly once, in one transaction, during the push: not at generate, not in the rehearsal
    ddl = _production_ddl(live_app)
    assert [t for t, _, _ in ddl] == ["ALTER TABLE"] and len({x for _, x, _ in ddl}) == 1
    push = _step(live_app, "push")
    assert _at(push["started_at"]) <= ddl[0][2] <= _at(push["ended_at"])
    if rehearse:
        assert _at(_step(live_app, "rehearse")["ended_at"]) <= ddl[0][2]
    assert rows(live_app.production_url, "select count(nickname) from users") == (0,)
    assert (live_app.root / ".env.local").read_text().count(live_app.production_url) == 1  # left as it was
    assert env_url(live_app) == live_app.production_url and healthy(live_app)
    assert_no_secret(live_app, r.stdout, r.stderr)


def test_without_the_app_s_variable_the_deploy_is_refused_before_anything_runs(live_app: DemoApp) -> None:
    _reads_postgres_url(live_app)  # deploysafe.toml still says database_env = DATABASE_URL (the default)
    edit_schema(live_app.root, SAFE_CHANGE)
    r = ds(live_app, "--json", "deploy", "--rehearse")
    assert r.code == 3, r.stderr
    assert "drizzle.config.ts reads POSTGRES_URL for its connection, which deploysafe does not set" in r.stderr
    assert 'database_env = ["DATABASE_URL", "POSTGRES_URL"]' in r.stderr
    assert _production_ddl(live_app) == []
    assert [e["step"] for e in r.json["timeline"]] == ["preflight"]


def test_a_rehearsal_that_reaches_production_is_caught_by_its_fingerprint_and_rolled_back(live_app: DemoApp) -> None:
    # a variable name the file reader cannot see: only the run-time proof can tell where the steps went
    _reads_postgres_url(live_app, 'process.env[["POSTGRES", "URL"].join("_")]!')
    edit_schema(live_app.root, SAFE_CHANGE)
    r = ds(live_app, "--json", "deploy", "--rehearse")
    assert r.code == 1, r.stderr
    assert r.json["outcome"] == "rolled back"
    assert "rehearse: production's schema changed during a step that must not touch it" in r.json["error"]
    assert "deploysafe set DATABASE_URL" in r.json["error"]
    assert [t for t, _, _ in _production_ddl(live_app)] == ["ALTER TABLE"]
    assert healthy(live_app) and env_url(live_app) != live_app.production_url  # on the snapshot, as before the change
