"""The GPU check (issue 40): every GPU path realm claims, one item after another, each in its own process.

Usage: bench/gpu_check.sh [--dry-run] [--out DIR] [--items a,b] [--budget-s 540] [--layers N]

Items, in order: env, full_bf16, lora, qlora, galore, adamw_8bit, paged_adamw, muon (one short segment
each through realm's `train_segment` on a Qwen3-0.6B-shaped model built from config, its memory estimate
beside the measured `torch.cuda.max_memory_allocated`, the checkpoint reloaded with plain transformers),
estimate_refused (a run `memory.check_fits` refuses, tried anyway), train_throughput (tokens/s and MFU vs
`transformers.Trainer`), eval_throughput (batched evaluator vs one-at-a-time `generate`) and
deepspeed_zero2 (a segment through the `deepspeed` launcher, reloaded with plain transformers).

Each item runs in a forked child (torch and transformers are imported once, before the first fork; CUDA is
never touched in the parent, so every child initialises it afresh) under its own time limit, and writes
<item>.json and <item>.log into the output folder: --out, else $OUT, else ./gpu_check_out. A failure,
crash or timeout in one item never stops the next. summary.json and summary.txt come last.

--dry-run runs the same sequence on CPU with the smallest shapes; what needs CUDA (or a package not
installed here) is skipped with its reason in the item's JSON. Exit status: 0 when no item failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from realm_pipeline.training.hero import DEFAULT_TINY_CONFIG, QWEN3_06B_SHAPE  # noqa: E402

GIB = 1024**3
# Dense bf16 tensor-core peak of the H100 SXM and of the H200 (the same GH100 die and clocks): 989 TFLOP/s
# in NVIDIA's datasheets, whose 1,979 figure is with 2:4 sparsity. The MFU denominator on both cards.
PEAK_BF16_TFLOPS = 989.0
# The smallest Qwen3 the trainer takes (as tests/test_multirank.py's): a dry run checks plumbing, not speed.
DRY_SHAPE: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "intermediate_size": 64,
}
# The card a dry run pretends to have when it works out the run the estimate refuses (an H100's 80 GB).
DRY_CARD_BYTES = 80 * GIB
# Reloaded held-out loss vs the trainer's own, relative: fp32 weights reload exactly (LoRA merged adds
# rounding); DeepSpeed saves what its bf16 engine held; QLoRA's merge re-quantizes the 4-bit base.
RELOAD_TOLERANCE = {"default": 1e-3, "deepspeed": 1e-2, "qlora": 5e-2}
# The goal for the estimate: within 15 % of the measured peak, never under it by more than 5 %.
ESTIMATE_GOAL = (-0.05, 0.15)
STATUSES = ("passed", "failed", "skipped", "timeout")
MIN_ITEM_S = 20.0  # an item with less of the run's budget left is skipped, not started


@dataclass(frozen=True)
class Plan:
    """What every item of one run shares: mode, folders, model shape and segment sizes."""

    dry: bool
    out: Path
    work: Path
    shape: dict[str, Any]
    steps: int
    batch_size: int
    mix: tuple[tuple[str, int, float], ...]
    heldout_count: int
    max_length: int
    lr: float
    refuse_margin: float
    deepspeed_on_cpu: bool

    @property
    def device(self) -> str:
        """The device the segments train on."""
        return "cpu" if self.dry else "cuda"


@dataclass(frozen=True)
class Item:
    """One check: its function, its time limits (GPU run, dry run) and what it needs."""

    name: str
    run: Callable[[Plan], dict[str, Any]]
    limit_s: float
    dry_limit_s: float


def passed(summary: str, **fields: Any) -> dict[str, Any]:
    """An item's record when it did what it checks."""
    return {"status": "passed", "summary": summary, **fields}


def failed(reason: str, **fields: Any) -> dict[str, Any]:
    """An item's record when it ran and found something wrong."""
    return {"status": "failed", "reason": reason, **fields}


def skipped(reason: str, **fields: Any) -> dict[str, Any]:
    """An item's record when it could not run here, with the reason."""
    return {"status": "skipped", "reason": reason, **fields}


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f} GiB"


