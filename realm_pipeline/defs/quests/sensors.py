"""`quest_inbox_sensor`: a `quests_job` run per file in $REALM_HOME/inbox; it only reads and requests."""

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
    description="One quests run per JSONL file dropped into $REALM_HOME/inbox/ (run key = its sha256).",
)
def quest_inbox_sensor(context: dg.SensorEvaluationContext, realm: RealmResource, ledger_db: LedgerResource):
    """One `quests` run per inbox/*.jsonl (run_key = the file's sha256), capped per tick.

    A copy of content already registered gets a run too (keyed by its name and mtime as well, since its
    sha256 was spent), which files it under rejected/ as a duplicate.

    Validation, registration and every move (to accepted/ or rejected/, with the reason) happen in the
    `quests` asset, so evaluating this sensor (as the UI's preview does) changes nothing.
    """
    cap = realm.settings.realm.sensors.max_runs_per_tick
    inbox = q.inbox_dir(realm.home)
    files = sorted(inbox.glob("*.jsonl")) if inbox.is_dir() else []
    if not files:
        return dg.SkipReason(f"no *.jsonl in {inbox}")
    try:
        with ledger_db.read(wait=False) as con:
            registered = q.registered_sha256s(con)
    except LedgerBusy as exc:
        return dg.SkipReason(f"ledger busy, will retry next tick: {exc}")
    remembered: list[str] = json.loads(context.cursor)["requested"] if context.cursor else []
    seen = set(remembered)
    requests: list[dg.RunRequest] = []
    for path in files:
        sha = q.file_sha256(path)
        run_key = f"{sha}:{path.name}:{path.stat().st_mtime_ns}" if sha in registered else sha
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
