"""What is already queued or running, so that two sensors never raise the same work twice."""

import dagster as dg

ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def drop_in_flight(instance: dg.DagsterInstance, requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """The requests whose job (and partition) has no run queued or in progress."""
    jobs = {r.job_name for r in requests}
    active: set[tuple[str | None, str | None]] = set()
    for job in jobs:
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=job, statuses=ACTIVE), limit=1000):
            active.add((job, run.tags.get("dagster/partition")))
            active.add((job, None))  # an unpartitioned job counts as busy while any of its runs is
    return [
        r
        for r in requests
        if (r.job_name, str(r.partition_key) if r.partition_key is not None else None) not in active
    ]
