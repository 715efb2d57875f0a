"""The contract every skill implements: (level, seed, index) -> item, and item + output -> score."""

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
