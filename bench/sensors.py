"""Tick time of each realm sensor at 10,000 leaderboard rows and 1,000 checkpoints (synthetic ledger).

staleness_sensor is Dagster's automation-condition sensor: its tick is one evaluation of every asset's
automation condition over the real definitions (dagster.evaluate_automation_conditions).

Run: python bench/sensors.py [--checkpoints 1000] [--benches 10]
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from realm_pipeline.defs.evaluation.sensors import leaderboard_regression_sensor
from realm_pipeline.defs.partitions import skill_partitions
from realm_pipeline.defs.quests.sensors import quest_inbox_sensor
from realm_pipeline.defs.resources import LedgerResource, RealmResource

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
checkpoint_parts = dg.DynamicPartitionsDefinition(name="checkpoints")
eval_parts = dg.MultiPartitionsDefinition({"checkpoint": checkpoint_parts, "skill": skill_partitions})


@dg.asset(name="eval_scores", partitions_def=eval_parts)
def eval_scores() -> None:
    """Stand-in."""


@dg.asset(name="leaderboard")
def leaderboard() -> None:
    """Stand-in."""


@dg.asset(name="public_mirror")
def public_mirror() -> None:
    """Stand-in."""


@dg.asset(name="quests")
def quests() -> None:
    """Stand-in."""


JOBS = [
    dg.define_asset_job("eval_job", selection=[eval_scores], partitions_def=eval_parts),
    dg.define_asset_job("rollup_job", selection=[leaderboard]),
    dg.define_asset_job("mirror_job", selection=[public_mirror]),
    dg.define_asset_job("quests_job", selection=[quests]),
]


def populate(ledger_db: LedgerResource, n_ckpt: int, n_bench: int) -> list[str]:
    """Checkpoints, eval sets, eval scores and leaderboard rows (n_ckpt x n_bench), set-based in SQL."""
    lanes = [f"tiny.{150 * (i + 1):06d}" for i in range(n_ckpt)]
    with ledger_db.get_connection() as con:
        con.execute(
            "INSERT INTO checkpoints (checkpoint_id, hero, step, sha256) "
            "SELECT printf('tiny.%06d', 150 * i), 'tiny', 150 * i, md5(i::VARCHAR) FROM range(1, ?) t(i)",
            [n_ckpt + 1],
        )
        con.execute(
            "INSERT INTO eval_sets SELECT 'bin', l, 50, 'h' || l, '1' FROM range(1, ?) t(l)", [n_bench + 1]
        )
        con.execute(
            """
            INSERT INTO eval_scores (checkpoint_id, hero, step, skill, level, fingerprint, n, correct,
                                     accuracy, eval_set_hash, skill_version, created_at)
            SELECT printf('tiny.%06d', 150 * i), 'tiny', 150 * i, 'bin', l, 'fp', 50, 40, 0.8,
                   -- every 50th checkpoint was scored on an older eval set
                   CASE WHEN i % 50 = 0 THEN 'old' ELSE 'h' || l END, '1', TIMESTAMP '2026-01-01'
            FROM range(1, ?) a(i), range(1, ?) b(l)
            """,
            [n_ckpt + 1, n_bench + 1],
        )
        con.execute(
            """
            INSERT INTO leaderboard_rows (bench, lane, hero, step, rank, accuracy, n)
            SELECT 'bin@' || l, printf('tiny.%06d', 150 * i), 'tiny', 150 * i, 1, 0.8, 50
            FROM range(1, ?) a(i), range(1, ?) b(l)
            """,
            [n_ckpt + 1, n_bench + 1],
        )
    return lanes


def timed(sensor: dg.SensorDefinition, instance, resources, defs, cursor: str | None):
    """(seconds, result) of one Dagster-validated tick."""
    with (
        dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, definitions=defs
        ) as ctx,
        dg.partition_loading_context(dynamic_partitions_store=instance),
    ):
        started = time.perf_counter()
        result = sensor.evaluate_tick(ctx)
        return time.perf_counter() - started, result


def main() -> None:
    """Populate, then time each sensor a few ticks and print the per-sensor numbers."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--benches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        resources = {
            "realm": RealmResource(home=str(tmp / "home"), config_dir=str(CONFIGS)),
            "ledger_db": LedgerResource(database=str(tmp / "realm.duckdb")),
        }
        sensors = [leaderboard_regression_sensor, quest_inbox_sensor]
        defs = dg.Definitions(
            assets=[eval_scores, leaderboard, public_mirror, quests],
            jobs=JOBS,
            sensors=sensors,
            resources=resources,
        )
        (tmp / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp / "dagster")) as instance:
            started = time.perf_counter()
            lanes = populate(resources["ledger_db"], args.checkpoints, args.benches)
            instance.add_dynamic_partitions("checkpoints", lanes)
            # 90 % of the checkpoints evaluated: the staleness sensor finds the other 10 % missing
            for lane in lanes[: int(len(lanes) * 0.9)]:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        "eval_scores",
                        partition=str(dg.MultiPartitionKey({"checkpoint": lane, "skill": "bin"})),
                    )
                )
            inbox = tmp / "home" / "inbox"
            inbox.mkdir(parents=True)
            line = json.dumps(
                {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
            )
            for f in range(5):
                (inbox / f"q{f}.jsonl").write_text("\n".join([line] * 1000 + [json.dumps({"n": f})]) + "\n")
            (inbox / "good.jsonl").write_text("\n".join([line] * 1000) + "\n")
            with resources["ledger_db"].read() as con:
                rows = con.execute("SELECT count(*) FROM leaderboard_rows").fetchone()[0]
            print(
                f"setup: {rows} leaderboard rows, {len(lanes)} checkpoints, "
                f"{time.perf_counter() - started:.1f}s to populate"
            )

            times: dict[str, list[float]] = {}
            cursor = None
            for i in range(args.repeats + 1):
                if i == 2:  # one scan with 1 % of the lanes dropping past tau
                    with resources["ledger_db"].get_connection() as con:
                        con.execute("UPDATE leaderboard_rows SET accuracy = 0.5 WHERE hash(lane) % 100 = 0")
                instance.report_runless_asset_event(dg.AssetMaterialization("leaderboard"))
                s, result = timed(leaderboard_regression_sensor, instance, resources, defs, cursor)
                label = "baseline scan" if i == 0 else "re-scan"
                times.setdefault(f"leaderboard_regression_sensor ({label})", []).append(s)
                if i == 2:
                    print(f"regression scan with drops requested {len(result.run_requests)} run(s) (cap)")
                cursor = result.cursor
            s, _ = timed(leaderboard_regression_sensor, instance, resources, defs, cursor)
            times["leaderboard_regression_sensor (no new materialization)"] = [s]

            from realm_pipeline.definitions import build_defs

            real_defs = build_defs()
            # the newest 10 % of the checkpoints were trained after the first tick: their evals are due
            cursor = dg.evaluate_automation_conditions(defs=real_defs, instance=instance).cursor
            for skill in sorted(skill_partitions.get_partition_keys()):
                instance.report_runless_asset_event(dg.AssetMaterialization("eval_sets", partition=skill))
            for lane in lanes[int(len(lanes) * 0.9) :]:
                instance.report_runless_asset_event(dg.AssetMaterialization("checkpoints", partition=lane))
            for i in range(args.repeats):
                started = time.perf_counter()
                result = dg.evaluate_automation_conditions(defs=real_defs, instance=instance, cursor=cursor)
                times.setdefault("staleness_sensor (1,000 checkpoints x 5 skills)", []).append(
                    time.perf_counter() - started
                )
                if i == 0:
                    print(f"staleness_sensor first tick requested {result.total_requested} partition(s)")

            s, result = timed(quest_inbox_sensor, instance, resources, defs, None)
            times["quest_inbox_sensor (6 files x 1,000 examples, hashed, capped)"] = [s]
            for _ in range(args.repeats):
                s, _ = timed(quest_inbox_sensor, instance, resources, defs, result.cursor)
                times.setdefault("quest_inbox_sensor (1 file in flight)", []).append(s)

            for name, values in times.items():
                print(f"{name:<62} median {statistics.median(values) * 1000:8.1f} ms  (n={len(values)})")


if __name__ == "__main__":
    main()
