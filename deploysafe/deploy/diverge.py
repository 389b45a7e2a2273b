"""What the failed production state holds that the snapshot does not.

After a rollback, writes made since the snapshot live only in the failed branch/database.
For each table with a primary key in both, list the keys present only in the failed state
(bounded: at most ``limit`` keys read per table), so a person can reconcile. Read-only.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from deploysafe import pg

_PK_SQL = """
SELECT n.nspname, c.relname, array_agg(a.attname ORDER BY k.ord)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'drizzle')
  AND n.nspname NOT LIKE 'pg_%%'
GROUP BY n.nspname, c.relname
"""


def _pk_tables(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], list[str]]:
    return {(s, t): list(cols) for s, t, cols in conn.execute(_PK_SQL).fetchall()}


def _keys(conn: psycopg.Connection[Any], schema: str, table: str, cols: list[str], limit: int) -> set[tuple[Any, ...]]:
    q = sql.SQL("SELECT {cols} FROM {tbl} ORDER BY {cols} LIMIT {lim}").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        tbl=sql.Identifier(schema, table),
        lim=sql.Literal(limit),
    )
    return {tuple(r) for r in conn.execute(q).fetchall()}


def rows_only_in_failed(failed_url: str, snapshot_url: str, *, limit: int = 100_000, sample: int = 10) -> list[dict[str, Any]]:
    """Per table: how many primary keys exist only in the failed state (and a sample of them)."""
    report: list[dict[str, Any]] = []
    with pg.connect(failed_url) as failed, pg.connect(snapshot_url) as snap:
        failed.execute("SET default_transaction_read_only = on")
        snap.execute("SET default_transaction_read_only = on")
        f_tables = _pk_tables(failed)
        s_tables = _pk_tables(snap)
        for (schema, table), cols in sorted(f_tables.items()):
            if s_tables.get((schema, table)) != cols:
                report.append({"table": f"{schema}.{table}", "only_in_failed": None, "note": "not comparable (table or key differs)"})
                continue
            f_keys = _keys(failed, schema, table, cols, limit)
            s_keys = _keys(snap, schema, table, cols, limit)
            only = sorted(f_keys - s_keys, key=repr)
            entry: dict[str, Any] = {
                "table": f"{schema}.{table}",
                "key": cols,
                "only_in_failed": len(only),
                "sample": [list(k) for k in only[:sample]],
            }
            if len(f_keys) >= limit:
                entry["note"] = f"compared the first {limit} keys only"
            report.append(entry)
    return [r for r in report if r.get("only_in_failed") != 0]
