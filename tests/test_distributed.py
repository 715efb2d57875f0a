"""Tests for realm_pipeline.training.distributed and configs/deepspeed/*.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from realm_pipeline.training.distributed import (
    ZERO2_CONFIG,
    ZERO3_OFFLOAD_CONFIG,
    build_deepspeed_config,
    launch_command,
    load_stage_file,
    write_deepspeed_config,
)


def test_import_is_light():
    code = (
        "import sys, realm_pipeline.training.distributed; "
        "assert 'torch' not in sys.modules and 'deepspeed' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("path", "stage"), [(ZERO2_CONFIG, 2), (ZERO3_OFFLOAD_CONFIG, 3)])
def test_config_files_parse(path, stage):
    raw = json.loads(path.read_text())
    assert raw["zero_optimization"]["stage"] == stage
    assert "auto" not in path.read_text()
    assert load_stage_file(path)["zero_optimization"]["stage"] == stage


def test_stage3_offloads_params_and_optimizer():
    zero = load_stage_file(ZERO3_OFFLOAD_CONFIG)["zero_optimization"]
    assert zero["offload_param"]["device"] == "cpu"
    assert zero["offload_optimizer"]["device"] == "cpu"
    zero2 = load_stage_file(ZERO2_CONFIG)["zero_optimization"]
    assert "offload_param" not in zero2 and "offload_optimizer" not in zero2


def test_build_fills_values_and_does_not_mutate_file():
    before = ZERO2_CONFIG.read_text()
    cfg = build_deepspeed_config(ZERO2_CONFIG, micro_batch_size=4, grad_accum=8, lr=3e-4, bf16=True)
    assert cfg["train_micro_batch_size_per_gpu"] == 4
    assert cfg["gradient_accumulation_steps"] == 8
    assert cfg["optimizer"]["params"]["lr"] == 3e-4
    assert cfg["bf16"] == {"enabled": True} and "fp16" not in cfg
    assert "train_batch_size" not in cfg
    fp16 = build_deepspeed_config(
        ZERO2_CONFIG, micro_batch_size=1, grad_accum=1, lr=1e-5, bf16=False, fp16=True
    )
    assert fp16["fp16"]["enabled"] and not fp16["bf16"]["enabled"]
    assert ZERO2_CONFIG.read_text() == before
    with pytest.raises(ValueError):
        build_deepspeed_config(ZERO2_CONFIG, micro_batch_size=1, grad_accum=1, lr=1e-5, bf16=True, fp16=True)
    with pytest.raises(ValueError):
        build_deepspeed_config(ZERO2_CONFIG, micro_batch_size=0, grad_accum=1, lr=1e-5, bf16=True)


def test_auto_and_bad_stage_rejected(tmp_path):
    bad = tmp_path / "auto.json"
    bad.write_text(json.dumps({"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 2}}))
    with pytest.raises(ValueError, match="auto"):
        load_stage_file(bad)
    bad.write_text(json.dumps({"zero_optimization": {"stage": 5}}))
    with pytest.raises(ValueError, match="stage"):
        load_stage_file(bad)


def test_write_deepspeed_config(tmp_path):
    out = write_deepspeed_config(
        ZERO3_OFFLOAD_CONFIG,
        tmp_path / "run" / "ds.json",
        micro_batch_size=2,
        grad_accum=3,
        lr=1e-4,
        bf16=True,
    )
    assert out == tmp_path / "run" / "ds.json"
    data = json.loads(out.read_text())
    assert data["gradient_accumulation_steps"] == 3 and data["zero_optimization"]["stage"] == 3
    assert list(out.parent.iterdir()) == [out]  # no temp file left behind


@pytest.mark.parametrize("stage_file", [ZERO2_CONFIG, ZERO3_OFFLOAD_CONFIG])
def test_deepspeed_accepts_built_config(stage_file):
    """DeepSpeed's own config class (pydantic, extra='forbid') parses the built config on CPU."""
    pytest.importorskip("deepspeed")
    from realm_pipeline.training.distributed import validate_deepspeed_config

    cfg = build_deepspeed_config(stage_file, micro_batch_size=2, grad_accum=4, lr=2e-5, bf16=True)
    ds = validate_deepspeed_config(cfg)
    assert ds.zero_optimization_stage == cfg["zero_optimization"]["stage"]
    assert ds.train_micro_batch_size_per_gpu == 2 and ds.gradient_accumulation_steps == 4
    assert ds.bfloat16_config.enabled
    assert ds.optimizer_name == "adamw" and ds.optimizer_params["lr"] == 2e-5
    if stage_file == ZERO3_OFFLOAD_CONFIG:
        assert ds.zero_config.offload_param.device == "cpu"
        assert ds.zero_config.offload_optimizer.device == "cpu"
    # A typo in a ZeRO key is caught by DeepSpeed's schema, so the check above is not vacuous.
    cfg["zero_optimization"]["overlap_comms"] = True
    with pytest.raises(Exception, match="overlap_comms"):
        validate_deepspeed_config(cfg)


