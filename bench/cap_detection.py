"""Benchmark: realm's cap rule against simulated heroes whose capacity is known (issue 37).

Draws `--heroes` simulated heroes (realm_pipeline/simulation/hero.py): caps at low and high levels, no cap
inside the budget, slow learners, temporary forgetting (shocks), one to three skills, both shipped
recipes, 50-item eval and reserve sets. Each runs through realm's own pure loop
(realm_pipeline/simulation/loop.py: apply_progression, lost_levels, training_mix, levels_to_evaluate, the
reserve-sample confirmation) under each cap rule on the same seed, for its budget and then three times
the tokens of its slowest level-up past the budget (a call never ends a run), so every call can be judged.
The ground truth is the simulator's oracle (realm_pipeline/simulation/oracle.py), never realm's rule.

Per rule it prints:
* false %: calls after which the hero levelled up: truly held one level more than it claimed (levels
  1..cap+1 all at or above the threshold by the simulator's true accuracies); and, stricter, "recorded
  level after %": calls after which realm's own record earned a level of the skill (a level realm records
  by trading lower ones away, or on a lucky streak, counts against the call here);
* claim right: calls whose claimed cap equals the oracle's;
* recall: skills with a true cap that realm mastered at least `--room` segments before the budget's end,
  called within the budget;
* delay: segments from realm mastering the true cap to the call (median, 90th percentile).

Heroes whose truth lies within the eval's resolution (the best holding mix's accuracy at the cap below
0.86, or one level above it over 0.70) are redrawn, and their count printed: a 50-item eval cannot tell
held from not held there, so no rule could be judged on them.

    python bench/cap_detection.py --heroes 1000 --jobs 2
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from realm_pipeline.simulation.hero import SimParams
from realm_pipeline.simulation.loop import Recipe, run_campaign
from realm_pipeline.simulation.oracle import skill_truth

SEGMENT_TOKENS = 100_000
LEVEL_CAP = 20
THRESHOLD = 0.8
RECIPES = {
    "default": Recipe(mastered_share=0.2),
    "tiny": Recipe(mastered_share=0.4, preview_share=0.667, preview_levels=2),
}
SKILLS = ("s1", "s2", "s3")


@dataclass(frozen=True)
class Draw:
    """One benchmark hero: its constants, skills, recipe, budget, kind and the oracle's truth per skill."""

    index: int
    params: SimParams
    skills: tuple[str, ...]
    recipe: str
    budget: int
    kind: str
    truth: dict[str, int]  # skill -> true cap (LEVEL_CAP: no cap inside the skill)


def draw_hero(index: int, rng: random.Random) -> tuple[Draw, int]:
    """A hero with drawn constants whose truth is clear of the eval's resolution; (draw, redraws)."""
    redraws = 0
    while True:
        kind = rng.choices(["capped", "uncapped", "slow", "shock"], weights=[4, 2, 2, 2])[0]
        n_skills = rng.choice([1, 1, 2, 3])
        skills = SKILLS[:n_skills]
        capacities = {}
        for s in skills:
            capped = kind == "capped" or (kind in ("shock", "slow") and rng.random() < 0.6)
            capacities[s] = rng.uniform(2.0, 60.0) if capped else 1e9
        params = SimParams(
            base_tokens=rng.uniform(0.1, 0.6) * SEGMENT_TOKENS,
            growth=rng.uniform(1.1, 1.45),
            transfer=rng.uniform(0.0, 0.4),
            interference=rng.uniform(0.001, 0.006),
            relearn=rng.uniform(0.1, 0.5),
            capacities=capacities,
            size_growth=rng.uniform(1.2, 1.5),
            plateau=rng.uniform(0.66, 0.78) if kind == "slow" else 1.0,
            plateau_from=rng.randint(2, 6),
            plateau_delay=rng.uniform(2.0, 6.0),
            shocks=((rng.randint(8, 60), rng.uniform(0.5, 0.8)),) if kind == "shock" else (),
            seed=index,
        )
        truth, clear = {}, True
        for s in skills:
            t = skill_truth(params, s, LEVEL_CAP, THRESHOLD)
            truth[s] = t.cap
            if t.held_accuracy < 0.86 or (t.capped and t.above_accuracy > 0.70) or t.cap == 0:
                clear = False
        if clear:
            recipe = rng.choice(sorted(RECIPES))
            return Draw(index, params, skills, recipe, rng.randint(40, 150), kind, truth), redraws
        redraws += 1


