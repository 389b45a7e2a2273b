"""Helpers for the operations tests: a local set-up's config, seeded rows, reading rows back."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from deploysafe.config import LoadedConfig, parse_config


def seed_users(url: str, rows: int = 30) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL, name text)")
        c.execute(
            "INSERT INTO users (email, name) SELECT 'u' || g || '@x', 'name ' || g FROM generate_series(1, %s) g", (rows,)
        )


def rows(url: str, query: str = "SELECT * FROM users ORDER BY id") -> list[tuple[object, ...]]:
    with psycopg.connect(url) as c:
        return c.execute(query).fetchall()


def write_config(root: Path, url: str, extra: str = "") -> LoadedConfig:
    """A deploysafe.toml for the local provider and the dotenv platform, the env file pointing at ``url``."""
    (root / ".env").write_text(f"DATABASE_URL={url}\n")
    text = (
        '[provider]\ntype = "local"\ndatabase_url = "${DATABASE_URL}"\nstrategy = "template"\n\n'
        '[platform]\ntype = "dotenv"\nenv_file = ".env"\n\n' + extra
    )
    path = root / "deploysafe.toml"
    path.write_text(text)
    return LoadedConfig(parse_config(text, env={"DATABASE_URL": url}), path)


class Hook:
    """A webhook receiver on a real local socket; records each JSON body."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/SECRETTOKEN"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
