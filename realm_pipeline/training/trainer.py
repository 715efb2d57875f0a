"""One resumable training segment: a plain PyTorch loop over a packed skill mix (torch imported lazily)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realm_pipeline.disk import DiskFull, failed_write_line
from realm_pipeline.lm.weights import weights_sha256
from realm_pipeline.skills.heldout import DEFAULT_EVAL_COUNT
from realm_pipeline.training.strain import strain as strain_of
from realm_pipeline.training.strain import zone

Messages = list[dict[str, str]]

REFLECTION_SOURCE = "mirror_reflections"
RESUME_DIR = "resume"
RESULT_FILE = "segment_result.json"
DEEPSPEED_RESUME_TAG = "state"  # the sharded engine save under resume/
OPTIMIZER_DIR = "optimizer"  # beside a checkpoint's weights: the optimizer state a carrying schedule hands on
OPTIMIZER_FILE = "optimizer.pt"
# LR schedules across segments (settings.LrSchedule); all but restart carry the parent's optimizer state.
SCHEDULES = ("restart", "carry", "continuous", "constant")
CARRYING_SCHEDULES = ("carry", "continuous", "constant")


@dataclass
class SegmentSpec:
    """Everything one segment needs; JSON-serialisable (see `spec_to_json`)."""

    output_dir: str
    base: dict | str = field(default_factory=lambda: {"tiny": {}})  # {"tiny": cfg} | model id | {"id"/"path"}
    parent_dir: str | None = None  # previous segment's checkpoint; None => start from `base`
    method: str = "full"  # full | lora | qlora | galore (methods.prepare_model)
    optimizer: str = "adamw"  # adamw | adamw_8bit | paged_adamw | muon (methods.build_optimizer)
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup_steps: int | None = None  # None => min(10, steps // 10)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    # Across segments: restart (fresh optimizer, warm-up and cosine every segment), carry (the parent's
    # optimizer state, the per-segment schedule), continuous (carried state, one warm-up and one cosine over
    # schedule_total_steps), constant (carried state, one warm-up, then lr).
    schedule: str = "restart"
    schedule_offset_steps: int = 0  # steps the campaign trained before this segment (continuous, constant)
    schedule_total_steps: int | None = None  # continuous: the campaign's step budget the cosine spans
    grad_clip: float = 1.0
    batch_size: int = 8  # packed rows per step
    max_length: int = 256  # tokens per packed row
    steps: int = 100
    save_every: int = 50  # full resume state every N steps (0 = never)
    log_every: int = 10
    seed: int = 1  # data-stream seed, >= 1 (eval owns negative seeds); vary it per segment for fresh data
    mix: list[tuple[str, int, float]] = field(default_factory=list)  # (skill, level, weight)
    # per skill, its eval_items_per_level: training skips every held-out prompt at that real size
    eval_items_per_level: dict[str, int] = field(default_factory=dict)
    quests: list[Messages] = field(default_factory=list)  # extra chat examples
    quest_weight: float = 0.1
    # The Mirror: reflections the parent checkpoint made (sparring.load_reflections) join this mix ...
    reflections: list[Messages] = field(default_factory=list)
    reflection_weight: float = 0.2
    # ... and after this segment the hero answers this many training-distribution probes (0: no Mirror).
    mirror_probes: int = 0
    heldout: list[tuple[str, int, int]] = field(default_factory=list)  # (skill, level, count) via eval_items
    heldout_examples: list[Messages] = field(default_factory=list)
    loss_floor: float = 0.0  # used only without loss_floors
    # (skill, level, floor) of the levels whose strain the segment reports (the levels being learned).
    loss_floors: list[tuple[str, int, float]] = field(default_factory=list)
    surprise_weighted: bool = False  # the Oracle school (losses.answer_loss)
    device: str = "cpu"
    dtype: str = "float32"  # float32 | bfloat16 (autocast on cuda)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_target_modules: list[str] | None = None
    gradient_checkpointing: bool = False
    deepspeed_config: str | None = None  # a DeepSpeed JSON (distributed.build_deepspeed_config): ZeRO-2/3


@dataclass
class SegmentResult:
    """Metrics and checkpoint identity of a finished segment."""

    step: int
    tokens: int  # non-padding tokens trained on (prompt + answer)
    examples: int
    train_loss: float  # mean answer-token CE over the last quarter of the segment's steps
    heldout_loss: float | None  # mean answer-token CE on the held-out items at the end
    strain: float  # mean over loss_floors' levels of (level loss - floor); else heldout/train - loss_floor
    strain_source: str  # "levels" | "heldout" | "train"
    zone: str  # Recovery < 0.1 <= Productive < 0.3 <= Stretch < 0.5 <= Overload
    tokens_per_s: float  # trained tokens / time spent in training steps
    wall_s: float  # whole segment, summed over resumes
    # CUDA max allocated, or the process's peak RSS on CPU, both from the segment's start (in_process: the
    # run's process, whose own baseline is included)
    peak_memory_bytes: int
    sha256: str  # over the saved *.safetensors files, sorted by name
    path: str
    resumed_from_step: int = 0
    level_losses: dict[str, float] = field(default_factory=dict)  # "skill@level" -> held-out loss
    reflections_trained: int = 0  # Mirror reflection examples (from the parent) drawn in this segment
    mirror_probes: int = 0  # the Mirror's probes after this segment, its misses, the reflections made
    mirror_misses: int = 0
    mirror_examples: int = 0
    # tokens trained per mix source ("skill@level", quests, mirror_reflections): what the mix really was
    trained_tokens: dict[str, int] = field(default_factory=dict)
    optimizer_carried: bool = False  # the segment started from its parent's optimizer state


class SegmentInterrupted(Exception):
    """Training stopped between two steps because it was asked to (`should_stop`); its resume save holds
    the step where it stopped (or, under DeepSpeed, the last periodic save)."""

    def __init__(self, output_dir: str | Path, step: int, steps: int, saved_step: int | None) -> None:
        self.step, self.steps, self.saved_step = step, steps, saved_step
        kept = f"its resume save holds step {saved_step}" if saved_step else "it had no resume save yet"
        super().__init__(f"{output_dir}: stopped on request at step {step} of {steps}; {kept}")


def resume_step(output_dir: str | Path) -> int | None:
    """The step a segment's resume save in `output_dir` holds, None without one."""
    state = Path(output_dir) / RESUME_DIR / "state.json"
    try:
        return int(json.loads(state.read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def spec_to_json(spec: SegmentSpec) -> str:
    """Serialise a spec to JSON."""
    return json.dumps(dataclasses.asdict(spec), sort_keys=True)


def spec_from_json(data: str | dict) -> SegmentSpec:
    """Parse a spec from JSON text or an already-decoded dict (unknown keys are an error)."""
    raw = json.loads(data) if isinstance(data, str) else dict(data)
    raw["mix"] = [tuple(m) for m in raw.get("mix", [])]
    raw["heldout"] = [tuple(h) for h in raw.get("heldout", [])]
    raw["loss_floors"] = [tuple(f) for f in raw.get("loss_floors", [])]
    return SegmentSpec(**raw)


def _fsync_tree(directory: Path) -> None:
    for p in directory.rglob("*"):
        if p.is_file():
            with p.open("rb") as f:
                os.fsync(f.fileno())
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_in(staged: Path, target: Path) -> None:
    """Replace `target` by the fully written `staged` dir; a crash leaves the old or the new one whole."""
    _fsync_tree(staged)
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)
    _fsync_dir(target.parent)
    if old.exists():
        shutil.rmtree(old)


@contextlib.contextmanager
def _staging(staged: Path):
    """Write into `staged`; if writing fails it is removed (no half-written directory stays), and a full
    disk is raised as DiskFull naming ENOSPC and the path."""
    try:
        yield staged
    except BaseException as exc:
        line = failed_write_line(exc, staged) if not isinstance(exc, DiskFull) else None
        shutil.rmtree(staged, ignore_errors=True)
        if line is not None:
            raise DiskFull(f"{line}; the partial {staged.name} was removed") from exc
        raise


def staging_dirs(out: Path) -> tuple[Path, Path]:
    """Where a segment stages its resume save and its final checkpoint before swapping them in."""
    return out / f".{RESUME_DIR}.tmp", out.with_name(f".{out.name}.staging")


def _remove_partial(out: Path) -> None:
    """Remove what a segment that died (or ran out of disk) left half-written; its whole saves stay."""
    for staged in staging_dirs(out):
        if staged.exists():
            print(f"{staged}: removing a partial save an earlier attempt left", flush=True)
            shutil.rmtree(staged, ignore_errors=True)


def _recover(target: Path) -> None:
    """Finish a swap interrupted between its two renames."""
    old = target.with_name(f".{target.name}.old")
    if not target.exists() and old.exists():
        with contextlib.suppress(FileNotFoundError):  # another rank of the segment finished it first
            os.replace(old, target)


# Linux: writing "5" resets the process's peak RSS (VmHWM), so a segment trained inside a long-lived
# process (`launch: in_process`) reports its own peak, not the largest the process ever held.
_CLEAR_REFS, _STATUS = Path("/proc/self/clear_refs"), Path("/proc/self/status")


def _reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")


def _peak_memory(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated())
    with contextlib.suppress(OSError, ValueError):
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


@contextlib.contextmanager
def torch_state_kept() -> Iterator[None]:
    """Give back torch's global RNG and deterministic-algorithms setting as they were: a segment trained
    inside a longer-lived process (`launch: in_process`) must not change what that process does next."""
    import torch

    rng = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.set_rng_state(rng)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _lr_lambda(spec: SegmentSpec) -> Callable[[int], float]:
    """LR multiplier at each step of this segment, by `spec.schedule`.

    restart and carry: warm-up then cosine to min_lr_ratio over the segment. continuous: the same curve
    over the whole campaign (schedule_total_steps, warm-up once), read from schedule_offset_steps on, so
    segment k goes on where segment k-1 stopped. constant: warm-up once, then 1.
    """
    import math

    if spec.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {spec.schedule!r}")
    warm = spec.warmup_steps if spec.warmup_steps is not None else min(10, spec.steps // 10)
    per_segment = spec.schedule in ("restart", "carry")
    offset = 0 if per_segment else spec.schedule_offset_steps
    if per_segment:
        span = spec.steps
    elif spec.schedule == "continuous":
        if not spec.schedule_total_steps:
            raise ValueError("schedule 'continuous' needs schedule_total_steps (the campaign's step budget)")
        span = spec.schedule_total_steps
    else:
        span = None

    def f(step: int) -> float:
        at = offset + step
        if at < warm:
            return (at + 1) / warm
        if span is None:
            return 1.0
        frac = (at - warm) / max(1, span - warm)
        return spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    return f


def _save_optimizer(directory: Path, opt: Any) -> None:
    """Write the optimizer's state dict into `directory` (a resume save, or a checkpoint's optimizer/)."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    torch.save(opt.state_dict(), directory / OPTIMIZER_FILE)


def _load_optimizer(path: Path, opt: Any, *, carried: bool = False) -> None:
    """Load a saved optimizer state. `carried` (from a parent checkpoint): only the per-parameter state
    (moments, step counts) is taken; lr, weight decay and the rest stay this segment's own."""
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=True)
    if carried:
        own = opt.state_dict()["param_groups"]
        if [len(g["params"]) for g in saved["param_groups"]] != [len(g["params"]) for g in own]:
            raise ValueError(
                f"{path}: optimizer state for parameter groups of sizes "
                f"{[len(g['params']) for g in saved['param_groups']]}, this model has "
                f"{[len(g['params']) for g in own]}: not this hero's state (retrain with schedule 'restart')"
            )
        saved = {"state": saved["state"], "param_groups": own}
    opt.load_state_dict(saved)


def _load_carried(spec: SegmentSpec, opt: Any) -> bool:
    """Start from the parent checkpoint's optimizer state when the schedule carries it and it was saved."""
    if spec.schedule not in CARRYING_SCHEDULES or spec.parent_dir is None:
        return False
    path = Path(spec.parent_dir) / OPTIMIZER_DIR / OPTIMIZER_FILE
    if not path.exists():  # the parent trained under restart, or is the base model: a fresh start
        return False
    _load_optimizer(path, opt, carried=True)
    return True


def _load_start(spec: SegmentSpec) -> tuple[Any, Any]:
    """The model/tokenizer this segment starts from: the parent checkpoint, else the hero base."""
    import torch

    from realm_pipeline.lm.dtypes import torch_dtype

    from .hero import load_base

    # fp32 master weights (bf16 only via autocast on CUDA); QLoRA's dtype is its 4-bit compute dtype.
    dtype = spec.dtype if spec.method == "qlora" else "float32"
    if spec.parent_dir is None:
        return load_base(spec.base, dtype=dtype, method=spec.method)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(spec.parent_dir)
        if spec.method == "qlora":
            from .methods import load_for_method

            return load_for_method(spec.parent_dir, spec.method, torch_dtype(spec.dtype)), tok
        return AutoModelForCausalLM.from_pretrained(spec.parent_dir, dtype=torch.float32), tok
    except Exception as exc:  # a missing dir reads as a bad hub id, a cut file as SafetensorError
        from realm_pipeline.lm.weights import checkpoint_problem

        problem = checkpoint_problem(spec.parent_dir)
        if problem is None:
            raise
        raise ValueError(f"parent checkpoint: {problem}") from exc


def _prepare(model: Any, spec: SegmentSpec) -> tuple[Any, Any]:
    """Apply the school's method and build its optimizer (methods.py when present, else full FT + AdamW)."""
    import torch

    try:
        from .methods import build_optimizer, prepare_model
    except ImportError:
        if spec.method != "full" or spec.optimizer != "adamw":
            raise
        model.to(spec.device)
        opt = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=spec.lr, weight_decay=spec.weight_decay
        )
        return model, opt
    model = prepare_model(
        model,
        spec.method,
        lora_r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_target_modules=spec.lora_target_modules,
        gradient_checkpointing=spec.gradient_checkpointing,
    )
    if spec.method != "qlora":  # quantized models are placed by their loader
        model.to(spec.device)
    return model, build_optimizer(model, spec.optimizer, spec.lr, spec.weight_decay, method=spec.method)