def slowest_level_up(run) -> int:
    """Segments of the slowest level-up so far (at least 1)."""
    gaps = [1]
    for levels in run.mastered_at.values():
        seq = [0, *sorted(levels.values())]
        gaps += [b - a for a, b in zip(seq, seq[1:], strict=False)]
    return max(gaps)


def judge_hero(draw: Draw, room: int) -> list[dict]:
    """Run the hero once (its budget, then three times its slowest level-up); rows per (rule, skill)."""
    run = run_campaign(
        draw.params,
        dict.fromkeys(draw.skills, LEVEL_CAP),
        segments=draw.budget,
        segment_tokens=SEGMENT_TOKENS,
        recipe=RECIPES[draw.recipe],
        seed=draw.index,
        extend=lambda r: 3 * slowest_level_up(r),
    )
    rows = []
    for rule, calls in (("forgetting", run.calls), ("multiplier", run.baseline_calls)):
        for skill in draw.skills:
            truth = draw.truth[skill]
            reached = run.mastered_at.get(skill, {}).get(truth) if truth < LEVEL_CAP else None
            call = calls.get(skill)
            rows.append(
                {
                    "rule": rule,
                    "hero": draw.index,
                    "kind": draw.kind,
                    "recipe": draw.recipe,
                    "skill": skill,
                    "truth": truth,
                    "reached": reached,
                    "inside": reached is not None and reached <= draw.budget - room,
                    "call": call.segment if call else None,
                    "call_in_budget": bool(call and call.segment <= draw.budget),
                    "claim": call.cap if call else None,
                    "false": bool(call and call.held_more_after is not None),
                    "recorded after": bool(call and call.levelled_after is not None),
                    "delay": (call.segment - reached) if call and reached is not None else None,
                }
            )
    return rows


def summarise(rows: list[dict], rule: str) -> dict:
    """Precision, claim accuracy, recall and delay of one rule."""
    mine = [r for r in rows if r["rule"] == rule]
    calls = [r for r in mine if r["call"] is not None]
    false = [r for r in calls if r["false"]]
    recorded = [r for r in calls if r["recorded after"]]
    right = [r for r in calls if r["claim"] == r["truth"]]
    due = [r for r in mine if r["inside"]]
    hit = [r for r in due if r["call_in_budget"]]
    delays = sorted(r["delay"] for r in hit if r["delay"] is not None)
    return {
        "skills": len(mine),
        "calls": len(calls),
        "false calls": len(false),
        "false %": 100 * len(false) / len(calls) if calls else 0.0,
        "recorded level after %": 100 * len(recorded) / len(calls) if calls else 0.0,
        "claim right %": 100 * len(right) / len(calls) if calls else 0.0,
        "true caps due": len(due),
        "recall %": 100 * len(hit) / len(due) if due else 0.0,
        "median delay": statistics.median(delays) if delays else None,
        "p90 delay": delays[int(0.9 * (len(delays) - 1))] if delays else None,
        "claim vs truth by recipe": {
            recipe: {
                side: sum(1 for r in calls if r["recipe"] == recipe and cmp(r["claim"], r["truth"]))
                for side, cmp in (("below", int.__lt__), ("equal", int.__eq__), ("above", int.__gt__))
            }
            for recipe in RECIPES
        },
        "false by kind": {
            k: sum(1 for r in false if r["kind"] == k) for k in ("capped", "uncapped", "slow", "shock")
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Draw, run, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heroes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=37)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--room", type=int, default=30, help="segments a true cap needs before the budget ends"
    )
    args = parser.parse_args(argv)
    rules = ("forgetting", "multiplier")
    rng = random.Random(args.seed)
    draws, redraws = [], 0
    for i in range(args.heroes):
        d, r = draw_hero(i, rng)
        draws.append(d)
        redraws += r
    start = time.perf_counter()
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for part in pool.map(judge_hero, draws, [args.room] * len(draws), chunksize=4):
            rows += part
    kinds = {k: sum(1 for d in draws if d.kind == k) for k in ("capped", "uncapped", "slow", "shock")}
    skills = len(rows) // len(rules)
    print(f"{len(draws)} heroes ({kinds}), {skills} skills, {redraws} redrawn within the eval's resolution")
    print(f"{time.perf_counter() - start:.0f} s on {args.jobs} processes")
    for rule in rules:
        print(rule, summarise(rows, rule))
    return 0


if __name__ == "__main__":
    sys.exit(main())
