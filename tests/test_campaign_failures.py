"""A failed segment through a real Dagster instance: retried under its policy, then reported by name
(sensor skip reason, hero_state, `realm status`), and retried again once a person asks (`realm retry`).
The segment's failure and its retries are the campaign's mechanics, not training: the simulated hero."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from sim_hero import SIM, ckpt, use_sim_hero

from realm_pipeline.cli import main
from realm_pipeline.ledger import connect


@pytest.fixture
def defs(realm_env: Path) -> dg.Definitions:
    from realm_pipeline.definitions import build_defs

    return build_defs()


@pytest.fixture
def sim_defs(realm_env: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    """The definitions with the simulated hero the only active one."""
    from realm_pipeline.definitions import build_defs

    use_sim_hero(config_dir)
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    return build_defs()


def _tick(defs: dg.Definitions):
    """Evaluate the campaign sensor once, as the daemon would."""
    from realm_pipeline.defs.campaign.sensors import campaign_sensor

    with dg.DagsterInstance.get() as instance:
        ctx = dg.build_sensor_context(
            instance=instance, resources={k: defs.resources[k] for k in ("realm", "ledger_db")}
        )
        return campaign_sensor(ctx)


def _launch(defs: dg.Definitions, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run a sensor's request in this process, with the tags the daemon would give it."""
    with dg.DagsterInstance.get() as instance:
        if request.job_name == "train_job":
            instance.add_dynamic_partitions("checkpoints", [str(request.partition_key)])
        return defs.resolve_job_def(request.job_name).execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            asset_selection=request.asset_selection,
            tags={"dagster/run_key": request.run_key},
            raise_on_error=False,
        )


@pytest.mark.slow  # nine runs of the simulated hero and the retry policy's waits: ~35 s of CPU
def test_a_failed_segment_is_retried_then_reported_then_retried_on_request(
    realm_env: Path, sim_defs: dg.Definitions
) -> None:
    defs, first_ckpt = sim_defs, ckpt(1)
    first = _tick(defs)
    assert [r.run_key for r in first.run_requests] == ["eval_sets:bin"]
    assert _launch(defs, first.run_requests[0]).success

    # A stray file where the first checkpoint's directory goes: the segment's write fails on it.
    blocker = realm_env / "checkpoints" / SIM / first_ckpt
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a checkpoint directory")
    train = _tick(defs)
    assert [r.run_key for r in train.run_requests] == [first_ckpt]
    failed = _launch(defs, train.run_requests[0])
    assert not failed.success
    # retried under the asset's RetryPolicy before the run gave up: three attempts in all
    retries = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 2
    run_id = failed.run_id

    # The sensor does not spend the key in silence: one curriculum run records the failure ...
    record = _tick(defs)
    assert [r.run_key for r in record.run_requests] == [f"rollup:failed:{run_id}"]
    assert record.run_requests[0].asset_selection == [dg.AssetKey("curriculum")]
    assert _launch(defs, record.run_requests[0]).success
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        status = con.execute("SELECT status FROM hero_state WHERE hero = ?", [SIM]).fetchone()[0]
    assert status.startswith(f"stopped: train_job {first_ckpt} failed") and run_id[:8] in status
    assert "after 3 attempts: FileExistsError" in status and f"realm retry {SIM}" in status
    with dg.DagsterInstance.get() as instance:
        meta = instance.get_latest_materialization_event(dg.AssetKey("curriculum")).asset_materialization
    assert meta.metadata[f"{SIM}/status"].value == status

    # ... then every tick skips, naming the checkpoint and the run
    skipped = _tick(defs)
    assert isinstance(skipped, dg.SkipReason)
    assert first_ckpt in skipped.skip_message and run_id[:8] in skipped.skip_message
    assert _tick(defs).skip_message == skipped.skip_message  # stays failed: no new request
    runner = CliRunner()
    shown = runner.invoke(main, ["status", SIM])
    assert shown.exit_code == 0 and run_id[:8] in shown.output and f"{first_ckpt} failed" in shown.output

    # The cause fixed, a person asks for the retry: a new run key, the same checkpoint, and it trains.
    blocker.unlink()
    asked = runner.invoke(main, ["retry", SIM])
    assert (
        asked.exit_code == 0 and f"retrying train_job {first_ckpt} failed in run {run_id[:8]}" in asked.output
    )
    again = _tick(defs)
    assert [(r.run_key, r.partition_key) for r in again.run_requests] == [
        (f"{first_ckpt}#retry-after-{run_id[:8]}", first_ckpt)
    ]
    with dg.DagsterInstance.get() as instance:  # where the automation stands before the segment lands
        cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    assert _launch(defs, again.run_requests[0]).success
    # its evals are the automation conditions' alone: the campaign sensor names them and asks nothing
    evals = _tick(defs)
    assert isinstance(evals, dg.SkipReason), evals
    assert f"next eval_job {first_ckpt}|bin (automation)" in evals.skip_message
    with dg.DagsterInstance.get() as instance:
        automation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    (requested,) = [
        r for r in automation.results if r.key == dg.AssetKey("eval_scores") and r.true_subset.size
    ]
    assert requested.true_subset.expensively_compute_partition_keys() == {f"{first_ckpt}|bin"}
    assert "nothing failed to retry" in runner.invoke(main, ["retry", SIM]).output


