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


def _request_assets(request: dg.RunRequest) -> frozenset[dg.AssetKey]:
    if request.asset_selection:
        return frozenset(request.asset_selection)
    if request.job_name not in JOB_ASSETS:
        raise ValueError(f"run request for job {request.job_name!r}: its assets are not in JOB_ASSETS")
    return JOB_ASSETS[request.job_name]


def busy_assets(instance: dg.DagsterInstance) -> set[tuple[dg.AssetKey, str | None]]:
    """(asset, partition) pairs a queued or running run will materialize; (asset, None) for any such run."""
    busy: set[tuple[dg.AssetKey, str | None]] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE), limit=1000):
        assets = run.asset_selection or JOB_ASSETS.get(run.job_name, frozenset())
        partition = run.tags.get(PARTITION_TAG)
        for key in assets:
            busy.add((key, partition))
            busy.add((key, WHOLE))  # the asset counts as busy while any of its runs is
    return busy


def drop_in_flight(instance: dg.DagsterInstance, requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """The requests none of whose assets (for their partition) a queued or running run already covers."""
    busy = busy_assets(instance)
    kept = []
    for request in requests:
        partition = str(request.partition_key) if request.partition_key is not None else WHOLE
        if not any((key, partition) in busy for key in _request_assets(request)):
            kept.append(request)
    return kept
