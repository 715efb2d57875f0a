"""Leaderboard regressions: diff against the baseline, re-baseline, record confirmed drops (pure: DuckDB).

A (bench, lane) regresses when its accuracy falls more than `tau` below the baseline taken at the previous
leaderboard scan. A regression is only *confirmed* once a confirming re-run of that checkpoint x skill, newer
than the request, still shows the drop against the pre-drop baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb

from realm_pipeline import ledger


@dataclass(frozen=True)
class Drop:
    """One (bench, lane) that fell more than tau below its baseline of `version`."""

    bench: str
    lane: str
    baseline: float
    accuracy: float
    version: int

    @property
    def skill(self) -> str:
        """The bench's skill (`bin@3` -> `bin`)."""
        return split_bench(self.bench)[0]

    @property
    def level(self) -> int:
        """The bench's level (`bin@3` -> 3)."""
        return split_bench(self.bench)[1]


@dataclass(frozen=True)
class Pending:
    """A confirming re-run requested at `requested_at` (naive UTC) for a drop from `baseline`."""

    bench: str
    lane: str
    baseline: float
    requested_at: str  # ISO timestamp: pending entries travel in a sensor cursor (JSON)

    def to_json(self) -> dict:
        """A JSON-able dict."""
        return asdict(self)


def split_bench(bench: str) -> tuple[str, int]:
    """`skill@level` -> (skill, level)."""
    skill, _, level = bench.rpartition("@")
    return skill, int(level)


def baseline_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The current baseline's version, None before the first scan."""
    return con.execute("SELECT max(version) FROM leaderboard_baseline").fetchone()[0]


def find_drops(con: duckdb.DuckDBPyConnection, tau: float) -> list[Drop]:
    """Every (bench, lane) more than tau below its baseline accuracy (new lanes cannot regress)."""
    rows = con.execute(
        """
        SELECT r.bench, r.lane, b.accuracy, r.accuracy, b.version
        FROM leaderboard_rows r JOIN leaderboard_baseline b USING (bench, lane)
        WHERE b.accuracy - r.accuracy > ?
        ORDER BY b.accuracy - r.accuracy DESC, r.bench, r.lane
        """,
        [tau],
    ).fetchall()
    return [Drop(*row) for row in rows]


def rebaseline(con: duckdb.DuckDBPyConnection) -> int | None:
    """Replace the baseline by the current board under version max+1; None when the board is empty."""
    if not con.execute("SELECT count(*) FROM leaderboard_rows WHERE accuracy IS NOT NULL").fetchone()[0]:
        return None  # keep the old baseline (and its version): an empty board is no new reference
    con.execute("BEGIN TRANSACTION")
    try:
        version = (baseline_version(con) or 0) + 1
        con.execute("DELETE FROM leaderboard_baseline")
        con.execute(
            "INSERT INTO leaderboard_baseline SELECT bench, lane, accuracy, ? FROM leaderboard_rows "
            "WHERE accuracy IS NOT NULL",
            [version],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return version


def record_confirmed_regressions(
    con: duckdb.DuckDBPyConnection, tau: float, pending: list[Pending], *, now: datetime
) -> tuple[list[Pending], list[Pending]]:
    """Record a `confirmed_regression` event per pending drop whose newer re-run still shows it.

    Returns (confirmed, still_waiting): entries without a score newer than their request stay pending;
    entries whose re-run recovered are dropped silently.
    """
    confirmed, waiting, events = [], [], []
    for p in pending:
        skill, level = split_bench(p.bench)
        row = con.execute(
            """
            SELECT hero, step, CASE WHEN n > 0 THEN correct / n END AS acc FROM eval_scores
            WHERE checkpoint_id = ? AND skill = ? AND level = ? AND created_at > CAST(? AS TIMESTAMP)
            ORDER BY created_at DESC, fingerprint DESC LIMIT 1
            """,
            [p.lane, skill, level, p.requested_at],
        ).fetchone()
        if row is None:
            waiting.append(p)
            continue
        hero, step, acc = row
        if acc is not None and p.baseline - acc > tau:
            confirmed.append(p)
            events.append(
                {
                    "hero": hero,
                    "skill": skill,
                    "level": level,
                    "event": "confirmed_regression",
                    "checkpoint_id": p.lane,
                    "step": step,
                    "accuracy": acc,
                    "created_at": now,
                }
            )
    ledger.upsert(con, "curriculum_events", events)
    return confirmed, waiting
