"""One training segment of a simulated hero (pure: no torch, no Dagster).

The segment consumes the stream the trainer would build for its spec (`training.trainer.mix_sources`
over `training.data.MixStream`: the skills' own generators, every eval prompt excluded, the same seed),
`steps x batch_size` examples of it (one example per row: the simulator packs nothing), and counts each
example's tokens as the character tokenizer does (`lm.budgets.chat_tokens("char", ...)`: the characters
of prompt and answer plus two template tokens per turn, exactly what the `tiny` hero's trainer counts).
The tokens per (skill, level) move the simulator's state (`simulation.hero.train`) from the parent's;
the new state is the checkpoint, written atomically.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from realm_pipeline.lm.budgets import chat_tokens
from realm_pipeline.simulation.hero import SimParams, SimState, load_state, save_state, train

Messages = list[dict[str, str]]


class CharCounter:
    """The encoder a MixStream asks for (ids, labels): ids as long as the character tokenizer's, no labels."""

    def encode(self, messages: Messages) -> tuple[list[int], list[int]]:
        """Placeholder ids, one per token of the example under the character chat template."""
        return [0] * chat_tokens("char", messages), []


def stream_tokens(spec: Any) -> dict[str, int]:
    """Tokens per mix source (`skill@level`, quests) of the first `steps x batch_size` examples of the
    segment's real training stream."""
    from realm_pipeline.training.data import MixStream
    from realm_pipeline.training.trainer import mix_sources

    stream = MixStream(mix_sources(spec), spec.seed, CharCounter())
    for _ in range(spec.steps * spec.batch_size):
        stream.consume()
    return stream.trained_tokens()


def level_tokens(trained: dict[str, int]) -> dict[tuple[str, int], int]:
    """The (skill, level) part of `stream_tokens` (quests and reflections have no level)."""
    out = {}
    for name, tokens in trained.items():
        skill, sep, level = name.rpartition("@")
        if sep and level.isdigit():
            out[(skill, int(level))] = tokens
    return out


def params_of(spec: Any) -> SimParams:
    """The simulator's constants a simulated hero's spec carries (`base: {"simulated": {...}}`)."""
    base = spec.base
    if not isinstance(base, dict) or "simulated" not in base:
        raise ValueError(f"segment {spec.output_dir}: not a simulated hero's spec (base {base!r})")
    return SimParams.from_mapping(base["simulated"])


def file_sha256(path: Path) -> str:
    """sha256 of one file's bytes (a simulated checkpoint's identity: its state file)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def simulate_segment(spec: Any) -> dict[str, Any]:
    """Train the simulated hero of `spec` one segment from its parent's state (or a fresh one), save the
    state into `spec.output_dir`, and return the values a segment records (SegmentResult's fields).

    There is no model, so no loss: train_loss, heldout_loss, strain and zone are None (the ledger keeps
    them NULL, and the strain hint sees no data)."""
    started = time.perf_counter()
    params = params_of(spec)
    parent = load_state(Path(spec.parent_dir)) if spec.parent_dir else SimState()
    trained = stream_tokens(spec)
    state = train(params, parent, level_tokens(trained))
    path = save_state(Path(spec.output_dir), params, state)
    tokens = sum(trained.values())
    wall = time.perf_counter() - started
    return {
        "step": spec.steps,
        "tokens": tokens,
        "examples": spec.steps * spec.batch_size,
        "train_loss": None,
        "heldout_loss": None,
        "strain": None,
        "strain_source": "simulated",
        "zone": None,
        "tokens_per_s": tokens / max(wall, 1e-9),
        "wall_s": wall,
        "peak_memory_bytes": 0,  # nothing measured: the simulator's state is a few kilobytes
        "sha256": file_sha256(path),
        "path": str(spec.output_dir),
        "level_losses": {},
        "trained_tokens": trained,
        "optimizer_carried": False,
    }
