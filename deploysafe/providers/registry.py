"""One entry per ``[provider] type``: the config schema's allowed types, the required-key checks, ``init``'s
choices and starter blocks and ``make_provider`` all derive from it. A leaf module (nothing from
deploysafe): ``config.py`` imports it."""

from __future__ import annotations


class ProviderEntry:
    """One ``[provider] type``. A plain class (no dataclass or NamedTuple): this module is imported at start-up.

    ``required``: the config keys the type requires, each with the example its error adds ("" for none), checked
    in this order; ``blurb``: what the type is, for the schema's description of ``type``; ``starter``: ``deploysafe
    init``'s lines after ``type = ...``, and ``starter_note`` its comment on that line."""

    __slots__ = ("module", "cls", "required", "blurb", "starter", "starter_note")

    def __init__(self, module: str, cls: str, *, required: dict[str, str], blurb: str = "", starter: str = "",
                 starter_note: str = "") -> None:
        self.module, self.cls, self.required = module, cls, required
        self.blurb, self.starter, self.starter_note = blurb, starter, starter_note


REGISTRY: dict[str, ProviderEntry] = {
    "neon": ProviderEntry(
        "deploysafe.providers.neon.provider", "NeonProvider",
        required={"project_id": "", "database": "", "role": ""},
        starter='''project_id = "${NEON_PROJECT_ID}"  # from the Neon console: Settings > General
api_key_env = "NEON_API_KEY"       # the API key is read from this variable, never from this file
production_branch = "production"
database = "neondb"
role = "neondb_owner"
''',
    ),
    "local": ProviderEntry(
        "deploysafe.providers.local", "LocalProvider",
        required={"database_url": ' (for example "${DATABASE_URL}")'},
        blurb="any PostgreSQL reachable by URL",
        starter_note="any PostgreSQL reachable by URL; a snapshot is a database copy",
        starter='''database_url = "${DATABASE_URL}"    # the production database; the password stays in the environment
strategy = "dump"                   # "dump" (online) or "template" (fast, needs no other sessions)
''',
    ),
}
TYPES: tuple[str, ...] = tuple(REGISTRY)


def starter(type_: str) -> str:
    """The ``[provider]`` block ``deploysafe init`` writes for ``type_``."""
    entry = REGISTRY[type_]
    line = f'type = "{type_}"'
    if entry.starter_note:
        line = f"{line:<36}# {entry.starter_note}"
    return f"[provider]\n{line}\n{entry.starter}"


