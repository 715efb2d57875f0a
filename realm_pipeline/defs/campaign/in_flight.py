"""What is already queued or running, so that a sensor never raises work that a run is already doing.

Runs are matched by the assets (and partition) they materialize, not by job name: staleness_sensor's
runs belong to Dagster's implicit asset job, the campaign sensor's to named jobs, and either must see
the other's. Public API only: instance.get_runs with a RunsFilter on statuses.
"""

import dagster as dg

from realm_pipeline.defs.campaign.jobs import JOB_ASSETS

ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
PARTITION_TAG = "dagster/partition"
WHOLE = None  # a run with no partition tag (an unpartitioned asset, or all of it)


def _targets(job_name: str, assets: frozenset[dg.AssetKey] | None) -> set[str]:
    """What a run or request works on: its assets (when known), else its job."""
    assets = assets or JOB_ASSETS.get(job_name)
    return {key.to_user_string() for key in assets} if assets else {f"job:{job_name}"}


def busy_targets(instance: dg.DagsterInstance) -> set[tuple[str, str | None]]:
    """(target, partition) pairs a queued or running run works on, and (target, None) for any such run."""
    busy: set[tuple[str, str | None]] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE), limit=1000):
        partition = run.tags.get(PARTITION_TAG)
        for target in _targets(run.job_name, run.asset_selection):
            busy.add((target, partition))
            busy.add((target, WHOLE))  # a target counts as busy as a whole while any of its runs is
    return busy


def drop_in_flight(instance: dg.DagsterInstance, requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """The requests none of whose assets (for their partition) a queued or running run already covers."""
    busy = busy_targets(instance)
    kept = []
    for request in requests:
        partition = str(request.partition_key) if request.partition_key is not None else WHOLE
        assets = frozenset(request.asset_selection) if request.asset_selection else None
        if not any((target, partition) in busy for target in _targets(request.job_name or "", assets)):
            kept.append(request)
    return kept
