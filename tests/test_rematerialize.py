"""Materializing a checkpoint the ledger already holds: refused in one line, or retrained on purpose."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
from sim_hero import SIM, ckpt, use_sim_hero

from realm_pipeline import ledger
from realm_pipeline.defs.resources import LedgerResource
from realm_pipeline.ledger import connect

CKPT = "tiny.000150"


def _ledger_row(home: Path, key: str = CKPT) -> tuple:
    with connect(home / "realm.duckdb", read_only=True) as con:
        return con.execute("SELECT * FROM checkpoints WHERE checkpoint_id = ?", [key]).fetchone()


def _materializations(instance: dg.DagsterInstance, key: str = CKPT) -> int:
    return len(
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("checkpoints"), asset_partitions=[key]), limit=100
        ).records
    )


def test_an_existing_checkpoint_is_refused_with_the_way_to_retrain(realm_env: Path) -> None:
    from realm_pipeline.definitions import build_defs

    weights = realm_env / "checkpoints" / "tiny" / CKPT / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"the first training's weights")
    with LedgerResource(database=str(realm_env / "realm.duckdb")).get_connection() as con:
        ledger.upsert(
            con,
            "checkpoints",
            [
                {
                    "checkpoint_id": CKPT,
                    "hero": "tiny",
                    "step": 150,
                    "sha256": "a7c2f8d71fd9" + "0" * 52,
                    "path": str(weights.parent),
                    "created_at": datetime(2026, 1, 1),
                }
            ],
        )
    before = _ledger_row(realm_env)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", [CKPT])
        result = (
            build_defs()
            .resolve_job_def("train_job")
            .execute_in_process(instance=instance, partition_key=CKPT, raise_on_error=False)
        )
        assert not result.success
        failure = result.failure_data_for_node("checkpoints").error
        message = failure.cause.message if failure.cause else failure.message
        assert f"checkpoint {CKPT} is already trained (sha256 a7c2f8d71fd9); nothing was recorded" in message
        assert '"retrain": true' in message and f"--partition {CKPT}" in message
        assert _materializations(instance) == 0
        # refused for good: a deterministic refusal is not retried
        assert not instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": result.run_id}))
    assert _ledger_row(realm_env) == before
    assert weights.read_bytes() == b"the first training's weights"


@pytest.mark.proof  # retraining is the campaign's mechanics, not training: the simulated hero
def test_retrain_on_purpose_trains_again_and_records_it(
    realm_env: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from realm_pipeline.definitions import build_defs
    from realm_pipeline.simulation.hero import STATE_FILE

    use_sim_hero(config_dir)
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    key = ckpt(1)
    defs = build_defs()
    with dg.DagsterInstance.get() as instance:
        assert defs.resolve_job_def("eval_sets_job").execute_in_process(
            instance=instance, partition_key="bin"
        )
        instance.add_dynamic_partitions("checkpoints", [key])
        train = defs.resolve_job_def("train_job")
        assert train.execute_in_process(instance=instance, partition_key=key).success
        first = _ledger_row(realm_env, key)
        state_file = realm_env / "checkpoints" / SIM / key / STATE_FILE
        first_state = state_file.stat().st_mtime_ns
        again = train.execute_in_process(
            instance=instance,
            partition_key=key,
            run_config={"ops": {"checkpoints": {"config": {"retrain": True}}}},
        )
        assert again.success
        assert _materializations(instance, key) == 2
    second = _ledger_row(realm_env, key)
    assert state_file.stat().st_mtime_ns != first_state  # trained again: the checkpoint file rewritten
    assert second != first  # a new ledger row (its created_at, wall time) replaced the first, not added
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        assert (
            con.execute("SELECT count(*) FROM checkpoints WHERE checkpoint_id = ?", [key]).fetchone()[0] == 1
        )
