"""Leaderboard rebuild: set-based DuckDB SQL vs the row-by-row Python-over-SQLite baseline, same data.

Run: python bench/leaderboard.py [--checkpoints 2000]   (about 20-30 s at the default 1,000,000 rows).

Shape: 4 heroes x 500 checkpoints = 2,000 lanes, x 10 skills x 5 levels = 50 benches, x 10 fingerprints
(re-evaluations) = 1,000,000 eval_scores rows -> 100,000 leaderboard rows; plus 5,000 compare runs and
50,000 human votes so the vote join is exercised. Values are arithmetic in the indices: deterministic.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from realm_pipeline import ledger  # noqa: E402
from realm_pipeline.evaluation.leaderboard import (  # noqa: E402
    COLUMNS,
    copy_to_sqlite,
    leaderboard_python_sqlite,
    rebuild_leaderboard,
)

BUILT = datetime(2026, 2, 1)
PRICE = 2.5
VOTE_MINIMUM = 5

# Every eval_scores row from one relation: checkpoint c x bench b x fingerprint f.
GENERATE = """
INSERT INTO eval_scores (checkpoint_id, hero, step, skill, level, fingerprint, n, correct, accuracy, partial,
                         eval_set_hash, skill_version, backend, gpu_seconds, created_at, protocol, sample)
SELECT ckpt, hero, step, skill, level, fp, n, correct, correct / n, NULL, 'h', 'v1', 'hf', gpu, ts, 'p1', 'eval'
FROM (
    SELECT 'hero' || (c % 4) || '.' || lpad(((c // 4 + 1) * 100)::VARCHAR, 6, '0') AS ckpt,
           'hero' || (c % 4) AS hero,
           (c // 4 + 1) * 100 AS step,
           'skill' || (b // 5) AS skill,
           (b % 5 + 1)::INTEGER AS level,
           'fp' || lpad(f::VARCHAR, 2, '0') AS fp,
           (50 + (b % 5) * 10)::INTEGER AS n,
           ((c * 7919 + b * 104729 + f * 1299709) % (51 + (b % 5) * 10))::INTEGER AS correct,
           0.5 + ((c * 31 + b * 17 + f) % 100) / 10 AS gpu,
           -- fingerprints re-run in a shuffled order, so the latest is not simply the greatest id
           TIMESTAMP '2026-01-01' + to_hours(((f * 7 + c) % 10)::BIGINT) AS ts
    FROM range($checkpoints) r1(c), range(50) r2(b), range(10) r3(f)
)
"""

VOTES = """
INSERT INTO compare_runs (compare_id, lane_a, lane_b)
SELECT 'cmp' || i,
       'hero' || (i % 4) || '.' || lpad((((i * 37) % ($checkpoints // 4)) + 1) * 100 || '', 6, '0'),
       'hero' || (i % 4) || '.' || lpad((((i * 53 + 1) % ($checkpoints // 4)) + 1) * 100 || '', 6, '0')
FROM range(5000) r(i);
INSERT INTO human_prefs (compare_id, vote_id, choice)
SELECT 'cmp' || (j % 5000), 'vote' || j, ['a', 'b', 'tie', 'a', 'skip'][(j * 7) % 5 + 1]
FROM range(50000) r(j);
"""


def same(a: tuple, b: tuple) -> bool:
    """Rows equal, floats to 1e-9 relative."""
    return all(
        (
            math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
            if isinstance(x, float) and isinstance(y, float)
            else x == y
        )
        for x, y in zip(a, b, strict=True)
    )


def main() -> None:
    """Generate, copy, time both, check they agree, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=2000, help="lanes; rows = lanes x 50 x 10")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        ledger.migrate(con)
        t = time.perf_counter()
        con.execute(GENERATE, {"checkpoints": args.checkpoints})
        con.execute(VOTES.replace("$checkpoints", str(args.checkpoints)))
        n_rows = con.execute("SELECT count(*) FROM eval_scores").fetchone()[0]
        print(f"generated {n_rows:,} eval_scores rows in DuckDB: {time.perf_counter() - t:.1f} s")
        lite = sqlite3.connect(Path(tmp) / "bench.sqlite")
        t = time.perf_counter()
        copy_to_sqlite(con, lite)
        print(f"copied to SQLite: {time.perf_counter() - t:.1f} s")

        t = time.perf_counter()
        count = rebuild_leaderboard(con, vote_minimum=VOTE_MINIMUM, price_per_gpu_hour=PRICE, built_at=BUILT)
        duck_s = time.perf_counter() - t
        t = time.perf_counter()
        baseline = leaderboard_python_sqlite(
            lite, vote_minimum=VOTE_MINIMUM, price_per_gpu_hour=PRICE, built_at=BUILT
        )
        py_s = time.perf_counter() - t

        ours = con.execute(
            f"SELECT {', '.join(COLUMNS)} FROM leaderboard_rows ORDER BY bench, rank"
        ).fetchall()
        agree = len(ours) == len(baseline) and all(same(a, b) for a, b in zip(ours, baseline, strict=True))
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        print(f"leaderboard rows: {count:,} (baseline {len(baseline):,}); identical: {agree}")
        print(f"DuckDB rebuild_leaderboard ({threads} threads): {duck_s:8.2f} s")
        print(f"Python over SQLite baseline:           {py_s:8.2f} s")
        print(f"speed-up: {py_s / duck_s:.1f}x")
        lite.close()
        con.close()
        if not agree:
            sys.exit("the two leaderboards differ")


if __name__ == "__main__":
    main()
