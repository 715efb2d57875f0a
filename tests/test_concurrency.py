"""Concurrency with real runs: GPU steps never overlap; concurrent ledger writers never fail on a lock.
Its subject is the runs, not training: the simulated hero, on two skills (two evals at once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from sim_hero import ckpt, use_sim_hero

from realm_pipeline.ledger import connect

# Each run is its own process, as under the daemon's run launcher; all share one instance and ledger.
RUNNER = """
import json, sys
import dagster as dg
from realm_pipeline.definitions import build_defs
job, key, config = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
if isinstance(key, dict):
    key = dg.MultiPartitionKey(key)
with dg.DagsterInstance.get() as instance:
    result = build_defs().resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=key, run_config=config or None, raise_on_error=False
    )
sys.exit(0 if result.success else 1)
"""


def _launch(job: str, key: object = None, config: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, job, json.dumps(key), json.dumps(config or {})],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(procs: list[subprocess.Popen]) -> list[str]:
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-4000:]
    return outputs


def _gpu_step_windows(instance: dg.DagsterInstance) -> list[tuple[float, float, str]]:
    windows = []
    for run in instance.get_runs():
        starts, ends = {}, {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or event.step_key not in ("checkpoints", "eval_scores", "knowledge_index"):
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                ends[event.step_key] = record.timestamp
        windows += [(starts[k], ends[k], f"{run.job_name}:{k}") for k in starts if k in ends]
    return sorted(windows)


@pytest.mark.slow  # nine run processes, five of them at once (no training): minutes on a loaded 2-core box
def test_gpu_runs_never_overlap_and_ledger_writers_all_succeed(
    realm_env: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hero_yaml = use_sim_hero(config_dir)
    hero = yaml.safe_load(hero_yaml.read_text())
    hero["campaign"]["skills"] = ["bin", "seq_reverse"]
    hero_yaml.write_text(yaml.safe_dump(hero, sort_keys=False))
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))  # the runs' processes inherit it
    first, second = ckpt(1), ckpt(2)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", [first, second])
    _wait([_launch("eval_sets_job", "bin"), _launch("eval_sets_job", "seq_reverse")])
    _wait([_launch("train_job", first)])

    quest = realm_env / "inbox" / "drill.jsonl"
    quest.write_text(
        json.dumps({"messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]})
        + "\n"
    )
    # three GPU runs at once (the next segment and two evals), plus runs that write the ledger meanwhile
    _wait(
        [
            _launch("train_job", second),
            _launch("eval_job", {"checkpoint": first, "skill": "bin"}),
            _launch("eval_job", {"checkpoint": first, "skill": "seq_reverse"}),
            _launch("rollup_job", None, {"ops": {"public_mirror": {"config": {"allow_empty": True}}}}),
            _launch("quests_job", None, {"ops": {"quests": {"config": {"files": [str(quest)]}}}}),
        ]
    )

    with dg.DagsterInstance.get() as instance:
        windows = _gpu_step_windows(instance)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in instance.get_runs())
    assert len(windows) == 4, windows  # two training steps, two eval steps
    for (_, end, a), (start, _, b) in zip(windows, windows[1:], strict=False):
        assert end <= start, f"{a} and {b} overlapped on the gpu pool"
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        trained = con.execute("SELECT checkpoint_id, parent_id FROM checkpoints ORDER BY step").fetchall()
    assert trained == [(first, None), (second, first)]
