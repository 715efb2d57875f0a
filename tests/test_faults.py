"""The fault table: a killed campaign, a full disk, a poisoned inbox, bad configs and user mistakes.

Each case asserts the one line a person reads, that no ledger row changed, and that the campaign goes
on where it should.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from tiny_hero import set_launch

REPO = Path(__file__).resolve().parent.parent
CAMPAIGN = "from realm_pipeline.cli import main; main()"


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "REALM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # a shared 2-core box
    return env


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _rows(home: Path) -> list[tuple]:
    with duckdb.connect(str(home / "realm.duckdb"), read_only=True) as con:
        return con.execute("SELECT checkpoint_id, sha256, train_loss FROM checkpoints ORDER BY 1").fetchall()


@pytest.mark.slow  # minutes of real training on 2 cores: CI runs it (make test-slow)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the segment")
@pytest.mark.parametrize("launch", ["in_process", "subprocess"])
def test_kill_9_mid_segment_then_rerun_resumes_from_the_save(
    tmp_path: Path, config_dir: Path, launch: str
) -> None:
    """Fault 1: `kill -9` of `realm campaign` mid-segment, with the segment trained inside the run (the
    tiny hero's `launch: in_process`) or in its Pipes subprocess. The segment dies with it (no orphan
    writes an unrecorded checkpoint), the next `realm campaign` reports the dead run failed, retries it,
    and the segment resumes from its save with the losses and weights of an uninterrupted run."""
    pytest.importorskip("torch")
    home = tmp_path / "home"
    env = _env(home)
    set_launch(config_dir, launch)
    env["REALM_CONFIG_DIR"] = str(config_dir)
    cmd = [sys.executable, "-c", CAMPAIGN, "campaign", "--hero", "tiny", "--segments", "1"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out_dir = home / "checkpoints" / "tiny" / "tiny.000150"
    state = out_dir / "resume" / "state.json"
    deadline = time.monotonic() + 400
    while not state.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no resume save appeared"
        time.sleep(0.05)
    segments = [p for p in _children(proc.pid) if "realm_pipeline.training.segment" in _cmdline(p)]
    assert bool(segments) == (launch == "subprocess"), f"{launch}: training subprocesses {segments}"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    saved_at = json.loads(state.read_text())["step"]
    # the segment noticed its parent's death and stopped, leaving its save and no finished checkpoint
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in segments):
        assert time.monotonic() < deadline, "the training subprocess outlived its parent"
        time.sleep(0.1)
    assert not (out_dir / "model.safetensors").exists()
    assert (out_dir / "resume" / "state.json").exists()
    assert _rows(home) == []

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "train_job tiny.000150: its worker (pid" in again.stdout and "is gone" in again.stdout, (
        again.stdout
    )
    assert "train_job     tiny.000150" in again.stdout and "ok" in again.stdout
    (row,) = _rows(home)
    assert row[0] == "tiny.000150"
    resumed = json.loads((out_dir / "segment_result.json").read_text())
    assert resumed["resumed_from_step"] >= saved_at > 0

    # the same spec, trained without interruption, gives the same losses and the same weights
    with duckdb.connect(str(home / "realm.duckdb"), read_only=True) as con:
        (spec_json,) = con.execute("SELECT spec_json FROM checkpoints").fetchone()
    spec = json.loads(spec_json)
    spec["output_dir"] = str(tmp_path / "clean")
    spec_path = tmp_path / "clean.json"
    spec_path.write_text(json.dumps(spec))
    plain = {k: v for k, v in env.items() if not k.startswith("DAGSTER_PIPES")}
    subprocess.run(
        [sys.executable, "-m", "realm_pipeline.training.segment", "--spec", str(spec_path)],
        cwd=REPO,
        env=plain,
        check=True,
        capture_output=True,
        timeout=600,
    )
    clean = json.loads((tmp_path / "clean" / "segment_result.json").read_text())
    assert clean["resumed_from_step"] == 0
    assert abs(resumed["train_loss"] - clean["train_loss"]) < 1e-4
    assert abs(resumed["heldout_loss"] - clean["heldout_loss"]) < 1e-4
    assert resumed["sha256"] == clean["sha256"] == row[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