def test_a_run_the_instance_will_retry_is_in_flight_and_an_acknowledged_one_is_retried(
    tmp_path: Path,
) -> None:
    from realm_pipeline.campaign import FAILED, IN_FLIGHT, SUCCEEDED
    from realm_pipeline.defs.campaign.decision import ACKNOWLEDGED_TAG, WILL_RETRY_TAG, newest_run

    @dg.op
    def segment() -> None:
        raise RuntimeError("out of memory")

    @dg.op
    def fine() -> None:
        pass

    failing = dg.GraphDefinition(name="g", node_defs=[segment]).to_job(name="train_job")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert newest_run(instance, "train_job", "tiny.000150") is None
        run = failing.execute_in_process(
            instance=instance, tags={"dagster/partition": "tiny.000150"}, raise_on_error=False
        )
        outcome = newest_run(instance, "train_job", "tiny.000150")
        assert outcome.status == FAILED and outcome.run_id == run.run_id and not outcome.acknowledged
        assert outcome.error == "RuntimeError: out of memory" and outcome.ended_at is not None
        assert newest_run(instance, "train_job", "tiny.000300") is None  # another partition's runs only
        # dagster.yaml's run_retries will launch it again: not a failure yet
        instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "true"})
        assert newest_run(instance, "train_job", "tiny.000150").status == IN_FLIGHT
        instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "false", ACKNOWLEDGED_TAG: "true"})
        assert newest_run(instance, "train_job", "tiny.000150").acknowledged
        # a newer run of the same partition (a re-execution from the UI) is the one that counts
        dg.GraphDefinition(name="g2", node_defs=[fine]).to_job(name="train_job").execute_in_process(
            instance=instance, tags={"dagster/partition": "tiny.000150"}
        )
        assert newest_run(instance, "train_job", "tiny.000150").status == SUCCEEDED


def test_under_the_daemon_alone_a_run_whose_worker_died_is_failed_for_run_retries_to_relaunch(
    realm_env: Path, defs: dg.Definitions
) -> None:
    import subprocess
    import sys

    from realm_pipeline.defs.campaign.decision import WILL_RETRY_TAG
    from realm_pipeline.defs.training.workers import WORKER_GONE_TAG, WORKER_TAG, worker_id

    first = _tick(defs)
    assert _launch(defs, first.run_requests[0]).success  # the eval sets
    # a launcher's run of the first segment, STARTED, whose worker process was killed
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", ["tiny.000150"])
        run = instance.create_run_for_job(
            defs.resolve_job_def("train_job"),
            status=dg.DagsterRunStatus.STARTED,
            tags={
                "dagster/partition": "tiny.000150",
                "dagster/run_key": "tiny.000150",
                WORKER_TAG: worker_id(gone.pid),
            },
        )
    tick = _tick(defs)  # no `realm` command runs: the sensor's own tick notices
    with dg.DagsterInstance.get() as instance:
        after = instance.get_run_by_id(run.run_id)
        failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert after.status == dg.DagsterRunStatus.FAILURE and after.tags[WORKER_GONE_TAG] == "true"
    assert f"train_job tiny.000150: its worker (pid {gone.pid}) is gone" in failure[0].message
    # dagster.yaml's run_retries takes it from here (the instance tagged it for a retry): the hero waits
    # on that retry, which resumes the segment from its last save, instead of on a dead run for ever
    assert after.tags[WILL_RETRY_TAG] == "true"
    assert tick.skip_message == f"tiny: waiting on train_job tiny.000150 (run {run.run_id[:8]})"
    assert _tick(defs).skip_message == tick.skip_message  # failed once, not again on every tick
