"""`staleness_sensor`: re-runs whatever is missing or older than what it was built from.

Reasons, each with run_key `stale:{reason}:{what}:{version}` (version: the hash or storage id that made it
stale, so a later change gets a new run and a repeat of the same one does not):

* missing_eval   a checkpoint partition x one of its hero's campaign skills never evaluated   -> eval_job
* eval_set       a latest eval score on another eval_set_hash / skill_version than eval_sets  -> eval_job
* leaderboard    leaderboard older than the newest eval_scores materialization             -> rollup_job
* mirror         public_mirror older than the leaderboard                                   -> mirror_job
* knowledge      knowledge_index older than one of its upstream documents (only if it exists) -> knowledge_job
"""

import json
from collections.abc import Sequence

import dagster as dg
import duckdb
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from realm_pipeline.defs.campaign.in_flight import drop_in_flight
from realm_pipeline.defs.campaign.jobs import eval_job, knowledge_job, mirror_job, rollup_job
from realm_pipeline.defs.resources import LedgerBusy, LedgerResource, RealmResource
from realm_pipeline.settings import Settings
from realm_pipeline.training.plan import CheckpointKey

EVAL_SCORES = dg.AssetKey("eval_scores")
LEADERBOARD = dg.AssetKey("leaderboard")
MIRROR = dg.AssetKey("public_mirror")
KNOWLEDGE = dg.AssetKey("knowledge_index")
JOB_NAMES = {"eval": "eval_job", "rollup": "rollup_job", "mirror": "mirror_job", "knowledge": "knowledge_job"}
REMEMBERED_KEYS = 500  # run keys kept in the cursor so in-flight requests do not eat each tick's cap


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].storage_id if records else 0


def _eval_request(reason: str, checkpoint: str, skill: str, version: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"stale:{reason}:{checkpoint}|{skill}:{version}",
        job_name=JOB_NAMES["eval"],
        partition_key=dg.MultiPartitionKey({"checkpoint": checkpoint, "skill": skill}),
        tags={"realm/stale": reason},
    )


def missing_evals(
    settings: Settings, checkpoint_keys: Sequence[str], evaluated: set[str], shas: dict[str, str]
) -> list[dg.RunRequest]:
    """Checkpoint partitions x their hero's campaign skills with no eval_scores materialization."""
    requests = []
    for ckpt in checkpoint_keys:
        try:
            hero = CheckpointKey.parse(ckpt).hero
        except ValueError:
            continue  # not a realm checkpoint key: nothing to evaluate it against
        if hero not in settings.heroes:
            continue
        for skill in settings.heroes[hero].campaign.skills:
            if str(dg.MultiPartitionKey({"checkpoint": ckpt, "skill": skill})) not in evaluated:
                # version: the checkpoint's weights (a re-trained key is a new thing to evaluate)
                requests.append(_eval_request("missing_eval", ckpt, skill, shas.get(ckpt, "none")[:12]))
    return requests


def stale_eval_sets(con: duckdb.DuckDBPyConnection) -> list[dg.RunRequest]:
    """(checkpoint, skill) whose newest score per level used another eval set or skill version than now."""
    rows = con.execute(
        """
        WITH latest AS (
            SELECT checkpoint_id, skill, level, eval_set_hash, skill_version FROM eval_scores
            QUALIFY row_number() OVER (
                PARTITION BY checkpoint_id, skill, level
                ORDER BY created_at DESC NULLS LAST, fingerprint DESC) = 1
        )
        -- version: the current eval sets of the stale levels, so a further regeneration is a new run
        SELECT l.checkpoint_id, l.skill,
               md5(string_agg(e.level || ':' || e.eval_set_hash || ':' || coalesce(e.skill_version, ''), ','
                              ORDER BY e.level))
        FROM latest l JOIN eval_sets e USING (skill, level)
        WHERE l.eval_set_hash IS DISTINCT FROM e.eval_set_hash
           OR l.skill_version IS DISTINCT FROM e.skill_version
        GROUP BY l.checkpoint_id, l.skill
        ORDER BY l.checkpoint_id, l.skill
        """
    ).fetchall()
    return [_eval_request("eval_set", ckpt, skill, version[:12]) for ckpt, skill, version in rows]