# --- the model and its segments ------------------------------------------------------------------------


def _vocab_size(plan: Plan) -> int:
    if "vocab_size" in plan.shape:
        return int(plan.shape["vocab_size"])
    from realm_pipeline.skills import CHARACTERS
    from realm_pipeline.training.tokenizer import build_char_tokenizer

    return len(build_char_tokenizer(CHARACTERS))  # build_tiny_hero's default: the tokenizer's size


def _model_cfg(plan: Plan) -> dict[str, Any]:
    # As build_tiny_hero merges it, plus what model_shape_for reads.
    return {**DEFAULT_TINY_CONFIG, **plan.shape, "vocab_size": _vocab_size(plan), "model_type": "qwen3"}


def lora_params(cfg: dict[str, Any], r: int) -> int:
    """Trainable LoRA parameters for methods.DEFAULT_LORA_TARGETS on a Qwen3 config: r*(in+out) each."""
    h, inter = int(cfg["hidden_size"]), int(cfg["intermediate_size"])
    hd = int(cfg.get("head_dim") or h // int(cfg["num_attention_heads"]))
    heads = int(cfg["num_attention_heads"])
    q, kv = heads * hd, int(cfg.get("num_key_value_heads") or heads) * hd
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + inter) + (inter + h)
    return r * per_layer * int(cfg["num_hidden_layers"])


def segment_spec(
    plan: Plan, name: str, *, method: str = "full", optimizer: str = "adamw", **over: Any
) -> Any:
    """A short SegmentSpec for item `name` (output under the work folder); `over` replaces fields."""
    from realm_pipeline.training.trainer import SegmentSpec

    fields: dict[str, Any] = {
        "output_dir": str(plan.work / name),
        "base": {"tiny": dict(plan.shape)},
        "method": method,
        "optimizer": optimizer,
        "lr": plan.lr,
        "batch_size": plan.batch_size,
        "max_length": plan.max_length,
        "steps": plan.steps,
        "save_every": 0,
        "log_every": 1,
        "warmup_steps": 0,
        "seed": 1,
        "mix": list(plan.mix),
        "heldout": [(plan.mix[0][0], plan.mix[0][1], plan.heldout_count)],
        "device": plan.device,
        "dtype": "bfloat16",
    }
    fields.update(over)
    return SegmentSpec(**fields)


def estimate_for(plan: Plan, spec: Any, *, deepspeed: bool = False) -> Any:
    """realm's memory estimate for `spec` as the trainer runs it (fp32 weights under bf16 autocast; QLoRA's
    4-bit base with bf16 compute; DeepSpeed's bf16 engine with fp32 master weights)."""
    from realm_pipeline.training.memory import estimate_memory, model_shape_for
    from realm_pipeline.training.methods import GALORE_RANK

    cfg = _model_cfg(plan)
    shape = model_shape_for(cfg)
    return estimate_memory(
        shape["n_params"],
        method=spec.method,
        optimizer=spec.optimizer,
        batch_size=spec.batch_size,
        seq_len=spec.max_length,
        hidden_size=shape["hidden_size"],
        num_layers=shape["num_layers"],
        vocab_size=shape["vocab_size"],
        num_heads=shape["num_heads"],
        tied_embeddings=shape["tied_embeddings"],
        gradient_checkpointing=spec.gradient_checkpointing,
        lora_fraction=lora_params(cfg, spec.lora_r) / shape["n_params"],
        dtype_bytes=2 if (spec.method == "qlora" or deepspeed) else 4,
        master_weights=deepspeed,
        galore_rank=GALORE_RANK,
    )


def memory_record(estimate: Any, peak: int | None, device: str) -> dict[str, Any]:
    """The estimate beside the measured peak: their ratio and whether it meets the issue's goal."""
    rec: dict[str, Any] = {
        "estimate_bytes": estimate.total,
        "estimate_parts": dataclasses.asdict(estimate),
        "peak_allocated_bytes": peak,
    }
    if peak and device.startswith("cuda"):
        error = estimate.total / peak - 1
        rec["estimate_error"] = round(error, 4)
        rec["estimate_within_goal"] = ESTIMATE_GOAL[0] <= error <= ESTIMATE_GOAL[1]
    else:
        rec["estimate_note"] = "CPU peak is the process's RSS, not comparable with the CUDA estimate"
    return rec


