"""Ctrl-C and SIGTERM stop a campaign: a real `realm campaign` of a tiny hero gets the signal mid-segment,
stops within a hang guard with the segment's save kept (written where it stopped), its run canceled in the
Dagster instance and one line saying how to go on; `realm campaign` again resumes from that save.
Dagster's own run termination (a run canceling, a SIGINT to the process running the step) stops the
segment the same way, and the pure parts (the stop request, the trainer's stop between steps) alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from tiny_hero import TINY, set_launch

REPO = Path(__file__).resolve().parent.parent
CAMPAIGN = "from realm_pipeline.cli import main; main()"
SKILL = "attn_count"  # short rows: a step is quick, and a segment long enough to stop in the middle
SEGMENT_STEPS = 200
SAVE_EVERY = 10
KEY = f"tiny.{SEGMENT_STEPS:06d}"
HANG_GUARD_S = 300  # only against a hang: the stop itself takes seconds


def _configs(config_dir: Path) -> Path:
    """The shipped configs with the tests' tiny hero: TINY's shape, one short skill, frequent saves."""
    path = config_dir / "heroes" / "tiny.yaml"
    hero = yaml.safe_load(path.read_text())
    hero["base"]["config"] = {
        **TINY,
        "max_position_embeddings": hero["base"]["config"]["max_position_embeddings"],
    }
    hero["campaign"]["segment_steps"] = SEGMENT_STEPS
    hero["campaign"]["skills"] = [SKILL]
    hero["training"]["save_every"] = SAVE_EVERY
    path.write_text(yaml.safe_dump(hero, sort_keys=False))
    skill = config_dir / "skills" / f"{SKILL}.yaml"
    skill.write_text(skill.read_text().replace("eval_items_per_level: 50", "eval_items_per_level: 10"))
    return config_dir


def _env(home: Path, config_dir: Path) -> dict[str, str]:
    env = {**os.environ, "REALM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env["REALM_CONFIG_DIR"] = str(config_dir)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # a shared 2-core box
    return env


def _wait_for_save(state: Path, proc: subprocess.Popen) -> int:
    """The step of the segment's first resume save: training has started and saved (hang-guarded)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not state.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "hang guard: no resume save appeared"
        time.sleep(0.05)
    return json.loads(state.read_text())["step"]


def _train_runs(home: Path) -> list[dg.DagsterRun]:
    os.environ["DAGSTER_HOME"] = str(home / "dagster")  # the autouse fixture puts the test's own back
    with dg.DagsterInstance.get() as instance:
        return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name="train_job"))]


def _checkpoint_rows(home: Path) -> list[tuple]:
    with duckdb.connect(str(home / "realm.duckdb"), read_only=True) as con:
        return con.execute("SELECT checkpoint_id FROM checkpoints").fetchall()


