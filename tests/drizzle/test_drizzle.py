"""Reading drizzle.config.* without executing it."""

from __future__ import annotations

from pathlib import Path

from deploysafe.drizzle.app import read_app, strip_comments


def test_globs_are_not_mistaken_for_comments(tmp_path: Path) -> None:
    (tmp_path / "drizzle.config.ts").write_text(
        '// the config\nimport { defineConfig } from "drizzle-kit";\n/* block\n comment: out: "no" */\n'
        'export default defineConfig({\n  schema: ["./src/**/*.ts", "./db/*/schema.ts"], // schemas\n'
        "  out: './migrations',\n  dialect: `postgresql`,\n});\n"
    )
    app = read_app(tmp_path)
    assert app.schema == ["./src/**/*.ts", "./db/*/schema.ts"]
    assert app.out == "./migrations"
    assert app.dialect == "postgresql"


def test_strip_comments_keeps_strings_with_escapes() -> None:
    text = 'a = "x // not a comment \\" /* still string */"; // gone\nb = 1 /* gone */ + 2'
    assert strip_comments(text) == 'a = "x // not a comment \\" /* still string */"; \nb = 1   + 2'


def test_the_fixture_app_config() -> None:
    app = read_app(Path(__file__).resolve().parents[1] / "fixtures" / "drizzle-app")
    assert app.schema == ["./src/schema.ts"] and app.out == "./drizzle" and app.dialect == "postgresql"
    assert app.scripts["db:push"] == "drizzle-kit push"