def heldout_loss(model: Any, tokenizer: Any, spec: Any, device: str) -> float:
    """Mean answer-token loss of `model` on the spec's held-out items, packed as the trainer packs them."""
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import eval_items
    from realm_pipeline.training.data import ExampleEncoder, loss_sum, pack_examples

    encoder = ExampleEncoder(tokenizer)
    encoded = [
        encoder.encode(item.messages)
        for skill, level, count in spec.heldout
        for item in eval_items(get_skill(skill), int(level), int(count))
    ]
    row = max([spec.max_length] + [len(ids) for ids, _ in encoded])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    total, count = loss_sum(model, pack_examples(encoded, spec.batch_size, row, pad), device)
    return total / max(count, 1)


def reload_check(spec: Any, result: Any, *, tolerance: float, dtype: str = "float32") -> dict[str, Any]:
    """Load the saved checkpoint with plain transformers and compare its held-out loss with the trainer's."""
    import gc

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    config = json.loads((Path(result.path) / "config.json").read_text())
    quantized = "quantization_config" in config
    kwargs: dict[str, Any] = {"local_files_only": True}
    if quantized:  # a merged QLoRA hero stays 4-bit: transformers re-applies its config, placed on the GPU
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    else:
        kwargs["dtype"] = getattr(torch, dtype)
    tokenizer = AutoTokenizer.from_pretrained(result.path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(result.path, **kwargs)
    if not quantized:
        model = model.to(spec.device)
    loss = heldout_loss(model, tokenizer, spec, spec.device)
    trained = result.heldout_loss
    delta = abs(loss - trained) if trained is not None else math.inf
    return {
        "reloaded_with": f"transformers.AutoModelForCausalLM ({'4-bit' if quantized else dtype})",
        "reload_heldout_loss": loss,
        "trainer_heldout_loss": trained,
        "reload_delta": delta,
        "reload_ok": bool(math.isfinite(loss) and delta <= tolerance * max(1.0, abs(trained or 0.0))),
    }


def _precision(spec: Any) -> str:
    """How the trainer holds the weights for `spec` (what the estimate assumes)."""
    if spec.deepspeed_config:
        return "DeepSpeed bf16 engine, fp32 master weights and moments (ZeRO-2)"
    if spec.method == "qlora":
        return "NF4 4-bit base, bf16 compute, fp32 LoRA adapters"
    note = "fp32 weights under bf16 autocast (realm's trainer keeps fp32 master weights)"
    if spec.optimizer == "paged_adamw":
        # bitsandbytes pages its state through CUDA managed memory, which the caching allocator never sees.
        note += "; paged AdamW state is managed memory, outside torch.cuda.max_memory_allocated"
    return note


def _peak_reserved() -> int | None:
    import torch

    return int(torch.cuda.max_memory_reserved()) if torch.cuda.is_available() else None


def _finish_segment(
    spec: Any,
    result: Any,
    estimate: Any,
    *,
    tolerance: float,
    reload_dtype: str = "float32",
    **extra: Any,
) -> dict[str, Any]:
    rec = {
        "spec": {k: getattr(spec, k) for k in ("method", "optimizer", "batch_size", "max_length", "steps")},
        "precision": _precision(spec),
        "train_loss": result.train_loss,
        "tokens_per_s": result.tokens_per_s,
        "peak_reserved_bytes": _peak_reserved(),
        **memory_record(estimate, result.peak_memory_bytes, spec.device),
        **extra,
    }
    rec.update(reload_check(spec, result, tolerance=tolerance, dtype=reload_dtype))
    figures = f"peak {_gib(result.peak_memory_bytes)}, est {_gib(estimate.total)}"
    if "estimate_error" in rec:
        figures += f" ({rec['estimate_error']:+.0%})"
    figures += f", reload delta {rec['reload_delta']:.1e}"
    if not math.isfinite(result.train_loss):
        return failed(f"train loss is {result.train_loss}", **rec)
    if not rec["reload_ok"]:
        return failed(f"reloaded held-out loss differs by {rec['reload_delta']:.3g} ({figures})", **rec)
    return passed(figures, **rec)


# --- the items -----------------------------------------------------------------------------------------

# (item, method, optimizer, needs CUDA, the modules it needs)
METHOD_ITEMS: tuple[tuple[str, str, str, bool, tuple[str, ...]], ...] = (
    ("full_bf16", "full", "adamw", False, ()),
    ("lora", "lora", "adamw", False, ("peft",)),
    ("qlora", "qlora", "adamw", True, ("peft", "bitsandbytes")),
    ("galore", "galore", "adamw", False, ("galore_torch",)),
    ("adamw_8bit", "full", "adamw_8bit", True, ("bitsandbytes",)),
    ("paged_adamw", "full", "paged_adamw", True, ("bitsandbytes",)),
    ("muon", "full", "muon", False, ()),
)


def run_env(plan: Plan) -> dict[str, Any]:
    """Versions, the card, the packages the items need, and that none of it imported Dagster."""
    from importlib import metadata

    import torch

    # What the items import (the deepspeed item runs realm's segment entry point: dagster_pipes, not dagster).
    import realm_pipeline.evaluation.backends  # noqa: F401
    import realm_pipeline.evaluation.runner  # noqa: F401
    import realm_pipeline.training.distributed  # noqa: F401
    import realm_pipeline.training.trainer  # noqa: F401

    packages = [
        "torch",
        "transformers",
        "peft",
        "accelerate",
        "bitsandbytes",
        "galore-torch",
        "deepspeed",
        "dagster-pipes",
        "pydantic",
        "hjson",
    ]
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    missing = [n for n, v in versions.items() if v is None]
    rec: dict[str, Any] = {
        "python": sys.version.split()[0],
        "versions": versions,
        "missing": missing,
        "dagster_imported": "dagster" in sys.modules,
        "cuda_available": torch.cuda.is_available(),
        "peak_bf16_tflops": PEAK_BF16_TFLOPS,
    }
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        rec.update(device_name=torch.cuda.get_device_name(), memory_total_bytes=total, memory_free_bytes=free)
    if rec["dagster_imported"]:
        return failed("the GPU check imported dagster; the core training code must not", **rec)
    where = rec.get("device_name", "CPU")
    if plan.dry:
        note = f"; not installed here: {', '.join(missing)}" if missing else ""
        return passed(f"{where}, torch {versions['torch']}{note}", **rec)
    if not torch.cuda.is_available():
        return failed("torch.cuda.is_available() is False: not a GPU machine", **rec)
    if missing:
        return failed(f"not installed: {', '.join(missing)} (make gpu-wheels, then carry .whl)", **rec)
    return passed(f"{where}, {_gib(rec['memory_total_bytes'])}, torch {versions['torch']}", **rec)


def method_item(name: str, method: str, optimizer: str, cuda_only: bool, needs: tuple[str, ...]):
    """The item that trains one short segment with `method` and `optimizer` and reloads its checkpoint."""

    def run(plan: Plan) -> dict[str, Any]:
        spec = segment_spec(plan, name, method=method, optimizer=optimizer)
        estimate = estimate_for(plan, spec)
        planned = {"method": method, "optimizer": optimizer, "estimate_bytes": estimate.total}
        if plan.dry and cuda_only:
            return skipped(f"needs CUDA ({', '.join(needs)} on a GPU): dry run on CPU", **planned)
        missing = _missing(*needs)
        if missing:
            why = f"{', '.join(missing)} not installed (make gpu-wheels carries it)"
            return (skipped if plan.dry else failed)(why, **planned)
        from realm_pipeline.training.trainer import train_segment

        if method == "qlora":
            # realm quantizes on loading a checkpoint (methods.load_for_method): save the built model first.
            from realm_pipeline.training.hero import load_base

            model, tokenizer = load_base({"tiny": dict(plan.shape)}, dtype="bfloat16")
            base = plan.work / f"{name}_base"
            model.save_pretrained(base, safe_serialization=True)
            tokenizer.save_pretrained(base)
            del model
            spec = dataclasses.replace(spec, base={"path": str(base)})
        result = train_segment(spec)
        tolerance = RELOAD_TOLERANCE.get(method, RELOAD_TOLERANCE["default"])
        return _finish_segment(spec, result, estimate, tolerance=tolerance)

    return run


def refused_batch(plan: Plan, spec: Any, available: int) -> tuple[int, Any]:
    """The smallest power-of-two batch whose estimate exceeds `available` x refuse_margin, and its estimate."""
    batch = spec.batch_size
    while True:
        estimate = estimate_for(plan, dataclasses.replace(spec, batch_size=batch))
        if estimate.total > available * plan.refuse_margin or batch >= 1 << 16:
            return batch, estimate
        batch *= 2


def run_refused(plan: Plan) -> dict[str, Any]:
    """A full-AdamW segment at the smallest batch `check_fits` refuses, tried anyway: it must run out."""
    from realm_pipeline.training.memory import WillNotFit, check_fits

    if plan.dry:
        # What the GPU run would try: the 0.6B shape on an 80 GB card (arithmetic only, nothing is built).
        plan = dataclasses.replace(plan, shape={**QWEN3_06B_SHAPE}, max_length=plan.max_length)
        available, where = DRY_CARD_BYTES, "an 80 GiB card (dry run)"
    else:
        import torch

        available, where = torch.cuda.mem_get_info()[0], torch.cuda.get_device_name()
    spec = segment_spec(plan, "estimate_refused", steps=2)
    batch, estimate = refused_batch(plan, spec, available)
    try:
        check_fits(estimate, available, where)
        return failed(f"check_fits accepted batch {batch} ({_gib(estimate.total)} of {_gib(available)})")
    except WillNotFit as exc:
        refusal = str(exc).splitlines()[0]
    rec = {
        "batch_size": batch,
        "estimate_bytes": estimate.total,
        "available_bytes": available,
        "refusal": refusal,
    }
    if plan.dry:
        return skipped(
            f"check_fits refuses batch {batch} (est {_gib(estimate.total)} > {_gib(available)}); "
            "trying it needs CUDA",
            **rec,
        )
    import torch

    from realm_pipeline.training.trainer import train_segment

    torch.cuda.reset_peak_memory_stats()
    try:
        result = train_segment(dataclasses.replace(spec, batch_size=batch))
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not isinstance(exc, torch.OutOfMemoryError) and "out of memory" not in str(exc).lower():
            raise
        peak = int(torch.cuda.max_memory_allocated())
        return passed(
            f"refused batch {batch} (est {_gib(estimate.total)} > free {_gib(available)}): OOM as "
            f"estimated, at {_gib(peak)} allocated",
            peak_allocated_bytes=peak,
            error=str(exc).splitlines()[0][:300],
            **rec,
        )
    return failed(
        f"the estimate refused batch {batch} ({_gib(estimate.total)} > {_gib(available)} free) but it ran, "
        f"peak {_gib(result.peak_memory_bytes)}: the estimate is too pessimistic there",
        peak_allocated_bytes=result.peak_memory_bytes,
        **rec,
    )


def _bench_module(name: str) -> Any:
    path = REPO / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def run_train_throughput(plan: Plan) -> dict[str, Any]:
    """bench/train_throughput.py: realm's packed trainer vs transformers.Trainer, tokens/s and MFU."""
    out = plan.work / "train_throughput.json"
    if plan.dry:
        argv = ["--device", "cpu", "--model", "tiny", "--steps", "2", "--batch-size", "1", "--repeats", "1"]
    else:
        argv = ["--device", "cuda", "--model", "qwen3-0.6b-shaped", "--steps", "30", "--batch-size", "16"]
        argv += ["--repeats", "1", "--peak-tflops", str(PEAK_BF16_TFLOPS)]
    _bench_module("train_throughput").main([*argv, "--json", str(out)])
    rec = json.loads(out.read_text())
    figures = f"realm {rec['realm']['tokens_per_s']:.0f} tok/s vs hf {rec['hf']['tokens_per_s']:.0f}"
    if "realm_mfu" in rec:
        figures += f"; MFU {rec['realm_mfu']:.1%} vs {rec['hf_mfu']:.1%} of {rec['peak_tflops']:g} TFLOP/s"
    return passed(figures, argv=argv, **rec)


def run_eval_throughput(plan: Plan) -> dict[str, Any]:
    """bench/eval_throughput.py: the batched evaluator vs one-at-a-time `model.generate`, items/s."""
    out = plan.work / "eval_throughput.json"
    if plan.dry:
        argv = ["--device", "cpu", "--items", "4", "--batch-size", "4", "--max-new-tokens", "2"]
    else:
        argv = ["--device", "cuda", "--items", "256", "--batch-size", "64"]
    _bench_module("eval_throughput").main([*argv, "--json", str(out)])
    rec = json.loads(out.read_text())
    figures = (
        f"batched {rec['batched_items_per_s']:.1f} items/s vs sequential "
        f"{rec['sequential_items_per_s']:.1f} ({rec['speedup']:.1f}x)"
    )
    return passed(figures, argv=argv, **rec)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_deepspeed(plan: Plan) -> dict[str, Any]:
    """A ZeRO-2 segment through the `deepspeed` launcher (realm's segment entry point), reloaded plainly."""
    from realm_pipeline.training.distributed import ZERO2_CONFIG, launch_command, write_deepspeed_config
    from realm_pipeline.training.plan import SEGMENT_MODULE
    from realm_pipeline.training.trainer import RESULT_FILE, SegmentResult, spec_to_json

    on_cpu = plan.dry
    spec = segment_spec(plan, "deepspeed_zero2")
    ds_json = write_deepspeed_config(
        ZERO2_CONFIG,
        plan.work / "deepspeed_zero2.json",
        micro_batch_size=spec.batch_size,
        grad_accum=1,
        lr=spec.lr,
        bf16=not on_cpu,
    )
    spec_path = plan.work / "deepspeed_zero2.spec.json"
    spec_path.write_text(spec_to_json(spec))
    command = launch_command(
        SEGMENT_MODULE, spec_path, num_gpus=1, deepspeed_config=ds_json, master_port=_free_port()
    )
    if command[0] == "deepspeed" and not any(
        (Path(d) / "deepspeed").exists() for d in os.environ.get("PATH", "").split(os.pathsep)
    ):
        # Wheels installed with pip --target put the launcher script where PATH does not look.
        command = [sys.executable, "-m", "deepspeed.launcher.runner", *command[1:]]
    estimate = estimate_for(plan, spec, deepspeed=True)
    rec = {"command": command, "deepspeed_config": json.loads(ds_json.read_text())}
    if plan.dry and not plan.deepspeed_on_cpu:
        return skipped(
            "needs CUDA: the launcher on CPU takes minutes (--deepspeed-on-cpu; tests/test_multirank.py, "
            "marked slow, runs it with two ranks)",
            estimate_bytes=estimate.total,
            **rec,
        )
    if _missing("deepspeed"):
        return failed("deepspeed not installed (make gpu-wheels carries it)", **rec)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    for name in ("DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"):
        env.pop(name, None)  # standalone mode: the segment reads --spec and prints its result
    if on_cpu:
        env["DS_ACCELERATOR"] = "cpu"
    sys.stdout.flush()
    done = subprocess.run(command, env=env, cwd=plan.work, check=False)
    if done.returncode != 0:
        return failed(f"the deepspeed launcher exited {done.returncode} (see deepspeed_zero2.log)", **rec)
    result = SegmentResult(**json.loads((Path(spec.output_dir) / RESULT_FILE).read_text()))
    return _finish_segment(
        dataclasses.replace(spec, deepspeed_config=str(ds_json)),
        result,
        estimate,
        tolerance=RELOAD_TOLERANCE["deepspeed"],
        reload_dtype="float32" if on_cpu else "bfloat16",
        **rec,
    )


ITEMS: tuple[Item, ...] = (
    Item("env", run_env, 60, 60),
    *(Item(m[0], method_item(*m), 150, 120) for m in METHOD_ITEMS),
    Item("estimate_refused", run_refused, 150, 60),
    Item("train_throughput", run_train_throughput, 240, 120),
    Item("eval_throughput", run_eval_throughput, 120, 120),
    Item("deepspeed_zero2", run_deepspeed, 300, 300),
)


# --- running them --------------------------------------------------------------------------------------


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON atomically (a killed item never leaves half a file)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def _log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _child(item: Item, plan: Plan, log: Path, result: Path) -> None:
    """In the forked child: own process group, output to the item's log, the record to its JSON."""
    code = 1
    try:
        os.setsid()  # the parent kills the whole group on a timeout (the deepspeed ranks too)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # New objects on fds 1 and 2: the inherited ones may not write there (pytest's capture, for one).
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        try:
            record = item.run(plan)
        except BaseException as exc:  # the record says what broke; the next item still runs
            traceback.print_exc()
            first = (str(exc).splitlines() or [""])[0]
            record = failed(f"{type(exc).__name__}: {first}"[:400], traceback=traceback.format_exc()[-4000:])
        write_json(result, {"item": item.name, **record})
        code = 0
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)  # never return into the parent's loop (or run its exit handlers)


