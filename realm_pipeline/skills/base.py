"""The contract every skill implements: (level, seed, index) -> item, and item + output -> score.

Besides generating and scoring, a skill describes its items for the rest of the pipeline: `facts`
gives the key that hold-out accounting compares (two phrasings of the same question share it), and
`longest` bounds prompt and answer lengths so token budgets come from the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class SkillItem:
    """One chat example with its reference answer; a pure function of (skill, level, seed, index)."""

    skill: str
    level: int
    seed: int
    index: int
    prompt: str
    answer: str
    system: str | None = None
    # Primitive tags for per-primitive accuracy: "primitive" (the reference's taxonomy, e.g.
    # logic_chain, attn_compare), "operation" (the concrete operation) and "signal" (the difficulty
    # signal shown, "none" when there is none). Not hashed: a dict is unhashable.
    tags: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def messages(self) -> list[dict[str, str]]:
        """Chat `messages`: optional system, the user prompt, the assistant's reference answer."""
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [
            {"role": "user", "content": self.prompt},
            {"role": "assistant", "content": self.answer},
        ]


@dataclass(frozen=True)
class Score:
    """How a model's output fared: `correct` passes only a fully right answer; `partial` is in [0, 1]."""

    correct: bool
    partial: float
    detail: dict[str, Any] = field(default_factory=dict)


class Skill(Protocol):
    """A leveled, procedurally generated skill with an exact scorer."""

    name: str
    version: str  # bump when the generator or scorer changes: it is part of every eval fingerprint
    max_level: int

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one item; same inputs give the same item, byte for byte."""
        ...

    def score(self, item: SkillItem, output: str) -> Score:
        """Score a model's raw output against the item's reference answer."""
        ...

    def distinct_prompts(self, level: int) -> int | None:
        """Size of the level's prompt space when small enough to matter (None: effectively unbounded)."""
        ...

    def facts(self, item: SkillItem) -> str:
        """Canonical key of the item's underlying facts, phrasing stripped.

        Two items that ask the same question (same operation and operands, same answer words, same
        drill input) in different phrasings, signal headers or symbol mappings share the key; items
        asking different questions never do. Derived from the prompt and answer alone, so it also
        works on items read back from the ledger.
        """
        ...

    def longest(self, level: int) -> tuple[int, int]:
        """Upper bound (characters) of the prompt and of the reference answer of any item of the level."""
        ...
