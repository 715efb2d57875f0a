"""Public mirror export at 100,000 leaderboard rows: build, leak scan, atomic write.

One run times realm's leak scan (one pass per file over every private value) against the naive
baseline (one substring search per value per file) on the same staged output and value set.
Usage: python bench/mirror.py [--rows 100000] [--private 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from realm_pipeline import ledger
from realm_pipeline.mirror.export import build_mirror, write_mirror
from realm_pipeline.mirror.leakcheck import private_values, scan, scan_naive


def populate(con, rows: int, private: int) -> None:
    """`rows` leaderboard rows over 2 heroes, and `private` eval items / generations with private text."""
    lanes = max(rows // 100, 1)
    con.execute(
        """
        INSERT INTO leaderboard_rows
        SELECT 'bin@' || (i % 100 + 1), 'tiny.' || lpad(CAST(i // 100 AS VARCHAR), 6, '0'),
               CASE WHEN i % 2 = 0 THEN 'tiny' ELSE 'dio' END, i // 100, 1 + (i // 100) % ?,
               (i % 97) / 97.0, 50, 0.1, 0.9, 1.5, NULL, 0, NULL, false, false, now()
        FROM range(?) t(i)
        """,
        [lanes, rows],
    )
    con.execute(
        """
        INSERT INTO eval_items
        SELECT 'bin', i % 30 + 1, i, i, 'prompt ' || md5(CAST(i AS VARCHAR)), 'answer ' || md5('a' || i), NULL
        FROM range(?) t(i)
        """,
        [private],
    )
    # the checkpoint that owns the generations is itself public (its id is a leaderboard lane)
    con.execute("INSERT INTO checkpoints (checkpoint_id, hero, step) VALUES ('tiny.000150', 'tiny', 150)")
    con.execute(
        """
        INSERT INTO eval_generations
        SELECT 'tiny.000150', 'bin', i % 30 + 1, i, 'fp', 'output ' || md5('o' || i), false, 0.0
        FROM range(?) t(i)
        """,
        [private],
    )


def main() -> None:
    """Run the export phases and the two leak scans; print times and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--private", type=int, default=20_000)
    parser.add_argument("--sample", type=int, default=2_000, help="values both scans search, for the ratio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "realm.duckdb"
        with ledger.connect(db) as con:
            ledger.migrate(con)
            populate(con, args.rows, args.private)
        with ledger.connect(db, read_only=True) as con:
            t0 = time.perf_counter()
            files = build_mirror(con)
            t1 = time.perf_counter()
            secrets = private_values(con)
            t2 = time.perf_counter()
        staged: list[Path] = []
        version = write_mirror(files, Path(tmp) / "mirror", check=staged.append)
        t3 = time.perf_counter()
        realm_scan = scan(version, secrets)
        t4 = time.perf_counter()
        # The naive scan is O(values x bytes): compare both on a sample of the values.
        sample = set(sorted(secrets)[: args.sample])
        s0 = time.perf_counter()
        realm_sample = scan(version, sample)
        s1 = time.perf_counter()
        naive_sample = scan_naive(version, sample)
        s2 = time.perf_counter()
        assert realm_sample == naive_sample
    size = sum(len(b) for b in files.values())
    print(f"leaderboard rows: {args.rows:,}  private values: {len(secrets):,}  output: {size / 1e6:.1f} MB")
    print(f"build (public columns -> JSON + page): {t1 - t0:7.2f} s")
    print(f"collect private values:                {t2 - t1:7.2f} s")
    print(f"stage + fsync + atomic swap:           {t3 - t2:7.2f} s")
    print(f"leak scan, realm, all values:          {t4 - t3:7.2f} s   findings {len(realm_scan)}")
    print(f"export total (build + values + write + scan): {t4 - t0:.2f} s")
    print(
        f"on {len(sample):,} values: realm scan {s1 - s0:.2f} s, naive scan (search per value) {s2 - s1:.2f} s"
    )
    print(f"leak scan speed-up: {(s2 - s1) / max(s1 - s0, 1e-9):.1f}x")


if __name__ == "__main__":
    main()