def run_item(item: Item, plan: Plan, limit_s: float) -> dict[str, Any]:
    """Run `item` in a forked child under `limit_s` seconds and return its record (seconds added)."""
    log, result = plan.out / f"{item.name}.log", plan.out / f"{item.name}.json"
    result.unlink(missing_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(item, plan, log, result)
    status, timed_out = None, False
    while status is None:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            status = wait_status
        elif time.monotonic() - start > limit_s:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            status = os.waitpid(pid, 0)[1]
        else:
            time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # anything the item left running (a launcher's ranks)
    seconds = time.monotonic() - start
    if timed_out:
        record = {"item": item.name, "status": "timeout", "reason": f"over its {limit_s:.0f} s limit"}
        record["log_tail"] = _log_tail(log)
    elif not result.exists():
        how = (
            f"signal {os.WTERMSIG(status)}"
            if os.WIFSIGNALED(status)
            else f"exit status {os.WEXITSTATUS(status)}"
        )
        record = {"item": item.name, "status": "failed", "reason": f"its process died ({how})"}
        record["log_tail"] = _log_tail(log)
    else:
        record = json.loads(result.read_text())
    record.update(seconds=round(seconds, 1), limit_s=round(limit_s))
    write_json(result, record)
    for path in plan.work.glob(f"{item.name}*"):  # its checkpoints: a 0.6B-shaped one is 2.4 GB
        if path in (log, result):  # --work may be the output folder
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return record


def summary_table(records: list[dict[str, Any]]) -> str:
    """The run's one table: item, status, seconds, and the figures (or the reason)."""
    rows = [("item", "status", "s", "figures / reason")]
    for r in records:
        rows.append(
            (r["item"], r["status"], f"{r.get('seconds', 0):.0f}", r.get("summary") or r.get("reason", ""))
        )
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}  {d}" for a, b, c, d in rows)


