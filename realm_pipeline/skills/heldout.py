"""Held-out eval sets, the reserve samples that confirm regressions, and training streams that never touch either.

Three guarantees keep eval honest:
1. Seed space: eval items are generated with seed EVAL_SEED, reserve items with RESERVE_SEED (both
   negative); training seeds must be >= 1. The seed is part of every item's sha256 RNG key, so they draw
   from disjoint RNG streams.
2. Prompt exclusion: low levels have tiny prompt spaces (BIN L1 has a few hundred prompts), and a prompt
   may recur at other levels (a conversion prompt carries no width), so disjoint seeds alone would still
   repeat held-out prompts in training. Every training stream of a skill skips every prompt of every
   level's eval set *and* reserve sample, at the configured eval size (`heldout_prompts`).
3. Shared facts: where the item space is so small that held-out prompts share their facts (operands,
   operation) with trainable ones, `shared_facts_share` measures the share of eval items that do, and the
   ledger and the mirror show it beside the accuracy.

Because of (2), held-out items take at most HELDOUT_MAX_FRACTION of a known (small) prompt space:
EVAL_SHARE of it for the eval set, the rest for the reserve.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from realm_pipeline.skills.base import Skill, SkillItem

EVAL_SEED: int = -1  # the eval seed space; training_items refuses seeds < 1
RESERVE_SEED: int = -2  # the reserve sample: a second held-out draw, scored only by confirming re-runs
HELDOUT_MAX_FRACTION = 0.5  # at most this share of a known (small) prompt space is held out ...
EVAL_SHARE = 0.6  # ... of which this share is the eval set and the rest the reserve
DEFAULT_EVAL_COUNT = 100
# Training items drawn to find which eval facts training also shows: enough to cover a small item space
# (8 draws per distinct prompt, at most SHARED_FACTS_SAMPLE); a large space gets LARGE_SPACE_SAMPLE.
SHARED_FACTS_SAMPLE = 4000
LARGE_SPACE_SAMPLE = 500
# Training position p tries indices p, p + STRIDE, p + 2*STRIDE, ... until a non-held-out prompt comes up,
# so resuming at any position is O(1) and positions (< STRIDE) never share indices.
TRAIN_STRIDE = 1 << 40
_MAX_RETRIES = 1000

_HELDOUT_INDEX: dict[tuple[str, str, int], dict[str, str]] = {}


def _check_count(count: int) -> None:
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"eval count must be a non-negative int, got {count!r}")


def eval_size(skill: Skill, level: int, count: int) -> int:
    """How many eval items a level gets: count, capped by its share of a known (small) prompt space."""
    _check_count(count)
    distinct = skill.distinct_prompts(level)
    if distinct is None:
        return count
    return min(count, max(1, int(distinct * HELDOUT_MAX_FRACTION * EVAL_SHARE)))


def largest_eval_count(skill: Skill, level: int) -> int | None:
    """The largest eval set a level's finite prompt space holds beside its reserve and a training stream
    (EVAL_SHARE of the HELDOUT_MAX_FRACTION held out); None where the space is unbounded.

    The space is `distinct_prompts`, else a generator's measured `prompt_space` (BIN: too large to cap
    its eval sets by, small enough at L1 for a large eval_items_per_level to exhaust it).
    """
    space = skill.distinct_prompts(level)
    measured = getattr(skill, "prompt_space", None)
    if space is None and callable(measured):
        space = measured(level)
    return None if space is None else max(1, int(space * HELDOUT_MAX_FRACTION * EVAL_SHARE))


def reserve_size(skill: Skill, level: int, count: int) -> int:
    """How many reserve items a level gets: count, capped by the rest of the held-out share."""
    _check_count(count)
    distinct = skill.distinct_prompts(level)
    if distinct is None:
        return count
    return min(count, max(1, int(distinct * HELDOUT_MAX_FRACTION) - eval_size(skill, level, count)))


def _draw(
    skill: Skill, level: int, seed: int, target: int, exclude: frozenset[str] = frozenset()
) -> list[SkillItem]:
    items: list[SkillItem] = []
    seen: set[str] = set(exclude)
    # Bounded draw: tiny spaces need several draws per new prompt (coupon collector), big ones ~1.
    for index in range(50 * target + 1000):
        if len(items) >= target:
            break
        item = skill.generate(level, seed, index)
        if item.prompt not in seen:
            seen.add(item.prompt)
            items.append(item)
    return items


def eval_items(skill: Skill, level: int, count: int) -> list[SkillItem]:
    """The fixed held-out eval set: deterministic, distinct prompts, at most eval_size() items."""
    return _draw(skill, level, EVAL_SEED, eval_size(skill, level, count))


def reserve_items(skill: Skill, level: int, count: int) -> list[SkillItem]:
    """The level's reserve sample: held out like the eval set, disjoint from it, for confirming re-runs."""
    exclude = frozenset(i.prompt for i in eval_items(skill, level, count))
    return _draw(skill, level, RESERVE_SEED, reserve_size(skill, level, count), exclude)


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
    """Prompts of one level's eval set."""
    return frozenset(item.prompt for item in eval_items(skill, level, count))


