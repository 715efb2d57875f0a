"""A two-rank DeepSpeed segment on CPU (gloo): every rank exits 0 and reports the one checkpoint rank 0 wrote."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")

from tiny_hero import row_length  # noqa: E402

from realm_pipeline.training.distributed import ZERO2_CONFIG, launch_command, write_deepspeed_config  # noqa: E402
from realm_pipeline.training.trainer import RESULT_FILE, SegmentSpec, spec_to_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "intermediate_size": 64,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path: Path, out: Path, *, steps: int, save_every: int) -> tuple[list[str], dict[str, str]]:
    """The deepspeed launcher command (2 ranks, ZeRO-2) for a tiny segment, and its environment."""
    ds_json = write_deepspeed_config(
        ZERO2_CONFIG, tmp_path / "ds.json", micro_batch_size=2, grad_accum=1, lr=3e-3, bf16=False
    )
    spec = SegmentSpec(
        output_dir=str(out),
        base={"tiny": TINY},
        batch_size=2,
        max_length=row_length(("bin", 1), eval_count=8),
        steps=steps,
        save_every=save_every,  # sharded DeepSpeed resume saves mid-segment, dropped by the final swap
        seed=5,
        mix=[("bin", 1, 1.0)],
        heldout=[("bin", 1, 8)],
    )
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec_to_json(spec))
    command = launch_command(
        "realm_pipeline.training.segment",
        spec_path,
        num_gpus=2,
        deepspeed_config=ds_json,
        master_port=_free_port(),
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "DS_ACCELERATOR": "cpu",  # DeepSpeed's CPU accelerator: gloo when oneCCL is absent
        "OMP_NUM_THREADS": "1",
    }
    env.pop("DAGSTER_PIPES_CONTEXT", None)
    env.pop("DAGSTER_PIPES_MESSAGES", None)
    return command, env


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the launcher in its own session; on a timeout kill the launcher and both ranks, not only it."""
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None or proc.returncode != 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


@pytest.mark.proof
@pytest.mark.slow
def test_two_rank_deepspeed_segment_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "tiny.000006"
    command, env = _launch(tmp_path, out, steps=6, save_every=3)
    done = _run(command, env, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = json.loads((out / RESULT_FILE).read_text())
    assert written["step"] == 6 and written["path"] == str(out)
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["model.safetensors"]
    assert not (out / "resume").exists()
    # rank 0 prints its result as JSON in standalone mode; it is the checkpoint on disk
    reported = [
        json.loads(line.split("] ", 1)[-1]) for line in done.stdout.splitlines() if '"sha256"' in line
    ]
    assert reported and all(r["sha256"] == written["sha256"] for r in reported)


@pytest.mark.proof
@pytest.mark.slow
def test_two_rank_segment_killed_after_a_save_resumes(tmp_path: Path) -> None:
    out = tmp_path / "tiny.000012"
    command, env = _launch(tmp_path, out, steps=12, save_every=4)
    # Killed (launcher and both ranks) as soon as DeepSpeed has named a finished sharded save.
    first = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while (
            not (out / "resume" / "latest").is_file() and first.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.02)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert (out / "resume" / "latest").is_file() and not (out / RESULT_FILE).exists()
    done = _run(command, env, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / RESULT_FILE).read_text())
    assert result["step"] == 12 and result["resumed_from_step"] in (4, 8)
    assert not (out / "resume").exists()
