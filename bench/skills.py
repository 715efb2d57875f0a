"""Throughput of every skill: items generated and scored per second at low, middle and top levels,
with mean prompt/answer lengths and the skill's longest() bound on them.

Run: python bench/skills.py [SKILL ...]   (about 20-40 s). The baseline column times a bare sha256-seeded
random.Random construction, the fixed per-item cost every generator pays before doing any work.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realm_pipeline.skills import SKILLS  # noqa: E402

BUDGET_S = 0.6  # per (skill, level, phase) measurement


def levels_for(max_level: int, name: str) -> list[int]:
    """Levels to time: 1, 10 and max for the big skills; 1, mid and max for drills."""
    mid = 10 if name in ("bin", "sy") else max_level // 2
    return sorted({1, mid, max_level})


def rate(fn, budget: float = BUDGET_S) -> float:
    """Calls per second of fn(i) for i = 0, 1, ... within the time budget."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        for _ in range(50):
            fn(n)
            n += 1
    return n / elapsed


def main() -> None:
    """Print the throughput table."""
    baseline = rate(lambda i: random.Random(hashlib.sha256(f"x|1|1|{i}".encode()).digest()).random())
    print(
        f"{'skill':<12} {'level':>5} {'gen/s':>10} {'score/s':>10} {'prompt ch':>9} {'answer ch':>9}"
        f" {'longest()':>10}"
    )
    only = set(sys.argv[1:])  # e.g. `python bench/skills.py sy`: just the named skills
    for name, skill in SKILLS.items():
        if only and name not in only:
            continue
        skill.generate(1, 1, 0)  # warm caches (SY loads its lexicon once)
        for level in levels_for(skill.max_level, name):
            skill.generate(level, 1, 0)  # one-time loads of the level (SY's etymology data at L9+)
            gen = rate(lambda i, s=skill, lv=level: s.generate(lv, 1, i))
            items = [skill.generate(level, 1, i) for i in range(200)]
            sc = rate(lambda i, s=skill, its=items: s.score(its[i % 200], its[i % 200].answer))
            plen = sum(len(it.prompt) for it in items) / len(items)
            alen = sum(len(it.answer) for it in items) / len(items)
            bound = "{}/{}".format(*skill.longest(level))  # upper bound of prompt/answer characters
            print(f"{name:<12} {level:>5} {gen:>10,.0f} {sc:>10,.0f} {plen:>9.1f} {alen:>9.1f} {bound:>10}")
        if hasattr(skill, "vocabulary"):  # SY: the words training can draw per distinct eval word
            for level in range(1, 11):
                eval_words, pool = skill.vocabulary(level, 50)
                print(
                    f"{name} L{level} vocabulary: {pool:,} words / {eval_words} eval words = {pool / eval_words:.1f}x"
                )
    print(f"baseline: sha256-seeded Random construction {baseline:,.0f}/s")


if __name__ == "__main__":
    main()