def make_plan(args: argparse.Namespace, out: Path, work: Path) -> Plan:
    """The shared settings of a run: the 0.6B shape on CUDA, the smallest one on a dry run."""
    from realm_pipeline.lm.budgets import segment_max_length
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import DEFAULT_EVAL_COUNT

    if args.dry_run:
        shape, mix, steps, batch, heldout = dict(DRY_SHAPE), (("bin", 1, 1.0),), 2, 1, 4
    else:
        shape = dict(QWEN3_06B_SHAPE)
        mix = tuple(("bin", level, 1.0) for level in (1, 2, 3, 4))
        steps, batch, heldout = args.steps, args.batch_size, 16
    if args.layers:
        shape["num_hidden_layers"] = args.layers
    max_length = segment_max_length(
        "char", [(get_skill(s), lv, DEFAULT_EVAL_COUNT) for s, lv, _ in mix], ceiling=4096
    )
    return Plan(
        dry=args.dry_run,
        out=out,
        work=work,
        shape=shape,
        steps=steps,
        batch_size=batch,
        mix=mix,
        heldout_count=heldout,
        max_length=max_length,
        lr=1e-4,
        refuse_margin=args.refuse_margin,
        deepspeed_on_cpu=args.deepspeed_on_cpu,
    )


def _preload() -> None:
    # Imported once here so that every forked item starts warm; CUDA stays untouched (fork-safe).
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401
    from transformers import AutoModelForCausalLM, Qwen3ForCausalLM, Trainer  # noqa: F401

    import realm_pipeline.evaluation.backends  # noqa: F401
    import realm_pipeline.training.trainer  # noqa: F401

    if torch.cuda.is_initialized():  # a forked child could not use CUDA then
        raise SystemExit("gpu check: CUDA was initialised before the first fork; no item could use it")


