"""staleness_sensor: each reason yields a request with a versioned run_key (real ledger, real instance)."""

import hashlib
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from realm_pipeline import ledger
from realm_pipeline.defs.campaign.staleness import build_staleness_sensor
from realm_pipeline.defs.partitions import skill_partitions
from realm_pipeline.defs.resources import LedgerResource, RealmResource

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
checkpoint_parts = dg.DynamicPartitionsDefinition(name="checkpoints")
eval_parts = dg.MultiPartitionsDefinition({"checkpoint": checkpoint_parts, "skill": skill_partitions})
CKPT = "tiny.000150"  # hero tiny campaigns on [bin]


@dg.asset(name="eval_scores", partitions_def=eval_parts)
def eval_scores_standin() -> None:
    """Stand-in eval asset."""


@dg.asset(name="curriculum")
def curriculum_standin() -> None:
    """Stand-in curriculum."""


@dg.asset(name="leaderboard")
def leaderboard_standin() -> None:
    """Stand-in leaderboard."""


@dg.asset(name="public_mirror")
def mirror_standin() -> None:
    """Stand-in mirror."""


@dg.asset(name="knowledge_docs")
def knowledge_docs() -> None:
    """Stand-in documents of the knowledge index."""


@dg.asset(name="knowledge_index", deps=[knowledge_docs])
def knowledge_index() -> None:
    """Stand-in knowledge index."""


JOBS = [
    dg.define_asset_job("eval_job", selection=[eval_scores_standin], partitions_def=eval_parts),
    dg.define_asset_job("rollup_job", selection=[curriculum_standin, leaderboard_standin]),
    dg.define_asset_job("mirror_job", selection=[mirror_standin]),
]
KNOWLEDGE_JOB = dg.define_asset_job("knowledge_job", selection=[knowledge_index])


@pytest.fixture
def env(tmp_path: Path):
    """(instance, resources) on a fresh ledger file and a temp Dagster instance."""
    resources = {
        "realm": RealmResource(home=str(tmp_path / "home"), config_dir=str(CONFIGS)),
        "ledger_db": LedgerResource(database=str(tmp_path / "realm.duckdb")),
    }
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance, resources


def tick(instance, resources, cursor=None, *, knowledge: bool = False):
    """One Dagster-validated tick of a staleness sensor over stand-in assets (knowledge index or not)."""
    assets = [eval_scores_standin, curriculum_standin, leaderboard_standin, mirror_standin]
    jobs = JOBS + ([KNOWLEDGE_JOB] if knowledge else [])
    sensor = build_staleness_sensor(jobs)
    defs = dg.Definitions(
        assets=assets + ([knowledge_docs, knowledge_index] if knowledge else []),
        jobs=jobs,
        sensors=[sensor],
        resources=resources,
    )
    with (
        dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, definitions=defs
        ) as ctx,
        dg.partition_loading_context(dynamic_partitions_store=instance),
    ):
        return sensor.evaluate_tick(ctx)


def report(instance: dg.DagsterInstance, key: str, partition: str | None = None) -> int:
    """A runless materialization; returns its storage id."""
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))
    return instance.fetch_materializations(dg.AssetKey(key), limit=1).records[0].storage_id


def keys(result) -> list[str]:
    """The run keys of a tick."""
    return [r.run_key for r in result.run_requests]


def add_checkpoint(instance, resources, sha: str = "ab" * 32) -> None:
    """A checkpoint partition and its ledger row."""
    instance.add_dynamic_partitions("checkpoints", [CKPT])
    with resources["ledger_db"].get_connection() as con:
        ledger.upsert(
            con, "checkpoints", [{"checkpoint_id": CKPT, "hero": "tiny", "step": 150, "sha256": sha}]
        )


def test_nothing_stale_skips_with_cursor(env) -> None:
    instance, resources = env
    result = tick(instance, resources)
    assert result.run_requests == [] and result.skip_message and result.cursor is not None


def test_missing_eval_partition(env) -> None:
    instance, resources = env
    add_checkpoint(instance, resources)
    result = tick(instance, resources)
    assert keys(result) == [f"stale:missing_eval:{CKPT}|bin:{'ab' * 6}"]
    req = result.run_requests[0]
    assert req.job_name == "eval_job"
    assert req.partition_key == str(dg.MultiPartitionKey({"checkpoint": CKPT, "skill": "bin"}))
    # remembered in the cursor: the in-flight request does not come back every tick
    assert tick(instance, resources, result.cursor).run_requests == []
    # once evaluated it is no longer missing (the eval makes the leaderboard stale instead)
    sid = report(instance, "eval_scores", str(dg.MultiPartitionKey({"checkpoint": CKPT, "skill": "bin"})))
    assert keys(tick(instance, resources)) == [f"stale:leaderboard:rollup:{sid}"]


