"""Regressions that can happen: hero standings per bench, the `leaderboard_regression` check, the sensor that
reads it, and the confirming re-run that scores the reserve sample (real ledger, instance and tiny model)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from openai_server import save_test_hero

from realm_pipeline import ledger
from realm_pipeline.evaluation.backends import weights_sha256
from realm_pipeline.evaluation.regressions import find_drops, record_check, record_standings
from realm_pipeline.evaluation.scores import current_scores

T0 = datetime(2026, 1, 1, 12, 0, 0)
CKPTS = ["tiny.000150", "tiny.000300"]


def score(ckpt: str, level: int, accuracy: float, *, t: int, protocol: str = "p1") -> dict:
    """One eval-set score row of the tiny hero on bin."""
    return {
        "checkpoint_id": ckpt,
        "hero": "tiny",
        "step": int(ckpt.split(".")[1]),
        "skill": "bin",
        "level": level,
        "fingerprint": f"{ckpt}:{level}:{protocol}",
        "n": 50,
        "correct": round(accuracy * 50),
        "accuracy": accuracy,
        "created_at": T0 + timedelta(minutes=t),
        "protocol": protocol,
        "sample": "eval",
    }


def _ledger(tmp_path: Path):
    return ledger.connect(tmp_path / "realm.duckdb")


def test_standings_move_with_the_newest_checkpoint_and_drops_compare_like_with_like(tmp_path: Path) -> None:
    with _ledger(tmp_path) as con:
        ledger.migrate(con)
        ledger.upsert(con, "eval_scores", [score(CKPTS[0], 1, 0.9, t=0), score(CKPTS[0], 2, 0.6, t=0)])
        assert record_standings(con, {"tiny": {"bin": [1]}}, built_at=T0) == 1
        assert find_drops(con, 0.05) == []  # nothing to compare the first build with
        # The newer checkpoint: L1 drops 0.30 (mastered), L2 drops 0.04 (under tau).
        ledger.upsert(con, "eval_scores", [score(CKPTS[1], 1, 0.6, t=1), score(CKPTS[1], 2, 0.56, t=1)])
        assert record_standings(con, {"tiny": {"bin": [1]}}, built_at=T0) == 2
        drops = find_drops(con, 0.05)
        assert [(d.bench, d.checkpoint_id, d.baseline, d.accuracy, d.mastered) for d in drops] == [
            ("bin@1", CKPTS[1], 0.9, 0.6, True)
        ]
        # The same board built again: the standing is its own baseline now, nothing drops.
        record_standings(con, {"tiny": {"bin": [1]}}, built_at=T0)
        assert find_drops(con, 0.05) == []
        # A scorer change (new protocol) re-scores L2 lower: a new protocol is never compared with the old.
        ledger.upsert(con, "eval_scores", [score(CKPTS[1], 2, 0.1, t=2, protocol="p2")])
        record_standings(con, {"tiny": {"bin": [1]}}, built_at=T0)
        assert find_drops(con, 0.05) == []


def test_a_creep_under_tau_per_build_is_a_drop_once_it_adds_up_and_a_check_resets_the_baseline(
    tmp_path: Path,
) -> None:
    """A mastered level losing 0.04 a build never drops more than tau below the previous build, but
    it falls more than tau below the mean standing of the checkpoints since its last check: flagged once
    it adds up; after a confirming check on that checkpoint, the baseline starts from the dropped value."""
    ckpts = [f"tiny.{150 * i:06d}" for i in range(1, 8)]
    with _ledger(tmp_path) as con:
        ledger.migrate(con)
        found = []
        for i, (ckpt, acc) in enumerate(zip(ckpts, (0.96, 0.96, 0.92, 0.88, 0.84, 0.84, 0.82), strict=True)):
            ledger.upsert(con, "eval_scores", [score(ckpt, 1, acc, t=i)])
            version = record_standings(con, {"tiny": {"bin": [1]}}, built_at=T0)
            drops = find_drops(con, 0.05)
            found.append([(d.checkpoint_id, round(d.baseline, 4), d.accuracy) for d in drops])
            for d in drops:  # the confirming re-run's verdict, as the sensor's run records it
                record_check(
                    con,
                    hero="tiny",
                    bench=d.bench,
                    baseline_version=d.baseline_version,
                    checkpoint_id=d.checkpoint_id,
                    step=150 * (i + 1),
                    baseline=d.baseline,
                    eval_accuracy=d.accuracy,
                    reserve_accuracy=d.accuracy,
                    tau=0.05,
                    now=T0,
                )
            assert version == i + 1
        # 0.92 is 0.04 under the mean 0.96; 0.88 is 0.067 under the mean 0.947 of 0.96, 0.96, 0.92: flagged
        assert found[:4] == [[], [], [], [(ckpts[3], 0.9467, 0.88)]]
        # after its check the baseline counts from 0.88: 0.84, 0.84, 0.82 stay within tau of that mean
        assert found[4:] == [[], [], []]
        # the previous build alone (the old baseline) never showed a drop over tau here
        accs = (0.96, 0.96, 0.92, 0.88, 0.84, 0.84, 0.82)
        assert all(a - b <= 0.05 for a, b in zip(accs, accs[1:], strict=False))


def test_a_changed_protocol_hides_stale_scores_until_re_evaluated(tmp_path: Path) -> None:
    with _ledger(tmp_path) as con:
        ledger.migrate(con)
        ledger.upsert(con, "eval_scores", [score(c, 1, 0.9, t=i) for i, c in enumerate(CKPTS)])
        assert {r["checkpoint_id"] for r in current_scores(con, hero="tiny")} == set(CKPTS)
        ledger.upsert(con, "eval_scores", [score(CKPTS[1], 1, 0.5, t=5, protocol="p2")])
        # Only the new protocol's score is current: CKPTS[0]'s old score is stale, not compared with it.
        assert [(r["checkpoint_id"], r["accuracy"]) for r in current_scores(con, hero="tiny")] == [
            (CKPTS[1], 0.5)
        ]


def test_a_reserve_sample_at_the_baseline_refutes_the_drop(tmp_path: Path) -> None:
    with _ledger(tmp_path) as con:
        ledger.migrate(con)
        common = {"hero": "tiny", "bench": "bin@1", "checkpoint_id": CKPTS[1], "step": 300, "tau": 0.05}
        refuted = record_check(
            con, **common, baseline_version=1, baseline=0.9, eval_accuracy=0.8, reserve_accuracy=0.88, now=T0
        )
        confirmed = record_check(
            con, **common, baseline_version=2, baseline=0.9, eval_accuracy=0.8, reserve_accuracy=0.7, now=T0
        )
        assert (refuted, confirmed) == (False, True)
        events = con.execute(
            "SELECT checkpoint_id, accuracy FROM curriculum_events WHERE event = 'confirmed_regression'"
        ).fetchall()
        assert events == [(CKPTS[1], 0.7)]


def test_materializing_the_leaderboard_alone_records_its_regression_check(realm_env: Path) -> None:
    from realm_pipeline.definitions import build_defs
    from realm_pipeline.defs.evaluation.leaderboard import leaderboard
    from realm_pipeline.defs.evaluation.sensors import REGRESSION_CHECK, confirming_requests

    defs = build_defs()
    resources = {k: defs.resources[k] for k in ("realm", "ledger_db")}
    with dg.DagsterInstance.get() as instance:
        assert instance.get_latest_asset_check_evaluation_record(REGRESSION_CHECK) is None
        result = dg.materialize([leaderboard], instance=instance, resources=resources)
        assert result.success
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.asset_check_key == REGRESSION_CHECK and evaluation.passed
        record = instance.get_latest_asset_check_evaluation_record(REGRESSION_CHECK)
        assert record is not None and record.run_id == result.run_id
        assert confirming_requests(instance) == (record.id, [])  # the sensor has a verdict to read


@pytest.mark.usefixtures("one_torch_thread")
def test_drop_check_sensor_and_confirming_rerun_on_the_reserve_sample(
    realm_env: Path, tmp_path: Path
) -> None:
    from realm_pipeline.campaign import curriculum_state
    from realm_pipeline.definitions import build_defs
    from realm_pipeline.defs.evaluation.leaderboard import leaderboard
    from realm_pipeline.defs.evaluation.sensors import leaderboard_regression_sensor

    defs = build_defs()
    resources = {k: defs.resources[k] for k in ("realm", "ledger_db")}
    hero_dir = save_test_hero(tmp_path / "hero")  # an untrained tiny model: it scores 0 on the reserve
    with dg.DagsterInstance.get() as instance:
        assert (
            defs.resolve_job_def("eval_sets_job")
            .execute_in_process(instance=instance, partition_key="bin")
            .success
        )
        instance.add_dynamic_partitions("checkpoints", CKPTS)
        with resources["ledger_db"].get_connection() as con:
            # the synthetic scores carry the protocol the eval sets declared, or they would be stale
            (in_force,) = con.execute(
                "SELECT protocol FROM protocols_in_force WHERE hero = 'tiny' AND skill = 'bin' AND level = 1"
            ).fetchone()
            ledger.upsert(
                con,
                "checkpoints",
                [
                    {
                        "checkpoint_id": c,
                        "hero": "tiny",
                        "step": int(c[-6:]),
                        "path": str(hero_dir),
                        "sha256": weights_sha256(hero_dir),
                    }
                    for c in CKPTS
                ],
            )
            ledger.upsert(con, "eval_scores", [score(CKPTS[0], 1, 0.9, t=0, protocol=in_force)])

        def build() -> None:
            # the leaderboard alone, as the staleness sensor builds it: its check comes with it
            result = dg.materialize([leaderboard], instance=instance, resources=resources)
            assert result.success

        def tick(cursor: str | None):
            # the daemon threads the instance down to dynamic-partition checks; a direct evaluation must say so
            with (
                dg.build_sensor_context(
                    instance=instance, cursor=cursor, resources=resources, definitions=defs
                ) as ctx,
                dg.partition_loading_context(dynamic_partitions_store=instance),
            ):
                return leaderboard_regression_sensor.evaluate_tick(ctx)

        build()
        first = tick(None)
        assert first.run_requests == [] and "no unconfirmed drop" in first.skip_message
        with resources["ledger_db"].get_connection() as con:
            ledger.upsert(con, "eval_scores", [score(CKPTS[1], 1, 0.2, t=1, protocol=in_force)])
        build()
        result = tick(None)
        (req,) = result.run_requests
        assert req.partition_key == str(dg.MultiPartitionKey({"checkpoint": CKPTS[1], "skill": "bin"}))
        assert req.run_key == "confirm:tiny:bin@1:v2" and req.tags["realm/baseline"] == "0.9"
        assert tick(result.cursor).run_requests == []  # confirmed once: the same check asks no second run

        run = defs.resolve_job_def("eval_job").execute_in_process(
            instance=instance, partition_key=req.partition_key, tags=req.tags
        )
        assert run.success
        with resources["ledger_db"].read() as con:
            check = con.execute(
                "SELECT baseline, reserve_accuracy, confirmed FROM regression_checks WHERE hero = 'tiny'"
            ).fetchall()
            assert check == [(0.9, 0.0, True)]
            reserve = con.execute(
                "SELECT r.eval_set_hash, s.reserve_hash, s.eval_set_hash FROM eval_scores r "
                "JOIN eval_sets s USING (skill, level) WHERE r.sample = 'reserve'"
            ).fetchone()
            assert reserve[0] == reserve[1] != reserve[2]  # a fresh sample, not the eval set again
            assert [r["accuracy"] for r in current_scores(con, checkpoint_id=CKPTS[1])] == [0.2]
            state = curriculum_state(con, resources["realm"].settings, "tiny")
        assert state.boosted == {"bin": (1,)}  # the confirmed level is weighted up in the next mix
        cursor = json.loads(result.cursor)
        assert cursor["requested"] == ["confirm:tiny:bin@1:v2"]
