"""No run fails on a DuckDB lock: a step that waits past the limit is retried, and the run succeeds."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg

from realm_pipeline.defs.evaluation.eval_sets import eval_sets
from realm_pipeline.defs.resources import LedgerBusy, LedgerResource, RealmResource

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
# A second process holds the ledger's write lock until the release file appears.
HOLD = (
    "import sys, time, duckdb, pathlib; con = duckdb.connect(sys.argv[1]); print('held', flush=True)\n"
    "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.05)\n"
    "con.close()"
)


def _retries(instance: dg.DagsterInstance) -> int:
    return len(
        instance.get_event_records(dg.EventRecordsFilter(event_type=dg.DagsterEventType.STEP_UP_FOR_RETRY))
    )


def test_a_locked_ledger_retries_the_step_and_the_run_succeeds(tmp_path: Path) -> None:
    db = LedgerResource(
        database=str(tmp_path / "realm.duckdb"), lock_timeout_s=0.2, lock_retries=50, lock_retry_wait_s=0.2
    )
    with db.get_connection():
        pass
    release = tmp_path / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, db.database, str(release)], stdout=subprocess.PIPE, text=True
    )
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:

        def release_after_first_retry() -> None:
            # The holder lets go only once the step has really failed on the lock and been put up for retry.
            while holder.poll() is None and _retries(instance) == 0:
                threading.Event().wait(0.05)
            release.touch()

        try:
            assert holder.stdout.readline().strip() == "held"
            releaser = threading.Thread(target=release_after_first_retry)
            releaser.start()
            result = dg.materialize(
                [eval_sets],
                instance=instance,
                partition_key="attn_count",
                resources={
                    "realm": RealmResource(home=str(tmp_path), config_dir=str(CONFIGS)),
                    "ledger_db": db,
                },
                raise_on_error=False,
            )
            releaser.join(60)
        finally:
            release.touch()
            holder.wait(30)
        assert result.success
        assert _retries(instance) >= 1
        failures = instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.STEP_FAILURE)
        )
        assert failures == []
    with db.read(wait=False) as con:
        assert con.execute("SELECT count(*) FROM eval_sets WHERE skill = 'attn_count'").fetchone()[0] > 0


def test_lock_error_is_a_ledger_busy_for_sensors(tmp_path: Path) -> None:
    db = LedgerResource(database=str(tmp_path / "realm.duckdb"), lock_timeout_s=0.0)
    with db.get_connection():
        pass
    release = tmp_path / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, db.database, str(release)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        for opener in (db.get_connection, db.read):
            try:
                with opener():
                    raise AssertionError("the file is locked: opening it must fail")
            except LedgerBusy as exc:
                assert isinstance(exc, dg.RetryRequested) and "is busy" in str(exc)
    finally:
        release.touch()
        holder.wait(30)