def test_eval_set_changed(env) -> None:
    instance, resources = env
    add_checkpoint(instance, resources)
    report(instance, "eval_scores", str(dg.MultiPartitionKey({"checkpoint": CKPT, "skill": "bin"})))
    report(instance, "leaderboard")
    report(instance, "public_mirror")
    with resources["ledger_db"].get_connection() as con:
        ledger.upsert(
            con,
            "eval_sets",
            [{"skill": "bin", "level": 1, "n_items": 50, "eval_set_hash": "new" * 8, "skill_version": "2"}],
        )
        ledger.upsert(
            con,
            "eval_scores",
            [
                {
                    "checkpoint_id": CKPT,
                    "skill": "bin",
                    "level": 1,
                    "fingerprint": "fp",
                    "eval_set_hash": "old" * 8,
                    "skill_version": "2",
                    "created_at": datetime(2026, 1, 1),
                }
            ],
        )
    result = tick(instance, resources)
    version = hashlib.md5(f"1:{'new' * 8}:2".encode()).hexdigest()[:12]
    assert keys(result) == [f"stale:eval_set:{CKPT}|bin:{version}"]
    assert result.run_requests[0].job_name == "eval_job"
    # re-evaluated on the current eval set: no longer stale
    with resources["ledger_db"].get_connection() as con:
        ledger.upsert(
            con,
            "eval_scores",
            [
                {
                    "checkpoint_id": CKPT,
                    "skill": "bin",
                    "level": 1,
                    "fingerprint": "fp2",
                    "eval_set_hash": "new" * 8,
                    "skill_version": "2",
                    "created_at": datetime(2026, 1, 2),
                }
            ],
        )
    assert tick(instance, resources).run_requests == []


def test_leaderboard_then_mirror(env) -> None:
    instance, resources = env
    add_checkpoint(instance, resources)
    report(instance, "leaderboard")
    eval_sid = report(
        instance, "eval_scores", str(dg.MultiPartitionKey({"checkpoint": CKPT, "skill": "bin"}))
    )
    result = tick(instance, resources)
    assert keys(result) == [f"stale:leaderboard:rollup:{eval_sid}"]
    assert result.run_requests[0].job_name == "rollup_job"
    board_sid = report(instance, "leaderboard")
    result = tick(instance, resources, result.cursor)
    assert keys(result) == [f"stale:mirror:public_mirror:{board_sid}"]
    assert result.run_requests[0].job_name == "mirror_job"
    report(instance, "public_mirror")
    assert tick(instance, resources, result.cursor).run_requests == []


def test_knowledge_index_only_when_it_exists(env) -> None:
    instance, resources = env
    report(instance, "knowledge_index")
    docs_sid = report(instance, "knowledge_docs")
    assert tick(instance, resources).run_requests == []  # no knowledge_index in this repository
    result = tick(instance, resources, knowledge=True)
    assert keys(result) == [f"stale:knowledge:knowledge_index:{docs_sid}"]
    assert result.run_requests[0].job_name == "knowledge_job"


def test_cap_per_tick(env) -> None:
    instance, resources = env
    keys_ = [f"tiny.{s:06d}" for s in range(150, 150 * 8, 150)]
    instance.add_dynamic_partitions("checkpoints", keys_)
    first = tick(instance, resources)
    second = tick(instance, resources, first.cursor)
    assert len(first.run_requests) == 4 and len(second.run_requests) == 3
    assert len(set(keys(first)) | set(keys(second))) == 7
    assert len(json.loads(second.cursor)["requested"]) == 7


HOLD = (
    "import sys, time, duckdb; con = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(30)"
)


def test_busy_ledger_skips(env) -> None:
    instance, resources = env
    add_checkpoint(instance, resources)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, resources["ledger_db"].database], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = tick(instance, resources, '{"requested": []}')
        assert result.run_requests == [] and "busy" in result.skip_message
        assert result.cursor in (None, '{"requested": []}')
    finally:
        holder.kill()
        holder.wait()
