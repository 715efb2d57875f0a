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
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from realm_pipeline.simulation.hero import SimParams, accuracies, load_state
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


REPO = Path(__file__).resolve().parent.parent
E2E_SKILLS = {"s1": "bin", "s2": "seq_reverse", "s3": "attn_count"}  # the simulated skills -> real ones
E2E_SEGMENT_TOKENS = 7_400  # tokens of a 10-step x 8-example segment of the real stream (sim_cap3.yaml)


def e2e_hero(draw: Draw, home: Path, budget: int, past_cap: int) -> dict:
    """Run one drawn hero end to end: `realm init` and `realm campaign` through Dagster in its own home,
    the hero YAML in a copy of configs/; read back its cap calls, level-ups and final state."""
    configs = home / "configs"
    shutil.copytree(REPO / "configs", configs)
    skills = [E2E_SKILLS[s] for s in draw.skills]
    params = {
        k: v
        for k, v in vars(draw.params).items()
        if k not in ("capacities", "shocks", "seed") and v is not None
    }
    params["base_tokens"] = draw.params.base_tokens / SEGMENT_TOKENS * E2E_SEGMENT_TOKENS
    params["capacities"] = {E2E_SKILLS[s]: c for s, c in draw.params.capacities.items() if c < 1e8}
    params["shocks"] = [list(x) for x in draw.params.shocks]
    recipe = RECIPES[draw.recipe]
    name = f"bench{draw.index}"
    hero = {
        "name": name,
        "base": {"kind": "simulated", **params, "seed": draw.index},
        "memory_profile": "simulated",
        "training": {
            "lr": 0.001,
            "batch_size": 8,
            "max_length": 6144,
            "mastered_share": recipe.mastered_share,
            "preview_share": recipe.preview_share,
            "preview_levels": recipe.preview_levels,
            "strain_hint": False,
        },
        "schools": ["scribe"],
        "campaign": {"skills": skills, "segment_steps": 10, "segment_budget": budget + past_cap},
        "seed": draw.index,
    }
    (configs / "heroes" / f"{name}.yaml").write_text(json.dumps(hero))
    env = {
        **os.environ,
        "REALM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "REALM_CONFIG_DIR": str(configs),
        "OMP_NUM_THREADS": "1",
    }
    realm = [sys.executable, "-c", "from realm_pipeline.cli import main; main()"]
    start = time.perf_counter()
    subprocess.run([*realm, "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        [
            *realm,
            "campaign",
            "--hero",
            name,
            "--segments",
            str(budget + past_cap),
            "--past-cap",
            str(past_cap),
        ],
        env=env,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    from realm_pipeline import ledger
    from realm_pipeline.settings import Settings
    from realm_pipeline.simulation.oracle import skill_truth as truth_of

    settings = Settings(configs)
    with ledger.connect(home / "realm.duckdb", read_only=True) as con:
        calls = {
            r[0]: (r[1], r[2])
            for r in con.execute("SELECT skill, segment, cap_level FROM cap_calls").fetchall()
        }
        ups = con.execute(
            "SELECT skill, level, step FROM curriculum_events WHERE event = 'level_up' ORDER BY step"
        ).fetchall()
        ckpts = con.execute("SELECT checkpoint_id, path FROM checkpoints ORDER BY step").fetchall()
    params_obj = settings.heroes[name].base.params()
    state = load_state(ledger.resolve_home_path(ckpts[-1][1], home)) if ckpts else None
    rows = []
    for skill in skills:
        truth = truth_of(params_obj, skill, settings.skills[skill].level_cap, THRESHOLD)
        call = calls.get(skill)
        held_more = None
        if call is not None and state is not None:
            true = accuracies(params_obj, state, skill, list(range(1, call[1] + 2)))
            held_more = min(true.values()) >= THRESHOLD
        rows.append(
            {
                "hero": name,
                "skill": skill,
                "truth": truth.cap,
                "capped": truth.capped,
                "segments": len(ckpts),
                "levels": sorted(lv for sk, lv, _ in ups if sk == skill),
                "call": call,
                "recorded level after call": bool(
                    call and any(sk == skill and st // 10 > call[0] for sk, _, st in ups)
                ),
                "holds one more at the end": held_more,
                "wall_s": round(wall),
            }
        )
    return rows


def run_e2e(count: int, seed: int, budget: int, past_cap: int, keep: Path | None) -> None:
    """Draw `count` heroes and run each end to end, printing a row per skill as it finishes."""
    rng = random.Random(seed)
    for i in range(count):
        draw, _ = draw_hero(10_000 + i, rng)
        home = Path(tempfile.mkdtemp(prefix=f"e2e{i}-", dir=keep))
        for row in e2e_hero(draw, home, budget, past_cap):
            print(json.dumps({"kind": draw.kind, "recipe": draw.recipe, **row}), flush=True)
        if keep is None:
            shutil.rmtree(home, ignore_errors=True)


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
    parser.add_argument(
        "--e2e", type=int, default=0, help="also run this many heroes through `realm campaign`"
    )
    parser.add_argument("--e2e-budget", type=int, default=60)
    parser.add_argument("--e2e-past-cap", type=int, default=20)
    parser.add_argument("--e2e-home", type=Path, default=None, help="keep the homes under this folder")
    args = parser.parse_args(argv)
    if args.e2e:
        run_e2e(args.e2e, args.seed, args.e2e_budget, args.e2e_past_cap, args.e2e_home)
        if args.heroes == 0:
            return 0
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
