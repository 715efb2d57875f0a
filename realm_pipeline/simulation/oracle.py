"""Ground truth of a simulated hero: the highest level it can hold, from the simulator alone (pure).

Nothing here reads realm's progression rule. The truth of a skill is the highest level `N` for which some
mix of levels 1..N, trained for ever, holds every one of them at or above the threshold; the tokens it
takes are those an oracle curriculum (train the first level not yet held, keep the others with the
holding mix) spends until 1..N are all held. Both come from `simulation.hero.train` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from realm_pipeline.simulation.hero import SimParams, SimState, accuracies, train

SATURATE = 200.0  # e-folds of experience given to every trained level: what "trained for ever" means
MIX_ROUNDS = 40  # reweighting rounds of the mix search


@dataclass(frozen=True)
class SkillTruth:
    """A skill's ground truth: the cap (0: not even level 1), its best accuracy there and one level up."""

    skill: str
    cap: int
    level_cap: int  # the skill's own last level: a cap here is no cap inside the skill
    held_accuracy: float  # the worst level of 1..cap under the best holding mix
    above_accuracy: float  # the worst level of 1..cap+1 under its best mix (0 when cap == level_cap)
    tokens: int | None  # tokens the oracle curriculum took to hold 1..cap (None: not within its limit)

    @property
    def capped(self) -> bool:
        """True when the hero cannot hold its skill's last level: a real cap below the skill's end."""
        return self.cap < self.level_cap

    def to_json(self) -> dict:
        """JSON-ready dict."""
        return {
            "skill": self.skill,
            "cap": self.cap,
            "level_cap": self.level_cap,
            "capped": self.capped,
            "held_accuracy": round(self.held_accuracy, 4),
            "above_accuracy": round(self.above_accuracy, 4),
            "tokens": self.tokens,
        }


def steady_accuracies(params: SimParams, skill: str, mix: dict[int, float]) -> dict[int, float]:
    """Accuracy of levels 1..max(mix)+1 after training `mix` (level -> share of the skill) for ever."""
    top = max(mix)
    scale = SATURATE * params.tokens_per_efold(top + 1)
    tokens = {(skill, lv): share * scale for lv, share in mix.items() if share > 0}
    state = train(params, SimState(), tokens)
    state = train(params, state, tokens)  # hold relaxes to its target; experience is far past saturation
    return accuracies(params, state, skill, list(range(1, top + 2)))


def best_hold(params: SimParams, skill: str, levels: int) -> tuple[float, dict[int, float]]:
    """(worst accuracy over 1..levels, the mix) under the mix of levels 1..levels that maximises it."""
    mix = {lv: 1.0 / levels for lv in range(1, levels + 1)}
    best = (-1.0, dict(mix))
    for _ in range(MIX_ROUNDS):
        acc = steady_accuracies(params, skill, mix)
        worst = min(acc[lv] for lv in mix)
        if worst > best[0]:
            best = (worst, dict(mix))
        top = max(acc[lv] for lv in mix)
        # more practice for the levels held worst (the hold rises with a level's share)
        mix = {lv: w * (top / max(acc[lv], 1e-9)) ** 0.5 for lv, w in mix.items()}
        total = sum(mix.values())
        mix = {lv: w / total for lv, w in mix.items()}
    return best


def skill_truth(
    params: SimParams,
    skill: str,
    level_cap: int,
    threshold: float,
    *,
    segment_tokens: float | None = None,
    max_segments: int = 2000,
) -> SkillTruth:
    """The skill's cap (see the module docstring); with `segment_tokens`, the tokens it takes."""
    cap, held, above = 0, 1.0, 0.0
    for n in range(1, level_cap + 1):
        worst, _ = best_hold(params, skill, n)
        if worst < threshold:
            above = worst
            break
        cap, held = n, worst
    tokens = None
    if segment_tokens is not None and cap > 0:
        tokens = oracle_tokens(params, skill, cap, threshold, segment_tokens, max_segments)
    return SkillTruth(skill, cap, level_cap, held, above if cap < level_cap else 0.0, tokens)


def oracle_tokens(
    params: SimParams, skill: str, cap: int, threshold: float, segment_tokens: float, max_segments: int
) -> int | None:
    """Tokens an oracle curriculum spends until levels 1..cap are all at or above `threshold`.

    Each segment trains the lowest level below the threshold with 60 % of the tokens and keeps the
    levels under it with the best holding mix of them (40 %); None past `max_segments`.
    """
    state = SimState()
    holding: dict[int, dict[int, float]] = {}
    for _ in range(max_segments):
        acc = accuracies(params, state, skill, list(range(1, cap + 1)))
        below = [lv for lv in range(1, cap + 1) if acc[lv] < threshold]
        if not below:
            return state.tokens
        target = below[0]
        mix = {target: 0.6 if target > 1 else 1.0}
        if target > 1:
            if target - 1 not in holding:
                holding[target - 1] = best_hold(params, skill, target - 1)[1]
            mix |= {lv: 0.4 * w for lv, w in holding[target - 1].items()}
        state = train(params, state, {(skill, lv): w * segment_tokens for lv, w in mix.items()})
    return None
