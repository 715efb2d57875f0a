"""Materializing a checkpoint the ledger already holds: refused in one line, or retrained on purpose."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from realm_pipeline import ledger
from realm_pipeline.defs.resources import LedgerResource
from realm_pipeline.ledger import connect

CKPT = "tiny.000150"


def _ledger_row(home: Path) -> tuple:
    with connect(home / "realm.duckdb", read_only=True) as con:
        return con.execute("SELECT * FROM checkpoints WHERE checkpoint_id = ?", [CKPT]).fetchone()


def _materializations(instance: dg.DagsterInstance) -> int:
    return len(
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("checkpoints"), asset_partitions=[CKPT]), limit=100
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


@pytest.mark.proof
@pytest.mark.slow  # two real training segments of the tiny hero
def test_retrain_on_purpose_trains_again_and_records_it(realm_env: Path) -> None:
    from realm_pipeline.definitions import build_defs
    from realm_pipeline.training.trainer import RESULT_FILE

    defs = build_defs()
    with dg.DagsterInstance.get() as instance:
        assert defs.resolve_job_def("eval_sets_job").execute_in_process(
            instance=instance, partition_key="bin"
        )
        instance.add_dynamic_partitions("checkpoints", [CKPT])
        train = defs.resolve_job_def("train_job")
        assert train.execute_in_process(instance=instance, partition_key=CKPT).success
        first = _ledger_row(realm_env)
        result_file = realm_env / "checkpoints" / "tiny" / CKPT / RESULT_FILE
        first_result = result_file.stat().st_mtime_ns
        again = train.execute_in_process(
            instance=instance,
            partition_key=CKPT,
            run_config={"ops": {"checkpoints": {"config": {"retrain": True}}}},
        )
        assert again.success
        assert _materializations(instance) == 2
    second = _ledger_row(realm_env)
    assert result_file.stat().st_mtime_ns != first_result  # trained again, not the saved segment adopted
    assert second != first  # a new ledger row (its created_at, wall time) replaced the first, not added
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        assert (
            con.execute("SELECT count(*) FROM checkpoints WHERE checkpoint_id = ?", [CKPT]).fetchone()[0] == 1
        )
