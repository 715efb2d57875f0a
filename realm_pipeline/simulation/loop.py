"""A campaign of a simulated hero through realm's own pure loop, in memory (pure: no Dagster, no DuckDB).

The same functions the campaign sensor calls decide everything: `apply_progression` (levels, regressions,
verdicts), `lost_levels` and `training_mix` (the next segment's mix), `levels_to_evaluate` (what each
checkpoint is scored on) and `regressions.judge` (a drop confirmed or refuted on the reserve sample).
Only the model and the eval items are simulated: an eval of `eval_items` items is a binomial sample of
the hero's true accuracy, as the real eval path's hashed answers are. `bench/cap_detection.py` runs
thousands of these; the tests run a few heroes whose truth is known.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from realm_pipeline.campaign import levels_to_evaluate
from realm_pipeline.evaluation.progression import (
    CurriculumState,
    EvalPoint,
    SegmentPoint,
    apply_progression,
    lost_levels,
)
from realm_pipeline.evaluation.regressions import judge as confirmed_on_reserve
from realm_pipeline.evaluation.verdicts import CAPPED, Check
from realm_pipeline.settings import Progression, Regression
from realm_pipeline.simulation.hero import SimParams, SimState, accuracies, train


@dataclass(frozen=True)
class Recipe:
    """The hero's training recipe (its YAML's `training:` shares)."""

    mastered_share: float = 0.2
    preview_share: float = 0.0
    preview_levels: int = 1


_PROGRESSION, _REGRESSION = Progression(), Regression()  # realm.yaml's defaults, from its schema


@dataclass(frozen=True)
class Rules:
    """realm.yaml's progression and regression settings, as `apply_progression` takes them."""

    threshold: float = _PROGRESSION.level_up_accuracy
    evals_required: int = _PROGRESSION.evals_required
    window: int = _PROGRESSION.maxed_out_window
    maintenance_max: float = _PROGRESSION.maintenance_multiplier_max
    min_trend: float = _PROGRESSION.min_trend
    min_trend_points: int = _PROGRESSION.min_trend_points
    maintenance_min: int = _PROGRESSION.maintenance_min
    tau: float = _REGRESSION.tau
    cap_rule: str = _PROGRESSION.cap_rule

    def progression(self) -> dict:
        """Keyword arguments of `apply_progression`."""
        return {
            "threshold": self.threshold,
            "evals_required": self.evals_required,
            "window": self.window,
            "maintenance_max": self.maintenance_max,
            "min_trend": self.min_trend,
            "min_trend_points": self.min_trend_points,
            "maintenance_min": self.maintenance_min,
            "cap_rule": self.cap_rule,
            "eval_items": None,
        }


@dataclass
class Call:
    """realm's cap call on one skill: when, at which level, and how it was judged afterwards."""

    skill: str
    segment: int
    cap: int  # the level the call says the hero caps at
    reason: str
    levelled_after: int | None = None  # the first segment after the call that earned a level (realm's record)
    # the first segment after the call at which the hero truly held one level more: levels 1..cap+1 all at
    # or above the threshold by the simulator's true accuracies (a level realm records while lower ones are
    # lost is not one)
    held_more_after: int | None = None


@dataclass
class LoopRun:
    """What a campaign did: per segment the true accuracies and realm's levels, and every cap call."""

    mastered_at: dict[str, dict[int, int]] = field(default_factory=dict)  # skill -> level -> segment earned
    calls: dict[str, Call] = field(default_factory=dict)  # skill -> its first cap call
    baseline_calls: dict[str, Call] = field(default_factory=dict)  # ... under the multiplier rule
    segments: int = 0
    state: CurriculumState | None = None