def test_launch_single_gpu_plain():
    cmd = launch_command(
        "realm_pipeline.training.entry",
        Path("/runs/spec.json"),
        num_gpus=1,
        deepspeed_config=None,
        python="/venv/bin/python",
    )
    assert cmd == ["/venv/bin/python", "-m", "realm_pipeline.training.entry", "--spec", "/runs/spec.json"]
    assert launch_command("m", Path("s.json"), num_gpus=0, deepspeed_config=None, python="py")[0] == "py"


def test_launch_two_gpus_deepspeed():
    cmd = launch_command(
        "realm_pipeline.training.entry",
        Path("/runs/spec.json"),
        num_gpus=2,
        deepspeed_config=Path("/runs/ds.json"),
        python="/venv/bin/python",
        master_port=29600,
    )
    assert cmd[0].endswith("deepspeed")
    assert cmd[1:3] == ["--num_gpus", "2"]
    tail = cmd[cmd.index("--module") :]
    assert tail == [
        "--module",
        "realm_pipeline.training.entry",
        "--spec",
        "/runs/spec.json",
        "--deepspeed_config",
        "/runs/ds.json",
    ]
    assert "--no_local_rank" in cmd and cmd[cmd.index("--master_port") + 1] == "29600"
    assert all(isinstance(part, str) for part in cmd)


def test_launch_command_parses_with_deepspeed_runner():
    """The deepspeed launcher's own argparse reads our flags as launcher flags, the rest as module args."""
    pytest.importorskip("deepspeed")
    from deepspeed.launcher.runner import parse_args

    cmd = launch_command(
        "realm_pipeline.training.entry",
        Path("/runs/spec.json"),
        num_gpus=2,
        deepspeed_config=Path("/runs/ds.json"),
    )
    args = parse_args(cmd[1:])
    assert args.num_gpus == 2 and args.module and args.no_local_rank
    assert args.user_script == "realm_pipeline.training.entry"
    assert args.user_args == ["--spec", "/runs/spec.json", "--deepspeed_config", "/runs/ds.json"]


def test_launch_errors():
    with pytest.raises(ValueError, match="DeepSpeed"):
        launch_command("m", Path("s"), num_gpus=2, deepspeed_config=None)
    with pytest.raises(ValueError):
        launch_command("m", Path("s"), num_gpus=0, deepspeed_config=Path("ds.json"))
    with pytest.raises(ValueError):
        launch_command("m", Path("s"), num_gpus=-1, deepspeed_config=None)
    # One GPU with a config still uses the launcher (ZeRO-3 offload is useful on a single card).
    one = launch_command("m", Path("s"), num_gpus=1, deepspeed_config=Path("ds.json"))
    assert "--module" in one and one[1:3] == ["--num_gpus", "1"]
