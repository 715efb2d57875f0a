"""`leaderboard_regression_sensor`: a confirming eval re-run for every (bench, lane) that dropped past tau."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
import duckdb

from realm_pipeline import ledger
from realm_pipeline.defs.resources import LedgerBusy, LedgerResource, RealmResource
from realm_pipeline.evaluation.regressions import (
    Pending,
    baseline_version,
    find_drops,
    rebaseline,
    record_confirmed_regressions,
    split_bench,
)

LEADERBOARD = dg.AssetKey("leaderboard")
EVAL_JOB = "eval_job"


@contextmanager
def short_write(ledger_db: LedgerResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection that raises LedgerBusy at once instead of waiting out another writer."""
    try:
        # A sensor tick must stay fast: never wait the resource's full lock timeout.
        with ledger_db.model_copy(update={"lock_timeout_s": 0.0}).get_connection() as con:
            yield con
    except duckdb.IOException as exc:
        if ledger.is_lock_error(exc):
            raise LedgerBusy(f"ledger {ledger_db.database} is busy: {exc}") from exc
        raise


def _load_cursor(raw: str | None) -> dict:
    cursor = json.loads(raw) if raw else {}
    return {
        "storage_id": cursor.get("storage_id", 0),
        "pending": cursor.get("pending", []),
        "deferred": cursor.get("deferred", []),
    }


def confirming_request(bench: str, lane: str, version: int) -> dg.RunRequest:
    """The confirming eval re-run of lane x bench's skill, deduplicated per baseline version."""
    skill, _ = split_bench(bench)
    return dg.RunRequest(
        run_key=f"regress:{bench}:{lane}:v{version}",
        job_name=EVAL_JOB,
        partition_key=dg.MultiPartitionKey({"checkpoint": lane, "skill": skill}),
        tags={"realm/confirming": "true", "realm/bench": bench},
    )


@dg.sensor(
    name="leaderboard_regression_sensor",
    job_name=EVAL_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def leaderboard_regression_sensor(
    context: dg.SensorEvaluationContext, realm: RealmResource, ledger_db: LedgerResource
):
    """On each new leaderboard: confirm earlier drops, request re-runs of new ones, re-baseline."""
    settings = realm.settings
    cap = settings.realm.sensors.max_runs_per_tick
    tau = settings.realm.regression.tau
    cursor = _load_cursor(context.cursor)
    records = context.instance.fetch_materializations(LEADERBOARD, limit=1).records
    latest = records[0].storage_id if records else 0
    # Requests over the previous tick's cap wait in the cursor: drops are found once, before re-baselining.
    deferred: list[list] = cursor["deferred"]
    pending = [Pending(**p) for p in cursor["pending"]]
    if latest <= cursor["storage_id"]:
        if not deferred:
            return dg.SkipReason(
                f"no new leaderboard materialization since storage id {cursor['storage_id']}"
            )
        new_cursor = {**cursor, "deferred": deferred[cap:]}
        return dg.SensorResult(
            run_requests=[confirming_request(*d) for d in deferred[:cap]], cursor=json.dumps(new_cursor)
        )
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        with short_write(ledger_db) as con:
            confirmed, pending = record_confirmed_regressions(con, tau, pending, now=now)
            first_scan = baseline_version(con) is None
            drops = [] if first_scan else find_drops(con, tau)
            version = rebaseline(con)
    except LedgerBusy as exc:
        return dg.SkipReason(f"ledger busy, will retry next tick: {exc}")
    for p in confirmed:
        context.log.warning(f"confirmed regression: {p.lane} on {p.bench} (baseline {p.baseline:.3f})")
    # Every drop gets a run (its key dedups per baseline version); one awaiting confirmation keeps its
    # original, higher pre-drop baseline as the reference.
    waiting = {(p.bench, p.lane) for p in pending}
    pending += [
        Pending(d.bench, d.lane, d.baseline, now.isoformat())
        for d in drops
        if (d.bench, d.lane) not in waiting
    ]
    queue = deferred + [[d.bench, d.lane, d.version] for d in drops]
    new_cursor = {
        "storage_id": latest,
        "baseline_version": version,
        "pending": [p.to_json() for p in pending],
        "deferred": queue[cap:],
    }
    context.log.info(
        f"leaderboard {latest}: {'baseline set' if first_scan else f'{len(drops)} drop(s) past tau={tau}'}, "
        f"baseline now v{version}, {len(pending)} awaiting confirmation"
    )
    return dg.SensorResult(
        run_requests=[confirming_request(*d) for d in queue[:cap]], cursor=json.dumps(new_cursor)
    )
