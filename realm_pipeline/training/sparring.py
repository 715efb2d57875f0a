"""The Mirror school (sparring): the hero answers training-distribution probes and learns from its misses.

After a segment the hero answers a probe sample drawn from the *training* stream of the levels it
trained (current and mastered), with greedy decoding. For every miss it makes the reference's three
reflections (`sparring_identify_incorrect`, `sparring_correction`, `sparring_confirm_correct`):

1. identify: the prompt with the hero's wrong answer shown, judged "incorrect";
2. correction: the prompt -> the golden answer;
3. confirm: a fresh training item of the same level with its correct answer shown, judged "correct".

The reflections are saved next to the checkpoint (`REFLECTIONS_FILE`) and join the NEXT segment's mix.
Probes and fresh items come from `skills.heldout.training_items` (which skips held-out prompts), with
seeds derived from, and distinct from, the segment's training seed; `assert_not_eval` also checks every
prompt against every eval set (and reserve sample) of its skill before anything is trained on.
Deterministic: the same checkpoint and seed give the same probes, outputs and reflections. Pure: torch
is imported lazily.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from realm_pipeline.skills.base import SkillItem

Messages = list[dict[str, str]]

REFLECTIONS_FILE = "mirror_reflections.json"
JUDGE_QUESTION = "Is this answer correct? Reply correct or incorrect."
VERDICT_CORRECT = "correct"
VERDICT_INCORRECT = "incorrect"
# Probe answers may run past the golden length (that is often the mistake): this many extra tokens.
ANSWER_MARGIN_TOKENS = 8


@dataclass(frozen=True)
class MirrorReport:
    """What one round of sparring did: probes answered, misses, reflection examples made."""

    probes: int
    misses: int
    examples: int
    probe_seed: int
    confirm_seed: int


def _derived_seed(tag: str, training_seed: int) -> int:
    # >= 1 (the training seed space); hashed so it never coincides with the segment's own seed in practice.
    seed = int(hashlib.sha256(f"mirror:{tag}:{training_seed}".encode()).hexdigest()[:8], 16) + 1
    return seed if seed != training_seed else seed + 1


def probe_seed(training_seed: int) -> int:
    """The probe stream's seed: derived from, and never equal to, the segment's training seed."""
    return _derived_seed("probe", training_seed)


def confirm_seed(training_seed: int) -> int:
    """The seed of the fresh items shown as confirmed-correct (distinct from probes and training)."""
    seed = _derived_seed("confirm", training_seed)
    return seed if seed != probe_seed(training_seed) else seed + 1


def probe_plan(levels: Sequence[tuple[str, int]], probes: int) -> list[tuple[str, int, int]]:
    """Spread `probes` over the (skill, level) pairs as evenly as possible, in order: (skill, level, count)."""
    if probes < 0:
        raise ValueError(f"probes must be >= 0, got {probes}")
    unique = list(dict.fromkeys((str(s), int(lv)) for s, lv in levels))
    if not unique:
        return []
    base, extra = divmod(probes, len(unique))
    plan = [(s, lv, base + (1 if i < extra else 0)) for i, (s, lv) in enumerate(unique)]
    return [p for p in plan if p[2] > 0]


def _count(eval_counts: dict[str, int] | None, skill_name: str) -> int:
    from realm_pipeline.skills.heldout import DEFAULT_EVAL_COUNT

    return (eval_counts or {}).get(skill_name, DEFAULT_EVAL_COUNT)


def assert_not_eval(items: Sequence[SkillItem], eval_counts: dict[str, int] | None = None) -> None:
    """Raise AssertionError if any item's prompt is held out (any level's eval set or reserve) in its skill.

    `eval_counts` is each skill's eval_items_per_level: the real size of its stored eval sets.
    """
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import heldout_prompts

    by_skill: dict[str, list[SkillItem]] = {}
    for item in items:
        by_skill.setdefault(item.skill, []).append(item)
    for skill_name, group in by_skill.items():
        held_out = heldout_prompts(get_skill(skill_name), _count(eval_counts, skill_name))
        leaked = [i for i in group if i.prompt in held_out]
        if leaked:
            first = leaked[0]
            raise AssertionError(
                f"mirror: {len(leaked)} probe/confirm prompt(s) of {skill_name} are eval prompts, "
                f"e.g. L{first.level} seed {first.seed} index {first.index}: training must never see them"
            )


def probe_items(
    plan: Sequence[tuple[str, int, int]], seed: int, eval_counts: dict[str, int] | None = None
) -> list[SkillItem]:
    """The probe sample: the first `count` items of each level's training stream under `seed`."""
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import training_items

    items: list[SkillItem] = []
    for skill_name, level, count in plan:
        stream = training_items(
            get_skill(skill_name), int(level), seed, eval_count=_count(eval_counts, skill_name)
        )
        items += islice(stream, int(count))
    assert_not_eval(items, eval_counts)
    return items