def main(argv: list[str] | None = None) -> int:
    """Run the selected items in order, then write and print the summary; 1 if any item failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="CPU, smallest shapes, CUDA items skipped")
    parser.add_argument(
        "--out", type=Path, default=None, help="result folder (default: $OUT, else ./gpu_check_out)"
    )
    parser.add_argument("--work", type=Path, default=None, help="checkpoints (default: a temporary folder)")
    parser.add_argument(
        "--items", default="", help=f"comma-separated subset of: {', '.join(i.name for i in ITEMS)}"
    )
    parser.add_argument(
        "--budget-s", type=float, default=None, help="whole run's time; later items are skipped"
    )
    parser.add_argument("--steps", type=int, default=8, help="steps per segment (GPU run)")
    parser.add_argument("--batch-size", type=int, default=8, help="packed rows per step (GPU run)")
    parser.add_argument("--layers", type=int, default=None, help="override the model's layer count")
    parser.add_argument(
        "--refuse-margin", type=float, default=1.0, help="refused run: estimate > margin x free"
    )
    parser.add_argument(
        "--deepspeed-on-cpu", action="store_true", help="dry run: run the launcher on CPU too"
    )
    args = parser.parse_args(argv)

    names = [n for n in args.items.split(",") if n]
    unknown = sorted(set(names) - {i.name for i in ITEMS})
    if unknown:
        parser.error(f"unknown items: {', '.join(unknown)}")
    selected = [i for i in ITEMS if not names or i.name in names]
    out = args.out or Path(os.environ.get("OUT") or "gpu_check_out")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # torch.cuda.is_available() through NVML does not initialise CUDA, so a fork after it stays usable.
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        plan = make_plan(args, out.resolve(), work.resolve())
        _preload()
        print(f"gpu check: {'dry run (CPU)' if plan.dry else 'CUDA'}, {len(selected)} items -> {plan.out}")
        deadline = time.monotonic() + args.budget_s if args.budget_s else None
        records = []
        for item in selected:
            limit = item.dry_limit_s if plan.dry else item.limit_s
            if deadline is not None:
                left = deadline - time.monotonic()
                if left < MIN_ITEM_S:
                    record = {"item": item.name, **skipped("out of the run's time budget (--budget-s)")}
                    write_json(plan.out / f"{item.name}.json", record)
                    records.append(record)
                    continue
                limit = min(limit, left)
            record = run_item(item, plan, limit)
            print(f"  {item.name}: {record['status']} ({record['seconds']:.0f} s)", flush=True)
            records.append(record)
    table = summary_table(records)
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    write_json(
        plan.out / "summary.json",
        {
            "dry_run": plan.dry,
            "counts": counts,
            "items": [
                {k: r.get(k) for k in ("item", "status", "seconds", "summary", "reason")} for r in records
            ],
        },
    )
    (plan.out / "summary.txt").write_text(table + "\n")
    print(table)
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 0 if counts["failed"] == counts["timeout"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