@pytest.mark.slow  # two short campaigns of real training per case: about a minute each on 2 busy cores
@pytest.mark.parametrize(
    ("signum", "launch"), [(signal.SIGINT, "in_process"), (signal.SIGTERM, "subprocess")], ids=["int", "term"]
)
def test_a_stop_signal_mid_segment_stops_the_campaign_and_a_rerun_resumes_from_its_save(
    tmp_path: Path, config_dir: Path, signum: int, launch: str
) -> None:
    pytest.importorskip("torch")
    home = tmp_path / "home"
    set_launch(_configs(config_dir), launch)
    env = _env(home, config_dir)
    cmd = [sys.executable, "-c", CAMPAIGN, "campaign", "--hero", "tiny", "--segments", "1"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out_dir = home / "checkpoints" / "tiny" / KEY
    state = out_dir / "resume" / "state.json"
    first_save = _wait_for_save(state, proc)
    proc.send_signal(signum)
    output = proc.communicate(timeout=HANG_GUARD_S)[0]

    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, output
    # one line saying what stopped it and how to go on; no traceback, no eval or rollup after it
    assert f"tiny: stopped by {name} (run " in output and " canceled); its last save is kept: " in output, (
        output
    )
    assert "`realm campaign --hero tiny` resumes from it" in output, output
    assert "Traceback" not in output and "eval_job" not in output and "rollup_job" not in output, output
    assert f"train_job     {KEY}        CANCELED" in output, output
    # the segment stopped mid-way and saved where it stopped: no checkpoint, a resume save, no ledger row
    saved = json.loads(state.read_text())["step"]
    assert first_save <= saved < SEGMENT_STEPS
    assert not (out_dir / "model.safetensors").exists()
    assert _checkpoint_rows(home) == []
    (run,) = _train_runs(home)
    assert run.status == dg.DagsterRunStatus.CANCELED  # not left STARTED, and not retried by its policy
    assert run.tags["realm/stopped"] == name

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"train_job     {KEY}        ok" in again.stdout, again.stdout
    result = json.loads((out_dir / "segment_result.json").read_text())
    assert result["resumed_from_step"] == saved and result["step"] == SEGMENT_STEPS
    assert _checkpoint_rows(home) == [(KEY,)]


@pytest.mark.slow  # a real segment under Dagster's multiprocess executor: about a minute on 2 busy cores
@pytest.mark.parametrize("launch", ["in_process", "subprocess"])
def test_dagster_run_termination_stops_the_segment_in_the_runs_process(
    tmp_path: Path, config_dir: Path, launch: str
) -> None:
    """What the UI's Terminate does to a run the daemon launched (DefaultRunLauncher.terminate): the run is
    reported canceling, then its worker gets a SIGINT, which Dagster's multiprocess executor hands on to
    the process running the step. The segment, in that process or in its Pipes subprocess, stops there."""
    pytest.importorskip("torch")
    home = tmp_path / "home"
    set_launch(_configs(config_dir), launch)
    env = _env(home, config_dir)
    subprocess.run(
        [sys.executable, "-c", CAMPAIGN, "init"], cwd=REPO, env=env, check=True, capture_output=True
    )
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", [KEY])
    dagster = Path(sys.executable).parent / "dagster"
    materialize = ["asset", "materialize", "-m", "realm_pipeline.definitions", "--select", "checkpoints"]
    proc = subprocess.Popen(
        [str(dagster), *materialize, "--partition", KEY],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out_dir = home / "checkpoints" / "tiny" / KEY
    first_save = _wait_for_save(out_dir / "resume" / "state.json", proc)
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        instance.report_run_canceling(run)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=HANG_GUARD_S)[0]

    assert proc.returncode != 0, output
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.CANCELED, output[-3000:]
        retries = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert retries == []  # the retry policy did not train it on against the termination
    saved = json.loads((out_dir / "resume" / "state.json").read_text())["step"]
    assert first_save <= saved < SEGMENT_STEPS
    assert not (out_dir / "model.safetensors").exists()
    assert "stopped on request" in output, output[-3000:]


class _AtOnce(Exception):
    """What the tests' second stop signal raises."""


def _at_once(signum: int):
    raise _AtOnce(signal.Signals(signum).name)


def test_the_first_stop_signal_asks_to_stop_and_a_second_stops_at_once() -> None:
    from realm_pipeline.training.stopping import stop_on_signals

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_signals(_at_once) as stop:
        assert not stop()
        signal.raise_signal(signal.SIGTERM)  # runs the handler before it returns
        assert stop() and stop.name == "SIGTERM"
        with pytest.raises(_AtOnce, match="SIGINT"):
            signal.raise_signal(signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before  # Dagster's (or Python's) handlers are back


def test_a_segment_asked_to_stop_saves_where_it_stopped_and_resumes_to_the_same_weights(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    from tiny_hero import row_length

    from realm_pipeline.training.trainer import SegmentInterrupted, SegmentSpec, resume_step, train_segment

    def spec(out: Path) -> SegmentSpec:
        return SegmentSpec(
            output_dir=str(out),
            base={"tiny": TINY},
            batch_size=4,
            max_length=row_length((SKILL, 1)),
            steps=12,
            save_every=5,
            log_every=1,
            seed=1,
            mix=[(SKILL, 1, 1.0)],
            heldout=[(SKILL, 1, 20)],
        )

    steps: list[int] = []
    with pytest.raises(
        SegmentInterrupted, match="stopped on request at step 7 of 12; its resume save holds step 7"
    ):
        train_segment(
            spec(tmp_path / "stopped"),
            on_progress=lambda p: steps.append(p["step"]),
            should_stop=lambda: len(steps) >= 7,
        )
    assert steps == list(range(1, 8))  # it stopped between two steps, not after the segment
    assert resume_step(tmp_path / "stopped") == 7  # saved where it stopped, not at the last save (5)
    resumed = train_segment(spec(tmp_path / "stopped"))
    clean = train_segment(spec(tmp_path / "clean"))
    assert resumed.resumed_from_step == 7 and clean.resumed_from_step == 0
    assert resumed.sha256 == clean.sha256
