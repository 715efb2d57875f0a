"""Runs whose worker process is gone: noticed, reported failed through the instance, and retried.

Dagster's run monitoring (dagster.yaml) catches runs that never start and, with a launcher that can check
its workers, runs whose worker died. The default launcher cannot, and a run `realm campaign` executes in
its own process has no daemon watching it at all: a `kill -9` leaves it STARTED for ever, holding the
`gpu` slot, and the hero waits on it for ever. So every run realm starts records the worker's pid (and
the process's start time, against pid reuse) in a tag, and `realm campaign` / `realm status` (and, under
the daemon alone, `campaign_sensor`'s tick) report a run whose worker is gone as failed. A run realm
executed in-process is then acknowledged for retry at once (nobody else can re-execute it); a launcher's
run is relaunched by the instance's run_retries. Either way the next attempt resumes from its last save.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

from realm_pipeline.defs.campaign.decision import ACKNOWLEDGED_TAG, WILL_RETRY_TAG

WORKER_TAG = "realm/worker"  # "<host>:<pid>:<start time>" of the process executing the run
IN_PROCESS_TAG = "realm/in_process"  # "true": executed inside a `realm` command, not by a run launcher
WORKER_GONE_TAG = "realm/worker_gone"  # set when realm reported the run failed because its worker died
LIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of stat, counted after the command's ")"


def worker_id(pid: int | None = None) -> str:
    """This process's worker tag value."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def worker_alive(tag: str) -> bool | None:
    """Whether the process a worker tag names still runs; None when it ran on another host."""
    host, _, rest = tag.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return not started or _start_time(pid) in ("", started)  # a reused pid is another process


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Report as failed every starting or started run whose worker on this host is gone; one line each."""
    lines = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=LIVE), limit=1000):
        tag = run.tags.get(WORKER_TAG)
        if tag is None or worker_alive(tag) is not False:
            continue
        pid = tag.split(":")[1]
        partition = run.tags.get("dagster/partition")
        what = f"{run.job_name} {partition}" if partition else run.job_name
        message = f"{what}: its worker (pid {pid}) is gone (killed, or its machine restarted)"
        instance.report_run_failed(run, message=message)
        # the slot of the `gpu` pool it held would block every later GPU step
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        tags = {WORKER_GONE_TAG: "true"}
        if run.tags.get(IN_PROCESS_TAG) == "true":
            # no daemon can re-execute an in-process run: the next decision retries it under a new key
            tags.update({ACKNOWLEDGED_TAG: "true", WILL_RETRY_TAG: "false"})
        instance.add_run_tags(run.run_id, tags)
        lines.append(f"{message}; marked failed, the next attempt resumes from its last save")
    return lines


STOPPED_TAG = "realm/stopped"  # the signal (SIGINT, SIGTERM) that stopped a run inside a `realm` command


def acknowledge_stopped(instance: dg.DagsterInstance, run_id: str, signal_name: str) -> None:
    """Tag a run a stop signal ended inside a `realm` command for retry: nobody else can re-execute an
    in-process run, and the person who stopped it goes on by running `realm campaign` again."""
    instance.add_run_tags(
        run_id, {STOPPED_TAG: signal_name, ACKNOWLEDGED_TAG: "true", WILL_RETRY_TAG: "false"}
    )
