"""Asset checks a person sees as a red light: the checkpoint's held-out loss, the eval set's hash."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from realm_pipeline.ledger import connect
from realm_pipeline.training.segment import HELDOUT_CHECK, heldout_check

CKPT = "tiny.000150"


@pytest.mark.parametrize(
    ("loss", "passed"), [(1.25, True), (math.nan, False), (math.inf, False), (None, False)]
)
def test_heldout_check_wants_a_finite_measured_loss(loss: float | None, passed: bool) -> None:
    ok, metadata = heldout_check(SimpleNamespace(heldout_loss=loss, train_loss=2.0))
    assert ok is passed
    assert metadata["heldout_loss"] == (loss if passed else str(loss))


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.mark.proof
@pytest.mark.slow  # a real training segment and two evals: ~100 s on two shared cores
def test_checkpoint_and_eval_checks_in_real_runs(realm_env: Path) -> None:
    from realm_pipeline.definitions import build_defs

    defs = build_defs()
    with dg.DagsterInstance.get() as instance:
        assert defs.resolve_job_def("eval_sets_job").execute_in_process(
            instance=instance, partition_key="bin"
        )
        instance.add_dynamic_partitions("checkpoints", [CKPT])
        # the segment reports the check (through Pipes when it trains in a subprocess); the asset passes it on
        trained = defs.resolve_job_def("train_job").execute_in_process(instance=instance, partition_key=CKPT)
        check = _checks(trained)[HELDOUT_CHECK]
        assert check.passed and check.asset_key == dg.AssetKey("checkpoints")
        with connect(realm_env / "realm.duckdb", read_only=True) as con:
            heldout = con.execute(
                "SELECT heldout_loss FROM checkpoints WHERE checkpoint_id = ?", [CKPT]
            ).fetchone()[0]
        assert check.metadata["heldout_loss"].value == pytest.approx(heldout)

        partition = dg.MultiPartitionKey({"checkpoint": CKPT, "skill": "bin"})
        evaluated = defs.resolve_job_def("eval_job").execute_in_process(
            instance=instance, partition_key=partition
        )
        assert _checks(evaluated)["eval_set_matches_stored_hash"].passed
        with connect(realm_env / "realm.duckdb") as con:
            scores = con.execute("SELECT count(*) FROM eval_scores").fetchone()[0]
            # the stored eval set no longer matches what the generator makes (a hand edit, a stale ledger)
            con.execute("UPDATE eval_sets SET eval_set_hash = 'tampered' WHERE skill = 'bin' AND level = 1")
        refused = defs.resolve_job_def("eval_job").execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False
        )
    assert not refused.success
    red = _checks(refused)["eval_set_matches_stored_hash"]
    assert not red.passed and red.severity == dg.AssetCheckSeverity.ERROR
    assert red.metadata["mismatched"].value["L1"]["stored"] == "tampered"
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM eval_scores").fetchone()[0] == scores  # nothing scored
