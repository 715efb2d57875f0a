"""Held-out eval sets and the training streams that never touch them.

Two guarantees keep eval honest:
1. Seed space: eval items are generated with seed EVAL_SEED (negative); training seeds must be >= 1.
   The seed is part of every item's sha256 RNG key, so the two draw from disjoint RNG streams.
2. Prompt exclusion: low levels have tiny prompt spaces (BIN L1 has 16 prompts), so disjoint seeds
   alone would still repeat eval prompts in training; training streams skip every eval prompt.

Because of (2), an eval set holds at most EVAL_MAX_FRACTION of a known prompt space: holding out all
16 BIN L1 prompts would leave training nothing to learn from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from realm_pipeline.skills.base import Skill, SkillItem

EVAL_SEED: int = -1  # the eval seed space; training_items refuses seeds < 1
EVAL_MAX_FRACTION = 0.5  # at most this share of a known (small) prompt space is held out
DEFAULT_EVAL_COUNT = 100
# Training position p tries indices p, p + STRIDE, p + 2*STRIDE, ... until a non-eval prompt comes up,
# so resuming at any position is O(1) and positions (< STRIDE) never share indices.
TRAIN_STRIDE = 1 << 40
_MAX_RETRIES = 1000

_EVAL_PROMPTS: dict[tuple[str, str, int, int], frozenset[str]] = {}


def eval_size(skill: Skill, level: int, count: int) -> int:
    """How many eval items a level gets: count, capped by EVAL_MAX_FRACTION of a known prompt space."""
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"eval count must be a non-negative int, got {count!r}")
    distinct = skill.distinct_prompts(level)
    if distinct is None:
        return count
    return min(count, max(1, int(distinct * EVAL_MAX_FRACTION)))


def eval_items(skill: Skill, level: int, count: int) -> list[SkillItem]:
    """The fixed held-out eval set: deterministic, distinct prompts, at most eval_size() items."""
    target = eval_size(skill, level, count)
    items: list[SkillItem] = []
    seen: set[str] = set()
    # Bounded draw: tiny spaces need several draws per new prompt (coupon collector), big ones ~1.
    for index in range(50 * target + 1000):
        if len(items) >= target:
            break
        item = skill.generate(level, EVAL_SEED, index)
        if item.prompt not in seen:
            seen.add(item.prompt)
            items.append(item)
    return items


def eval_set_hash(items: list[SkillItem]) -> str:
    """Hex sha256 over a canonical JSON of the items (skill, level, seed, index, prompt, answer)."""
    rows = [
        {
            "skill": i.skill,
            "level": i.level,
            "seed": i.seed,
            "index": i.index,
            "prompt": i.prompt,
            "answer": i.answer,
        }
        for i in items
    ]
    blob = json.dumps(rows, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def eval_prompts(skill: Skill, level: int, count: int = DEFAULT_EVAL_COUNT) -> frozenset[str]:
    """Prompts of a level's eval set, cached by (skill name, version, level, count)."""
    key = (skill.name, skill.version, level, count)
    if key not in _EVAL_PROMPTS:
        _EVAL_PROMPTS[key] = frozenset(item.prompt for item in eval_items(skill, level, count))
    return _EVAL_PROMPTS[key]


def training_items(
    skill: Skill, level: int, seed: int, start: int = 0, eval_count: int = DEFAULT_EVAL_COUNT
) -> Iterator[SkillItem]:
    """Endless deterministic training stream from seed >= 1 that skips the level's eval prompts.

    `start` resumes the stream: the item at position p is the same whether reached by iterating or
    by starting at p.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 1:
        raise ValueError(f"training seed must be an int >= 1 (eval uses {EVAL_SEED}), got {seed!r}")
    if not isinstance(start, int) or not 0 <= start < TRAIN_STRIDE:
        raise ValueError(f"start must be an int in [0, {TRAIN_STRIDE}), got {start!r}")
    excluded = eval_prompts(skill, level, eval_count)
    return _stream(skill, level, seed, start, excluded)


def _stream(skill: Skill, level: int, seed: int, start: int, excluded: frozenset[str]) -> Iterator[SkillItem]:
    position = start
    while True:
        for retry in range(_MAX_RETRIES):
            item = skill.generate(level, seed, position + retry * TRAIN_STRIDE)
            if item.prompt not in excluded:
                yield item
                break
        else:  # only reachable if nearly the whole prompt space were held out
            raise RuntimeError(f"{skill.name} L{level}: no non-eval prompt in {_MAX_RETRIES} draws")
        position += 1
