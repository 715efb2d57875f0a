"""`campaign_sensor`: requests what each active hero needs next (`campaign.decide_next`), and says why not."""

import dagster as dg

from realm_pipeline.campaign import TRAIN_JOB
from realm_pipeline.defs.campaign.decision import hero_decision, run_request
from realm_pipeline.defs.campaign.jobs import eval_job, eval_sets_job, rollup_job, train_job
from realm_pipeline.defs.resources import LedgerBusy, LedgerResource, RealmResource
from realm_pipeline.defs.training.workers import fail_dead_runs


@dg.sensor(
    name="campaign_sensor",
    jobs=[eval_sets_job, train_job, eval_job, rollup_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Each active hero's next segment (and its eval sets, and retries a person asked for) "
    "from campaign.decide_next; evals and rollups are the automation conditions'. The skip reason says why.",
)
def campaign_sensor(context: dg.SensorEvaluationContext, realm: RealmResource, ledger_db: LedgerResource):
    """Eval sets and the next segment, until a hero stops; evals and rollups are left to automation.

    Reads the ledger only: a failed run is reported in the skip reason (and, through one rollup, in the
    hero's status), never requested again under its spent run key. On the instance it fails runs whose
    worker died on this host (the default launcher cannot tell run monitoring), so under the daemon
    alone a killed run worker does not wedge its hero: run_retries relaunches it and the segment
    resumes from its last save.
    """
    for line in fail_dead_runs(context.instance):
        context.log.warning(line)
    settings = realm.settings
    try:
        with ledger_db.read(wait=False) as con:
            decisions = [
                hero_decision(context.instance, con, settings, hero)
                for hero in settings.realm.campaign.active_heroes
            ]
    except LedgerBusy as exc:
        return dg.SkipReason(f"ledger busy, will retry next tick: {exc}")
    for decision in decisions:
        context.log.info(f"{decision.hero}: {decision.status}")
    # One owner per asset: evals of a new checkpoint and rollups are staleness_sensor's (the assets'
    # automation conditions); this sensor requests what those cannot: eval sets, segments, retries.
    requests = [run_request(s) for decision in decisions for s in decision.steps if not s.automated]
    requests = requests[: settings.realm.sensors.max_runs_per_tick]
    if not requests:
        return dg.SkipReason(
            "; ".join(f"{d.hero}: {d.status}" for d in decisions) or "no active heroes in realm.yaml"
        )
    adds = [str(r.partition_key) for r in requests if r.job_name == TRAIN_JOB]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[checkpoint_partitions_add(adds)] if adds else [],
    )


def checkpoint_partitions_add(keys: list[str]) -> dg.AddDynamicPartitionsRequest:
    """Register new checkpoint keys as partitions of `checkpoints` (and so of `eval_scores`)."""
    return dg.AddDynamicPartitionsRequest(partitions_def_name="checkpoints", partition_keys=keys)
