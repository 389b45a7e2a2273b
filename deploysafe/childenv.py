"""Environments built for each child process: a child gets what it needs, never more.

- The user's own steps (``[app] generate``/``push``, ``[deploy] app_deploy``) and platform commands
  (``restart``, ``get_command``, ``set_command``, ``wait_command``) get the user's environment minus
  deploysafe's own credentials (:func:`claim`: the Neon key, the platform token, the webhook URL,
  probe header tokens, and every variable ``${VAR}`` brought into deploysafe's own settings), plus
  the variables their command names (``$VAR``/``${VAR}``), plus ``[app] pass_env`` for the app's
  steps, plus what deploysafe sets for them (``DATABASE_URL``, ``DEPLOYSAFE_NEW_URL``...).
- ``pg_dump``/``pg_restore``/``psql`` get the system basics (PATH, HOME, locale, TLS settings), the
  user's ``PG*`` connection settings and the password in ``PGPASSWORD``; the URL on their command line
  carries no password (see :func:`deploysafe.pg.dbname_arg`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

_claimed: set[str] = set()

# What any program needs to start and find its files, certificates and locale.
_SYSTEM = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR", "LANG", "LANGUAGE",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "XDG_RUNTIME_DIR", "SYSTEMROOT",
})
# libpq settings a user may rely on; PGPASSWORD is set from the URL (kept only when the URL has none).
_LIBPQ_DROP = frozenset({"PGDATABASE"})

_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def claim(name: str | None) -> None:
    """Mark an environment variable as deploysafe's own credential: no child gets it unless asked for."""
    if name:
        _claimed.add(name)


def claimed() -> frozenset[str]:
    return frozenset(_claimed)


def clear_claims() -> None:
    """Forget claimed names (tests)."""
    _claimed.clear()


def referenced_vars(command: str) -> set[str]:
    """Variables a shell command names (``$VAR`` or ``${VAR}``)."""
    return set(_REF.findall(command))


def user_environment(
    command: str = "", *, pass_env: Iterable[str] = (), extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The user's environment minus deploysafe's credentials, plus what ``command`` names, ``pass_env`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _claimed}
    for name in referenced_vars(command) | set(pass_env):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


def libpq_environment(password: str | None) -> dict[str, str]:
    """Environment for pg_dump, pg_restore and psql: system basics, the user's PG* settings and PGPASSWORD."""
    env = {
        k: v for k, v in os.environ.items()
        if (k in _SYSTEM or k.startswith("LC_") or (k.startswith("PG") and k not in _LIBPQ_DROP)) and k not in _claimed
    }
    if password is not None:
        env["PGPASSWORD"] = password
    return env
