"""`campaign_sensor`: the next segment of each active hero once its latest checkpoint is fully evaluated."""

import dagster as dg

from realm_pipeline.campaign import campaign_blocker, hero_checkpoints
from realm_pipeline.defs.campaign.in_flight import drop_in_flight
from realm_pipeline.defs.campaign.jobs import eval_job, eval_sets_job, rollup_job, train_job
from realm_pipeline.defs.resources import LedgerBusy, LedgerResource, RealmResource
from realm_pipeline.training.plan import next_key


@dg.sensor(
    name="campaign_sensor",
    jobs=[eval_sets_job, train_job, eval_job, rollup_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def campaign_sensor(context: dg.SensorEvaluationContext, realm: RealmResource, ledger_db: LedgerResource):
    """Requests evals of a new checkpoint, then the next training segment, until maxed out/paused/budget."""
    settings = realm.settings
    cap = settings.realm.sensors.max_runs_per_tick
    evaluated = context.instance.get_materialized_partitions(dg.AssetKey("eval_scores"))
    eval_sets_done = context.instance.get_materialized_partitions(dg.AssetKey("eval_sets"))
    requests: list[dg.RunRequest] = []
    new_partitions: list[str] = []
    try:
        with ledger_db.read(wait=False) as con:
            for hero in settings.realm.campaign.active_heroes:
                cfg = settings.heroes[hero]
                no_eval_set = [s for s in cfg.campaign.skills if s not in eval_sets_done]
                if no_eval_set:  # evals need the held-out items first: build them, train nothing yet
                    requests += [
                        dg.RunRequest(run_key=f"eval_sets:{s}", job_name="eval_sets_job", partition_key=s)
                        for s in no_eval_set
                    ]
                    continue
                ckpts = hero_checkpoints(con, hero)
                latest = ckpts[-1]["checkpoint_id"] if ckpts else None
                missing = [
                    s
                    for s in cfg.campaign.skills
                    if latest
                    and str(dg.MultiPartitionKey({"checkpoint": latest, "skill": s})) not in evaluated
                ]
                if missing:
                    requests += [
                        dg.RunRequest(
                            run_key=f"eval:{latest}|{skill}",
                            job_name="eval_job",
                            partition_key=dg.MultiPartitionKey({"checkpoint": latest, "skill": skill}),
                        )
                        for skill in missing
                    ]
                    continue
                if latest:
                    # fully evaluated: refresh the hero sheet and the ranks once per checkpoint
                    requests.append(dg.RunRequest(run_key=f"rollup:{latest}", job_name="rollup_job"))
                blocker = campaign_blocker(con, settings, hero)
                if blocker:
                    context.log.info(f"{hero}: no next segment: {blocker}")
                    continue
                key = str(next_key(cfg, ckpts[-1]["step"] if ckpts else None))
                new_partitions.append(key)
                requests.append(dg.RunRequest(run_key=key, job_name="train_job", partition_key=key))
    except LedgerBusy as exc:
        return dg.SkipReason(f"ledger busy, will retry next tick: {exc}")
    requests = drop_in_flight(context.instance, requests)[:cap]
    wanted = {r.partition_key for r in requests if r.job_name == "train_job"}
    adds = [k for k in new_partitions if k in wanted]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[checkpoint_partitions_add(adds)] if adds else [],
    )


def checkpoint_partitions_add(keys: list[str]) -> dg.AddDynamicPartitionsRequest:
    """Register new checkpoint keys as partitions of `checkpoints` (and so of `eval_scores`)."""
    return dg.AddDynamicPartitionsRequest(partitions_def_name="checkpoints", partition_keys=keys)
