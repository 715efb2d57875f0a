"""`launch: in_process` and `launch: subprocess` train the same segment into the same record."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from tiny_hero import set_launch

from realm_pipeline.training.segment import HELDOUT_CHECK

CKPT = "tiny.000020"


def _train(config_dir: Path, home: Path, launch: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Materialize the tiny hero's first (20-step) segment with the given launch, in a home of its own:
    the ledger row, its level losses and trained tokens, and the held-out check the run reported."""
    from realm_pipeline.cli import init_instance
    from realm_pipeline.definitions import build_defs
    from realm_pipeline.ledger import connect

    set_launch(config_dir, launch)
    monkeypatch.setenv("REALM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    init_instance()
    defs = build_defs()
    with dg.DagsterInstance.get() as instance:
        assert defs.resolve_job_def("eval_sets_job").execute_in_process(
            instance=instance, partition_key="bin"
        )
        instance.add_dynamic_partitions("checkpoints", [CKPT])
        run = defs.resolve_job_def("train_job").execute_in_process(instance=instance, partition_key=CKPT)
        assert run.success
        (check,) = [c for c in run.get_asset_check_evaluations() if c.check_name == HELDOUT_CHECK]
        messages = [e.user_message for e in instance.all_logs(run.run_id)]
        (materialized,) = run.asset_materializations_for_node("checkpoints")
    logged = [m for m in messages if m.startswith("step ") and " loss " in m]
    with connect(home / "realm.duckdb", read_only=True) as con:
        row = con.execute(
            "SELECT sha256, tokens, train_loss, heldout_loss, strain, zone FROM checkpoints "
            "WHERE checkpoint_id = ?",
            [CKPT],
        ).fetchone()
        (peak,) = con.execute(
            "SELECT peak_memory_bytes FROM checkpoints WHERE checkpoint_id = ?", [CKPT]
        ).fetchone()
        losses = con.execute(
            "SELECT skill, level, heldout_loss FROM level_losses ORDER BY skill, level"
        ).fetchall()
        tokens = con.execute("SELECT * EXCLUDE (checkpoint_id) FROM segment_tokens ORDER BY ALL").fetchall()
    return {
        "row": row,
        "level_losses": losses,
        "segment_tokens": tokens,
        "check": (check.passed, check.asset_key, {k: v.value for k, v in check.metadata.items()}),
        "progress_lines": len(logged),
        "peak_memory_bytes": peak,
        "launch": materialized.metadata["launch"].value,  # the UI says where it trained
        "pipes": any(m.startswith("[pipes]") for m in messages),  # the subprocess opened Dagster Pipes
    }


def _peak_rss() -> int:
    """This process's peak resident set so far (Linux VmHWM), in bytes."""
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_both_launches_record_the_same_checkpoint(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    """The same spec trained inside the run and in a Pipes subprocess gives the same weights (sha256),
    losses, strain, trained tokens, held-out check and progress log: the launch changes where the
    segment runs, not what is recorded. The in-process one also leaves the test process's torch RNG
    and deterministic-algorithms setting as it found them."""
    pytest.importorskip("torch")
    import torch

    hero = config_dir / "heroes" / "tiny.yaml"
    hero.write_text(hero.read_text().replace("segment_steps: 150", "segment_steps: 20"))
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    # The same thread count on both sides (this process: one_torch_thread; the subprocess: the variable,
    # whatever an earlier test left in the environment): another count sums in another order, and rows
    # of the levels ahead (BIN L2-L3) are long enough for that to move the last bits of the losses.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    # A peak this process reached before the segment is not the segment's: held, touched and freed here.
    ballast = b"\x01" * (1 << 30)
    del ballast
    earlier_peak = _peak_rss()
    torch.manual_seed(7)
    rng_before = torch.get_rng_state()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    in_process = _train(config_dir, tmp_path / "in_process", "in_process", monkeypatch)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.are_deterministic_algorithms_enabled() == deterministic_before

    subprocess = _train(config_dir, tmp_path / "subprocess", "subprocess", monkeypatch)
    assert in_process["row"][0] and in_process["check"][0] is True
    assert in_process["check"][1] == dg.AssetKey("checkpoints")
    assert in_process["progress_lines"] > 0
    assert (in_process.pop("pipes"), subprocess.pop("pipes")) == (False, True)  # each trained where it says
    assert (in_process.pop("launch"), subprocess.pop("launch")) == ("in_process", "subprocess")
    # each records its own process's peak while it trained: not comparable to each other, and the
    # in-process one is not the gigabyte this process held before the segment began
    in_process_peak, subprocess_peak = (
        in_process.pop("peak_memory_bytes"),
        subprocess.pop("peak_memory_bytes"),
    )
    assert 0 < in_process_peak < earlier_peak and subprocess_peak > 0  # a peak never falls unless reset
    assert in_process == subprocess
