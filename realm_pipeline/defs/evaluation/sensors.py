"""`leaderboard_regression_sensor`: a confirming re-run on the reserve sample for every drop the
`leaderboard_regression` asset check reported. It only reads the check's result and requests runs."""

import json

import dagster as dg

from realm_pipeline.defs.resources import RealmResource
from realm_pipeline.evaluation.regressions import CONFIRM_TAG, Drop

REGRESSION_CHECK = dg.AssetCheckKey(dg.AssetKey("leaderboard"), "leaderboard_regression")
EVAL_JOB = "eval_job"


def confirming_request(drop: Drop) -> dg.RunRequest:
    """The confirming eval of the drop's checkpoint on its bench's reserve sample, one per standings version."""
    return dg.RunRequest(
        run_key=f"confirm:{drop.hero}:{drop.bench}:v{drop.version}",
        job_name=EVAL_JOB,
        partition_key=dg.MultiPartitionKey({"checkpoint": drop.checkpoint_id, "skill": drop.skill}),
        tags={
            CONFIRM_TAG: drop.bench,
            "realm/hero": drop.hero,
            "realm/baseline": repr(drop.baseline),
            "realm/accuracy": repr(drop.accuracy),
            "realm/baseline_version": str(drop.baseline_version),
        },
    )


def unconfirmed_regressions(instance: dg.DagsterInstance, hero: str) -> list[dict]:
    """Drops whose confirming re-run failed and was not re-run successfully since: {bench, checkpoint,
    run_id}, newest first. Neither confirmed nor refuted, they must be shown, never silently dropped."""
    newest: dict[tuple, dg.DagsterRun] = {}
    for record in instance.get_run_records(dg.RunsFilter(tags={"realm/hero": hero})):  # newest first
        run = record.dagster_run
        if CONFIRM_TAG in run.tags:
            newest.setdefault((run.tags[CONFIRM_TAG], run.tags.get("realm/baseline_version")), run)
    return [
        {
            "bench": bench,
            "checkpoint": run.tags.get("dagster/partition/checkpoint") or run.tags.get("dagster/partition"),
            "run_id": run.run_id,
        }
        for (bench, _version), run in newest.items()
        if run.status == dg.DagsterRunStatus.FAILURE
    ]


def _drops(record) -> list[Drop]:
    evaluation = record.event.asset_check_evaluation if record.event is not None else None
    if evaluation is None or evaluation.passed:
        return []
    value = evaluation.metadata.get("drops")
    return [Drop(**d) for d in (value.data if value is not None else [])]


def confirming_requests(instance: dg.DagsterInstance) -> tuple[int | None, list[dg.RunRequest]]:
    """(id of the newest `leaderboard_regression` evaluation, one confirming request per drop it reported).

    The regression sensor and `realm campaign` both ask here; neither writes anything.
    """
    record = instance.get_latest_asset_check_evaluation_record(REGRESSION_CHECK)
    if record is None:
        return None, []
    return record.id, [confirming_request(d) for d in _drops(record)]


@dg.sensor(
    name="leaderboard_regression_sensor",
    job_name=EVAL_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One confirming eval on the reserve sample per drop the leaderboard_regression check reported.",
)
def leaderboard_regression_sensor(context: dg.SensorEvaluationContext, realm: RealmResource):
    """Reads the newest `leaderboard_regression` check result; requests a confirming run per drop."""
    cap = realm.settings.realm.sensors.max_runs_per_tick
    record_id, wanted = confirming_requests(context.instance)
    if record_id is None:
        return dg.SkipReason("the leaderboard_regression check has not run yet")
    cursor = json.loads(context.cursor) if context.cursor else {}
    requested = cursor.get("requested", []) if cursor.get("record") == record_id else []
    drops = [r for r in wanted if r.run_key not in requested]
    if not drops:
        return dg.SkipReason(f"no unconfirmed drop in check evaluation {record_id}")
    requests = drops[:cap]
    context.log.info(
        f"check evaluation {record_id}: {len(drops)} drop(s) to confirm, requesting {len(requests)}"
    )
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"record": record_id, "requested": requested + [r.run_key for r in requests]}),
    )
