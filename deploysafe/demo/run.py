"""``deploysafe demo``: the whole job on this machine, with nothing to sign up for.

An embedded PostgreSQL, a small Drizzle app shipped inside the package (``npm ci``, cached
between runs), started with its ``.env``; then two real ``deploysafe deploy`` runs: a safe
migration (exit 0) and a breaking one (the health check fails, automatic rollback, exit 1).
Everything it started is stopped at the end unless ``--keep``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploysafe.console import console
from deploysafe.errors import PreconditionError

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "demo-app"

SAFE_CHANGE = ('  name: text("name"),\n', '  name: text("name"),\n  nickname: text("nickname"),\n')
BREAKING_CHANGE = ('  name: text("name"),\n', "")


def require_node() -> None:
    missing = [t for t in ("node", "npm") if shutil.which(t) is None]
    if missing:
        raise PreconditionError(
            f"{' and '.join(missing)} not found on PATH: the demo runs a real Node app with drizzle-kit",
            hint="install Node.js 20 or newer (it ships npm), e.g. from nodejs.org or your package manager",
        )


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deploysafe"


def install_node_modules(app: Path, *, log: Any = None) -> Path:
    """``npm ci`` once per lockfile into a cache; the app gets a symlink to it."""
    lock = (app / "package-lock.json").read_bytes()
    key = hashlib.sha256(lock + (app / "package.json").read_bytes()).hexdigest()[:16]
    cached = cache_dir() / f"demo-app-{key}"
    if not (cached / "node_modules" / ".bin" / "drizzle-kit").exists():
        cached.mkdir(parents=True, exist_ok=True)
        shutil.copy2(app / "package.json", cached / "package.json")
        shutil.copy2(app / "package-lock.json", cached / "package-lock.json")
        if log:
            log("installing the demo app's packages with npm ci (once; cached in " + str(cached) + ")")
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=cached,
                           capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
        if r.returncode != 0:
            raise PreconditionError(f"npm ci failed: {r.stderr.strip()[-500:]}", hint="check network access to the npm registry")
    link = app / "node_modules"
    if link.is_symlink() or link.exists():
        if link.is_symlink():
            link.unlink()
        else:
            shutil.rmtree(link)
    link.symlink_to(cached / "node_modules")
    return cached / "node_modules"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(root: Path, port: int, *, destructive: str = "warn", push: str = "npm run db:push") -> Path:
    path = root / "deploysafe.toml"
    path.write_text(
        f"""# Written by `deploysafe demo`.
[app]
dir = "."
generate = "npm run db:generate"
push = "{push}"
step_timeout = "2m"

[provider]
type = "local"
database_url = "${{DATABASE_URL}}"
strategy = "dump"

[platform]
type = "dotenv"
env_file = ".env"
restart = "sh restart.sh"
ready_timeout = "60s"

[probes]
deadline = "20s"
interval = "500ms"
failure_limit = 3
[[probes.http]]
name = "health"
url = "http://127.0.0.1:{port}/health"
expect_body = "ok"
timeout = "3s"
[[probes.sql]]
name = "users readable"
query = "select count(*) from users"

[lint]
destructive = "{destructive}"
""",
        encoding="utf-8",
    )
    return path


def edit_schema(app: Path, change: tuple[str, str]) -> None:
    schema = app / "src" / "schema.ts"
    text = schema.read_text(encoding="utf-8")
    if change[0] not in text:
        raise PreconditionError(f"the demo schema does not contain {change[0].strip()!r}")
    schema.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")


def wait_http(url: str, timeout: float = 20.0) -> bool:
    import httpx

    from deploysafe.http import fetch, make_client

    deadline = time.monotonic() + timeout
    with make_client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                if fetch(client, "GET", url, deadline=2.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    return False


def stop_app(app: Path) -> None:
    pid_file = app / "app.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except (ValueError, ProcessLookupError, PermissionError):
        pass
    pid_file.unlink(missing_ok=True)


@dataclass
class DemoApp:
    """A scaffolded, running demo app on an embedded PostgreSQL (also used by the end-to-end tests)."""

    root: Path
    production_url: str
    port: int

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.production_url, "NO_COLOR": "1"}


def copy_app(root: Path, *, template: Path = TEMPLATE, node_modules: Path | None = None, log: Any = None) -> None:
    """Copy the app's files (no node_modules, no generated migrations) and give it its packages."""
    shutil.copytree(template, root, ignore=shutil.ignore_patterns("node_modules", "drizzle", ".env", "app.pid", "app.log"),
                    dirs_exist_ok=True)
    if node_modules is not None:
        (root / "node_modules").symlink_to(node_modules)
    else:
        install_node_modules(root, log=log)


def init_schema(root: Path, production_url: str, rows: int = 25) -> None:
    """Generate the first migration, push it, and seed ``rows`` users (the app's production before any deploy)."""
    from deploysafe import pg
    from deploysafe.process import run_step

    env = {"DATABASE_URL": production_url}
    for name, cmd in (("generate", "npm run db:generate"), ("push", "npm run db:push")):
        r = run_step(name, cmd, cwd=root, env=env, timeout=120)
        if r.exit_code != 0:
            raise PreconditionError(f"setting up the demo schema failed at {name}: {r.output[-400:]}")
    with pg.connect(production_url) as conn:
        conn.execute(
            "INSERT INTO users (email, name) SELECT 'user' || g || '@example.com', 'User ' || g "
            "FROM generate_series(1, %s) g",
            (rows,),
        )


