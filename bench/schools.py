"""Does each training school help? The tiny hero trained from the same seed, same segments, per school set.

Runs scribe, scribe+mirror and scribe+oracle side by side with realm's own functions (segment_spec,
train_segment, the eval sets and evaluator, the level-up rule, the strain hint and training_mix; no
Dagster): after every segment the checkpoint is evaluated on the skill's mastered, current and next
levels, and the curriculum (levels, hint, mix, Mirror reflections) decides the next segment exactly as the
campaign does. At the end every final checkpoint is scored on the same held-out eval sets (levels 1..K,
K the highest level any run was learning), so the accuracies compare like with like.

Usage: python bench/schools.py [--segments 6 --steps 150 --skills bin]   (~11-15 min on 2 shared cores)
       python bench/schools.py --device cuda --segments 20 --steps 300
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SCHOOL_SETS = (("scribe",), ("scribe", "mirror"), ("scribe", "oracle"))


def _evaluate(path: str, levels: list[tuple[str, int]], counts: dict[str, int], device: str) -> dict:
    """Accuracy of a checkpoint on the held-out eval set of each (skill, level)."""
    from realm_pipeline.evaluation.backends import LocalBackend
    from realm_pipeline.evaluation.runner import evaluate_items
    from realm_pipeline.settings import Settings
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import eval_items

    eval_cfg = Settings().realm.eval
    backend = LocalBackend(
        path, batch_size=eval_cfg.batch_size, max_new_tokens=eval_cfg.max_new_tokens, device=device
    )
    out = {}
    for skill, level in levels:
        items = eval_items(get_skill(skill), level, counts[skill])
        out[(skill, level)] = evaluate_items(backend, get_skill(skill), items).accuracy
    return out


def run_campaign(schools: tuple[str, ...], args: argparse.Namespace, workdir: Path) -> dict:
    """Train `args.segments` segments of the tiny hero with these schools; return its history."""
    from realm_pipeline.campaign import learning_floors, levels_to_evaluate
    from realm_pipeline.evaluation.progression import EvalPoint, SegmentPoint, apply_progression
    from realm_pipeline.settings import Settings
    from realm_pipeline.training.plan import CheckpointKey, segment_spec
    from realm_pipeline.training.sparring import load_reflections
    from realm_pipeline.training.strain import LevelLoss, strain_report
    from realm_pipeline.training.trainer import train_segment

    settings = Settings()
    base = settings.heroes["tiny"]
    hero = base.model_copy(
        update={
            "schools": list(schools),
            "campaign": base.campaign.model_copy(
                update={"skills": list(args.skills), "segment_steps": args.steps}
            ),
        }
    )
    profile = settings.memory_profiles[base.memory_profile].model_copy(update={"device": args.device})
    prog = settings.realm.progression
    caps = {s: settings.skills[s].level_cap for s in args.skills}
    counts = {s: settings.skills[s].eval_items_per_level for s in args.skills}
    evals: list = []
    segments: list = []
    losses: list = []
    parent = None
    history = []
    started = time.perf_counter()

    def replay():
        state = apply_progression(
            evals,
            segments,
            level_caps=caps,
            threshold=prog.level_up_accuracy,
            evals_required=prog.evals_required,
            window=prog.maxed_out_window,
            maintenance_max=prog.maintenance_multiplier_max,
        )
        report = strain_report(losses, [(u.skill, u.mastered, u.step) for u in state.level_ups], caps)
        return state, report

    for n in range(1, args.segments + 1):
        state, report = replay()
        key = CheckpointKey("tiny", n * args.steps)
        out = workdir / "-".join(schools) / str(key)
        spec = segment_spec(
            hero,
            profile,
            key,
            output_dir=out,
            parent_dir=parent,
            mix=state.training_mix(hero.training.mastered_share, list(args.skills), hint=report.hint),
            quests=[],
            eval_items_per_level=counts,
            reflections=load_reflections(parent),
            loss_floors=learning_floors(state, report),
            measure_levels=[
                (s, min(st.level + 1, st.cap)) for s, st in state.skills.items() if not st.complete
            ],
        )
        result = train_segment(spec)
        segments.append(SegmentPoint(str(key), key.step, result.tokens, result.strain))
        for name, loss in result.level_losses.items():
            skill, level = name.rsplit("@", 1)
            losses.append(LevelLoss(key.step, skill, int(level), loss))
        levels = [(s, lv) for s in args.skills for lv in levels_to_evaluate(state, s)]
        for (skill, level), acc in _evaluate(str(out), levels, counts, args.device).items():
            evals.append(EvalPoint(str(key), key.step, skill, level, acc))
        parent = out
        history.append(
            {
                "segment": n,
                "mix": [[s, lv, round(w, 3)] for s, lv, w in spec.mix],
                "hint": report.hint.value if report.hint else None,
                "strain": round(result.strain, 4),
                "mirror": [result.mirror_probes, result.mirror_misses, result.mirror_examples],
                "reflections_trained": result.reflections_trained,
            }
        )
        print(f"  {'+'.join(schools):<14} segment {n}: {history[-1]}", flush=True)
    state, report = replay()
    return {
        "schools": "+".join(schools),
        "final": str(parent),
        "levels": state.levels(),
        "mastered": sum(len(s.mastered) for s in state.skills.values()),
        "level_ups": [(u.skill, u.mastered, u.step) for u in state.level_ups],
        "effort": {f"{e.skill}@{e.level}": round(e.effort, 3) for e in report.levels if e.segments},
        "efficiency": {
            f"{e.skill}@{e.level}": round(e.efficiency, 3) for e in report.levels if e.efficiency is not None
        },
        "mastery_losses": {f"{s}@{lv}": round(v, 4) for (s, lv), v in report.mastery_losses.items()},
        "history": history,
        "wall_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the three school sets and print one table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--steps", type=int, default=150, help="training steps per segment")
    parser.add_argument("--skills", nargs="+", default=["bin"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    parser.add_argument("--json", help="also write the full results here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from realm_pipeline.settings import Settings

    settings = Settings()
    counts = {s: settings.skills[s].eval_items_per_level for s in args.skills}
    results = []
    with tempfile.TemporaryDirectory(prefix="realm-schools-") as tmp:
        for schools in SCHOOL_SETS:
            results.append(run_campaign(schools, args, Path(tmp)))
        # One common yardstick: levels 1..K of every skill, K the highest level any run was learning.
        top = {s: max(r["levels"][s] for r in results) for s in args.skills}
        levels = [(s, lv) for s in args.skills for lv in range(1, top[s] + 1)]
        for r in results:
            r["heldout"] = {
                f"{s}@{lv}": a for (s, lv), a in _evaluate(r["final"], levels, counts, args.device).items()
            }
            r["heldout_mean"] = sum(r["heldout"].values()) / len(r["heldout"])

    print()
    print(
        f"tiny hero, skills {args.skills}, {args.segments} segments x {args.steps} steps, seed = the checkpoint key; "
        f"held-out accuracy of the final checkpoint on the eval sets of levels 1..{top}"
    )
    cols = [f"{s}@{lv}" for s, lv in levels]
    header = f"| schools | levels mastered | level | held-out mean | {' | '.join(cols)} | wall s |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in results:
        accs = " | ".join(f"{r['heldout'][c]:.2f}" for c in cols)
        lv = ", ".join(f"{s} {v}" for s, v in r["levels"].items())
        print(
            f"| {r['schools']} | {r['mastered']} | {lv} | {r['heldout_mean']:.3f} | {accs} | {r['wall_s']:.0f} |"
        )
    print()
    for r in results:
        ups = ", ".join(f"{s} L{m}@{st}" for s, m, st in r["level_ups"]) or "none"
        print(
            f"{r['schools']}: level-ups {ups}; effort {r['effort']}; efficiency {r['efficiency']}; "
            f"held-out loss at mastery {r['mastery_losses']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
