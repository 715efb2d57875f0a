"""Throughput of every skill: items generated and scored per second at low, middle and top levels,
with mean prompt/answer lengths and the skill's longest() bound on them (and longest_bytes(), in UTF-8
bytes, where the skill has one).

Run: python bench/skills.py [SKILL ...]   (about 20-40 s). The baseline column times a bare sha256-seeded
random.Random construction, the fixed per-item cost every generator pays before doing any work.

python bench/skills.py --shared-facts bin   (about 2-4 min): per level, the eval set's size, the distinct
prompts among SPACE_DRAWS training items, and the share of eval items whose facts (operation and operands,
phrasing aside) training also shows: with the sample the eval_sets asset stores (shared_facts_share's
default) and with SPACE_DRAWS items, nearer what a campaign's training stream really shows.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realm_pipeline.skills import SKILLS  # noqa: E402

BUDGET_S = 0.6  # per (skill, level, phase) measurement
SPACE_DRAWS = 40_000  # training items per level for the shared-facts share and the prompt count


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


def main(skills: list[str]) -> None:
    """Print the throughput table."""
    baseline = rate(lambda i: random.Random(hashlib.sha256(f"x|1|1|{i}".encode()).digest()).random())
    print(
        f"{'skill':<12} {'level':>5} {'gen/s':>10} {'score/s':>10} {'prompt ch':>9} {'answer ch':>9}"
        f" {'longest()':>10} {'bytes':>10}"
    )
    only = set(skills)  # e.g. `python bench/skills.py sy`: just the named skills
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
            in_bytes = getattr(skill, "longest_bytes", None)
            byte_bound = "{}/{}".format(*in_bytes(level)) if in_bytes else "-"
            print(
                f"{name:<12} {level:>5} {gen:>10,.0f} {sc:>10,.0f} {plen:>9.1f} {alen:>9.1f} {bound:>10}"
                f" {byte_bound:>10}"
            )
        if hasattr(skill, "vocabulary"):  # SY: the words training can draw per distinct eval word
            for level in range(1, 11):
                eval_words, pool = skill.vocabulary(level, 50)
                print(
                    f"{name} L{level} vocabulary: {pool:,} words / {eval_words} eval words = {pool / eval_words:.1f}x"
                )
    print(f"baseline: sha256-seeded Random construction {baseline:,.0f}/s")


def shared_facts(name: str, count: int) -> None:
    """Print, per level, eval size, distinct training prompts and the shared-facts share two ways."""
    from realm_pipeline.skills.heldout import eval_items, item_facts, shared_facts_share, training_items

    skill = SKILLS[name]
    print(
        f"{'level':>5} {'eval':>5} {'prompts in ' + format(SPACE_DRAWS, ','):>17} {'shared (stored)':>15}"
        f" {'shared (' + format(SPACE_DRAWS, ',') + ')':>15}"
    )
    for level in range(1, skill.max_level + 1):
        items = eval_items(skill, level, count)
        stored = shared_facts_share(skill, level, items, count)
        stream = itertools.islice(training_items(skill, level, seed=1, eval_count=count), SPACE_DRAWS)
        prompts, facts = set(), set()
        for item in stream:
            prompts.add(item.prompt)
            facts.add(item_facts(skill, item))
        wide = sum(item_facts(skill, i) in facts for i in items) / len(items)
        print(f"{level:>5} {len(items):>5} {len(prompts):>17,} {stored:>15.2f} {wide:>15.2f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("skills", nargs="*", help="only these skills (default: all)")
    parser.add_argument("--shared-facts", metavar="SKILL", help="the shared-facts table of one skill instead")
    parser.add_argument("--count", type=int, default=50, help="eval items per level (configs/skills)")
    args = parser.parse_args()
    if args.shared_facts:
        shared_facts(args.shared_facts, args.count)
    else:
        main(args.skills)