def start_app(root: Path, production_url: str) -> DemoApp:
    """Write .env, start the app with its restart script, wait until healthy, write deploysafe.toml."""
    from deploysafe.envfile import write_var
    from deploysafe.process import run_step

    port = free_port()
    env_file = root / ".env"
    write_var(env_file, "DATABASE_URL", production_url)
    write_var(env_file, "PORT", str(port))
    r = run_step("start", "sh restart.sh", cwd=root, env={}, timeout=60)
    if r.exit_code != 0 or not wait_http(f"http://127.0.0.1:{port}/health"):
        raise PreconditionError(f"the demo app did not become healthy; see {root / 'app.log'}")
    write_config(root, port)
    return DemoApp(root, production_url, port)


def scaffold(root: Path, production_url: str, *, template: Path = TEMPLATE, node_modules: Path | None = None,
             rows: int = 25, log: Any = None) -> DemoApp:
    """Copy the app, install packages, create and seed the schema, start the app, write deploysafe.toml."""
    copy_app(root, template=template, node_modules=node_modules, log=log)
    init_schema(root, production_url, rows)
    return start_app(root, production_url)


def run_deploy(app: DemoApp, *extra: str) -> tuple[int, dict[str, Any] | None, str]:
    """Run the real CLI as a subprocess (``--json``); human lines stream to our stderr as they come."""
    cmd = [sys.executable, "-m", "deploysafe", "--json", "deploy", *extra]
    proc = subprocess.Popen(cmd, cwd=app.root, env=app.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    err_lines: list[str] = []
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        err_lines.append(line)
        console.plain("    │ " + line.rstrip())
    out = proc.stdout.read()
    code = proc.wait()
    start = out.find("{")
    summary = json.loads(out[start:]) if start >= 0 else None
    return code, summary, "".join(err_lines)


def run_demo(directory: Path | None, keep: bool) -> int:
    from deploysafe.demo import embedded
    from deploysafe.durations import format_duration

    require_node()
    root = directory or Path(tempfile.mkdtemp(prefix="deploysafe-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    if directory is not None and any(root.iterdir()):
        raise PreconditionError(f"{root} is not empty", hint="pass an empty or new folder with --dir")
    os.chmod(root, 0o755)  # as root, the server runs as `postgres`, which must reach its data folder
    server = None
    app_dir = root / "app"
    results: list[tuple[str, int, dict[str, Any] | None]] = []
    try:
        console.info("1/4 starting an embedded PostgreSQL")
        server = embedded.start(root / "pg")
        from deploysafe import pg

        with pg.connect(server.url()) as conn:
            conn.execute("CREATE DATABASE shop")
        console.info("2/4 scaffolding the Drizzle app, seeding 25 users, starting it")
        app = scaffold(app_dir, server.url("shop"), log=console.info)
        console.ok(f"app running on http://127.0.0.1:{app.port}/health, reading DATABASE_URL from {app_dir / '.env'}")

        console.info("3/4 deploy #1: a safe migration (add a nullable column `nickname`)")
        edit_schema(app_dir, SAFE_CHANGE)
        code, summary, _ = run_deploy(app)
        results.append(("safe migration", code, summary))

        console.info("4/4 deploy #2: a breaking migration (drop column `name`, which /health reads)")
        write_config(app_dir, app.port, destructive="warn", push="npm run db:push -- --force")
        edit_schema(app_dir, BREAKING_CHANGE)
        code, summary, _ = run_deploy(app)
        results.append(("breaking migration", code, summary))

        console.plain("")
        console.plain("What happened")
        for title, code, summary in results:
            outcome = summary["outcome"] if summary else "?"
            console.plain(f"  {title}: exit {code} ({outcome})")
            for e in (summary or {}).get("timeline", []):
                secs = format_duration(e["seconds"]) if "seconds" in e else "-"
                console.plain(f"      {e['step']:<10} {e['outcome']:<8} {secs}")
            rb = (summary or {}).get("rollback")
            if rb:
                console.plain(f"      rollback: unhealthy -> healthy on {rb['snapshot']} in "
                              f"{format_duration(rb['seconds_verdict_to_healthy'])}; "
                              f"{rb['failed_state_kept']!r} kept with the failed state")
        console.plain("")
        if keep:
            (app_dir / ".env.production").write_text(f"DATABASE_URL={app.production_url}\n", encoding="utf-8")
            os.chmod(app_dir / ".env.production", 0o600)
            console.plain(f"Look further: cd {app_dir} && set -a && . ./.env.production && set +a, then:")
            for c in ("deploysafe snapshot list", "deploysafe history", "deploysafe probe", "deploysafe status"):
                console.plain(f"  {c}")
        else:
            console.plain("Run `deploysafe demo --keep` to keep the app and database and look around with "
                          "`deploysafe snapshot list`, `history`, `probe` and `status`.")
        expected = [0, 1]
        got = [c for _, c, _ in results]
        if got != expected:
            console.error(f"the demo expected exit codes {expected} and got {got}")
            return 70
        console.ok("demo finished: exit codes 0 (deployed) and 1 (rolled back, healthy) as expected")
        return 0
    finally:
        if keep:
            stop_pg = (f"{server.bin_dir / 'pg_ctl'} -D {server.data_dir} stop"
                       + (f" (as the {server.run_as} user)" if server.run_as else "")) if server else "nothing else"
            console.plain(f"kept everything in {root}. To stop it: kill $(cat {app_dir / 'app.pid'}); {stop_pg}")
        else:
            stop_app(app_dir)
            if server is not None:
                server.stop()
            shutil.rmtree(root, ignore_errors=True)
