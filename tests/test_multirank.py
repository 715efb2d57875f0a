"""A two-rank DeepSpeed segment on CPU (gloo): every rank exits 0 and reports the one checkpoint rank 0 wrote."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")

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


@pytest.mark.slow
def test_two_rank_deepspeed_segment_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "tiny.000006"
    ds_json = write_deepspeed_config(
        ZERO2_CONFIG, tmp_path / "ds.json", micro_batch_size=2, grad_accum=1, lr=3e-3, bf16=False
    )
    spec = SegmentSpec(
        output_dir=str(out),
        base={"tiny": TINY},
        batch_size=2,
        max_length=64,
        steps=6,
        save_every=3,  # a sharded DeepSpeed resume save mid-segment, dropped by the final swap
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
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
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