def mix_sources(spec: SegmentSpec) -> list[Any]:
    """The weighted sources of the segment's training stream: its mix levels, quests and reflections."""
    from .data import Source

    sources = [
        Source(
            float(w),
            skill=s,
            level=int(lv),
            name=f"{s}@{lv}",
            eval_count=spec.eval_items_per_level.get(s, DEFAULT_EVAL_COUNT),
        )
        for s, lv, w in spec.mix
    ]
    if spec.quests:
        sources.append(Source(spec.quest_weight, examples=list(spec.quests), name="quests"))
    if spec.reflections:
        sources.append(
            Source(spec.reflection_weight, examples=list(spec.reflections), name=REFLECTION_SOURCE)
        )
    return sources


def _heldout_groups(spec: SegmentSpec) -> dict[str, list[Messages]]:
    """Held-out examples by "skill@level" (eval items: never trained on), plus "extra" for heldout_examples."""
    groups: dict[str, list[Messages]] = {}
    if spec.heldout:
        from realm_pipeline.skills import get_skill
        from realm_pipeline.skills.heldout import eval_items

        for skill, level, count in spec.heldout:
            items = eval_items(get_skill(skill), int(level), int(count))
            groups.setdefault(f"{skill}@{int(level)}", []).extend(item.messages for item in items)
    if spec.heldout_examples:
        groups["extra"] = list(spec.heldout_examples)
    return groups


