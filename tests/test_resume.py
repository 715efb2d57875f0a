"""A segment SIGKILLed after a save resumes to the same result as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tiny_hero import TINY, row_length  # noqa: E402

from realm_pipeline.training.trainer import SegmentSpec, spec_to_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LOSS_TOL = 1e-4  # absolute; CPU training here is bit-exact in practice, so the sha256 is compared as well


def _spec_file(tmp_path: Path, name: str) -> tuple[Path, Path]:
    out = tmp_path / name
    # Enough steps (~several seconds) that the kill reliably lands between the first save and the end.
    spec = SegmentSpec(
        output_dir=str(out),
        base={"tiny": TINY},
        lr=3e-3,
        # 2 rows of BIN v4's 509 tokens: about the tokens per step that 8 rows of 128 were before v4
        batch_size=2,
        max_length=row_length(("bin", 1), ("bin", 2)),
        steps=120,
        save_every=20,
        seed=7,
        mix=[("bin", 1, 1.0), ("bin", 2, 1.0)],
        heldout=[("bin", 1, 100)],
        surprise_weighted=True,
    )
    path = tmp_path / f"{name}.json"
    path.write_text(spec_to_json(spec))
    return path, out


def _run(spec: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("DAGSTER_PIPES_CONTEXT", None)  # standalone mode
    env.pop("DAGSTER_PIPES_MESSAGES", None)
    return subprocess.Popen(
        [sys.executable, "-m", "realm_pipeline.training.segment", "--spec", str(spec)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate()  # no deadline of its own: the test's timeout is the only hang guard
    assert proc.returncode == 0, out
    return out


# a hang guard only, far above the ~25 s it takes: every wait below is for an event, not a duration
@pytest.mark.timeout(1800)
def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    spec_a, out_a = _spec_file(tmp_path, "interrupted")
    spec_b, out_b = _spec_file(tmp_path, "clean")

    proc = _run(spec_a)
    state = out_a / "resume" / "state.json"
    while not state.exists():
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads((out_a / "resume" / "state.json").read_text())["step"]
    print(f"SIGKILLed with resume state at step {killed_at}")
    assert 0 < killed_at < 120
    assert not (out_a / "model.safetensors").exists()

    _finish(_run(spec_a))
    _finish(_run(spec_b))
    resumed = json.loads((out_a / "segment_result.json").read_text())
    clean = json.loads((out_b / "segment_result.json").read_text())
    assert resumed["resumed_from_step"] >= killed_at and clean["resumed_from_step"] == 0
    assert resumed["step"] == clean["step"] == 120
    assert resumed["tokens"] == clean["tokens"]
    assert abs(resumed["train_loss"] - clean["train_loss"]) < LOSS_TOL
    assert abs(resumed["heldout_loss"] - clean["heldout_loss"]) < LOSS_TOL
    assert resumed["sha256"] == clean["sha256"]
    assert not (out_a / "resume").exists()
