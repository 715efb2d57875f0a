"""A confirming run that fails is loud: `realm campaign` exits non-zero, and the hero sheet (`realm status`)
and the curriculum say which regression stayed unconfirmed (real instance, real runs, real CLI)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from realm_pipeline.cli import main
from realm_pipeline.evaluation.regressions import Drop

CURRICULUM = dg.AssetKey("curriculum")
DELETED = "tiny.000150"  # a checkpoint retention deleted: in the ledger, its files gone
GHOST = "tiny.000999"  # a checkpoint the ledger does not have: its confirming run fails for good


def _failing_confirmation(instance):
    from realm_pipeline.defs.evaluation.sensors import confirming_request

    drop = Drop(
        "tiny", "bin@1", GHOST, baseline=0.9, accuracy=0.5, baseline_version=1, version=2, mastered=True
    )
    return 2, [confirming_request(drop)]


def test_a_failed_confirming_run_fails_the_campaign_and_shows_on_the_sheet(
    realm_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import realm_pipeline.defs.evaluation.sensors as sensors

    monkeypatch.setattr(sensors, "confirming_requests", _failing_confirmation)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", [GHOST])
    out = CliRunner().invoke(main, ["campaign", "--hero", "tiny", "--segments", "0"])
    assert out.exit_code != 0, out.output
    assert "eval_job" in out.output and "FAILED" in out.output
    assert f"UNCONFIRMED regression bin@1 of {GHOST}" in out.output  # on the hero sheet it prints
    status = CliRunner().invoke(main, ["status", "tiny"])
    assert status.exit_code == 0, status.output
    assert f"UNCONFIRMED regression bin@1 of {GHOST}" in status.output
    with dg.DagsterInstance.get() as instance:
        assert [u["bench"] for u in sensors.unconfirmed_regressions(instance, "tiny")] == ["bin@1"]


def test_the_curriculum_asset_reports_an_unconfirmed_regression(realm_env: Path) -> None:
    from realm_pipeline import ledger
    from realm_pipeline.definitions import build_defs
    from realm_pipeline.defs.evaluation.sensors import confirming_request, unconfirmed_regressions

    defs = build_defs()
    # the drop's checkpoint was deleted by retention: its confirming run fails for good
    drop = Drop(
        "tiny", "bin@1", DELETED, baseline=0.9, accuracy=0.5, baseline_version=1, version=2, mastered=True
    )
    request = confirming_request(drop)
    with ledger.connect(realm_env / "realm.duckdb") as con:
        ledger.migrate(con)
        ledger.upsert(
            con, "checkpoints", [{"checkpoint_id": DELETED, "hero": "tiny", "step": 150, "path": None}]
        )
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", [DELETED])

        def curriculum_metadata() -> dict:
            rollup = defs.resolve_job_def("rollup_job")
            assert rollup.execute_in_process(instance=instance, asset_selection=[CURRICULUM]).success
            return instance.get_latest_materialization_event(CURRICULUM).asset_materialization.metadata

        assert curriculum_metadata()["tiny/unconfirmed_regressions"].value == 0
        # the confirming eval runs for real and fails (no retries: the files are gone)
        confirm = defs.resolve_job_def("eval_job").execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=request.tags, raise_on_error=False
        )
        assert not confirm.success
        metadata = curriculum_metadata()
        assert metadata["tiny/unconfirmed_regressions"].value == 1
        (unconfirmed,) = metadata["heroes"].data["tiny"]["unconfirmed_regressions"]
        assert unconfirmed == {"bench": "bin@1", "checkpoint": DELETED, "run_id": confirm.run_id}
        assert unconfirmed_regressions(instance, "tiny") == [unconfirmed]
