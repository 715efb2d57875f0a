"""Leaderboard rebuild: ranks, Wilson CIs, latest fingerprint, champions, votes, cost, baseline parity."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from realm_pipeline import ledger
from realm_pipeline.evaluation.leaderboard import (
    COLUMNS,
    copy_to_sqlite,
    leaderboard_python_sqlite,
    rebuild_leaderboard,
)

T0 = datetime(2026, 1, 1, 12, 0, 0)
BUILT = datetime(2026, 2, 1, 0, 0, 0)


def score(
    lane: str,
    skill: str,
    level: int,
    correct: int,
    n: int,
    *,
    fp: str = "f1",
    t: int = 0,
    gpu=1.0,
    protocol: str = "p1",
    sample: str = "eval",
):
    """One eval_scores row; hero and step come from the lane id `<hero>.<step>`."""
    hero, step = lane.split(".")
    return {
        "checkpoint_id": lane,
        "hero": hero,
        "step": int(step),
        "skill": skill,
        "level": level,
        "fingerprint": fp,
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "created_at": T0 + timedelta(hours=t),
        "gpu_seconds": gpu,
        "protocol": protocol,
        "sample": sample,
    }


ROWS = [
    # bin@1: ranks by accuracy desc, then n desc, then lane
    score("tiny.000100", "bin", 1, 40, 50),
    score("tiny.000200", "bin", 1, 45, 50),
    score("tiny.000300", "bin", 1, 80, 100),
    score("tiny.000050", "bin", 1, 40, 50),
    # bin@2 on tiny.000200: the later fingerprint wins; GPU time sums over both
    score("tiny.000200", "bin", 2, 10, 10, fp="f1", t=0, gpu=3.0),
    score("tiny.000200", "bin", 2, 5, 10, fp="f2", t=1, gpu=4.0),
    # same created_at: the greater fingerprint wins
    score("tiny.000300", "bin", 2, 0, 10, fp="a", t=2),
    score("tiny.000300", "bin", 2, 10, 10, fp="b", t=2),
    # scored only under an older protocol (say, before a scorer change): stale, not ranked
    score("tiny.000400", "bin", 2, 10, 10, fp="old", t=-5, protocol="p0"),
    # a confirming re-run on the reserve sample: GPU time counts, the score is not the lane's
    score("tiny.000200", "bin", 1, 0, 50, fp="r1", t=9, gpu=2.0, protocol="p9", sample="reserve"),
    # another hero with its own champion; one n = 0 row (accuracy NULL, ranked last)
    score("dio.000500", "sy", 1, 30, 40),
    score("dio.000600", "sy", 1, 20, 40),
    score("dio.000700", "sy", 1, 0, 0),
]


@pytest.fixture
def con(tmp_path: Path):
    """A migrated ledger file holding ROWS, one compare run and a confirmed regression."""
    with ledger.connect(tmp_path / "realm.duckdb") as c:
        ledger.migrate(c)
        ledger.upsert(c, "eval_scores", ROWS)
        ledger.upsert(
            c, "compare_runs", [{"compare_id": "c1", "lane_a": "tiny.000200", "lane_b": "tiny.000100"}]
        )
        ledger.upsert(
            c,
            "curriculum_events",
            [
                {
                    "hero": "tiny",
                    "skill": "bin",
                    "level": 1,
                    "event": "confirmed_regression",
                    "checkpoint_id": "tiny.000100",
                    "step": 100,
                }
            ],
        )
        yield c


def vote(c: duckdb.DuckDBPyConnection, choices: list[str]) -> None:
    """Record human votes on compare run c1."""
    ledger.upsert(
        c,
        "human_prefs",
        [{"compare_id": "c1", "vote_id": f"v{i}", "choice": ch} for i, ch in enumerate(choices)],
    )


def rows(c: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict]:
    """leaderboard_rows keyed by (bench, lane)."""
    cur = c.execute(f"SELECT {', '.join(COLUMNS)} FROM leaderboard_rows")
    return {(r[0], r[1]): dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()}


def build(c, *, vote_minimum: int = 5, price: float | None = None) -> dict:
    """Rebuild and read back."""
    n = rebuild_leaderboard(c, vote_minimum=vote_minimum, price_per_gpu_hour=price, built_at=BUILT)
    got = rows(c)
    assert n == len(got)
    return got


def test_ranks_within_bench(con):
    got = build(con)
    bin1 = sorted((r["rank"], lane) for (bench, lane), r in got.items() if bench == "bin@1")
    assert bin1 == [(1, "tiny.000200"), (2, "tiny.000300"), (3, "tiny.000050"), (4, "tiny.000100")]
    sy1 = sorted((r["rank"], lane) for (bench, lane), r in got.items() if bench == "sy@1")
    assert sy1 == [(1, "dio.000500"), (2, "dio.000600"), (3, "dio.000700")]
    assert got[("sy@1", "dio.000700")]["accuracy"] is None and got[("sy@1", "dio.000700")]["ci_low"] is None


def test_wilson_interval_matches_hand_computed_values(con):
    got = build(con)
    r = got[("bin@1", "tiny.000200")]  # 45 / 50
    assert r["accuracy"] == 0.9 and r["n"] == 50
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(0.78640, abs=1e-5), pytest.approx(0.95652, abs=1e-5))
    zero = got[("bin@2", "tiny.000200")]  # latest is 5 / 10
    assert (zero["ci_low"], zero["ci_high"]) == (
        pytest.approx(0.23659, abs=1e-5),
        pytest.approx(0.76341, abs=1e-5),
    )
    full = got[("bin@2", "tiny.000300")]  # 10 / 10: the upper bound is exactly 1
    assert (full["ci_low"], full["ci_high"]) == (pytest.approx(0.72247, abs=1e-5), pytest.approx(1.0))


def test_latest_fingerprint_wins_and_gpu_time_sums(con):
    got = build(con)
    r = got[("bin@2", "tiny.000200")]
    assert (r["accuracy"], r["n"], r["gpu_seconds"]) == (0.5, 10, 7.0)
    assert got[("bin@2", "tiny.000300")]["accuracy"] == 1.0  # tie on created_at: fingerprint "b" > "a"


def test_only_the_protocol_in_force_is_ranked(con):
    got = build(con)
    assert ("bin@2", "tiny.000400") not in got  # its only score predates the protocol now in force
    r = got[("bin@1", "tiny.000200")]
    assert (r["accuracy"], r["gpu_seconds"]) == (0.9, 3.0)  # the reserve re-run adds GPU time, not a score


def test_champion_per_hero(con):
    got = build(con)
    champions = sorted({lane for (_, lane), r in got.items() if r["champion"]})
    # tiny: 000300 averages (0.8 + 1.0) / 2 = 0.9 > 000200's (0.9 + 0.5) / 2; dio: 000500 at 0.75
    assert champions == ["dio.000500", "tiny.000300"]
    assert got[("bin@1", "tiny.000300")]["champion"] and got[("bin@2", "tiny.000300")]["champion"]
    # the curriculum's champion, once named, wins over the mean-accuracy fallback (dio keeps the fallback)
    con.execute("INSERT INTO hero_state (hero, champion) VALUES ('tiny', 'tiny.000200')")
    got = build(con)
    assert sorted({lane for (_, lane), r in got.items() if r["champion"]}) == ["dio.000500", "tiny.000200"]


def test_vote_gating(con):
    vote(con, ["a", "A", "tie", "b"])
    got = build(con)
    assert got[("bin@1", "tiny.000200")]["votes"] == 4 and got[("bin@1", "tiny.000200")]["win_rate"] is None
    assert got[("bin@1", "tiny.000300")]["votes"] == 0
    vote(con, ["a", "A", "tie", "b", "tiny.000200", "skip"])  # 5 counted votes; "skip" is not one
    got = build(con)
    a, b = got[("bin@1", "tiny.000200")], got[("bin@1", "tiny.000100")]
    assert (a["votes"], a["win_rate"]) == (5, pytest.approx(3.5 / 5))
    assert (b["votes"], b["win_rate"]) == (5, pytest.approx(1.5 / 5))
    assert got[("bin@2", "tiny.000200")]["win_rate"] == pytest.approx(0.7)  # votes are per lane
    assert build(con, vote_minimum=6)[("bin@1", "tiny.000200")]["win_rate"] is None


def test_cost_per_point_with_and_without_price(con):
    assert all(r["cost_per_point"] is None for r in build(con).values())
    got = build(con, price=2.0)
    assert got[("bin@2", "tiny.000200")]["cost_per_point"] == pytest.approx(7.0 / 3600 * 2.0 / 50)
    assert got[("bin@1", "tiny.000200")]["cost_per_point"] == pytest.approx(3.0 / 3600 * 2.0 / 90)


def test_confirmed_regression_flag(con):
    got = build(con)
    assert [k for k, r in got.items() if r["confirmed_regression"]] == [("bin@1", "tiny.000100")]


def test_idempotent(con):
    vote(con, ["a"] * 5)
    first = build(con, price=1.5)
    assert build(con, price=1.5) == first
    # two superseded rows, one stale lane and one reserve re-run are not lanes on the board
    assert con.execute("SELECT count(*) FROM leaderboard_rows").fetchone()[0] == len(ROWS) - 4


def test_agrees_with_python_sqlite_baseline(con, tmp_path: Path):
    vote(con, ["a", "b", "tie", "a", "tiny.000100", "skip"])
    build(con, price=2.5)
    ours = con.execute(f"SELECT {', '.join(COLUMNS)} FROM leaderboard_rows ORDER BY bench, rank").fetchall()
    lite = sqlite3.connect(tmp_path / "baseline.sqlite")
    copy_to_sqlite(con, lite)
    theirs = leaderboard_python_sqlite(lite, vote_minimum=5, price_per_gpu_hour=2.5, built_at=BUILT)
    lite.close()
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a == tuple(pytest.approx(v) if isinstance(v, float) else v for v in b)
