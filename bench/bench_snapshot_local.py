"""Benchmark: local snapshot strategies (``dump``, ``template``) against the floor of copying the files.

Not a test. Run it by hand:

    .venv/bin/python bench/bench_snapshot_local.py --size-gb 1

It starts a throwaway embedded PostgreSQL (deploysafe.demo.embedded.start(); fsync off, as for
the whole suite), generates a database of at least ``--size-gb`` GB (four tables of wide rows
with primary keys, filled in parallel with INSERT ... SELECT generate_series), CHECKPOINTs, and
then measures in the same run:

- floor: ``cp -r`` of the database's directory (``base/<oid>``) under the data dir (no sync: fsync is off);
- ``dump``: LocalProvider strategy "dump" (pg_dump -Fd -j2 | pg_restore -j2) via create_snapshot;
- ``template``: LocalProvider strategy "template" (CREATE DATABASE ... TEMPLATE, with STRATEGY FILE_COPY
  on PostgreSQL 15+) via create_snapshot.

Each copy is checked row for row by count before it is dropped. Prints a table of seconds and
ratios to the floor (``--markdown`` for a table to paste into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploysafe.demo import embedded  # noqa: E402
from deploysafe.providers.base import SnapshotKind  # noqa: E402
from deploysafe.providers.local import LocalProvider  # noqa: E402

TABLES = 4
ROW_BYTES = 900  # approximate on-disk bytes per row (payload + header + index entry), measured
SOURCE = "bench_prod"


def generate(srv: embedded.EmbeddedPostgres, target_bytes: int) -> int:
    with psycopg.connect(srv.url(), autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SOURCE)))
    url = srv.url(SOURCE)
    rows = target_bytes // ROW_BYTES // TABLES + 1

    def fill(i: int, start: int, count: int) -> None:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id bigint PRIMARY KEY, n int NOT NULL, at timestamptz NOT NULL, payload text NOT NULL)"
                ).format(sql.Identifier(f"t{i}"))
            )
            # 512 characters of md5 hex per row: wide, and compressible about as much as real text.
            c.execute(
                sql.SQL(
                    "INSERT INTO {} SELECT g, (g * 7919) %% 100000, now() - g * interval '1 second', "
                    "repeat(md5(g::text), 16) FROM generate_series(%s::bigint, %s::bigint) g"
                ).format(sql.Identifier(f"t{i}")),
                (start, start + count - 1),
            )

    start = 1
    while True:
        with ThreadPoolExecutor(TABLES) as pool:
            list(pool.map(lambda i: fill(i, start, rows), range(TABLES)))
        start += rows
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("VACUUM ANALYZE")
            c.execute("CHECKPOINT")
            size = int(c.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
        if size >= target_bytes:
            return size
        rows = max(1000, (target_bytes - size) // ROW_BYTES // TABLES + 1)


def counts(url: str) -> list[int]:
    with psycopg.connect(url) as c:
        return [int(c.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(f"t{i}"))).fetchone()[0]) for i in range(TABLES)]  # type: ignore[index]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def floor_copy(srv: embedded.EmbeddedPostgres, dest: Path) -> float:
    with psycopg.connect(srv.url(), autocommit=True) as c:
        c.execute("CHECKPOINT")
        oid = c.execute("SELECT oid FROM pg_database WHERE datname = %s", (SOURCE,)).fetchone()[0]  # type: ignore[index]
    src = srv.data_dir / "base" / str(oid)
    shutil.rmtree(dest, ignore_errors=True)

    # No sync: the embedded server runs with fsync off, so neither side waits for the disk.
    seconds = timed(lambda: subprocess.run(["cp", "-r", str(src), str(dest)], check=True))
    shutil.rmtree(dest, ignore_errors=True)
    return seconds


def provider_copy(srv: embedded.EmbeddedPostgres, strategy: str, expected: list[int]) -> float:
    prov = LocalProvider(srv.url(SOURCE), strategy=strategy)
    name = f"manual-bench-{strategy}"
    seconds = timed(lambda: prov.create_snapshot(name, SnapshotKind.MANUAL))
    got = counts(prov.connection_url(name))
    prov.delete(name)
    if got != expected:
        raise SystemExit(f"{strategy}: copy has {got} rows per table, source has {expected}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size-gb", type=float, default=1.0, help="minimum database size to generate (default 1)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per method; the fastest counts (default 1)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()

    srv = embedded.start()
    try:
        t0 = time.perf_counter()
        size = generate(srv, int(args.size_gb * 1024**3))
        gen = time.perf_counter() - t0
        expected = counts(srv.url(SOURCE))
        print(f"generated {SOURCE}: {size / 1024**3:.2f} GiB, {sum(expected):,} rows in {TABLES} tables, in {gen:.1f}s", flush=True)
        dest = srv.data_dir.parent / "floor-copy"
        methods: list[tuple[str, Callable[[], float]]] = [
            ("floor: cp -r base/<oid>", lambda: floor_copy(srv, dest)),
            ("dump (pg_dump -Fd -j2, pg_restore -j2)", lambda: provider_copy(srv, "dump", expected)),
            ("template (CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY)",
             lambda: provider_copy(srv, "template", expected)),
        ]
        results: list[tuple[str, float]] = []
        for label, run in methods:
            best = min(run() for _ in range(max(1, args.repeat)))
            results.append((label, best))
            print(f"  {label}: {best:.2f}s", flush=True)
        floor = results[0][1]
        sys.path.insert(0, str(Path(__file__).parent))
        from _common import save

        save("snapshot_local", f"Local snapshot strategies on a {size / 1024**3:.2f} GiB database",
             [{"method": label, "seconds": round(secs, 2), "x_floor": round(secs / floor, 2)} for label, secs in results],
             f"dump {results[1][1] / floor:.1f}x and template {results[2][1] / floor:.1f}x the floor of copying the "
             f"database's files ({floor:.2f} s for {size / 1024**3:.2f} GiB)")
        print()
        if args.markdown:
            print(f"| method ({size / 1024**3:.2f} GiB database) | seconds | x floor |")
            print("| --- | ---: | ---: |")
            for label, secs in results:
                print(f"| {label} | {secs:.2f} | {secs / floor:.1f} |")
        else:
            width = max(len(label) for label, _ in results)
            print(f"{'method':<{width}}  {'seconds':>8}  {'x floor':>7}")
            for label, secs in results:
                print(f"{label:<{width}}  {secs:>8.2f}  {secs / floor:>7.1f}")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
