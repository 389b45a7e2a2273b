"""An embedded, throwaway PostgreSQL server: the machine's binaries when present, else pgserver.

Used by ``deploysafe demo`` and by the test suite. ``initdb`` refuses to run as root, so
as root the cluster is created and run as the ``postgres`` user (``runuser``) in a folder
that user owns. The server listens on 127.0.0.1 on a free port, with password (SCRAM)
authentication over TCP so URLs carry a real password.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from deploysafe.errors import PreconditionError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def system_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binaries, if any."""
    env = os.environ.get("DEPLOYSAFE_PG_BIN")
    if env and (Path(env) / "initdb").exists():
        return Path(env)
    cands = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name), reverse=True)
    for c in cands:
        if (c / "initdb").exists() and (c / "postgres").exists():
            return c
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    return None


def pgserver_bin_dir() -> Path | None:
    """The binaries inside the pgserver wheel, found without importing it (its import has side effects)."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.origin:
        return None
    p = Path(spec.origin).parent / "pginstall" / "bin"
    return p if (p / "postgres").exists() else None


def _major(text: str) -> int:
    try:
        return int(text.split(".")[0])
    except ValueError:
        return 0


@dataclass
class EmbeddedPostgres:
    """A running server. ``url(db)`` gives a connection URL with the superuser's password."""

    bin_dir: Path
    data_dir: Path
    port: int
    user: str
    password: str
    run_as: str | None  # OS user the server runs as (root -> postgres)
    owns_dir: bool

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def _cmd(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else argv

    def stop(self) -> None:
        subprocess.run(
            self._cmd([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        if self.owns_dir:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _enterable_by_anyone(folder: Path) -> bool:
    """Every folder on the way to ``folder`` lets other users through (the x bit for "other")."""
    try:
        real = folder.resolve(strict=True)
        return real.is_dir() and all(os.stat(d).st_mode & 0o001 for d in (real, *real.parents))
    except OSError:
        return False


def cluster_parent() -> Path:
    """Where a cluster run as the ``postgres`` user can live: the temporary folder when that user can
    enter it, else /tmp or /var/tmp (a root shell's private TMPDIR is out of its reach)."""
    for candidate in (Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")):
        if _enterable_by_anyone(candidate):
            return candidate
    raise PreconditionError(
        "no temporary folder the 'postgres' user can enter for the embedded server",
        hint="set TMPDIR to a folder other users may traverse (chmod o+x), or run as a normal user",
    )


def start(base_dir: Path | None = None, *, user: str = "postgres") -> EmbeddedPostgres:
    """Create a cluster in a fresh folder and start it; raise PreconditionError with the fix if we can't."""
    bin_dir = system_bin_dir() or pgserver_bin_dir()
    if bin_dir is None:
        raise PreconditionError(
            "no PostgreSQL server binaries found",
            hint="install PostgreSQL (apt-get install postgresql) or `pip install 'deploysafe[local]'` for pgserver",
        )
    run_as = None
    if os.geteuid() == 0:
        run_as = "postgres"
        try:
            import pwd

            pw = pwd.getpwnam(run_as)
        except KeyError:
            raise PreconditionError(
                "running as root, and there is no 'postgres' user to run the server as",
                hint="useradd --system postgres, or run as a normal user",
            ) from None
    # As root the server runs as `postgres`, which may not be able to reach a folder under a private
    # parent (pytest's tmp_path, a home directory, a TMPDIR of mode 700): then the cluster gets its own
    # temporary folder under a parent every user may enter, removed by stop().
    owns = base_dir is None or run_as is not None
    if base_dir is not None and not owns:
        root = base_dir
    else:
        root = Path(tempfile.mkdtemp(prefix="deploysafe-pg-", dir=cluster_parent() if run_as else None))
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    password = "pw-" + secrets.token_urlsafe(12)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as:
        os.chmod(root, 0o755)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    os.chmod(pwfile, 0o600)
    port = free_port()
    srv = EmbeddedPostgres(bin_dir, data, port, user, password, run_as, owns)
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    r = subprocess.run(
        srv._cmd(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
             "--auth-local=trust", "-E", "UTF8", "--no-sync"]
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    pwfile.unlink(missing_ok=True)
    if r.returncode != 0:
        raise PreconditionError(f"initdb failed: {r.stderr.strip()[-500:]}", hint="check the PostgreSQL installation")
    opts = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {data} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    r = subprocess.run(
        srv._cmd([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(data / "server.log"), "-w", "-t", "60", "start"]),
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )
    if r.returncode != 0:
        log = (data / "server.log").read_text(errors="replace")[-800:] if (data / "server.log").exists() else ""
        raise PreconditionError(f"PostgreSQL did not start: {r.stderr.strip()} {log}", hint="see the server log above")
    _wait_ready(port)
    return srv


def _wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise PreconditionError(f"PostgreSQL did not accept connections on port {port} within {timeout:.0f}s")
