"""Rollback time in the demo flow: from the probe verdict "unhealthy" to "healthy on the snapshot".

Split into deploysafe's own time and the app restart's (the platform's `restart` command), from
the deploy summary's rollback timings. Goal: deploysafe's own part under 1 second. Also measures
the overhead of a guarded deploy of a no-op migration over the bare
`npm run db:generate && npm run db:push` (snapshot time reported separately).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, save  # noqa: E402

from deploysafe import pg  # noqa: E402
from deploysafe.demo import embedded
from deploysafe.demo.run import (  # noqa: E402
    BREAKING_CHANGE,
    copy_app,
    edit_schema,
    init_schema,
    install_node_modules,
    run_deploy,
    start_app,
    stop_app,
    write_config,
)

RUNS = 3


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ds-bench-"))
    work.chmod(0o755)
    server = embedded.start(work / "pg")
    try:
        with pg.connect(server.url()) as c:
            c.execute("CREATE DATABASE tmpl")
        seed = work / "seed"
        copy_app(seed)
        node_modules = install_node_modules(seed)
        init_schema(seed, server.url("tmpl"))
        rollback_rows = []
        noop_rows = []
        for i in range(RUNS):
            name = f"prod_{uuid.uuid4().hex[:8]}"
            with pg.connect(server.url()) as c:
                c.execute(f'CREATE DATABASE "{name}" TEMPLATE tmpl')
            root = work / f"app{i}"
            copy_app(root, node_modules=node_modules)
            shutil.copytree(seed / "drizzle", root / "drizzle")
            app = start_app(root, server.url(name))
            try:
                # 1) a no-op guarded deploy vs the bare scripts
                t0 = time.perf_counter()
                subprocess.run("npm run db:generate && npm run db:push", shell=True, cwd=root, env=app.env,
                               check=True, capture_output=True, stdin=subprocess.DEVNULL)
                bare = time.perf_counter() - t0
                t0 = time.perf_counter()
                code, summary, _ = run_deploy(app)
                guarded = time.perf_counter() - t0
                assert code == 0 and summary, code
                snap = next(e["seconds"] for e in summary["timeline"] if e["step"] == "snapshot")
                noop_rows.append({"bare_s": round(bare, 2), "guarded_s": round(guarded, 2), "snapshot_s": round(snap, 2)})
                # 2) a breaking migration, rolled back
                write_config(root, app.port, destructive="warn", push="npm run db:push -- --force")
                edit_schema(root, BREAKING_CHANGE)
                code, summary, _ = run_deploy(app)
                assert code == 1 and summary and summary["rollback"], code
                t = summary["rollback"]["timings"]
                total = t["verdict_to_healthy"]
                restart = t["pick_up"]
                rollback_rows.append({
                    "verdict_to_healthy_s": round(total, 3),
                    "app_restart_s": round(restart, 3),
                    "deploysafe_own_s": round(total - restart, 3),
                    "set_s": round(t["set"], 3),
                    "probes_s": round(t["probes"], 3),
                })
            finally:
                stop_app(root)
        own = median([r["deploysafe_own_s"] for r in rollback_rows])
        restart = median([r["app_restart_s"] for r in rollback_rows])
        save("rollback", "Rollback time in the demo flow (local provider, dotenv platform)", rollback_rows,
             f"unhealthy -> healthy on the snapshot: deploysafe's own part {own:.3f} s, the app restart {restart:.3f} s "
             f"(medians of {RUNS})", goal="deploysafe's own part < 1 s")
        over = median([r["guarded_s"] - r["snapshot_s"] - r["bare_s"] for r in noop_rows])
        snap = median([r["snapshot_s"] for r in noop_rows])
        bare = median([r["bare_s"] for r in noop_rows])
        save("deploy_overhead", "Guarded deploy of a no-op migration vs bare generate && push", noop_rows,
             f"bare scripts {bare:.2f} s; guarded deploy adds {over:.2f} s beyond its snapshot; snapshot {snap:.2f} s "
             f"(medians of {RUNS})")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
