"""Generation and training budgets from the data (pure: no torch, no Dagster).

A level's eval `max_new_tokens` is its longest reference answer in the hero's own tokens plus a margin;
a segment's training length fits the longest prompt + answer (chat template included) of every level
it trains. Configured numbers (`eval.max_new_tokens`, a hero's `training.max_length`) are ceilings:
a level that needs more is refused with the numbers, never truncated.

Token counts before a tokenizer is loaded (config load, segment planning) come from characters:
- a `config` hero uses realm's character tokenizer: one token per character, and the chat template
  adds a role token and an end marker per turn (exact);
- a `pretrained` hero uses a byte-level BPE tokenizer (Qwen3): every token covers at least one UTF-8
  byte, so bytes bound the tokens, and CHAT_TURN_TOKENS_BOUND per turn bounds the template's markers.
  A skill with `longest_bytes(level)` bounds the bytes itself; otherwise every character is charged
  the level's widest character's bytes (an overstatement where few characters are wide).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from realm_pipeline.skills.base import Skill, SkillItem

TokenKind = Literal["char", "bytes"]

# Tokens realm's character chat template adds per turn: `<|role|>` before and `<|end|>` after the content.
CHAR_TURN_TOKENS = 2
# Qwen3's ChatML adds `<|im_start|>role\n` and `<|im_end|>\n` (5 tokens) per turn, and an empty
# `<think>\n\n</think>\n\n` (4) before an assistant answer: 16 leaves room for templates a little longer.
CHAT_TURN_TOKENS_BOUND = 16
# A level's lengths without `skill.longest`: its eval items plus this many training items (seed 1),
# the longest of them raised by SAMPLE_SLACK since a sample only approaches the level's true longest
# (an item beyond it still raises in training, never truncated). Small: configs load on every run and
# sensor tick, and SY generates ~1k items/s at L10; skills' `longest` bounds replace the sample.
SAMPLE_TRAINING_ITEMS = 200
SAMPLE_SLACK = 1.10
SAMPLE_SEED = 1
# Packed rows are at least this long (ceiling permitting), so short levels still pack several
# examples per row rather than spending a step on a handful of tokens.
MIN_ROW_TOKENS = 128
# A prompt turn and an answer turn: what every skill item is (skills set no system message).
SKILL_TURNS = 2


class BudgetError(ValueError):
    """A level (or example) needs more tokens than a configured ceiling allows; the message has the numbers."""


@dataclass(frozen=True)
class LevelLengths:
    """Upper bounds over anything a level can generate, in characters, and its widest character in bytes;
    in UTF-8 bytes too where the skill bounds them (`longest_bytes`)."""

    prompt_chars: int
    answer_chars: int
    widest_char_bytes: int
    prompt_bytes: int | None = None
    answer_bytes: int | None = None


def _widest_char_bytes(texts: Iterable[str]) -> int:
    return max((len(c.encode("utf-8")) for text in texts for c in set(text)), default=1)


_LEVEL_LENGTHS: dict[tuple[str, str, int, int], LevelLengths] = {}


def _measure_level(skill: Skill, level: int, eval_count: int) -> LevelLengths:
    from realm_pipeline.skills.heldout import eval_items

    evals = eval_items(skill, level, eval_count)
    longest = getattr(skill, "longest", None)
    if longest is not None:
        prompt_chars, answer_chars = longest(level)
        sample: list[SkillItem] = evals
    else:  # no structural bound: measure a deterministic sample (eval items + training items)
        sample = evals + [skill.generate(level, SAMPLE_SEED, i) for i in range(SAMPLE_TRAINING_ITEMS)]
        prompt_chars = math.ceil(SAMPLE_SLACK * max(len(item.prompt) for item in sample))
        answer_chars = math.ceil(SAMPLE_SLACK * max(len(item.answer) for item in sample))
    widest = _widest_char_bytes(text for item in sample for text in (item.prompt, item.answer))
    longest_bytes = getattr(skill, "longest_bytes", None)
    prompt_bytes, answer_bytes = longest_bytes(level) if longest_bytes is not None else (None, None)
    return LevelLengths(int(prompt_chars), int(answer_chars), widest, prompt_bytes, answer_bytes)


def level_lengths(skill: Skill, level: int, eval_count: int) -> LevelLengths:
    """The longest prompt and answer of a level: `skill.longest(level)` when the skill has it, else the
    longest of a deterministic sample (its eval set of `eval_count` items + SAMPLE_TRAINING_ITEMS items)
    with SAMPLE_SLACK."""
    key = (skill.name, skill.version, level, eval_count)
    if key not in _LEVEL_LENGTHS:  # cached: configs are validated often and sampling a level is slow
        _LEVEL_LENGTHS[key] = _measure_level(skill, level, eval_count)
    return _LEVEL_LENGTHS[key]


def token_kind(base_kind: str) -> TokenKind:
    """How a hero's tokens are counted from characters: `config` heroes use the character tokenizer, and a
    `simulated` hero counts as one (a token per character, its turn markers included)."""
    return "char" if base_kind in ("config", "simulated") else "bytes"


def training_tokens(kind: TokenKind, lengths: LevelLengths) -> int:
    """Tokens of the longest prompt + answer of a level as one chat example (template included)."""
    chars = lengths.prompt_chars + lengths.answer_chars
    if kind == "char":
        return chars + SKILL_TURNS * CHAR_TURN_TOKENS
    if lengths.prompt_bytes is not None and lengths.answer_bytes is not None:
        return lengths.prompt_bytes + lengths.answer_bytes + SKILL_TURNS * CHAT_TURN_TOKENS_BOUND
    return chars * lengths.widest_char_bytes + SKILL_TURNS * CHAT_TURN_TOKENS_BOUND


def chat_tokens(kind: TokenKind, messages: Sequence[dict[str, str]]) -> int:
    """Tokens of one chat example (e.g. a quest line): exact for `char`, a bound for `bytes`."""
    if kind == "char":
        return sum(len(m["content"]) + CHAR_TURN_TOKENS for m in messages)
    return sum(len(m["content"].encode("utf-8")) + CHAT_TURN_TOKENS_BOUND for m in messages)


def _too_long(what: str, needed: int, ceiling: int, ceiling_name: str) -> BudgetError:
    return BudgetError(f"{what} needs {needed} tokens but {ceiling_name} is {ceiling}; raise {ceiling_name}")


def segment_max_length(
    kind: TokenKind,
    levels: Iterable[tuple[Skill, int, int]],
    *,
    ceiling: int,
    ceiling_name: str = "training.max_length",
    examples: Sequence[Sequence[dict[str, str]]] = (),
) -> int:
    """Row length of a segment: the longest example of its levels ((skill, level, eval_count)) and extra
    chat examples (quests), at least MIN_ROW_TOKENS; a BudgetError names what does not fit the ceiling."""
    needed = min(MIN_ROW_TOKENS, ceiling)
    for skill, level, eval_count in levels:
        tokens = training_tokens(kind, level_lengths(skill, level, eval_count))
        if tokens > ceiling:
            raise _too_long(f"skill {skill.name} level {level}", tokens, ceiling, ceiling_name)
        needed = max(needed, tokens)
    for i, messages in enumerate(examples):
        tokens = chat_tokens(kind, messages)
        if tokens > ceiling:
            raise _too_long(f"extra training example #{i} (a quest line)", tokens, ceiling, ceiling_name)
        needed = max(needed, tokens)
    return needed


def answer_tokens(tokenizer: Any, answer: str) -> int:
    """Tokens of a reference answer in `tokenizer` (no special tokens: the margin covers the end marker)."""
    return len(tokenizer(answer, add_special_tokens=False)["input_ids"])


def eval_max_new_tokens(
    tokenizer: Any,
    items: Sequence[SkillItem],
    *,
    margin: int,
    ceiling: int,
    ceiling_name: str = "eval.max_new_tokens",
) -> int:
    """A level's generation budget: its longest reference answer in the hero's tokens plus `margin`;
    a BudgetError names skill, level, needed and the ceiling when that exceeds `ceiling`."""
    if not items:
        raise BudgetError("no eval items to size a generation budget from")
    needed = max(answer_tokens(tokenizer, item.answer) for item in items) + margin
    if needed > ceiling:
        first = items[0]
        what = f"eval of skill {first.skill} level {first.level} (longest reference answer + margin {margin})"
        raise _too_long(what, needed, ceiling, ceiling_name)
    return needed
