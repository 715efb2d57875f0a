"""Accuracy per primitive: read from the newest checkpoint's eval generations and the items' own tags."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from realm_pipeline import ledger
from realm_pipeline.campaign import primitive_accuracy, weakest_primitive
from realm_pipeline.settings import Settings
from realm_pipeline.skills import get_skill
from realm_pipeline.skills.heldout import eval_items

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
T0 = datetime(2026, 1, 1)


def test_accuracy_per_primitive_names_the_weakest(tmp_path: Path) -> None:
    settings = Settings(CONFIGS)
    count = settings.skills["bin"].eval_items_per_level
    items = eval_items(get_skill("bin"), 2, count)
    # The hero gets every item right except those of one primitive: that one must come out weakest.
    weak = items[0].tags["primitive"]
    right = [i.tags["primitive"] != weak for i in items]
    with ledger.connect(tmp_path / "realm.duckdb") as con:
        ledger.migrate(con)
        for ckpt, step, correct in (("tiny.000150", 150, [False] * len(items)), ("tiny.000300", 300, right)):
            ledger.upsert(
                con,
                "eval_scores",
                [
                    {
                        "checkpoint_id": ckpt,
                        "hero": "tiny",
                        "step": step,
                        "skill": "bin",
                        "level": 2,
                        "fingerprint": f"f{step}",
                        "n": len(items),
                        "correct": sum(correct),
                        "accuracy": sum(correct) / len(items),
                        "created_at": T0,
                        "protocol": "p",
                        "sample": "eval",
                    }
                ],
            )
            ledger.upsert(
                con,
                "eval_generations",
                [
                    {
                        "checkpoint_id": ckpt,
                        "skill": "bin",
                        "level": 2,
                        "item_index": k,
                        "fingerprint": f"f{step}",
                        "output": "",
                        "correct": c,
                        "partial": float(c),
                    }
                    for k, c in enumerate(correct)
                ],
            )
        got = primitive_accuracy(con, settings, "tiny")
    # Only the newest checkpoint counts (the older one got everything wrong).
    assert got[weak]["accuracy"] == 0.0 and got[weak]["n"] == sum(not c for c in right)
    assert all(v["accuracy"] == 1.0 for p, v in got.items() if p != weak)
    assert sum(v["n"] for v in got.values()) == len(items) and len(got) >= 2
    assert weakest_primitive(got) == weak
    assert weakest_primitive({}) is None