def _segment_strain(
    spec: SegmentSpec, level_losses: dict[str, float], heldout_loss: float | None, train_loss: float
) -> tuple[float, str]:
    """The segment's strain: mean (loss - floor) over the levels being learned, else one overall floor."""
    per_level = [
        strain_of(level_losses[f"{s}@{int(lv)}"], float(floor))
        for s, lv, floor in spec.loss_floors
        if f"{s}@{int(lv)}" in level_losses
    ]
    if per_level:
        return sum(per_level) / len(per_level), "levels"
    if heldout_loss is not None:
        return strain_of(heldout_loss, spec.loss_floor), "heldout"
    return strain_of(train_loss, spec.loss_floor), "train"


def _rng_state() -> dict[str, Any]:
    import random

    import numpy as np
    import torch

    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_resume(out: Path, model: Any, opt: Any, sched: Any, counters: dict[str, Any]) -> None:
    import torch

    staged = staging_dirs(out)[0]
    if staged.exists():
        shutil.rmtree(staged)
    with _staging(staged):  # a failed save leaves the previous one whole, and no .resume.tmp/
        staged.mkdir(parents=True)
        torch.save(model.state_dict(), staged / "model.pt")
        _save_optimizer(staged, opt)
        torch.save(sched.state_dict(), staged / "scheduler.pt")
        torch.save(_rng_state(), staged / "rng.pt")
        (staged / "state.json").write_text(json.dumps(counters))
        _swap_in(staged, out / RESUME_DIR)