def _judged(item: SkillItem, shown: str, verdict: str) -> Messages:
    msgs: Messages = [{"role": "system", "content": item.system}] if item.system else []
    question = f"{item.prompt}\n\nProposed answer:\n{shown}\n\n{JUDGE_QUESTION}"
    return msgs + [{"role": "user", "content": question}, {"role": "assistant", "content": verdict}]


def reflections(
    items: Sequence[SkillItem],
    outputs: Sequence[str],
    *,
    confirm_seed: int,
    eval_counts: dict[str, int] | None = None,
) -> tuple[list[Messages], int]:
    """The three reflections for each miss among (item, output); returns (examples, misses)."""
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import training_items

    examples: list[Messages] = []
    fresh: list[SkillItem] = []
    misses = 0
    for position, (item, output) in enumerate(zip(items, outputs, strict=True)):
        if get_skill(item.skill).score(item, output).correct:
            continue
        misses += 1
        # The fresh item at this probe's position of another stream: deterministic and distinct from it.
        count = _count(eval_counts, item.skill)
        stream = training_items(
            get_skill(item.skill), item.level, confirm_seed, start=position, eval_count=count
        )
        other = next(stream)
        fresh.append(other)
        examples += [
            _judged(item, output.strip(), VERDICT_INCORRECT),
            item.messages,
            _judged(other, other.answer, VERDICT_CORRECT),
        ]
    assert_not_eval(fresh, eval_counts)
    return examples, misses


def answer_budget(tokenizer: Any, items: Sequence[SkillItem]) -> int:
    """max_new_tokens for the probes: the longest golden answer in the hero's tokens plus a margin."""
    from realm_pipeline.lm.budgets import answer_tokens

    return max((answer_tokens(tokenizer, i.answer) for i in items), default=0) + ANSWER_MARGIN_TOKENS


def spar(
    model: Any,
    tokenizer: Any,
    levels: Sequence[tuple[str, int]],
    *,
    probes: int,
    training_seed: int,
    eval_counts: dict[str, int] | None = None,
    batch_size: int = 32,
) -> tuple[list[Messages], MirrorReport]:
    """Probe the in-memory hero on its trained levels and turn its misses into reflections."""
    from realm_pipeline.lm.chat import render
    from realm_pipeline.lm.generate import generate_batch

    p_seed, c_seed = probe_seed(training_seed), confirm_seed(training_seed)
    items = probe_items(probe_plan(levels, probes), p_seed, eval_counts)
    prompts = [render(tokenizer, item.messages[:-1]) for item in items]
    outputs = generate_batch(
        model,
        tokenizer,
        prompts,
        max_new_tokens=answer_budget(tokenizer, items),
        batch_size=batch_size,
    )
    examples, misses = reflections(items, outputs, confirm_seed=c_seed, eval_counts=eval_counts)
    return examples, MirrorReport(len(items), misses, len(examples), p_seed, c_seed)


def save_reflections(directory: str | Path, examples: list[Messages], report: MirrorReport) -> Path:
    """Write the reflections and their counts to directory/REFLECTIONS_FILE (write, fsync, rename)."""
    path = Path(directory) / REFLECTIONS_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump({"report": asdict(report), "examples": examples}, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_reflections(directory: str | Path | None) -> list[Messages]:
    """The reflections a checkpoint left for the next segment ([] when it made none or had no Mirror)."""
    if directory is None:
        return []
    path = Path(directory) / REFLECTIONS_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        examples = data["examples"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: field 'examples': unreadable mirror reflections: {exc}") from exc
    bad = [
        i
        for i, m in enumerate(examples)
        if not (isinstance(m, list) and m and m[-1].get("role") == "assistant")
    ]
    if bad:
        raise ValueError(f"{path}: field 'examples.{bad[0]}': not a chat example ending in an assistant turn")
    return examples
