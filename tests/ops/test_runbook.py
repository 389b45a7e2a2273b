"""The runbook: real names from the config, no secrets, and docs/runbook-example.md kept in sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploysafe.config import LoadedConfig, parse_config
from deploysafe.ops.runbook import render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = """[provider]
type = "neon"
project_id = "late-sun-123456"
database = "neondb"
role = "neondb_owner"

[platform]
type = "vercel"
project = "shop-web"

[[probes.http]]
name = "health"
url = "https://shop.example.com/health"

[[probes.sql]]
name = "users readable"
query = "SELECT count(*) >= 0 FROM users"
expect = "true"
"""


def test_example_runbook_in_docs_is_current(tmp_path: Path) -> None:
    loaded = LoadedConfig(parse_config(EXAMPLE, env={}), tmp_path / "deploysafe.toml")
    text = render(loaded)
    assert "late-sun-123456" in text and "Vercel project `shop-web`" in text and "https://shop.example.com/health" in text
    assert (ROOT / "docs" / "runbook-example.md").read_text(encoding="utf-8") == text, (
        "regenerate: deploysafe runbook -o docs/runbook-example.md (with the config in this test)")


def test_local_runbook_names_the_database_and_hides_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://app:s3cr3t-pass@db.internal:5432/shop_prod"
    text = ('[provider]\ntype = "local"\ndatabase_url = "${DATABASE_URL}"\n\n'
            '[platform]\ntype = "dotenv"\nenv_file = ".env"\nrestart = "systemctl restart shop"\n')
    loaded = LoadedConfig(parse_config(text, env={"DATABASE_URL": url}), tmp_path / "deploysafe.toml")
    book = render(loaded)
    assert book.startswith("# Recovery runbook: `shop_prod`")
    assert "systemctl restart shop" in book and "keeps no history" in book and "--at <timestamp>" not in book
    assert "s3cr3t-pass" not in book
