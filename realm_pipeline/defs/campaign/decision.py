"""The Dagster side of `campaign.decide_next`: read the instance's partitions and runs, then decide.

Shared by the campaign sensor, the `curriculum` asset (the hero's status) and the `realm` CLI, so all
three see the same next step. Reads only: acknowledging a failure (`acknowledge_failures`) is the
CLI's explicit verb, never a sensor's.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import dagster as dg
import duckdb

from realm_pipeline.campaign import (
    CANCELED,
    EVAL_JOB,
    EVAL_SETS_JOB,
    FAILED,
    IN_FLIGHT,
    ROLLUP_JOB,
    SUCCEEDED,
    TRAIN_JOB,
    Decision,
    RunOutcome,
    Step,
    decide_next,
    eval_partition,
    hero_checkpoints,
    hero_facts,
)
from realm_pipeline.settings import Settings, realm_home

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo

ACKNOWLEDGED_TAG = "realm/retry_acknowledged"  # set by `realm retry` on a failed run a person wants retried
PARTITION_TAG = "dagster/partition"
WILL_RETRY_TAG = (
    "dagster/will_retry"  # the daemon re-launches this failed run under dagster.yaml's run_retries
)
EVAL_SETS, EVAL_SCORES, CURRICULUM = (
    dg.AssetKey("eval_sets"),
    dg.AssetKey("eval_scores"),
    dg.AssetKey("curriculum"),
)
# A step's asset, so that a run of it launched under another job (the UI's launchpad, an automation
# sensor) counts as that step's run too.
ASSET_OF_JOB = {
    EVAL_SETS_JOB: EVAL_SETS,
    TRAIN_JOB: dg.AssetKey("checkpoints"),
    EVAL_JOB: EVAL_SCORES,
    ROLLUP_JOB: CURRICULUM,
}
RUNS_LOOKED_AT = 20  # newest runs of one partition scanned for the step's job


def _outcome(instance: dg.DagsterInstance, job: str, record: dg.RunRecord) -> RunOutcome:
    run = record.dagster_run
    if run.status == dg.DagsterRunStatus.SUCCESS:
        status = SUCCEEDED
    elif run.status == dg.DagsterRunStatus.FAILURE:
        status = IN_FLIGHT if run.tags.get(WILL_RETRY_TAG) == "true" else FAILED
    elif run.status == dg.DagsterRunStatus.CANCELED:
        status = CANCELED
    else:
        status = IN_FLIGHT
    attempts, error = 1, None
    if status in (FAILED, CANCELED):
        attempts, error = _attempts_and_error(instance, run.run_id)
    return RunOutcome(
        job=job,
        partition=run.tags.get(PARTITION_TAG),
        run_id=run.run_id,
        status=status,
        acknowledged=run.tags.get(ACKNOWLEDGED_TAG) == "true",
        attempts=attempts,
        error=error,
        ended_at=record.end_time,
    )


def _attempts_and_error(instance: dg.DagsterInstance, run_id: str) -> tuple[int, str | None]:
    """How many step attempts a failed run made, and its most telling error line.

    The step's own failure after its retries reads "Exceeded max_retries" around "process failed
    with code 1"; the Pipes subprocess's exception (an engine event) says what really went wrong.
    """
    events = instance.all_logs(
        run_id,
        of_type={
            dg.DagsterEventType.STEP_UP_FOR_RETRY,
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.ENGINE_EVENT,
        },
    )
    attempts = 1 + sum(e.dagster_event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in events)
    subprocess_errors, step_errors = [], []
    for event in events:
        err = getattr(event.dagster_event.event_specific_data, "error", None)
        if err is None:
            continue
        if event.dagster_event_type == dg.DagsterEventType.ENGINE_EVENT:
            subprocess_errors.append(err)
        elif event.dagster_event_type == dg.DagsterEventType.STEP_FAILURE:
            step_errors.append(err)
    errors = subprocess_errors or step_errors
    return attempts, _error_line(errors[-1]) if errors else None


def run_error_line(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The most telling error line of a failed run (what `realm campaign` prints under its FAILED)."""
    return _attempts_and_error(instance, run_id)[1]


# Dagster's wrappers around the error a person needs to see
WRAPPER_ERRORS = {"RetryRequestedFromPolicy", "DagsterExecutionStepExecutionError"}


