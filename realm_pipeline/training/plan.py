"""From a hero's config and the curriculum to one segment's SegmentSpec (pure, no torch)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from realm_pipeline.settings import HeroConfig, MemoryProfile

KEY_PATTERN = re.compile(r"^(?P<hero>[a-z][a-z0-9_]*)\.(?P<step>\d{6,})$")


@dataclass(frozen=True)
class CheckpointKey:
    """`<hero>.<step>`: the partition key of one checkpoint (step zero-padded so keys sort by step)."""

    hero: str
    step: int

    def __str__(self) -> str:
        return f"{self.hero}.{self.step:06d}"

    @classmethod
    def parse(cls, key: str) -> CheckpointKey:
        """Parse a partition key; a malformed key is a ValueError naming it."""
        m = KEY_PATTERN.match(key)
        if not m:
            raise ValueError(f"checkpoint key {key!r} is not '<hero>.<step>' (e.g. 'tiny.000150')")
        return cls(m["hero"], int(m["step"]))

    def stream_seed(self, hero_seed: int) -> int:
        """This segment's training-stream seed, from the hero's seed and the key (>= 1: eval owns 0)."""
        return int(hashlib.sha256(f"{hero_seed}:{self}".encode()).hexdigest()[:8], 16) + 1


def next_key(hero: HeroConfig, latest_step: int | None) -> CheckpointKey:
    """The checkpoint that follows `latest_step` (None: the hero's first segment)."""
    return CheckpointKey(hero.name, (latest_step or 0) + hero.campaign.segment_steps)


def segment_spec(
    hero: HeroConfig,
    profile: MemoryProfile,
    key: CheckpointKey,
    *,
    output_dir: Path,
    parent_dir: Path | None,
    mix: list[tuple[str, int, float]],
    quests: list[list[dict[str, str]]],
    eval_items_per_level: dict[str, int],
    heldout_count: int = 24,
    reflections: list[list[dict[str, str]]] | None = None,
    loss_floors: list[tuple[str, int, float]] | None = None,
    measure_levels: list[tuple[str, int]] | None = None,
):
    """The SegmentSpec that trains checkpoint `key`; the hero YAML overrides its memory profile.

    Its row length (`max_length`) fits the longest example of the mix's levels and quests, under the
    hero's `training.max_length` ceiling (a BudgetError names what does not fit).
    The hero's schools decide the rest: `oracle` turns on the surprise-weighted loss; `mirror` trains on
    the parent's `reflections` (sparring.load_reflections) and probes the hero after the segment.
    `loss_floors` are the floors of the levels being learned (the segment's strain); `measure_levels`
    are further levels whose held-out loss is measured (e.g. each skill's next level: its loss before).
    """
    from realm_pipeline.lm.budgets import chat_tokens, segment_max_length, token_kind
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import DEFAULT_EVAL_COUNT
    from realm_pipeline.training.trainer import SegmentSpec

    if hero.base.kind == "config":
        # the hero's seed draws the initial weights (and, with the key, each segment's stream)
        base = {"tiny": {**hero.base.config, "seed": hero.seed}}
    elif hero.base.kind == "simulated":  # no model: the simulator's constants (simulation.segment)
        base = {"simulated": hero.base.model_dump(exclude={"kind"})}
    else:
        base = hero.base.path or hero.base.model_id
    t = hero.training
    kind = token_kind(hero.base.kind)
    # Held-out loss is measured on the levels trained and on `measure_levels` (the trainer sizes those
    # rows itself: measuring must not change how the segment's training rows are packed).
    levels = list(dict.fromkeys([(sk, lv) for sk, lv, _ in mix] + list(measure_levels or [])))
    reflections = list(reflections or []) if "mirror" in hero.schools else []
    # A reflection (prompt + the hero's answer + the question) longer than the row ceiling cannot be
    # trained without cutting it: it is left out (the rest of its miss's reflections still teach).
    reflections = [r for r in reflections if chat_tokens(kind, r) <= t.max_length]
    max_length = segment_max_length(
        kind,
        [
            (get_skill(skill), level, eval_items_per_level.get(skill, DEFAULT_EVAL_COUNT))
            for skill, level, _ in mix
        ],
        ceiling=t.max_length,
        ceiling_name=f"hero {hero.name}'s training.max_length",
        examples=list(quests) + reflections,
    )
    return SegmentSpec(
        output_dir=str(output_dir),
        base=base,
        parent_dir=str(parent_dir) if parent_dir else None,
        method=hero.method or profile.method,
        optimizer=t.optimizer or profile.optimizer,
        lr=t.lr,
        batch_size=t.batch_size,
        max_length=max_length,
        steps=hero.campaign.segment_steps,
        # the schedule across segments; continuous spans the campaign's whole step budget
        schedule=t.schedule,
        schedule_offset_steps=max(key.step - hero.campaign.segment_steps, 0),
        schedule_total_steps=hero.campaign.segment_budget * hero.campaign.segment_steps,
        save_every=t.save_every,
        seed=key.stream_seed(hero.seed),
        mix=mix,
        eval_items_per_level=dict(eval_items_per_level),
        quests=quests,
        # held-out loss on the eval items of the levels being trained (never trained on: see heldout.py)
        heldout=[(skill, level, heldout_count) for skill, level in levels],
        loss_floors=list(loss_floors or []),
        surprise_weighted="oracle" in hero.schools,
        reflections=reflections,
        # The configured weight when every probe was missed, proportionally less otherwise: a handful of
        # reflections at the full weight would each be repeated hundreds of times in one segment.
        reflection_weight=hero.mirror.weight * min(1.0, len(reflections) / (3 * hero.mirror.probes)),
        mirror_probes=hero.mirror.probes if "mirror" in hero.schools else 0,
        device=profile.device,
        dtype=profile.dtype,
        gradient_checkpointing=profile.gradient_checkpointing,
    )


SEGMENT_MODULE = "realm_pipeline.training.segment"


def segment_command(
    spec, profile: MemoryProfile, *, config_dir: Path, work_dir: Path, python: str | None = None
) -> list[str]:
    """The subprocess that trains `spec`: plain Python on one device, the deepspeed launcher when the
    memory profile names a DeepSpeed config (the spec and the filled-in DeepSpeed JSON go to work_dir)."""
    import sys

    from realm_pipeline.training.distributed import launch_command, write_deepspeed_config
    from realm_pipeline.training.trainer import spec_to_json

    python = python or sys.executable
    if profile.deepspeed is None:
        return [python, "-m", SEGMENT_MODULE]
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_path = work_dir / "spec.json"
    spec_path.write_text(spec_to_json(spec))
    ds_config = write_deepspeed_config(
        config_dir / "deepspeed" / f"{profile.deepspeed}.json",
        work_dir / "deepspeed.json",
        micro_batch_size=spec.batch_size,
        grad_accum=1,
        lr=spec.lr,
        bf16=spec.dtype == "bfloat16",
        fp16=spec.dtype == "float16",
    )
    return launch_command(
        SEGMENT_MODULE, spec_path, num_gpus=profile.num_gpus, deepspeed_config=ds_config, python=python
    )


# Bytes per trainable parameter of each optimizer's saved state (two fp32 moments for AdamW, two 8-bit
# ones for adamw_8bit; Muon's momentum plus AdamW for the rest, taken at AdamW's size to be safe).
OPTIMIZER_STATE_BYTES = {"adamw": 8, "paged_adamw": 8, "adamw_8bit": 2, "muon": 8}
SAVED_BYTES_PER_PARAM = 4  # the trainer keeps and saves fp32 weights (bf16 only through autocast)
DISK_MARGIN_BYTES = 1 << 20  # tokenizer, configs, results, the reflections file


def segment_parameters(hero: HeroConfig, parent_dir: Path | None) -> int | None:
    """The hero's parameter count: the parent's saved weights, the base's config or files; None unknown.

    Weights whose headers cannot be read (a truncated file) are passed over: the segment's own check
    names the file, before anything is trained.
    """
    from realm_pipeline.lm.weights import checkpoint_problem, safetensors_parameters

    for directory in (parent_dir, Path(hero.base.path) if getattr(hero.base, "path", None) else None):
        if (
            directory is not None
            and any(Path(directory).glob("*.safetensors"))
            and checkpoint_problem(directory) is None
        ):
            return safetensors_parameters(directory)
    if hero.base.kind == "config":
        from realm_pipeline.training.memory import model_shape_for

        # the character vocab is a few hundred at most (as the memory check assumes)
        return model_shape_for({"vocab_size": 256, **hero.base.config})["n_params"]
    return None  # a hub model not downloaded yet: the segment fails at once naming the weights


def segment_disk_bytes(
    hero: HeroConfig, profile: MemoryProfile, *, parent_dir: Path | None, output_dir: Path
) -> int | None:
    """Bytes a segment writes at its peak, beyond what `output_dir` holds already; None when unknown.

    The final checkpoint (fp32 weights, plus the optimizer state a carrying schedule hands on) is staged
    beside output_dir while its resume save (weights + optimizer state) still exists, and each resume
    save is staged beside the one it replaces: the peak is resume + max(resume, checkpoint).
    """
    from realm_pipeline.disk import tree_bytes

    if hero.base.kind == "simulated":
        return DISK_MARGIN_BYTES  # its checkpoint is one small JSON state file
    n_params = segment_parameters(hero, parent_dir)
    if n_params is None:
        return None
    method = hero.method or profile.method
    optimizer = hero.training.optimizer or profile.optimizer
    trainable = n_params // 100 if method in ("lora", "qlora") else n_params
    weights = n_params * SAVED_BYTES_PER_PARAM
    optimizer_state = trainable * OPTIMIZER_STATE_BYTES.get(optimizer, 8)
    final = weights + (optimizer_state if hero.training.schedule != "restart" else 0)
    saves = hero.training.save_every and hero.training.save_every < hero.campaign.segment_steps
    resume = weights + optimizer_state if saves else 0
    peak = resume + max(resume, final)
    already = tree_bytes(Path(output_dir) / "resume")  # a save being resumed is on disk already
    return max(peak - already, final) + DISK_MARGIN_BYTES
