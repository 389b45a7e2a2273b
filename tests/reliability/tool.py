"""Cheap stand-ins for `db:generate`, `db:push` and the restart command, with fault knobs (issue 10).

Copied into each test app and run by deploysafe exactly like the real commands: through the shell, with
DATABASE_URL in the environment. They really touch the database (psycopg), so production changes for real.

  generate  writes drizzle/<n>_reliability.sql from change.json (nothing when there is no change)
  push      applies change.json's statement; with --strict (deploysafe's read-only dry check) it only
            reports whether the database matches ("No changes detected") and changes nothing
  restart   runs the app's own restart.sh (the real node app)

Fault knobs: faults.json maps a command to "exit" (exit 1), "hang" (sleep far past any timeout) or
"killed" (SIGKILL itself); push acts after applying its statement, the nastier case. "slow:<s>" sleeps
<s> seconds first (SIGKILL tests kill deploysafe meanwhile). "lint-bulk" makes generate write a large
migration so the lint step takes a while. Each run writes its pid to <command>.pid, so a test can end
exactly the processes it caused.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def knob(command: str) -> str:
    path = HERE / "faults.json"
    if not path.exists():
        return ""
    return str(json.loads(path.read_text()).get(command, ""))


def fault(command: str, when: str) -> None:
    k = knob(command)
    if when == "before" and k.startswith("slow:"):
        time.sleep(float(k.split(":", 1)[1]))
    if when != "after":
        return
    if k == "exit":
        print(f"{command}: injected failure", flush=True)
        sys.exit(1)
    if k == "hang":
        time.sleep(600)
    if k == "killed":
        os.kill(os.getpid(), signal.SIGKILL)


def change() -> dict[str, str] | None:
    path = HERE / "change.json"
    return json.loads(path.read_text()) if path.exists() else None


def psql(*args: str) -> str:
    # psql, not psycopg: importing psycopg costs a second on a busy CI machine, three times per deploy
    r = subprocess.run([os.environ["PSQL"], "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", os.environ["DATABASE_URL"],
                        *args], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if r.returncode:
        print(r.stderr.strip(), flush=True)
        sys.exit(r.returncode)
    return r.stdout.strip()


def applied(ch: dict[str, str]) -> bool:
    return psql("-c", ch["applied"]) == "t"


def main() -> None:
    command = sys.argv[1]
    (HERE / f"{command}.pid").write_text(str(os.getpid()))
    fault(command, "before")
    if command == "generate":
        ch = change()
        folder = HERE / "drizzle"
        folder.mkdir(exist_ok=True)
        if ch and not (HERE / ".generated").exists():
            n = len(list(folder.glob("*.sql")))
            body = ch["sql"] + ";\n"
            if knob("generate") == "lint-bulk":
                body += "SELECT 1;\n" * 60000
            (folder / f"{n:04d}_reliability.sql").write_text(body)
            (HERE / ".generated").write_text("1")
        print("generated", flush=True)
    elif command == "push":
        ch = change()
        if "--strict" in sys.argv:
            print("[i] No changes detected" if not ch or applied(ch) else f"pending: {ch['sql']}", flush=True)
            return
        if ch and not applied(ch):
            psql("-c", ch["sql"])
            print("[✓] Changes applied", flush=True)
        else:
            print("[i] No changes detected", flush=True)
    elif command == "restart":
        if knob("restart") not in ("exit", "hang", "killed"):
            r = subprocess.run(["sh", "restart.sh"], cwd=HERE, check=False)
            if r.returncode:
                sys.exit(r.returncode)
    fault(command, "after")


if __name__ == "__main__":
    main()