def _error_line(err: SerializableErrorInfo) -> str:
    """'OSError: disk full' from an error and its wrappers (the class without its module, one line)."""
    while err.cls_name in WRAPPER_ERRORS and err.cause is not None:
        err = err.cause
    text = err.message.strip()
    prefix, sep, rest = text.partition(": ")
    if sep and prefix.rsplit(".", 1)[-1] == err.cls_name:
        text = rest
    lines = text.splitlines()
    return f"{err.cls_name}: {lines[0] if lines else ''}"[:300]


def newest_run(
    instance: dg.DagsterInstance, job: str, partition: str | None, *, exclude_run_id: str | None = None
) -> RunOutcome | None:
    """The newest run of `job` (or of any job materializing its asset) for `partition`, if any."""
    # Unpartitioned (the rollup): the newest runs of any job, since staleness_sensor's rollups run as
    # Dagster's implicit asset job; a partition's runs carry its tag whatever their job.
    filters = None if partition is None else dg.RunsFilter(tags={PARTITION_TAG: partition})
    asset = ASSET_OF_JOB.get(job)
    for record in instance.get_run_records(filters=filters, limit=RUNS_LOOKED_AT):
        run = record.dagster_run
        if run.run_id == exclude_run_id:
            continue
        if run.job_name == job or (asset is not None and asset in (run.asset_selection or ())):
            return _outcome(instance, job, record)
    return None


def _newest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str] | None = None
) -> float | None:
    if partitions == []:
        return None
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=1
    ).records
    return records[0].timestamp if records else None


def hero_decision(
    instance: dg.DagsterInstance,
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    hero: str,
    *,
    exclude_run_id: str | None = None,
    rolled_up_now: bool = False,
) -> Decision:
    """What `hero` needs next, from the ledger (`con`, read-only) and the Dagster instance.

    `exclude_run_id` and `rolled_up_now` let the rollup that is running describe the hero as it will
    stand once it finishes.
    """
    skills = list(settings.heroes[hero].campaign.skills)
    ckpts = hero_checkpoints(con, hero)
    latest_evals = [eval_partition(ckpts[-1]["checkpoint_id"], s) for s in skills] if ckpts else []
    evaluated_keys = instance.get_materialized_partitions(EVAL_SCORES)
    evaluated = [
        (c["checkpoint_id"], s)
        for c in ckpts
        for s in skills
        if eval_partition(c["checkpoint_id"], s) in evaluated_keys
    ]
    facts = hero_facts(
        con,
        settings,
        hero,
        eval_sets_done=instance.get_materialized_partitions(EVAL_SETS),
        evaluated=evaluated,
        last_eval_at=_newest_materialization(instance, EVAL_SCORES, latest_evals),
        last_rollup_at=time.time() if rolled_up_now else _newest_materialization(instance, CURRICULUM),
        home=realm_home(),
    )
    # The runs that matter are those of the steps the hero would take next, and the newest rollup.
    wanted = {(s.job, s.partition) for s in decide_next(facts).steps} | {(ROLLUP_JOB, None)}
    runs = [
        run
        for job, partition in sorted(wanted, key=str)
        if (run := newest_run(instance, job, partition, exclude_run_id=exclude_run_id)) is not None
    ]
    return decide_next(replace(facts, runs=tuple(runs)))


def run_request(step: Step) -> dg.RunRequest:
    """The Dagster run request of one step."""
    partition: str | dg.MultiPartitionKey | None = step.partition
    if step.job == EVAL_JOB:
        partition = dg.MultiPartitionKey({"checkpoint": step.checkpoint, "skill": step.skill})
    return dg.RunRequest(
        run_key=step.run_key,
        job_name=step.job,
        partition_key=partition,
        asset_selection=[dg.AssetKey(a) for a in step.assets] if step.assets else None,
    )


def acknowledge_failures(instance: dg.DagsterInstance, decision: Decision) -> list[str]:
    """Tag the failed runs that stop a hero as acknowledged, so the next decision retries them; their ids."""
    for run in decision.failed:
        instance.add_run_tags(run.run_id, {ACKNOWLEDGED_TAG: "true"})
    return [run.run_id for run in decision.failed]
