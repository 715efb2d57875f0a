"""leaderboard_regression_sensor against a real ledger file and a real temp Dagster instance."""

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from realm_pipeline import ledger
from realm_pipeline.defs.evaluation.sensors import leaderboard_regression_sensor
from realm_pipeline.defs.partitions import skill_partitions
from realm_pipeline.defs.resources import LedgerResource, RealmResource

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
checkpoint_parts = dg.DynamicPartitionsDefinition(name="checkpoints")
eval_parts = dg.MultiPartitionsDefinition({"checkpoint": checkpoint_parts, "skill": skill_partitions})


@dg.asset(name="eval_scores", partitions_def=eval_parts)
def eval_scores_standin() -> None:
    """Stand-in for the real (GPU) eval asset: only its key and partitions matter here."""


@dg.asset(name="leaderboard")
def leaderboard_standin() -> None:
    """Stand-in leaderboard."""


eval_job = dg.define_asset_job("eval_job", selection=[eval_scores_standin], partitions_def=eval_parts)
LANES = ["tiny.000150", "tiny.000300"]


@pytest.fixture
def env(tmp_path: Path):
    """(instance, resources, defs) on a fresh ledger file and a temp Dagster instance."""
    resources = {
        "realm": RealmResource(home=str(tmp_path / "home"), config_dir=str(CONFIGS)),
        "ledger_db": LedgerResource(database=str(tmp_path / "realm.duckdb")),
    }
    defs = dg.Definitions(
        assets=[eval_scores_standin, leaderboard_standin],
        jobs=[eval_job],
        sensors=[leaderboard_regression_sensor],
        resources=resources,
    )
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions("checkpoints", LANES)
        yield instance, resources, defs


def set_board(resources: dict, rows: dict[tuple[str, str], float]) -> None:
    """Write leaderboard_rows directly (the real rebuild needs eval scores; the sensor only reads rows)."""
    with resources["ledger_db"].get_connection() as con:
        con.execute("DELETE FROM leaderboard_rows")
        ledger.upsert(
            con,
            "leaderboard_rows",
            [
                {"bench": b, "lane": lane, "hero": "tiny", "accuracy": acc, "n": 50}
                for (b, lane), acc in rows.items()
            ],
        )


def publish(instance: dg.DagsterInstance, times: int = 1) -> None:
    """A new leaderboard materialization, as the sensor sees one."""
    for _ in range(times):
        instance.report_runless_asset_event(dg.AssetMaterialization("leaderboard"))


def tick(instance, resources, defs, cursor: str | None):
    """One evaluated (and Dagster-validated) tick."""
    # the daemon threads the instance down to dynamic-partition checks; a direct evaluation must say so
    with (
        dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, definitions=defs
        ) as ctx,
        dg.partition_loading_context(dynamic_partitions_store=instance),
    ):
        return leaderboard_regression_sensor.evaluate_tick(ctx)


BOARD = {("bin@1", LANES[0]): 0.90, ("bin@2", LANES[0]): 0.60, ("sy@1", LANES[0]): 0.50}


def test_first_scan_only_baselines(env) -> None:
    instance, resources, defs = env
    set_board(resources, BOARD)
    publish(instance)
    result = tick(instance, resources, defs, None)
    assert result.run_requests == []
    with resources["ledger_db"].read() as con:
        assert con.execute(
            "SELECT count(*), min(version), max(version) FROM leaderboard_baseline"
        ).fetchone() == (
            3,
            1,
            1,
        )
    # no new materialization: skipped, cursor unchanged
    again = tick(instance, resources, defs, result.cursor)
    assert again.skip_message and again.run_requests == []


def test_over_tau_requests_one_confirming_run_under_tau_none_and_new_lanes_cannot_regress(env) -> None:
    instance, resources, defs = env
    set_board(resources, BOARD)
    publish(instance)
    cursor = tick(instance, resources, defs, None).cursor
    # bin@1 drops 0.10 (> tau 0.05), bin@2 drops 0.04 (< tau), a new lane appears at 0.0
    set_board(
        resources, {**BOARD, ("bin@1", LANES[0]): 0.80, ("bin@2", LANES[0]): 0.56, ("bin@1", LANES[1]): 0.0}
    )
    publish(instance)
    result = tick(instance, resources, defs, cursor)
    assert [r.run_key for r in result.run_requests] == [f"regress:bin@1:{LANES[0]}:v1"]
    req = result.run_requests[0]
    assert req.job_name == "eval_job"
    assert req.partition_key == str(dg.MultiPartitionKey({"checkpoint": LANES[0], "skill": "bin"}))
    assert req.tags["realm/confirming"] == "true" and req.tags["realm/bench"] == "bin@1"
    with resources["ledger_db"].read() as con:
        assert con.execute("SELECT DISTINCT version FROM leaderboard_baseline").fetchall() == [(2,)]


