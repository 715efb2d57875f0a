"""Score a list of skill items with any backend: render, complete once for all, score each."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from realm_pipeline.skills.base import Score, Skill, SkillItem

from .backends import Backend


@dataclass(frozen=True)
class EvalResult:
    """Aggregate and per-item results; rows are (item_index, output, correct, partial)."""

    n: int
    correct: int
    accuracy: float
    partial: float  # mean partial credit over items
    rows: list[tuple[int, str, bool, float]] = field(default_factory=list)
    wall_s: float = 0.0  # time spent completing and scoring

    @property
    def items_per_s(self) -> float:
        """Throughput of the whole evaluation (completion + scoring)."""
        return self.n / self.wall_s if self.wall_s > 0 else float("inf")


SCORINGS = ("exact", "reference")


def scorer(skill: Skill, scoring: str = "exact") -> Callable[[SkillItem, str], Score]:
    """The skill's scorer for a `scoring` (a skill config's field): `score` for `exact`, `score_reference`
    (the reference system's rule: the response contains the expected result) for `reference`."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    if scoring == "exact":
        return skill.score
    reference = getattr(skill, "score_reference", None)
    if not callable(reference):
        raise ValueError(f"skill {skill.name} has no reference scorer (scoring 'reference')")
    return reference


def evaluate_items(
    backend: Backend, skill: Skill, items: list[SkillItem], scoring: str = "exact"
) -> EvalResult:
    """Complete every item's prompt in one backend call and score the outputs with the skill's scorer for
    `scoring` (`scorer`)."""
    score_item = scorer(skill, scoring)
    start = time.perf_counter()
    # messages[:-1] drops the assistant's reference answer: the model must produce it.
    prompts = [backend.render(item.messages[:-1]) for item in items]
    outputs = backend.complete(prompts) if prompts else []
    if len(outputs) != len(items):
        raise RuntimeError(f"backend returned {len(outputs)} outputs for {len(items)} prompts")
    rows: list[tuple[int, str, bool, float]] = []
    for i, (item, output) in enumerate(zip(items, outputs, strict=True)):
        score = score_item(item, output)
        rows.append((i, output, bool(score.correct), float(score.partial)))
    n = len(rows)
    correct = sum(r[2] for r in rows)
    return EvalResult(
        n=n,
        correct=correct,
        accuracy=correct / n if n else 0.0,
        partial=sum(r[3] for r in rows) / n if n else 0.0,
        rows=rows,
        wall_s=time.perf_counter() - start,
    )
