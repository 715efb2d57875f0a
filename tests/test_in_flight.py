"""drop_in_flight: a sensor never raises work that a queued or running run (of any job) already does."""

from pathlib import Path

import dagster as dg
import pytest

from realm_pipeline.defs.campaign.in_flight import drop_in_flight

EVAL = str(dg.MultiPartitionKey({"checkpoint": "tiny.000150", "skill": "bin"}))
OTHER = str(dg.MultiPartitionKey({"checkpoint": "tiny.000300", "skill": "bin"}))


@pytest.fixture
def instance(tmp_path: Path):
    """A real, empty Dagster instance."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


def add_run(instance, job_name: str, status: dg.DagsterRunStatus, assets=None, partition=None) -> None:
    """A run record as a launch leaves it (queued, started, or done)."""
    tags = {"dagster/partition": partition} if partition else {}
    instance.add_run(
        dg.DagsterRun(
            job_name=job_name,
            status=status,
            asset_selection=frozenset(dg.AssetKey(a) for a in assets) if assets else None,
            tags=tags,
        )
    )


def eval_request(partition: str) -> dg.RunRequest:
    """The campaign sensor's request for one eval."""
    return dg.RunRequest(run_key=f"eval:{partition}", job_name="eval_job", partition_key=partition)


def test_staleness_sensor_runs_count_as_in_flight(instance) -> None:
    # staleness_sensor's runs are of Dagster's implicit asset job, selected by asset
    add_run(instance, "__ASSET_JOB", dg.DagsterRunStatus.NOT_STARTED, ["eval_scores"], EVAL)
    kept = drop_in_flight(instance, [eval_request(EVAL), eval_request(OTHER)])
    assert [r.partition_key for r in kept] == [OTHER]


def test_a_named_job_run_and_the_unpartitioned_rollup(instance) -> None:
    add_run(instance, "eval_job", dg.DagsterRunStatus.STARTED, partition=EVAL)
    add_run(instance, "__ASSET_JOB", dg.DagsterRunStatus.STARTED, ["leaderboard"])
    requests = [eval_request(EVAL), dg.RunRequest(run_key="rollup:x", job_name="rollup_job")]
    assert drop_in_flight(instance, requests) == []  # the rollup job writes the leaderboard too


def test_finished_runs_do_not_count(instance) -> None:
    add_run(instance, "__ASSET_JOB", dg.DagsterRunStatus.SUCCESS, ["eval_scores"], EVAL)
    add_run(instance, "eval_job", dg.DagsterRunStatus.FAILURE, partition=EVAL)
    assert [r.partition_key for r in drop_in_flight(instance, [eval_request(EVAL)])] == [EVAL]