def heldout_index(skill: Skill, count: int = DEFAULT_EVAL_COUNT) -> dict[str, str]:
    """The one held-out index: {prompt: "eval prompt of <skill> L<n>" | "reserve prompt of <skill> L<n>"}
    over every level's eval set and reserve sample, every level the generator has (a cap raised later
    must not leak). The training stream, the quest check and the Mirror's probes all read it.

    Cached by (skill name, version, count); `count` is the skill's configured eval_items_per_level.
    """
    key = (skill.name, skill.version, count)
    if key not in _HELDOUT_INDEX:
        index: dict[str, str] = {}
        for level in range(1, skill.max_level + 1):
            for sample, items in (("eval", eval_items), ("reserve", reserve_items)):
                for item in items(skill, level, count):
                    index.setdefault(item.prompt, f"{sample} prompt of {skill.name} L{level}")
        _HELDOUT_INDEX[key] = index
    return _HELDOUT_INDEX[key]


def heldout_prompts(skill: Skill, count: int = DEFAULT_EVAL_COUNT) -> frozenset[str]:
    """Every prompt of the held-out index (`heldout_index`): what no training stream may yield."""
    return frozenset(heldout_index(skill, count))


def training_items(
    skill: Skill, level: int, seed: int, start: int = 0, eval_count: int = DEFAULT_EVAL_COUNT
) -> Iterator[SkillItem]:
    """Endless deterministic training stream from seed >= 1 that skips every held-out prompt of the skill.

    `eval_count` is the skill's configured eval_items_per_level (the real size of the stored sets).
    `start` resumes the stream: the item at position p is the same whether reached by iterating or
    by starting at p.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 1:
        raise ValueError(f"training seed must be an int >= 1 (eval uses {EVAL_SEED}), got {seed!r}")
    if not isinstance(start, int) or not 0 <= start < TRAIN_STRIDE:
        raise ValueError(f"start must be an int in [0, {TRAIN_STRIDE}), got {start!r}")
    if not isinstance(level, int) or not 1 <= level <= skill.max_level:
        raise ValueError(f"{skill.name}: level {level!r} outside 1..{skill.max_level}")
    return _stream(skill, level, seed, start, heldout_prompts(skill, eval_count))


def item_facts(skill: Skill, item: SkillItem) -> str:
    """The item's facts with the phrasing stripped (the skill's `facts`; the prompt when it has none)."""
    facts = getattr(skill, "facts", None)
    return facts(item) if callable(facts) else item.prompt


def shared_facts_share(
    skill: Skill, level: int, items: list[SkillItem], count: int, sample: int | None = None
) -> float:
    """Share of `items` whose facts also occur among `sample` training items of the level (seed 1).

    Near exact for small item spaces (the default sample covers them several times over); a lower bound
    for large ones, where a training item rarely repeats an eval item's facts.
    """
    if not items:
        return 0.0
    if sample is None:
        distinct = skill.distinct_prompts(level)
        sample = LARGE_SPACE_SAMPLE if distinct is None else min(SHARED_FACTS_SAMPLE, 8 * distinct)
    stream = training_items(skill, level, seed=1, eval_count=count)
    seen = {item_facts(skill, next(stream)) for _ in range(sample)}
    return sum(item_facts(skill, i) in seen for i in items) / len(items)


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


def chance_accuracy(items: list[SkillItem]) -> float:
    """What a constant answer scores on `items`: the share of the most frequent answer, or for multi-choice
    items (tags["choices"]: the number of options) the uniform rate when that is higher."""
    if not items:
        return 0.0
    counts: dict[str, int] = {}
    for item in items:
        counts[item.answer.strip()] = counts.get(item.answer.strip(), 0) + 1
    share = max(counts.values()) / len(items)
    choices = [int(i.tags["choices"]) for i in items if i.tags.get("choices")]
    return max(share, 1 / min(choices)) if choices else share
