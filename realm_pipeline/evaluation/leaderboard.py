"""The leaderboard: every checkpoint (lane) ranked on every skill level (bench), rebuilt set-based in DuckDB.

Rules, shared by `rebuild_leaderboard` (one SQL statement) and the row-by-row baseline it is benched against:

* A bench is `skill@level`, a lane a checkpoint. Per (lane, skill, level) the one current score counts
  (`ledger.CURRENT_SCORES_VIEW`): the eval-set row under the protocol in force for the lane's hero, skill
  and level (that of the newest eval-set row), newest first; a lane scored only under an older protocol
  is stale and not ranked until re-evaluated. `gpu_seconds` sums every row of the lane on the bench: all
  the GPU time spent evaluating it.
* accuracy = correct / n (NULL when n = 0), with a 95 % Wilson score interval clamped to [0, 1].
* rank within a bench: accuracy desc (NULL last), then n desc, then lane.
* champion: per hero, the curriculum's champion (`hero_state.champion`: best accuracy at the highest total
  level) when the curriculum has named one; otherwise the lane with the best mean accuracy over all its
  benches (ties: more benches, then later step, then lane). Every row of that lane is marked.
* cost_per_point = gpu_seconds / 3600 * price_per_gpu_hour / (accuracy * 100); NULL without a price or
  at accuracy 0.
* votes: human preferences on compare runs the lane took part in. A choice of 'a'/'lane_a' (or lane_a's
  id) is a win for lane A, likewise for B; 'tie' is half a win each; other choices are not votes.
  win_rate = wins / votes once votes >= vote_minimum, else NULL.
* confirmed_regression: a `confirmed_regression` curriculum event exists for (lane, skill, level).
"""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime

import duckdb

Z95 = 1.959963984540054  # two-sided 95 % normal quantile

COLUMNS = (
    "bench",
    "lane",
    "hero",
    "step",
    "rank",
    "accuracy",
    "n",
    "ci_low",
    "ci_high",
    "gpu_seconds",
    "cost_per_point",
    "votes",
    "win_rate",
    "champion",
    "confirmed_regression",
    "built_at",
    "chance_accuracy",
)

_A_CHOICES = ("a", "lane_a")
_B_CHOICES = ("b", "lane_b")

_REBUILD_SQL = f"""
INSERT INTO leaderboard_rows ({", ".join(COLUMNS)})
WITH params AS (
    SELECT CAST($price AS DOUBLE) AS price, CAST($vote_minimum AS INTEGER) AS vote_minimum,
           CAST($built_at AS TIMESTAMP) AS built_at, CAST({Z95} AS DOUBLE) AS z
),
spent AS (
    -- all the GPU time spent evaluating a lane on a bench, under any protocol or sample
    SELECT checkpoint_id AS lane, skill, level, sum(gpu_seconds) AS gpu_seconds
    FROM eval_scores GROUP BY checkpoint_id, skill, level
),
scored AS (
    -- the one current score per (lane, skill, level): see ledger.CURRENT_SCORES_VIEW
    SELECT c.skill || '@' || c.level AS bench, c.checkpoint_id AS lane, c.skill, c.level, c.hero, c.step,
           c.n, CASE WHEN c.n > 0 THEN c.correct / c.n END AS accuracy, sp.gpu_seconds
    FROM current_scores c
    JOIN spent sp ON sp.lane = c.checkpoint_id AND sp.skill = c.skill AND sp.level = c.level
),
wilson AS (
    SELECT s.*,
           CASE WHEN n > 0 THEN (accuracy + z * z / (2 * n)) / (1 + z * z / n) END AS centre,
           CASE WHEN n > 0
                THEN z * sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
           END AS half
    FROM scored s, params
),
lane_means AS (
    SELECT hero, lane, avg(accuracy) AS mean_acc, count(accuracy) AS benches, max(step) AS step
    FROM scored GROUP BY hero, lane
),
named AS (
    SELECT hero, champion AS lane FROM hero_state WHERE champion IS NOT NULL
),
champions AS (
    SELECT lane FROM named
    UNION ALL
    SELECT lane FROM lane_means WHERE mean_acc IS NOT NULL AND hero NOT IN (SELECT hero FROM named)
    QUALIFY row_number() OVER (PARTITION BY hero ORDER BY mean_acc DESC, benches DESC, step DESC, lane) = 1
),
prefs AS (
    SELECT c.lane_a, c.lane_b,
           CASE WHEN lower(h.choice) IN {_A_CHOICES} OR h.choice = c.lane_a THEN 1.0
                WHEN lower(h.choice) IN {_B_CHOICES} OR h.choice = c.lane_b THEN 0.0
                WHEN lower(h.choice) = 'tie' THEN 0.5 END AS a_score
    FROM human_prefs h JOIN compare_runs c USING (compare_id)
    WHERE c.lane_a IS DISTINCT FROM c.lane_b
),
lane_votes AS (
    SELECT lane, count(*) AS votes, sum(score) AS wins FROM (
        SELECT lane_a AS lane, a_score AS score FROM prefs WHERE a_score IS NOT NULL
        UNION ALL
        SELECT lane_b, 1 - a_score FROM prefs WHERE a_score IS NOT NULL
    ) GROUP BY lane
),
regressions AS (
    SELECT DISTINCT checkpoint_id AS lane, skill, level FROM curriculum_events
    WHERE event = 'confirmed_regression'
)
SELECT w.bench, w.lane, w.hero, w.step,
       row_number() OVER (PARTITION BY w.bench ORDER BY w.accuracy DESC NULLS LAST, w.n DESC, w.lane),
       w.accuracy, w.n,
       -- greatest/least skip NULLs: guard so n = 0 keeps a NULL interval
       CASE WHEN w.n > 0 THEN greatest(w.centre - w.half, 0.0) END,
       CASE WHEN w.n > 0 THEN least(w.centre + w.half, 1.0) END,
       w.gpu_seconds,
       CASE WHEN w.accuracy > 0 THEN w.gpu_seconds / 3600 * p.price / (w.accuracy * 100) END,
       coalesce(v.votes, 0),
       CASE WHEN coalesce(v.votes, 0) >= p.vote_minimum THEN v.wins / v.votes END,
       ch.lane IS NOT NULL,
       rg.lane IS NOT NULL,
       p.built_at,
       es.chance_accuracy
FROM wilson w
CROSS JOIN params p
LEFT JOIN eval_sets es ON es.skill = w.skill AND es.level = w.level
LEFT JOIN champions ch ON ch.lane = w.lane
LEFT JOIN lane_votes v ON v.lane = w.lane
LEFT JOIN regressions rg ON rg.lane = w.lane AND rg.skill = w.skill AND rg.level = w.level
"""


