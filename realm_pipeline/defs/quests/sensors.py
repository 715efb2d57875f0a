"""`quest_inbox_sensor`: a `quests_job` run per valid file in $REALM_HOME/inbox; bad files go to rejected/."""

import json

import dagster as dg

from realm_pipeline import quests as q
from realm_pipeline.defs.resources import LedgerBusy, LedgerResource, RealmResource

QUESTS_JOB = "quests_job"
REMEMBERED_KEYS = 200  # recent run keys: a file whose run is in flight should not take a slot every tick


def quests_run_config(path: str) -> dict:
    """Run config registering one file."""
    return {"ops": {"quests": {"config": {"files": [path]}}}}


@dg.sensor(
    name="quest_inbox_sensor",
    job_name=QUESTS_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def quest_inbox_sensor(context: dg.SensorEvaluationContext, realm: RealmResource, ledger_db: LedgerResource):
    """Validates every inbox/*.jsonl: one run (run_key = sha256) per good file; bad ones rejected."""
    cap = realm.settings.realm.sensors.max_runs_per_tick
    inbox = q.inbox_dir(realm.home)
    files = sorted(inbox.glob("*.jsonl")) if inbox.is_dir() else []
    if not files:
        return dg.SkipReason(f"no *.jsonl in {inbox}")
    try:
        with ledger_db.read(wait=False) as con:
            known = q.registered_sha256s(con)
    except LedgerBusy as exc:
        return dg.SkipReason(f"ledger busy, will retry next tick: {exc}")
    remembered: list[str] = json.loads(context.cursor)["requested"] if context.cursor else []
    seen = set(remembered)
    eval_prompts = q.eval_prompt_index(realm.settings)  # cached per process after the first tick
    requests: list[dg.RunRequest] = []
    for path in files:
        try:
            quest = q.validate_quest_file(path, registered_sha256s=known, eval_prompts=eval_prompts)
        except q.QuestRejected as exc:
            report = q.reject(path, realm.home, exc)
            context.log.warning(f"quest {path.name} rejected: {exc} (report {report})")
            continue
        if quest.sha256 in seen or len(requests) >= cap:
            continue  # in flight already, or over this tick's cap: the next tick sees the file again
        seen.add(quest.sha256)
        requests.append(
            dg.RunRequest(
                run_key=quest.sha256,
                job_name=QUESTS_JOB,
                run_config=quests_run_config(str(path)),
                tags={"realm/quest": path.name},
            )
        )
    cursor = json.dumps({"requested": (remembered + [r.run_key for r in requests])[-REMEMBERED_KEYS:]})
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new valid quest files"), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
