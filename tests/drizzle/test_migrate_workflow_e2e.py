"""The migrate workflow (`drizzle-kit generate` + the app's own migrator) is first-class.

The fixture app gets a migrate script that runs drizzle-orm's migrator (as vercel/ai-chatbot's
lib/db/migrate.ts does); production is created by that migrator, so its migrations table is
the real thing. Real PostgreSQL, real drizzle-kit and drizzle-orm from the fixture app.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from deploysafe.demo import embedded
from deploysafe.demo.run import SAFE_CHANGE, DemoApp, copy_app, edit_schema, start_app, stop_app
from support.e2e import ds, healthy, rows, set_config

pytestmark = pytest.mark.e2e

FIXTURE_APP = Path(__file__).resolve().parents[1] / "fixtures" / "drizzle-app"

MIGRATE_SCRIPT = """import pg from "pg";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const applied = async () => {
  const r = await pool.query("select count(*)::int as n from drizzle.__drizzle_migrations").catch(() => null);
  return r ? r.rows[0].n : 0;
};
const before = await applied();
await migrate(drizzle(pool), { migrationsFolder: "./drizzle" });
const after = await applied();
console.log(after === before ? "migrations: nothing to apply" : `migrations: applied ${after - before}`);
await pool.end();
"""


def _npm_migrate(app: DemoApp) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["npm", "run", "--silent", "db:migrate"], cwd=app.root, env=app.env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def migrate_app(tmp_path: Path, pg_server: embedded.EmbeddedPostgres, app_template: tuple[str, Path],
                node_modules: Path) -> Iterator[DemoApp]:
    """The fixture app on the migrate workflow: production made by its own migrator, 25 users, running."""
    _, drizzle_dir = app_template
    root = tmp_path / "app"
    copy_app(root, template=FIXTURE_APP, node_modules=node_modules)
    shutil.copytree(drizzle_dir, root / "drizzle")  # the committed first migration and its journal
    (root / "migrate.mjs").write_text(MIGRATE_SCRIPT)
    pkg = json.loads((root / "package.json").read_text())
    pkg["scripts"]["db:migrate"] = "node migrate.mjs"
    del pkg["scripts"]["db:push"]
    (root / "package.json").write_text(json.dumps(pkg, indent=2))
    name = f"prod_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg_server.url(name)
    app = DemoApp(root, url, 0)
    r = _npm_migrate(app)
    assert r.returncode == 0 and "applied 1" in r.stdout, r.stdout + r.stderr
    with psycopg.connect(url) as c:
        c.execute("INSERT INTO users (email, name) SELECT 'u' || g || '@example.com', 'U' || g FROM generate_series(1, 25) g")
    app = start_app(root, url)
    set_config(app, **{'dir = "."\n': 'dir = "."\nworkflow = "migrate"\nmigrate = "npm run db:migrate"\n',
                       'push = "npm run db:push"\n': ""})
    yield app
    stop_app(root)


def _recorded(app: DemoApp) -> list[tuple[Any, ...]]:
    with psycopg.connect(app.production_url) as c:
        return [tuple(r) for r in c.execute("select hash, created_at from drizzle.__drizzle_migrations order by id")]


def test_a_good_migration_deploys_and_the_app_s_own_migrate_has_nothing_left_to_do(migrate_app: DemoApp) -> None:
    edit_schema(migrate_app.root, SAFE_CHANGE)
    r = ds(migrate_app, "--json", "deploy")
    assert r.code == 0, r.stderr
    assert r.json["outcome"] == "deployed"
    assert [e["step"] for e in r.json["timeline"]] == ["preflight", "snapshot", "generate", "lint", "push", "probes", "prune"]
    assert [Path(f).name.startswith("0001_") for f in r.json["new_files"]] == [True]
    assert "run `npm run db:migrate`" in ds(migrate_app, "deploy", "--dry-run").stdout
    assert rows(migrate_app.production_url, "select count(nickname) from users") == (0,)
    assert len(_recorded(migrate_app)) == 2
    recorded = _recorded(migrate_app)
    r2 = _npm_migrate(migrate_app)
    assert r2.returncode == 0 and r2.stdout.strip() == "migrations: nothing to apply", r2.stdout + r2.stderr
    assert _recorded(migrate_app) == recorded and healthy(migrate_app)


def test_nothing_pending_is_success(migrate_app: DemoApp) -> None:
    recorded = _recorded(migrate_app)
    r = ds(migrate_app, "--json", "deploy")
    assert r.code == 0, r.stderr
    assert r.json["outcome"] == "deployed" and r.json["new_files"] == []
    assert _recorded(migrate_app) == recorded


def test_a_migrate_command_that_records_nothing_is_not_taken_for_success(migrate_app: DemoApp) -> None:
    # applies the SQL by hand, bypassing drizzle's migrations table: the database changes, the table does not
    (migrate_app.root / "apply.py").write_text(
        "import os, pathlib, psycopg\n"
        "with psycopg.connect(os.environ['DATABASE_URL'], autocommit=True) as c:\n"
        "    for f in sorted(pathlib.Path('drizzle').glob('0001_*.sql')):\n"
        "        for stmt in f.read_text().split('--> statement-breakpoint'):\n"
        "            c.execute(stmt)\n"
    )
    set_config(migrate_app, **{'migrate = "npm run db:migrate"': f'migrate = "{sys.executable} apply.py"'})
    edit_schema(migrate_app.root, SAFE_CHANGE)
    r = ds(migrate_app, "--json", "deploy")
    assert r.code == 1, r.stderr
    assert r.json["outcome"] == "rolled back"
    assert "migrate exited 0 but drizzle.__drizzle_migrations does not match" in r.json["error"]
    assert "0001_" in r.json["error"] and "is not recorded as applied" in r.json["error"]


def test_an_applied_migration_edited_since_is_refused_before_production_changes(migrate_app: DemoApp) -> None:
    first = next((migrate_app.root / "drizzle").glob("0000_*.sql"))
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")
    recorded = _recorded(migrate_app)
    r = ds(migrate_app, "--json", "deploy")
    assert r.code == 3, r.stderr
    assert f"{first.stem}: applied to this database already, but the file was edited since" in r.json["error"]
    assert _recorded(migrate_app) == recorded


def _commit_migration(app: DemoApp, tag: str, statements: list[str]) -> Path:
    """A migration written by hand (or generated on another machine) and committed: its file and journal entry,
    with no snapshot change, so `drizzle-kit generate` has nothing new to write. Lint policy: block."""
    cfg = (app.root / "deploysafe.toml").read_text()
    if 'destructive = "warn"' in cfg:
        set_config(app, **{'destructive = "warn"': 'destructive = "block"'})
    folder = app.root / "drizzle"
    journal_path = folder / "meta" / "_journal.json"
    journal = json.loads(journal_path.read_text())
    entries = journal["entries"]
    entries.append({**entries[-1], "idx": len(entries), "when": entries[-1]["when"] + 1000, "tag": tag})
    journal_path.write_text(json.dumps(journal, indent=2))
    path = folder / f"{tag}.sql"
    path.write_text("\n--> statement-breakpoint\n".join(statements) + "\n")
    return path


def test_a_pending_destructive_migration_committed_earlier_is_blocked_by_lint(migrate_app: DemoApp) -> None:
    drop = _commit_migration(migrate_app, "0001_drop_name", ['ALTER TABLE "users" DROP COLUMN "name";'])
    recorded = _recorded(migrate_app)
    r = ds(migrate_app, "--json", "deploy")
    assert r.code == 3, r.stdout + r.stderr
    assert r.json["new_files"] == []  # generate wrote nothing: the lint judged the pending migration
    assert "destructive statement(s) blocked" in r.json["error"] and drop.name in r.json["error"]
    assert [e["step"] for e in r.json["timeline"]][-1] == "lint"
    assert rows(migrate_app.production_url, "select count(name) from users") == (25,)  # the column is still there
    assert _recorded(migrate_app) == recorded and healthy(migrate_app)


def test_an_applied_destructive_migration_is_not_linted_again(migrate_app: DemoApp) -> None:
    applied = _commit_migration(migrate_app, "0001_scratch", ['CREATE TABLE "scratch" ("id" integer);',
                                                              'DROP TABLE "scratch";'])
    r0 = _npm_migrate(migrate_app)
    assert r0.returncode == 0 and "applied 1" in r0.stdout, r0.stdout + r0.stderr
    pending = _commit_migration(migrate_app, "0002_drop_name", ['ALTER TABLE "users" DROP COLUMN "name";'])
    recorded = _recorded(migrate_app)
    r = ds(migrate_app, "--json", "deploy")
    assert r.code == 3, r.stdout + r.stderr
    assert pending.name in r.json["error"] and applied.name not in r.json["error"]
    assert {Path(f["file"]).name for f in r.json["lint"]} == {pending.name}
    assert _recorded(migrate_app) == recorded
    # with the pending one gone, the applied DROP TABLE blocks nothing: the deploy goes through
    pending.unlink()
    journal_path = migrate_app.root / "drizzle" / "meta" / "_journal.json"
    journal = json.loads(journal_path.read_text())
    journal["entries"] = journal["entries"][:-1]
    journal_path.write_text(json.dumps(journal, indent=2))
    r2 = ds(migrate_app, "--json", "deploy")
    assert r2.code == 0, r2.stdout + r2.stderr
    assert r2.json["outcome"] == "deployed" and r2.json["lint"] == []
    assert _recorded(migrate_app) == recorded