def _knowledge_request(context: dg.SensorEvaluationContext) -> dg.RunRequest | None:
    repo = context.repository_def
    if repo is None or not repo.asset_graph.has(KNOWLEDGE):
        return None  # no knowledge index in this deployment: the reason does not apply
    parents = repo.asset_graph.get(KNOWLEDGE).parent_keys
    newest = max((_latest_storage_id(context.instance, k) for k in parents), default=0)
    if newest > _latest_storage_id(context.instance, KNOWLEDGE):
        return dg.RunRequest(
            run_key=f"stale:knowledge:knowledge_index:{newest}",
            job_name=JOB_NAMES["knowledge"],
            tags={"realm/stale": "knowledge"},
        )
    return None


def _evaluate(
    context: dg.SensorEvaluationContext, realm: RealmResource, ledger_db: LedgerResource, job_names: set[str]
) -> dg.SensorResult | dg.SkipReason:
    settings = realm.settings
    cap = settings.realm.sensors.max_runs_per_tick
    cursor = json.loads(context.cursor) if context.cursor else {}
    remembered: list[str] = cursor.get("requested", [])
    instance = context.instance
    requests: list[dg.RunRequest] = []
    # Cheap, instance-only reasons first: a rollup or mirror refresh should not wait behind a backfill.
    evals_sid = _latest_storage_id(instance, EVAL_SCORES)
    board_sid = _latest_storage_id(instance, LEADERBOARD)
    if evals_sid > board_sid:
        requests.append(
            dg.RunRequest(
                run_key=f"stale:leaderboard:rollup:{evals_sid}",
                job_name=JOB_NAMES["rollup"],
                tags={"realm/stale": "leaderboard"},
            )
        )
    elif board_sid > _latest_storage_id(instance, MIRROR):
        # only once the board is current: mirroring a board about to be rebuilt is wasted work
        requests.append(
            dg.RunRequest(
                run_key=f"stale:mirror:public_mirror:{board_sid}",
                job_name=JOB_NAMES["mirror"],
                tags={"realm/stale": "mirror"},
            )
        )
    knowledge = _knowledge_request(context)
    if knowledge is not None and knowledge.job_name in job_names:
        requests.append(knowledge)
    elif knowledge is not None:
        context.log.warning(f"knowledge_index is stale but no {knowledge.job_name} targets it")
    try:
        with ledger_db.read(wait=False) as con:
            shas = dict(con.execute("SELECT checkpoint_id, sha256 FROM checkpoints").fetchall())
            requests += stale_eval_sets(con)
    except LedgerBusy as exc:
        return dg.SkipReason(f"ledger busy, will retry next tick: {exc}")
    checkpoint_keys = instance.get_dynamic_partitions("checkpoints")
    evaluated = instance.get_materialized_partitions(EVAL_SCORES)
    requests += missing_evals(settings, checkpoint_keys, evaluated, shas)
    seen = set(remembered)
    # the campaign sensor may have raised the same eval or rollup already: never run it twice at once
    chosen = [r for r in drop_in_flight(instance, requests) if r.run_key not in seen][:cap]
    new_cursor = {"requested": (remembered + [r.run_key for r in chosen])[-REMEMBERED_KEYS:]}
    if not chosen:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"nothing stale ({len(requests)} already requested)"),
            cursor=json.dumps(new_cursor),
        )
    return dg.SensorResult(run_requests=chosen, cursor=json.dumps(new_cursor))


def build_staleness_sensor(
    jobs: Sequence[dg.JobDefinition | UnresolvedAssetJobDefinition], *, name: str = "staleness_sensor"
) -> dg.SensorDefinition:
    """The staleness sensor targeting `jobs` (eval_job, rollup_job, mirror_job, and knowledge_job if any).

    A factory because a multi-job sensor needs the job objects, which live in definitions.py.
    """
    names = {j.name for j in jobs}
    missing = {JOB_NAMES[k] for k in ("eval", "rollup", "mirror")} - names
    if missing:
        raise ValueError(f"{name}: jobs {sorted(missing)} are required")

    @dg.sensor(
        name=name, jobs=list(jobs), minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING
    )
    def staleness_sensor(
        context: dg.SensorEvaluationContext, realm: RealmResource, ledger_db: LedgerResource
    ):
        """Requests evals, rollups, mirror and knowledge-index refreshes for whatever is missing or stale."""
        return _evaluate(context, realm, ledger_db, names)

    return staleness_sensor


staleness_sensor = build_staleness_sensor([eval_job, rollup_job, mirror_job, knowledge_job])
