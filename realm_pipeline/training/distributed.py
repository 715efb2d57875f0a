"""DeepSpeed ZeRO configs and launch commands for multi-GPU (or offloaded) training segments.

The JSON files under configs/deepspeed hold concrete defaults, not HF-style "auto" placeholders:
build_deepspeed_config fills the run-specific values, so the same config works with a plain
deepspeed.initialize() loop and with the HF Trainer integration.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

# load_stage_file lives with the other config readers (settings validates these files at init)
from realm_pipeline.settings import DEFAULT_CONFIG_DIR, load_stage_file

DEEPSPEED_CONFIG_DIR = DEFAULT_CONFIG_DIR / "deepspeed"
ZERO2_CONFIG = DEEPSPEED_CONFIG_DIR / "zero2.json"
ZERO3_OFFLOAD_CONFIG = DEEPSPEED_CONFIG_DIR / "zero3_offload.json"


def build_deepspeed_config(
    stage_file: Path,
    *,
    micro_batch_size: int,
    grad_accum: int,
    lr: float,
    bf16: bool,
    fp16: bool = False,
    weight_decay: float | None = None,
    gradient_clipping: float | None = None,
) -> dict[str, Any]:
    """Return the stage file's config with batch size, accumulation, lr and precision filled in."""
    if micro_batch_size < 1 or grad_accum < 1:
        raise ValueError("micro_batch_size and grad_accum must be >= 1")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if bf16 and fp16:
        raise ValueError("choose at most one of bf16 and fp16")
    cfg = copy.deepcopy(load_stage_file(stage_file))
    cfg["train_micro_batch_size_per_gpu"] = int(micro_batch_size)
    cfg["gradient_accumulation_steps"] = int(grad_accum)
    # train_batch_size depends on the world size; DeepSpeed derives it (micro * accum * world) when absent.
    cfg.pop("train_batch_size", None)
    cfg["bf16"] = {"enabled": bool(bf16)}
    if fp16:
        # Dynamic loss scaling (loss_scale 0) is the safe default for fp16 on GPUs without bf16 (V100, T4).
        cfg["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16, "hysteresis": 2}
    else:
        cfg.pop("fp16", None)
    opt = cfg.setdefault("optimizer", {"type": "AdamW", "params": {}})
    opt.setdefault("params", {})["lr"] = float(lr)
    if weight_decay is not None:
        opt["params"]["weight_decay"] = float(weight_decay)
    if gradient_clipping is not None:
        cfg["gradient_clipping"] = float(gradient_clipping)
    # An LR scheduler section would fight the trainer's own schedule; realm drives the LR itself.
    cfg.pop("scheduler", None)
    return cfg


def write_deepspeed_config(
    stage_file: Path,
    out_path: Path,
    *,
    micro_batch_size: int,
    grad_accum: int,
    lr: float,
    bf16: bool,
    fp16: bool = False,
) -> Path:
    """Build the config (see build_deepspeed_config) and write it as JSON to `out_path`."""
    cfg = build_deepspeed_config(
        stage_file, micro_batch_size=micro_batch_size, grad_accum=grad_accum, lr=lr, bf16=bf16, fp16=fp16
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_path)  # atomic, so a concurrent launcher never reads half a file
    return out_path


def validate_deepspeed_config(cfg: dict[str, Any]) -> Any:
    """Parse `cfg` with DeepSpeed's own DeepSpeedConfig (needs deepspeed installed) and return it."""
    try:
        from deepspeed.runtime.config import DeepSpeedConfig
    except ImportError as exc:
        raise ImportError(
            "validating a DeepSpeed config needs the 'deepspeed' package; "
            "install it with `pip install deepspeed`"
        ) from exc
    return DeepSpeedConfig(copy.deepcopy(cfg))


def _deepspeed_launcher(python: str) -> str:
    # Prefer the launcher from the same environment as `python`: the workers it spawns run its sys.executable.
    sibling = Path(python).parent / "deepspeed"
    return str(sibling) if sibling.exists() else "deepspeed"


def launch_command(
    entry_module: str,
    spec_path: Path,
    *,
    num_gpus: int,
    deepspeed_config: Path | None,
    python: str = sys.executable,
    master_port: int | None = None,
    pass_local_rank: bool = False,
) -> list[str]:
    """Command running `python -m entry_module --spec spec_path`, via the DeepSpeed launcher if needed."""
    if num_gpus < 0:
        raise ValueError(f"num_gpus must be >= 0, got {num_gpus}")
    spec = str(spec_path)
    if deepspeed_config is None:
        if num_gpus > 1:
            raise ValueError(
                f"{num_gpus} GPUs requested without a DeepSpeed config; realm's multi-GPU training goes "
                f"through DeepSpeed (e.g. {ZERO2_CONFIG.name})"
            )
        return [python, "-m", entry_module, "--spec", spec]
    if num_gpus < 1:
        raise ValueError("DeepSpeed needs at least one GPU (num_gpus >= 1)")
    cmd = [_deepspeed_launcher(python), "--num_gpus", str(num_gpus)]
    if master_port is not None:
        # Two segments on one host would otherwise both bind the default rendezvous port 29500.
        cmd += ["--master_port", str(master_port)]
    if not pass_local_rank:
        # The launcher sets LOCAL_RANK in the env anyway; without this it also appends --local_rank=N to the
        # module's argv, which a strict argparse in the entry module rejects.
        cmd.append("--no_local_rank")
    cmd += ["--module", entry_module, "--spec", spec, "--deepspeed_config", str(deepspeed_config)]
    return cmd
