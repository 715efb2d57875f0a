"""Side-by-side compare of two checkpoints on one prompt set, scored by the skill's own rubric (pure)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from realm_pipeline.settings import EvalSettings


def compare_checkpoints(
    lane_a: str,
    path_a: str,
    lane_b: str,
    path_b: str,
    *,
    skill: str,
    level: int,
    count: int,
    eval_settings: EvalSettings | None = None,
) -> dict:
    """A `compare_runs` row: both lanes' rubric scores on the level's held-out items, outputs kept private.

    Each lane generates the level's longest reference answer in its own tokens + the margin
    (`eval_settings`, realm.yaml's `eval`); a level needing more than the ceiling raises BudgetError."""
    from realm_pipeline.evaluation.backends import LocalBackend
    from realm_pipeline.evaluation.runner import evaluate_items
    from realm_pipeline.lm.budgets import eval_max_new_tokens
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import eval_items

    cfg = eval_settings or EvalSettings()
    sk = get_skill(skill)
    items = eval_items(sk, level, count)
    results = {}
    for lane, path in ((lane_a, path_a), (lane_b, path_b)):
        backend = LocalBackend(path, batch_size=cfg.batch_size)
        backend.max_new_tokens = eval_max_new_tokens(
            backend.tokenizer, items, margin=cfg.answer_margin_tokens, ceiling=cfg.max_new_tokens
        )
        results[lane] = evaluate_items(backend, sk, items)
    prompt_set = f"{skill}@{level}:{len(items)}"
    compare_id = hashlib.sha256(f"{lane_a}|{lane_b}|{prompt_set}".encode()).hexdigest()[:12]
    side_by_side = [
        {"prompt": it.prompt, "a": ra[1], "b": rb[1], "a_ok": ra[2], "b_ok": rb[2]}
        for it, ra, rb in zip(items, results[lane_a].rows, results[lane_b].rows, strict=True)
    ]
    return {
        "compare_id": compare_id,
        "lane_a": lane_a,
        "lane_b": lane_b,
        "prompt_set": prompt_set,
        "rubric_a": results[lane_a].accuracy,
        "rubric_b": results[lane_b].accuracy,
        "results_json": json.dumps(side_by_side),
        "created_at": datetime.now(UTC).replace(tzinfo=None),
    }
