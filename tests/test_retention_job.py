"""Retention end to end: the job and `realm retain --apply` keep what queued or running work needs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from realm_pipeline import ledger
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.defs.training.retention import retention_job
from realm_pipeline.training.retention import CheckpointInfo, plan_retention

REPO = Path(__file__).resolve().parent.parent
STEPS = [150 * i for i in range(1, 9)]  # tiny.000150 ... tiny.001200
IDS = [f"tiny.{s:06d}" for s in STEPS]


def _campaign(home: Path) -> LedgerResource:
    """Eight checkpoints on disk and in the ledger, a champion, leaderboard rows; returns the ledger."""
    db = LedgerResource(database=str(home / "realm.duckdb"))
    now = datetime(2026, 1, 1)
    rows = []
    for i, (cid, step) in enumerate(zip(IDS, STEPS, strict=True)):
        path = home / "checkpoints" / "tiny" / cid
        path.mkdir(parents=True)
        (path / "model.safetensors").write_bytes(b"w" * 16)
        rows.append(
            {
                "checkpoint_id": cid,
                "hero": "tiny",
                "step": step,
                "segment": i + 1,
                "path": str(path),
                "created_at": now,
            }
        )
    board = [  # bench, lane, rank, accuracy
        ("bin@1", IDS[5], 1, 0.9),
        ("bin@1", IDS[6], 2, 0.5),
        ("bin@2", IDS[6], 1, 0.4),
    ]
    with db.get_connection() as con:
        ledger.upsert(con, "checkpoints", rows)
        ledger.upsert(
            con,
            "leaderboard_rows",
            [
                {
                    "bench": b,
                    "lane": lane,
                    "hero": "tiny",
                    "rank": r,
                    "accuracy": a,
                    "champion": False,
                    "built_at": now,
                }
                for b, lane, r, a in board
            ],
        )
        ledger.upsert(con, "hero_state", [{"hero": "tiny", "champion": IDS[1], "updated_at": now}])
    return db


def _queue_work(instance: dg.DagsterInstance) -> None:
    # A re-run of tiny.000750 (IDS[4]) is starting: its parent IDS[3] must survive, and so must it.
    # (A QUEUED run needs a code-location origin that a test instance has not; both count as unfinished.)
    create_run_for_test(
        instance,
        job_name="train_job",
        status=dg.DagsterRunStatus.STARTING,
        tags={"dagster/partition": IDS[4]},
    )
    # An eval of IDS[2] is running.
    create_run_for_test(
        instance,
        job_name="eval_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": f"{IDS[2]}|bin", "dagster/partition/checkpoint": IDS[2]},
    )
    # A finished train run protects nothing.
    create_run_for_test(
        instance, job_name="train_job", status=dg.DagsterRunStatus.SUCCESS, tags={"dagster/partition": IDS[0]}
    )


def _state(db: LedgerResource) -> dict[str, tuple[str | None, bool]]:
    with db.read() as con:
        rows = con.execute("SELECT checkpoint_id, path, deleted_at IS NOT NULL FROM checkpoints").fetchall()
    return {cid: (path, deleted) for cid, path, deleted in rows}


# IDS[0]: nothing needs it. IDS[1] champion, IDS[2] eval running, IDS[3] parent of a queued segment,
# IDS[4] being trained again, IDS[5] and IDS[6] bench leaders, IDS[7] newest.
EXPECTED_DELETED = {IDS[0]}


def test_retention_job_keeps_what_queued_and_running_work_needs(realm_env: Path) -> None:
    db = _campaign(realm_env)
    resources = {"realm": RealmResource(home=str(realm_env)), "ledger_db": db}
    with dg.DagsterInstance.get() as instance:
        _queue_work(instance)
        config = {"keep_newest": 1, "keep_best": 0, "dry_run": True}
        dry = retention_job.execute_in_process(
            instance=instance,
            resources=resources,
            run_config={"ops": {"apply_checkpoint_retention": {"config": config}}},
        )
        assert dry.output_for_node("apply_checkpoint_retention") == 1
        assert all(not deleted and Path(path).is_dir() for path, deleted in _state(db).values())

        config["dry_run"] = False
        real = retention_job.execute_in_process(
            instance=instance,
            resources=resources,
            run_config={"ops": {"apply_checkpoint_retention": {"config": config}}},
        )
        assert real.output_for_node("apply_checkpoint_retention") == 1
        again = retention_job.execute_in_process(
            instance=instance,
            resources=resources,
            run_config={"ops": {"apply_checkpoint_retention": {"config": config}}},
        )
        assert again.output_for_node("apply_checkpoint_retention") == 0
    state = _state(db)
    assert set(state) == set(IDS)  # every ledger row is still there
    for cid, (path, deleted) in state.items():
        on_disk = (realm_env / "checkpoints" / "tiny" / cid).is_dir()
        if cid in EXPECTED_DELETED:
            assert deleted and path is None and not on_disk  # recorded as deleted: no dangling path
        else:
            assert not deleted and path is not None and on_disk, cid


def test_retention_never_deletes_a_level_up_or_the_champion(realm_env: Path) -> None:
    db = _campaign(realm_env)  # IDS[1] is the champion
    with db.get_connection() as con:  # IDS[0], which nothing else needs, earned bin L1
        ledger.upsert(
            con,
            "level_ups",
            [
                {
                    "hero": "tiny",
                    "skill": "bin",
                    "level": 1,
                    "checkpoint_id": IDS[0],
                    "step": STEPS[0],
                    "accuracy": 0.9,
                    "protocol": "p",
                    "earned_at": datetime(2026, 1, 1),
                }
            ],
        )
    resources = {"realm": RealmResource(home=str(realm_env)), "ledger_db": db}
    config = {"keep_newest": 1, "keep_best": 0, "dry_run": False}
    with (
        dg.DagsterInstance.get() as instance
    ):  # no run in flight: only the newest, champion, level-up, leaders
        result = retention_job.execute_in_process(
            instance=instance,
            resources=resources,
            run_config={"ops": {"apply_checkpoint_retention": {"config": config}}},
        )
    assert result.success
    kept = {cid for cid, (path, deleted) in _state(db).items() if not deleted and Path(path).is_dir()}
    assert kept == {IDS[0], IDS[1], IDS[5], IDS[6], IDS[7]}
    plan = plan_retention(
        [CheckpointInfo(c, "tiny", s) for c, s in zip(IDS, STEPS, strict=True)],
        keep_newest=0,
        keep_best=0,
        referenced=set(),
        champion=IDS[1],
        level_ups={IDS[0]: "bin L1"},
    )
    assert plan.keep == IDS[:2]
    assert plan.reasons[IDS[0]] == "keep: level-up (bin L1)" and plan.reasons[IDS[1]] == "keep: champion"


def test_realm_retain_apply_end_to_end(realm_env: Path) -> None:
    db = _campaign(realm_env)
    with dg.DagsterInstance.get() as instance:
        _queue_work(instance)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cli = [sys.executable, "-c", "from realm_pipeline.cli import main; main()", "retain"]
    bad = subprocess.run([*cli, "--keep-newest", "0", "--apply"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--keep-newest" in bad.stderr
    assert all(not deleted for _, deleted in _state(db).values())  # a refused command changed nothing
    done = subprocess.run(
        [*cli, "--keep-newest", "1", "--keep-best", "0", "--apply"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "deleted 1" in done.stdout
    deleted = {cid for cid, (_, gone) in _state(db).items() if gone}
    assert deleted == EXPECTED_DELETED
    assert sorted(p.name for p in (realm_env / "checkpoints" / "tiny").iterdir()) == IDS[1:]


def test_best_is_judged_per_bench_like_with_like() -> None:
    # b scores higher on average only because it was measured on an easier bench; per bench, a wins L3.
    infos = [
        CheckpointInfo("a", "h", 1, scores={"bin@3": 0.6}),
        CheckpointInfo("b", "h", 2, scores={"bin@1": 0.99, "bin@3": 0.5}),
        CheckpointInfo("c", "h", 3, scores={"bin@1": 0.98}),
        CheckpointInfo("d", "h", 4),
    ]
    plan = plan_retention(infos, keep_newest=1, keep_best=1, referenced=set(), champion=None)
    assert set(plan.keep) == {"a", "b", "d"} and plan.delete == ["c"]
    assert "best #1 of h on bin@3" in plan.reasons["a"] and "on bin@1" in plan.reasons["b"]


@pytest.mark.parametrize(
    ("training", "evaluating", "kept"),
    [
        ({"h.000004"}, set(), {"h.000003"}),  # the parent of the next segment, not yet in the ledger
        ({"h.000002"}, set(), {"h.000001", "h.000002"}),  # a re-run: its parent and itself
        (set(), {"h.000001"}, {"h.000001"}),
    ],
)
def test_plan_keeps_parents_of_queued_segments(training: set, evaluating: set, kept: set) -> None:
    infos = [CheckpointInfo(f"h.{s:06d}", "h", s) for s in (1, 2, 3)]
    plan = plan_retention(
        infos,
        keep_newest=0,
        keep_best=0,
        referenced=set(),
        champion=None,
        training=training,
        evaluating=evaluating,
    )
    assert set(plan.keep) == kept


def test_plan_refuses_a_malformed_in_flight_key() -> None:
    with pytest.raises(ValueError, match="not '<hero>.<step>'"):
        plan_retention([], keep_newest=1, keep_best=0, referenced=set(), champion=None, training={"oops"})
