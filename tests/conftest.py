"""Shared fixtures: a real PostgreSQL server, fresh databases, real git repos, the fixture Drizzle app."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from deploysafe.childenv import clear_claims
from deploysafe.console import console
from deploysafe.demo import embedded
from deploysafe.redact import clear_secrets

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_APP = ROOT / "tests" / "fixtures" / "drizzle-app"
IN_CI = os.environ.get("CI") == "true"


def _unavailable(reason: str) -> None:
    """Skip locally with a reason; in CI a missing component is a failure, never a skip."""
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Each test starts with no registered secret, no claimed variable and the console in its default mode
    (a CLI run in-process with --json or --verbose would otherwise leave it switched for the next test)."""
    yield
    clear_secrets()
    clear_claims()
    console.configure()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[embedded.EmbeddedPostgres]:
    if embedded.system_bin_dir() is None and embedded.pgserver_bin_dir() is None:
        _unavailable("no PostgreSQL server binaries and no pgserver wheel")
    srv = embedded.start()
    yield srv
    srv.stop()


@pytest.fixture
def make_db(pg_server: embedded.EmbeddedPostgres) -> Iterator[Callable[..., str]]:
    """Factory: a fresh database per call; returns its URL. Dropped after the test."""
    made: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_server.url(), autocommit=True) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return pg_server.url(name)

    yield make
    with psycopg.connect(pg_server.url(), autocommit=True) as c:
        for name in made:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(make_db: Callable[..., str]) -> str:
    return make_db()


# --- git --------------------------------------------------------------------------------------


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fixed author, no global config, an empty template dir: git behaves the same everywhere."""
    template = tmp_path / "git-template"
    template.mkdir()
    env = {
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TEMPLATE_DIR": str(template),
    }
    (tmp_path / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def git(cwd: Path, *args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check, **kw)  # type: ignore[call-overload]


@pytest.fixture
def bare_remote(tmp_path: Path, git_env: dict[str, str]) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--bare", "-q", str(remote))
    return remote


@pytest.fixture
def git_repo(tmp_path: Path, git_env: dict[str, str], bare_remote: Path) -> Path:
    """A repo with one commit on main, pushed to a local bare remote named origin."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    git(repo, "remote", "add", "origin", str(bare_remote))
    git(repo, "push", "-q", "origin", "main")
    return repo


# --- the fixture Drizzle app --------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_modules() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node/npm not installed")
    nm = FIXTURE_APP / "node_modules"
    if not (nm / ".bin" / "drizzle-kit").exists():
        _unavailable(f"run `npm ci` in {FIXTURE_APP} first (.ci/run does)")
    return nm


@pytest.fixture
def drizzle_app(tmp_path: Path, node_modules: Path) -> Path:
    """A private copy of the fixture app, sharing the installed node_modules through a symlink."""
    app = tmp_path / "app"
    shutil.copytree(FIXTURE_APP, app, ignore=shutil.ignore_patterns("node_modules", "drizzle", ".env"))
    (app / "node_modules").symlink_to(node_modules)
    return app


@pytest.fixture(scope="session")
def app_template(pg_server: embedded.EmbeddedPostgres, node_modules: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Once per session: the fixture app's first migration generated and pushed into a template database,
    so each end-to-end test starts from a copy in a fraction of a second instead of re-running drizzle-kit."""
    from deploysafe.demo.run import copy_app, init_schema

    root = tmp_path_factory.mktemp("app-template") / "app"
    name = f"tmpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    copy_app(root, template=FIXTURE_APP, node_modules=node_modules)
    init_schema(root, pg_server.url(name))
    return name, root / "drizzle"


@pytest.fixture
def live_app(tmp_path: Path, pg_server: embedded.EmbeddedPostgres, app_template: tuple[str, Path],
             node_modules: Path) -> Iterator[object]:
    """The fixture app as the demo sets it up: schema pushed, 25 users, running, deploysafe.toml written."""
    from deploysafe.demo.run import copy_app, start_app, stop_app

    template_db, drizzle_dir = app_template
    name = f"prod_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template_db)))
    root = tmp_path / "app"
    copy_app(root, template=FIXTURE_APP, node_modules=node_modules)
    shutil.copytree(drizzle_dir, root / "drizzle")
    app = start_app(root, pg_server.url(name))
    yield app
    stop_app(app.root)


# --- the fault matrix's tally (issue 10) ------------------------------------------------------------
# These hooks live in the root conftest because under pytest-xdist only it is loaded by the controller,
# which receives every worker's reports (tests/reliability/conftest.py marks the cases).

MATRIX_KEY = "fault_matrix"

def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    case = dict(report.user_properties).get(MATRIX_KEY)
    if case is None:
        return
    table = _table()
    call, fault = str(case).split("|")
    prev = table.get(report.nodeid)
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if prev is None or prev[2] in ("passed", "pending"):
            table[report.nodeid] = (call, fault, outcome)
    elif prev is None:
        table[report.nodeid] = (call, fault, "pending")


_TABLE: dict[str, Any] = {}


def _table() -> dict[str, Any]:
    return _TABLE


def pytest_terminal_summary(terminalreporter: Any) -> None:
    table = _table()
    if not table:
        return
    calls = {c for c, _, _ in table.values()}
    faults = {f for _, f, _ in table.values()}
    passed = sum(1 for _, _, o in table.values() if o == "passed")
    terminalreporter.write_line(
        f"fault matrix: {len(calls)} calls x {len(faults)} faults = {len(table)} cases, {passed} passed"
    )
    failed = sorted(f"{c} x {f}: {o}" for c, f, o in table.values() if o != "passed")
    for line in failed:
        terminalreporter.write_line(f"  not passed: {line}")