def rebuild_leaderboard(
    con: duckdb.DuckDBPyConnection,
    *,
    vote_minimum: int,
    price_per_gpu_hour: float | None,
    built_at: datetime,
) -> int:
    """Replace `leaderboard_rows` from `eval_scores` in one transaction; returns the number of rows."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM leaderboard_rows")
        params = {"price": price_per_gpu_hour, "vote_minimum": vote_minimum, "built_at": built_at}
        count = con.execute(_REBUILD_SQL, params).fetchone()[0]
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return int(count)


# ---------------------------------------------------------------- baseline: row by row over SQLite


def _wilson(correct: int, n: int) -> tuple[float, float]:
    p, z2 = correct / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _table_exists(sqlite_con: sqlite3.Connection, name: str) -> bool:
    row = sqlite_con.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def leaderboard_python_sqlite(
    sqlite_con: sqlite3.Connection,
    *,
    vote_minimum: int = 5,
    price_per_gpu_hour: float | None = None,
    built_at: datetime | None = None,
) -> list[tuple]:
    """BASELINE for the bench: the same rows via SELECT * and a Python loop over dicts, by bench and rank."""
    cur = sqlite_con.execute("SELECT * FROM eval_scores")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, values, strict=True)) for values in cur]
    protocol: dict[tuple, tuple] = {}  # (hero, skill, level) -> (created_at, protocol) of the newest eval row
    gpu: dict[tuple, float | None] = {}
    for row in rows:
        key = (row["checkpoint_id"], row["skill"], row["level"])
        if row["gpu_seconds"] is not None:
            gpu[key] = (gpu.get(key) or 0.0) + row["gpu_seconds"]
        else:
            gpu.setdefault(key, None)
        if row["sample"] == "eval":
            pkey, order = (row["hero"], row["skill"], row["level"]), (row["created_at"], row["protocol"])
            if pkey not in protocol or order > protocol[pkey]:
                protocol[pkey] = order
    latest: dict[tuple, dict] = {}
    for row in rows:
        if (
            row["sample"] != "eval"
            or row["protocol"] != protocol[(row["hero"], row["skill"], row["level"])][1]
        ):
            continue
        key = (row["checkpoint_id"], row["skill"], row["level"])
        order = (row["created_at"], row["fingerprint"])
        if key not in latest or order > latest[key]["_order"]:
            row["_order"] = order
            latest[key] = row

    votes: dict[str, list[float]] = {}
    if _table_exists(sqlite_con, "human_prefs") and _table_exists(sqlite_con, "compare_runs"):
        runs = {
            r[0]: (r[1], r[2])
            for r in sqlite_con.execute("SELECT compare_id, lane_a, lane_b FROM compare_runs")
        }
        for compare_id, choice in sqlite_con.execute("SELECT compare_id, choice FROM human_prefs"):
            if compare_id not in runs or choice is None or runs[compare_id][0] == runs[compare_id][1]:
                continue
            a, b = runs[compare_id]
            if choice.lower() in _A_CHOICES or choice == a:
                score = 1.0
            elif choice.lower() in _B_CHOICES or choice == b:
                score = 0.0
            elif choice.lower() == "tie":
                score = 0.5
            else:
                continue
            votes.setdefault(a, []).append(score)
            votes.setdefault(b, []).append(1 - score)
    regressed: set[tuple] = set()
    if _table_exists(sqlite_con, "curriculum_events"):
        q = "SELECT checkpoint_id, skill, level FROM curriculum_events WHERE event = 'confirmed_regression'"
        regressed = {tuple(r) for r in sqlite_con.execute(q)}

    chance: dict[tuple, float] = {}
    if _table_exists(sqlite_con, "eval_sets"):
        chance = {
            (s, lv): c
            for s, lv, c in sqlite_con.execute("SELECT skill, level, chance_accuracy FROM eval_sets")
        }
    rows: list[dict] = []
    lane_accs: dict[tuple, list] = {}  # (hero, lane) -> [accuracies, max step]
    for key, row in latest.items():
        lane, skill, level = key
        n, correct = row["n"], row["correct"]
        acc = correct / n if n else None
        ci = _wilson(correct, n) if n else (None, None)
        rows.append(
            {
                "bench": f"{skill}@{level}",
                "lane": lane,
                "hero": row["hero"],
                "step": row["step"],
                "accuracy": acc,
                "n": n,
                "ci_low": ci[0],
                "ci_high": ci[1],
                "gpu_seconds": gpu[key],
                "cost_per_point": (
                    gpu[key] / 3600 * price_per_gpu_hour / (acc * 100)
                    if price_per_gpu_hour is not None and acc and gpu[key] is not None
                    else None
                ),
                "confirmed_regression": key in regressed,
                "chance_accuracy": chance.get((skill, level)),
            }
        )
        entry = lane_accs.setdefault((row["hero"], lane), [[], row["step"]])
        if acc is not None:
            entry[0].append(acc)
        entry[1] = max(entry[1], row["step"]) if row["step"] is not None else entry[1]

    best: dict[object, tuple] = {}
    for (hero, lane), (accs, step) in lane_accs.items():
        if not accs:
            continue
        # max over (mean, benches, step, reversed lane) == ORDER BY mean DESC, benches DESC, step DESC, lane
        cand = (sum(accs) / len(accs), len(accs), step if step is not None else -math.inf, _Rev(lane))
        if hero not in best or cand > best[hero]:
            best[hero] = cand
    named = {}
    if _table_exists(sqlite_con, "hero_state"):
        named = dict(sqlite_con.execute("SELECT hero, champion FROM hero_state WHERE champion IS NOT NULL"))
    champions = set(named.values()) | {cand[3].value for hero, cand in best.items() if hero not in named}

    by_bench: dict[str, list[dict]] = {}
    for r in rows:
        by_bench.setdefault(r["bench"], []).append(r)
    out: list[tuple] = []
    for bench in sorted(by_bench):
        ranked = sorted(
            by_bench[bench],
            key=lambda r: (r["accuracy"] is None, -(r["accuracy"] or 0.0), -(r["n"] or 0), r["lane"]),
        )
        for rank, r in enumerate(ranked, start=1):
            v = votes.get(r["lane"], [])
            r.update(
                rank=rank,
                votes=len(v),
                win_rate=sum(v) / len(v) if v and len(v) >= vote_minimum else None,
                champion=r["lane"] in champions,
                built_at=built_at,
            )
            out.append(tuple(r[c] for c in COLUMNS))
    return out


class _Rev:
    """Reverses string order inside a max() key."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: _Rev) -> bool:
        return self.value > other.value

    def __gt__(self, other: _Rev) -> bool:
        return self.value < other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