def _load_resume(out: Path, model: Any, opt: Any, sched: Any) -> dict[str, Any] | None:
    import torch

    _recover(out / RESUME_DIR)
    d = out / RESUME_DIR
    if not (d / "state.json").exists():
        return None
    model.load_state_dict(torch.load(d / "model.pt", map_location="cpu", weights_only=True))
    _load_optimizer(d / OPTIMIZER_FILE, opt)
    sched.load_state_dict(torch.load(d / "scheduler.pt", weights_only=False))
    _set_rng_state(torch.load(d / "rng.pt", weights_only=False))
    return json.loads((d / "state.json").read_text())


def _load_resume_deepspeed(out: Path, engine: Any) -> dict[str, Any] | None:
    """Resume a DeepSpeed engine from its own sharded checkpoint under output_dir/resume."""
    if not (out / RESUME_DIR / "latest").exists():
        return None
    _, client_state = engine.load_checkpoint(str(out / RESUME_DIR), tag=DEEPSPEED_RESUME_TAG)
    return client_state["counters"]


def _gather_for_save(engine: Any) -> tuple[Any, dict | None]:
    """The full weights on rank 0: ZeRO-3 shards are gathered; ZeRO-2 weights are whole already."""
    import deepspeed

    params = list(engine.module.parameters())
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        state = (
            {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}
            if engine.global_rank == 0
            else None
        )
    return engine.module, state