def test_burst_yields_one_run_and_a_later_drop_gets_a_new_key(env) -> None:
    instance, resources, defs = env
    set_board(resources, BOARD)
    publish(instance)
    cursor = tick(instance, resources, defs, None).cursor
    set_board(resources, {**BOARD, ("bin@1", LANES[0]): 0.80})
    publish(instance, times=3)  # a burst of leaderboard rebuilds before the next tick
    first = tick(instance, resources, defs, cursor)
    assert [r.run_key for r in first.run_requests] == [f"regress:bin@1:{LANES[0]}:v1"]
    # the same (lost) tick evaluated again from the old cursor cannot yield a second distinct run
    assert {r.run_key for r in tick(instance, resources, defs, cursor).run_requests} <= {
        f"regress:bin@1:{LANES[0]}:v1"
    }
    # more identical rebuilds: the drop is in the baseline now, nothing new
    publish(instance, times=2)
    cursor = tick(instance, resources, defs, first.cursor).cursor
    publish(instance)
    quiet = tick(instance, resources, defs, cursor)
    assert quiet.run_requests == []
    # a further drop against the new baseline is not swallowed: new version, new run key
    set_board(resources, {**BOARD, ("bin@1", LANES[0]): 0.70})
    publish(instance)
    later = tick(instance, resources, defs, quiet.cursor)
    versions = json.loads(quiet.cursor)["baseline_version"]
    assert [r.run_key for r in later.run_requests] == [f"regress:bin@1:{LANES[0]}:v{versions}"]
    assert versions > 1


def test_cap_defers_the_rest_to_the_next_tick(env) -> None:
    instance, resources, defs = env
    board = {(f"bin@{i}", LANES[0]): 0.9 for i in range(1, 8)}
    set_board(resources, board)
    publish(instance)
    cursor = tick(instance, resources, defs, None).cursor
    set_board(resources, {k: 0.1 for k in board})
    publish(instance)
    first = tick(instance, resources, defs, cursor)
    second = tick(instance, resources, defs, first.cursor)  # no new materialization: deferred ones
    assert len(first.run_requests) == 4 and len(second.run_requests) == 3
    assert {r.run_key for r in first.run_requests + second.run_requests} == {
        f"regress:bin@{i}:{LANES[0]}:v1" for i in range(1, 8)
    }


def _score(con, lane: str, level: int, correct: int, created_at: datetime, fp: str) -> None:
    ledger.upsert(
        con,
        "eval_scores",
        [
            {
                "checkpoint_id": lane,
                "hero": "tiny",
                "step": 150,
                "skill": "bin",
                "level": level,
                "fingerprint": fp,
                "n": 50,
                "correct": correct,
                "accuracy": correct / 50,
                "created_at": created_at,
            }
        ],
    )


def test_confirmed_regression_recorded_after_the_confirming_rerun(env) -> None:
    instance, resources, defs = env
    set_board(resources, BOARD)
    publish(instance)
    cursor = tick(instance, resources, defs, None).cursor
    set_board(resources, {**BOARD, ("bin@1", LANES[0]): 0.80, ("bin@2", LANES[0]): 0.40})
    publish(instance)
    result = tick(instance, resources, defs, cursor)
    assert len(result.run_requests) == 2
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=5)
    with resources["ledger_db"].get_connection() as con:
        _score(con, LANES[0], 1, 40, later, "re1")  # 0.80: still 0.10 below the 0.90 baseline -> confirmed
        _score(con, LANES[0], 2, 30, later, "re2")  # 0.60: recovered to the baseline -> not confirmed
    publish(instance)
    after = tick(instance, resources, defs, result.cursor)
    assert after.run_requests == []
    with resources["ledger_db"].read() as con:
        events = con.execute(
            "SELECT checkpoint_id, skill, level, accuracy FROM curriculum_events "
            "WHERE event = 'confirmed_regression'"
        ).fetchall()
    assert events == [(LANES[0], "bin", 1, 0.80)]
    assert json.loads(after.cursor)["pending"] == []


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(30)
"""


def test_busy_ledger_skips_without_advancing_the_cursor(env) -> None:
    instance, resources, defs = env
    set_board(resources, BOARD)
    publish(instance)
    # DuckDB's file lock is per process: only another process holding a write connection makes it busy
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, resources["ledger_db"].database], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        result = tick(instance, resources, defs, None)
        assert time.perf_counter() - started < 5
        assert result.run_requests == [] and "busy" in result.skip_message
        assert result.cursor is None
    finally:
        holder.kill()
        holder.wait()
    assert tick(instance, resources, defs, None).cursor is not None
