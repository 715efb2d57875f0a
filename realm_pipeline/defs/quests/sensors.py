"""`quest_inbox_sensor`: a `quests_job` run per file in $REALM_HOME/inbox; it only reads and requests."""

import json

import dagster as dg

from realm_pipeline import quests as q
from realm_pipeline.defs.resources import RealmResource

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
    description="One quests run per JSONL file dropped into $REALM_HOME/inbox/ (run key = its sha256).",
)
def quest_inbox_sensor(context: dg.SensorEvaluationContext, realm: RealmResource):
    """One `quests` run per inbox/*.jsonl entry (run_key = sha256, name and mtime), capped per tick.

    Any entry gets a run, a directory or a symlink too, and a copy of a registered or rejected file (the
    mtime tells the drops apart): the asset files every one under accepted/ or rejected/ with a report.

    Validation, registration and every move (to accepted/ or rejected/, with the reason) happen in the
    `quests` asset, so evaluating this sensor (as the UI's preview does) changes nothing.
    """
    cap = realm.settings.realm.sensors.max_runs_per_tick
    files = q.inbox_entries(realm.home)
    if not files:
        return dg.SkipReason(f"no *.jsonl in {q.inbox_dir(realm.home)}")
    remembered: list[str] = json.loads(context.cursor)["requested"] if context.cursor else []
    seen = set(remembered)
    requests: list[dg.RunRequest] = []
    for path in files:
        try:
            run_key = q.entry_run_key(path)
        except OSError as exc:  # gone or unreadable between listing and reading: the asset reports it
            context.log.warning(f"{path.name}: {exc.strerror}; retried next tick")
            continue
        if run_key in seen or len(requests) >= cap:
            continue  # in flight already, or over this tick's cap: the next tick sees the file again
        seen.add(run_key)
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                job_name=QUESTS_JOB,
                run_config=quests_run_config(str(path)),
                tags={"realm/quest": path.name},
            )
        )
    cursor = json.dumps({"requested": (remembered + [r.run_key for r in requests])[-REMEMBERED_KEYS:]})
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new quest files"), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