def _spar(spec: SegmentSpec, model: Any, tokenizer: Any, staged: Path) -> Any:
    """The Mirror: probe the finished hero and save its reflections inside the staged checkpoint."""
    if spec.mirror_probes <= 0 or not spec.mix:
        return None
    from .sparring import save_reflections, spar

    if model is None:  # DeepSpeed (possibly ZeRO-3 sharded): probe the gathered weights just saved
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(staged).to(spec.device)
    examples, report = spar(
        model,
        tokenizer,
        [(s, int(lv)) for s, lv, _ in spec.mix],
        probes=spec.mirror_probes,
        training_seed=spec.seed,
        eval_counts=spec.eval_items_per_level,
        batch_size=max(spec.batch_size, 32),
    )
    save_reflections(staged, examples, report)
    return report


def _finished(out: Path) -> SegmentResult | None:
    """The result of a segment already saved in `out`, adopted only if its weights still hash to it.

    A checkpoint whose process died before the ledger recorded it is adopted this way on the retry; one
    whose files no longer match its result (truncated, edited) is removed and the segment trained again.
    """
    _recover(out)
    f = out / RESULT_FILE
    if f.exists() and not (out / RESUME_DIR).exists():
        result = SegmentResult(**json.loads(f.read_text()))
        if weights_sha256(out) == result.sha256:
            return result
        print(f"{out}: weights do not match {RESULT_FILE} (sha256); removed, training it again", flush=True)
        shutil.rmtree(out)
    return None


