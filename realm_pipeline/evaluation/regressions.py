"""Regressions that can happen, and confirmations that can refute them (pure: DuckDB).

A checkpoint's greedy score on a fixed eval set never changes, so watching a checkpoint cannot show a
regression. What can regress is a hero's *standing* on a bench (`skill@level`): the accuracy of its newest
checkpoint evaluated there. Every leaderboard build records each hero's standings under a new version
(`record_standings`); `find_drops` compares the newest version with its baseline (the previous build's
standing, or the mean since the bench's last check where that is higher: a slow creep counts too), bench
by bench, mastered levels included, and only under the same protocol (a changed scorer or eval set is
re-evaluated, not compared).

A drop is a claim about one eval sample. A confirming re-run scores the same checkpoint on the level's
*reserve* sample (a second held-out draw, never trained on, see skills/heldout.py) and `judge` decides:
the drop is confirmed when the reserve accuracy is also more than tau below the baseline, refuted
otherwise. Confirmed regressions are recorded and weight the level up in the next segment's mix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb

from realm_pipeline import ledger

CONFIRM_TAG = "realm/confirm_bench"  # run tag of a confirming re-run: the bench whose reserve sample to score


@dataclass(frozen=True)
class Drop:
    """A hero's standing on a bench fell more than tau below the previous build's (its baseline)."""

    hero: str
    bench: str
    checkpoint_id: str  # the checkpoint holding the standing now
    baseline: float
    accuracy: float
    baseline_version: int  # the version holding the baseline
    version: int  # the version that dropped
    mastered: bool

    @property
    def skill(self) -> str:
        """The bench's skill (`bin@3` -> `bin`)."""
        return split_bench(self.bench)[0]

    @property
    def level(self) -> int:
        """The bench's level (`bin@3` -> 3)."""
        return split_bench(self.bench)[1]

    def to_json(self) -> dict:
        """A JSON-able dict (the asset check's metadata, the sensor's run tags)."""
        return asdict(self)


def split_bench(bench: str) -> tuple[str, int]:
    """`skill@level` -> (skill, level)."""
    skill, _, level = bench.rpartition("@")
    return skill, int(level)


def latest_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The newest standings version, None before the first leaderboard build."""
    return con.execute("SELECT max(version) FROM hero_standings").fetchone()[0]


def record_standings(
    con: duckdb.DuckDBPyConnection, mastered: dict[str, dict[str, list[int]]], *, built_at: datetime
) -> int | None:
    """Record every hero's current standing per bench under version max+1; None when nothing is scored.

    `mastered` is hero -> skill -> mastered levels (the curriculum's), stored with each standing.
    """
    rows = con.execute(
        """
        SELECT hero, skill || '@' || level AS bench, skill, level, checkpoint_id, step, accuracy, n, protocol
        FROM current_scores
        QUALIFY row_number() OVER (PARTITION BY hero, skill, level ORDER BY step DESC, checkpoint_id DESC) = 1
        ORDER BY hero, bench
        """
    ).fetchall()
    if not rows:
        return None
    version = (latest_version(con) or 0) + 1
    ledger.upsert(
        con,
        "hero_standings",
        [
            {
                "hero": hero,
                "bench": bench,
                "version": version,
                "checkpoint_id": ckpt,
                "step": step,
                "accuracy": acc,
                "n": n,
                "mastered": level in mastered.get(hero, {}).get(skill, []),
                "protocol": protocol,
                "built_at": built_at,
            }
            for hero, bench, skill, level, ckpt, step, acc, n, protocol in rows
        ],
    )
    return version


def find_drops(con: duckdb.DuckDBPyConnection, tau: float, version: int | None = None) -> list[Drop]:
    """Benches where a hero's standing at `version` (default: the newest) fell more than tau below its
    baseline; only standings under the same protocol are compared. Worst drop first.

    The baseline is the higher of the previous build's standing and the mean standing of the distinct
    checkpoints that held the bench since its last confirming re-run (all of them before any): a sudden
    drop is caught as before, and so is a creep of less than tau per build, which the previous build
    alone never shows. The mean, not the best, so that noise between builds does not raise the bar. Only
    a standing a new checkpoint holds can drop: the same checkpoint's score is the same claim again."""
    version = latest_version(con) if version is None else version
    if version is None:
        return []
    rows = con.execute(
        """
        WITH prev AS (
            SELECT * FROM hero_standings WHERE version = (
                SELECT max(version) FROM hero_standings WHERE version < $v)
        ),
        checked AS (  -- per bench: the build from which its last checked checkpoint held the standing
            SELECT hero, bench, max(first_held) AS since FROM (
                SELECT r.hero, r.bench, min(h.version) AS first_held
                FROM regression_checks r JOIN hero_standings h
                  ON h.hero = r.hero AND h.bench = r.bench AND h.checkpoint_id = r.checkpoint_id
                WHERE h.version < $v
                GROUP BY r.hero, r.bench, r.checkpoint_id
            ) GROUP BY hero, bench
        ),
        held AS (
            SELECT hero, bench, protocol, avg(accuracy) AS mean FROM (
                SELECT DISTINCT h.hero, h.bench, h.protocol, h.checkpoint_id, h.accuracy
                FROM hero_standings h LEFT JOIN checked k USING (hero, bench)
                WHERE h.version < $v AND h.version >= coalesce(k.since, 0)
            ) GROUP BY hero, bench, protocol
        ),
        compared AS (
            SELECT c.*, greatest(p.accuracy, coalesce(m.mean, p.accuracy)) AS baseline,
                   p.version AS prev_version, p.checkpoint_id AS prev_checkpoint
            FROM hero_standings c JOIN prev p USING (hero, bench, protocol)
            LEFT JOIN held m USING (hero, bench, protocol)
            WHERE c.version = $v
        )
        SELECT hero, bench, checkpoint_id, baseline, accuracy, prev_version, version, mastered
        FROM compared WHERE baseline - accuracy > $tau AND checkpoint_id <> prev_checkpoint
        ORDER BY baseline - accuracy DESC, hero, bench
        """,
        {"v": version, "tau": tau},
    ).fetchall()
    return [Drop(*row) for row in rows]


def judge(baseline: float, reserve_accuracy: float, tau: float) -> bool:
    """True (confirmed) when the reserve sample also sits more than tau below the baseline."""
    return baseline - reserve_accuracy > tau


def record_check(
    con: duckdb.DuckDBPyConnection,
    *,
    hero: str,
    bench: str,
    baseline_version: int,
    checkpoint_id: str,
    step: int,
    baseline: float,
    eval_accuracy: float | None,
    reserve_accuracy: float,
    tau: float,
    now: datetime,
) -> bool:
    """Record a confirming re-run's verdict (and a `confirmed_regression` event when confirmed)."""
    confirmed = judge(baseline, reserve_accuracy, tau)
    ledger.upsert(
        con,
        "regression_checks",
        [
            {
                "hero": hero,
                "bench": bench,
                "baseline_version": baseline_version,
                "checkpoint_id": checkpoint_id,
                "baseline": baseline,
                "eval_accuracy": eval_accuracy,
                "reserve_accuracy": reserve_accuracy,
                "confirmed": confirmed,
                "created_at": now,
            }
        ],
    )
    if confirmed:
        skill, level = split_bench(bench)
        ledger.upsert(
            con,
            "curriculum_events",
            [
                {
                    "hero": hero,
                    "skill": skill,
                    "level": level,
                    "event": "confirmed_regression",
                    "checkpoint_id": checkpoint_id,
                    "step": step,
                    "accuracy": reserve_accuracy,
                    "created_at": now,
                }
            ],
        )
    return confirmed