# ---------------------------------------------------------------- copying the ledger into SQLite


def copy_to_sqlite(
    con: duckdb.DuckDBPyConnection,
    sqlite_con: sqlite3.Connection,
    tables: tuple[str, ...] = (
        "eval_scores",
        "compare_runs",
        "human_prefs",
        "curriculum_events",
        "hero_state",
    ),
    *,
    chunk: int = 100_000,
) -> int:
    """Copy DuckDB tables into SQLite (timestamps as ISO text) for bench and tests; returns rows copied."""
    total = 0
    for table in tables:
        cur = con.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cur.description]
        sqlite_con.execute(f"DROP TABLE IF EXISTS {table}")
        sqlite_con.execute(f"CREATE TABLE {table} ({', '.join(names)})")
        insert = f"INSERT INTO {table} VALUES ({', '.join('?' for _ in names)})"
        ts_cols = [i for i, d in enumerate(cur.description) if "TIMESTAMP" in str(d[1]).upper()]
        while batch := cur.fetchmany(chunk):
            if ts_cols:
                batch = [_iso_row(r, ts_cols) for r in batch]
            sqlite_con.executemany(insert, batch)
            total += len(batch)
    sqlite_con.commit()
    return total


def _iso_row(row: tuple, ts_cols: list[int]) -> tuple:
    # Fixed-width ISO text sorts like the timestamp it encodes, so the baseline can compare strings.
    out = list(row)
    for i in ts_cols:
        if out[i] is not None:
            out[i] = out[i].isoformat(sep=" ", timespec="microseconds")
    return tuple(out)