def train_segment(
    spec: SegmentSpec,
    *,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SegmentResult:
    """Train one segment (resuming from output_dir/resume if present) and atomically write its checkpoint.

    `should_stop` is asked between steps; once it says yes the segment saves its resume state at that step
    and raises SegmentInterrupted, so the next attempt goes on from there."""
    import torch

    from .data import ExampleEncoder, MixStream, StreamState, loss_sum, pack_examples, pack_from_stream
    from .losses import answer_loss

    if spec.schedule in CARRYING_SCHEDULES and (spec.deepspeed_config or spec.method in ("lora", "qlora")):
        raise ValueError(
            f"schedule {spec.schedule!r} carries the optimizer state across segments, which method "
            f"{spec.method!r}{' under DeepSpeed' if spec.deepspeed_config else ''} cannot: use 'restart'"
        )
    out = Path(spec.output_dir)
    done = _finished(out)
    if done is not None:
        return done  # idempotent: a finished segment is never retrained
    _remove_partial(out)
    out.mkdir(parents=True, exist_ok=True)

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # shard/loading bars would flood the Pipes log
    torch.manual_seed(spec.seed)
    if spec.device == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    model, tokenizer = _load_start(spec)
    model, opt = _prepare(model, spec)
    # Before the scheduler is built (it sets each group's initial lr); a resume save below overrides it.
    carried = _load_carried(spec, opt)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(spec))
    encoder = ExampleEncoder(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    counters: dict[str, Any] = {
        "step": 0,
        "tokens": 0,
        "examples": 0,
        "train_time": 0.0,
        "wall": 0.0,
        "tail_nll": 0.0,
        "tail_count": 0,
        "data": {"position": 0, "counts": None},
    }
    engine = None
    if spec.deepspeed_config:
        # Under the deepspeed launcher: the engine owns device placement, ZeRO sharding, clipping (from the
        # JSON), the optimizer step and the LR schedule; each rank trains on its own share of the stream.
        import deepspeed

        engine, opt, _, sched = deepspeed.initialize(
            model=model,
            optimizer=opt,
            lr_scheduler=sched,
            config=json.loads(Path(spec.deepspeed_config).read_text()),
        )
        model = engine
    resumed = _load_resume(out, model, opt, sched) if engine is None else _load_resume_deepspeed(out, engine)
    if resumed is not None:
        counters = resumed
    resumed_from = counters["step"]
    state = StreamState(**counters["data"]) if counters["data"]["counts"] is not None else None
    rank = engine.global_rank if engine is not None else 0
    stream = MixStream(mix_sources(spec), spec.seed + rank, encoder, state)
    device = str(engine.device) if engine is not None else spec.device
    tail_from = spec.steps - max(1, spec.steps // 4)
    use_bf16 = spec.dtype in ("bfloat16", "bf16") and spec.device.startswith("cuda")
    _reset_peak_memory(spec.device)

    saved_step = resumed_from if resumed is not None else None

    def save() -> None:
        nonlocal wall_mark, saved_step
        now = time.perf_counter()
        counters["wall"] += now - wall_mark
        wall_mark = now
        counters["data"] = dataclasses.asdict(stream.state)
        if engine is not None:
            # DeepSpeed writes a file named `latest` naming the newest tag: the tag must not be "latest"
            engine.save_checkpoint(
                str(out / RESUME_DIR), tag=DEEPSPEED_RESUME_TAG, client_state={"counters": counters}
            )
        else:
            _save_resume(out, model, opt, sched, counters)
        saved_step = counters["step"]

    model.train()
    wall_mark = time.perf_counter()
    while counters["step"] < spec.steps:
        if should_stop is not None and should_stop():
            # A save here is one atomic swap; under DeepSpeed it is a collective that every rank would have
            # to reach at the same step, so the last periodic save is what the next attempt resumes from.
            if engine is None and counters["step"] != saved_step:
                save()
            raise SegmentInterrupted(out, counters["step"], spec.steps, saved_step)
        t0 = time.perf_counter()
        batch = pack_from_stream(stream, spec.batch_size, spec.max_length, pad_id).to(device)
        with torch.autocast(spec.device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16):
            # attention_mask=None + restarting position_ids: transformers builds a block-diagonal causal mask.
            logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
        # The Scribe's answer-token CE, surprise-weighted when the Oracle school is on.
        loss, plain, n = answer_loss(logits[:, :-1], batch.labels[:, 1:], oracle=spec.surprise_weighted)
        if engine is not None:
            engine.backward(loss)
            engine.step()  # clip + optimizer + LR schedule + zero_grad, as the DeepSpeed JSON says
        else:
            loss.backward()
            if spec.grad_clip:
                torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.requires_grad], spec.grad_clip
                )
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        step_loss = float(plain.detach())  # syncs, so the step timing below is honest on CUDA
        counters["train_time"] += time.perf_counter() - t0
        counters["step"] += 1
        counters["tokens"] += batch.n_tokens
        counters["examples"] += batch.n_examples
        if counters["step"] > tail_from:
            counters["tail_nll"] += step_loss * int(n)
            counters["tail_count"] += int(n)
        step = counters["step"]
        if on_progress and (step % max(1, spec.log_every) == 0 or step == spec.steps):
            on_progress(
                {
                    "step": step,
                    "steps": spec.steps,
                    "loss": step_loss,
                    "tokens": counters["tokens"],
                    "lr": sched.get_last_lr()[0],
                    "tokens_per_s": counters["tokens"] / max(counters["train_time"], 1e-9),
                }
            )
        if spec.save_every and step % spec.save_every == 0 and step < spec.steps:
            save()

    level_losses: dict[str, float] = {}
    total_nll, total_count = 0.0, 0
    for name, msgs in _heldout_groups(spec).items():
        encoded = [encoder.encode(m) for m in msgs]
        # A measured-only level (e.g. the next one) may be longer than the training rows: its own row length.
        row = max([spec.max_length] + [len(ids) for ids, _ in encoded])
        batches = pack_examples(encoded, spec.batch_size, row, pad_id)
        nll_sum, count = loss_sum(model, batches, device)
        total_nll, total_count = total_nll + nll_sum, total_count + count
        if name != "extra":
            level_losses[name] = nll_sum / max(count, 1)
    heldout_loss = total_nll / total_count if total_count else None
    train_loss = counters["tail_nll"] / max(counters["tail_count"], 1)
    strain, strain_source = _segment_strain(spec, level_losses, heldout_loss, train_loss)
    reflections_trained = next(
        (
            c
            for src, c in zip(stream.sources, stream.state.counts, strict=True)
            if src.name == REFLECTION_SOURCE
        ),
        0,
    )

    # Stage the whole final checkpoint beside output_dir, then swap it in: it appears whole or not at all.
    staged = staging_dirs(out)[1]
    if engine is not None:
        final, state_dict = _gather_for_save(engine)  # collective: every rank takes part
        if engine.global_rank != 0:
            # Rank 0 alone writes the checkpoint; the others wait for its swap and return the same result,
            # read back from disk, so every rank's caller sees a SegmentResult.
            _barrier()
            done = _finished(out)
            if done is None:
                raise RuntimeError(f"rank {engine.global_rank}: rank 0 wrote no {RESULT_FILE} in {out}")
            return done
    else:
        final, state_dict = model, None
    if staged.exists():
        shutil.rmtree(staged)
    with _staging(staged):  # all of it or nothing: a failed write removes the staged copy
        final = (
            final.merge_and_unload() if hasattr(final, "merge_and_unload") else final
        )  # LoRA -> plain weights
        final.save_pretrained(staged, safe_serialization=True, state_dict=state_dict)
        tokenizer.save_pretrained(staged)
        if spec.schedule in CARRYING_SCHEDULES and engine is None:
            _save_optimizer(staged / OPTIMIZER_DIR, opt)  # the next segment's starting state
        sha = weights_sha256(staged)
        mirror = _spar(spec, final if engine is None else None, tokenizer, staged)
        counters["wall"] += time.perf_counter() - wall_mark
        result = SegmentResult(
            step=counters["step"],
            tokens=counters["tokens"],
            examples=counters["examples"],
            train_loss=train_loss,
            heldout_loss=heldout_loss,
            strain=strain,
            strain_source=strain_source,
            zone=zone(strain).value.title(),
            tokens_per_s=counters["tokens"] / max(counters["train_time"], 1e-9),
            wall_s=counters["wall"],
            peak_memory_bytes=_peak_memory(spec.device),
            sha256=sha,
            path=str(out),
            resumed_from_step=resumed_from,
            level_losses=level_losses,
            reflections_trained=reflections_trained,
            mirror_probes=mirror.probes if mirror else 0,
            mirror_misses=mirror.misses if mirror else 0,
            mirror_examples=mirror.examples if mirror else 0,
            trained_tokens=stream.trained_tokens(),
            optimizer_carried=carried,
        )
        (staged / RESULT_FILE).write_text(json.dumps(dataclasses.asdict(result), indent=2))
        _swap_in(staged, out)  # the old output_dir (holding resume/) is dropped with the swap
    if engine is not None:
        _barrier()  # releases the other ranks, which read the result rank 0 just swapped in
    return result


def _barrier() -> None:
    """Wait for every rank of the DeepSpeed process group."""
    import deepspeed

    deepspeed.comm.barrier()