def run_campaign(
    params: SimParams,
    level_caps: Mapping[str, int],
    *,
    segments: int,
    segment_tokens: float,
    recipe: Recipe = Recipe(),
    rules: Rules = Rules(),
    eval_items: int = 50,
    reserve_items: int = 50,
    seed: int = 0,
    extend: Callable[[LoopRun], int] | None = None,
) -> LoopRun:
    """Train and judge `segments` segments, then `extend(run)` more; a cap call does not stop it.

    The calls of the rules.cap_rule and (when that is "forgetting") of the multiplier rule on the same
    history are recorded with the first segment after each that earned a level of its skill.
    """
    rng = random.Random(seed)
    sim = SimState()
    evals: list[EvalPoint] = []
    segs: list[SegmentPoint] = []
    trained: dict[str, dict[tuple[str, int], int]] = {}
    trained_by_step: list[tuple[int, dict[tuple[str, int], float]]] = []
    checks: list[Check] = []
    confirmed: list[tuple[str, int, str]] = []
    standing: dict[tuple[str, int], float] = {}  # the previous build's accuracy per bench (the baseline)
    skills = list(level_caps)
    run = LoopRun(mastered_at={s: {} for s in skills})
    state = _replay(evals, segs, level_caps, rules, confirmed, trained, checks)
    total, i = segments, 0
    while i < total:
        i += 1
        ckpt, step = f"sim.{i:06d}", i * 100
        lost = lost_levels(state, trained_by_step, after=rules.maintenance_min)
        mix = state.training_mix(
            recipe.mastered_share,
            skills,
            lost=lost,
            preview_share=recipe.preview_share,
            preview_levels=recipe.preview_levels,
        )
        tokens = {(s, lv): int(round(w * segment_tokens)) for s, lv, w in mix}
        sim = train(params, sim, tokens)
        trained[ckpt] = {k: v for k, v in tokens.items() if v > 0}
        trained_by_step.append((step, {k: float(v) for k, v in tokens.items()}))
        segs.append(SegmentPoint(ckpt, step, sum(tokens.values()), None))
        ahead = recipe.preview_levels if recipe.preview_share > 0 else 1
        for skill in skills:
            levels = levels_to_evaluate(state, skill, level_caps[skill], 0, ahead)
            true = accuracies(params, sim, skill, levels)
            for lv in levels:
                acc = _binomial(rng, eval_items, true[lv]) / eval_items
                evals.append(EvalPoint(ckpt, step, skill, lv, acc))
                s = state.skills.get(skill)
                baseline = standing.get((skill, lv))
                if s is not None and lv in s.mastered and baseline is not None and baseline - acc > rules.tau:
                    # the leaderboard's regression check raises a confirming re-run on the reserve sample
                    reserve = _binomial(rng, reserve_items, true[lv]) / reserve_items
                    ok = confirmed_on_reserve(baseline, reserve, rules.tau)
                    checks.append(Check(skill, lv, ckpt, step, ok))
                    if ok:
                        confirmed.append((skill, lv, ckpt))
                standing[(skill, lv)] = acc
        before = {name: len(s.mastered) for name, s in state.skills.items()}
        state = _replay(evals, segs, level_caps, rules, confirmed, trained, checks)
        run.segments = i
        hero = state.verdicts
        for name, s in state.skills.items():
            for up in s.mastered[before.get(name, 0) :]:
                run.mastered_at[name].setdefault(up, i)
            for calls, verdicts in ((run.calls, hero.skills), (run.baseline_calls, hero.multiplier_skills)):
                call = calls.get(name)
                if call is not None and call.levelled_after is None and len(s.mastered) > before.get(name, 0):
                    call.levelled_after = i
                if call is not None and call.held_more_after is None and call.segment < i:
                    true = accuracies(params, sim, name, list(range(1, call.cap + 2)))
                    if min(true.values()) >= rules.threshold:
                        call.held_more_after = i
                v = verdicts.get(name)
                if call is None and v is not None and v.verdict == CAPPED:
                    calls[name] = Call(name, i, v.cap_level, v.reason)
        if i == segments and extend is not None:
            total += extend(run)
    run.state = state
    return run


def _replay(evals, segs, level_caps, rules, confirmed, trained, checks) -> CurriculumState:
    return apply_progression(
        evals,
        segs,
        level_caps=dict(level_caps),
        confirmed=confirmed,
        trained=trained,
        checks=checks,
        **rules.progression(),
    )


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))
