"""The fixed held-out eval items of every level of a skill, as ledger rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from realm_pipeline.skills import get_skill
from realm_pipeline.skills.heldout import (
    chance_accuracy,
    eval_items,
    eval_set_hash,
    reserve_items,
    shared_facts_share,
)


@dataclass(frozen=True)
class EvalSetRows:
    """Rows for the `eval_sets` and `eval_items` tables, and one hash over all levels."""

    sets: list[dict]
    items: list[dict]
    combined_hash: str

    @property
    def content_hash(self) -> str:
        """A hash of every `eval_sets` row (item hashes, reserve hashes, skill version): equal iff a
        rebuild stored the same thing, so scores made against the old rows still hold."""
        return hashlib.sha256(json.dumps(self.sets, sort_keys=True).encode()).hexdigest()


def build_eval_sets(skill_name: str, level_cap: int, items_per_level: int) -> EvalSetRows:
    """Generate every level's eval set up to `level_cap`; a pure function of its arguments."""
    skill = get_skill(skill_name)
    sets, rows = [], []
    combined = hashlib.sha256()
    for level in range(1, level_cap + 1):
        items = eval_items(skill, level, items_per_level)
        digest = eval_set_hash(items)
        combined.update(digest.encode())
        sets.append(
            {
                "skill": skill_name,
                "level": level,
                "n_items": len(items),
                "eval_set_hash": digest,
                "skill_version": skill.version,
                "shared_facts_share": shared_facts_share(skill, level, items, items_per_level),
                "reserve_hash": eval_set_hash(reserve_items(skill, level, items_per_level)),
                "chance_accuracy": chance_accuracy(items),
            }
        )
        rows.extend(
            {
                "skill": skill_name,
                "level": level,
                "item_index": i,
                "seed": item.seed,
                "prompt": item.prompt,
                "answer": item.answer,
                "system_prompt": item.system,
            }
            for i, item in enumerate(items)
        )
    return EvalSetRows(sets, rows, combined.hexdigest())
