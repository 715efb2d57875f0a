"""Training strain: how far a hero's loss sits above its floor, and what that says about the curriculum.

strain = loss - floor: the excess of the held-out loss (nats per answer token) over the skill level's
floor, the reference's "comfort zone". The floor is measured, not 0: a level's own held-out loss at the
checkpoint that mastered it; before that, the floor of the skill's highest mastered level below it (the
comfort zone the hero last reached on that skill); before any mastery, DEFAULT_FLOOR (itself measured:
see its comment). Negative strain (loss under the floor) is allowed: the hero is past its comfort zone.
effort = cumulative positive strain per level; plastic gain = loss before - loss after a level's
transition; efficiency = gain / effort (`strain_report`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

RECOVERY_MAX = 0.1
PRODUCTIVE_MAX = 0.3
STRETCH_MAX = 0.5

DEFAULT_WINDOW = 5
# Strain change per step below which the trend counts as flat; ~1 % of the floor per segment is noise.
DEFAULT_TOLERANCE = 0.01


class Zone(StrEnum):
    """Strain bands: RECOVERY < 0.1 <= PRODUCTIVE < 0.3 <= STRETCH < 0.5 <= OVERLOAD."""

    RECOVERY = "recovery"
    PRODUCTIVE = "productive"
    STRETCH = "stretch"
    OVERLOAD = "overload"


class Hint(StrEnum):
    """What the curriculum should do next."""

    LEVEL_UP = "level_up"
    CONTINUE = "continue"
    BACK_OFF = "back_off"


def _finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def strain(loss: float, floor: float) -> float:
    """Excess of `loss` over `floor`: loss - floor."""
    loss = _finite(loss, "loss")
    floor = _finite(floor, "floor")
    if floor < 0 or loss < 0:
        raise ValueError(f"loss and floor must be >= 0, got loss {loss}, floor {floor}")
    return loss - floor


def zone(value: float) -> Zone:
    """Map a strain value to its Zone (lower bounds inclusive)."""
    value = _finite(value, "strain")
    if value < RECOVERY_MAX:
        return Zone.RECOVERY
    if value < PRODUCTIVE_MAX:
        return Zone.PRODUCTIVE
    if value < STRETCH_MAX:
        return Zone.STRETCH
    return Zone.OVERLOAD


def _slope(values: Sequence[float]) -> float:
    # Least-squares slope per step: less jumpy than last-minus-first on noisy segment losses.
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    num = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def curriculum_hint(
    strains: Sequence[float], *, window: int = DEFAULT_WINDOW, tolerance: float = DEFAULT_TOLERANCE
) -> Hint:
    """LEVEL_UP if recent strain is low and flat, BACK_OFF if overloaded and not falling, else CONTINUE."""
    if not strains:
        raise ValueError("curriculum_hint needs at least one strain value")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    recent = [_finite(s, "strain") for s in strains[-window:]]
    level = zone(sum(recent) / len(recent))
    trend = _slope(recent)
    stable = abs(trend) <= tolerance
    improving = trend < -tolerance
    if level is Zone.RECOVERY and stable:
        return Hint.LEVEL_UP
    if level is Zone.OVERLOAD and not improving:
        return Hint.BACK_OFF
    # Productive/Stretch, or low-but-still-moving, or overloaded-but-falling: keep going and re-check.
    return Hint.CONTINUE


def effort(strains: Sequence[float]) -> float:
    """Cumulative effort: the sum of the positive strain values."""
    return sum(max(0.0, _finite(s, "strain")) for s in strains)


# ---------------------------------------------------------------- per skill-level: floors, effort, hint

# The comfort zone of a skill nothing of which is mastered yet. Measured, not assumed: the tiny hero's
# held-out answer-token loss on BIN L1 at the checkpoint that mastered it was 0.0009 / 0.0004 / 0.0008
# nats (bench/schools.py: scribe / +mirror / +oracle, 8 x 150 steps), and on BIN L2 0.0004-0.0018.
# Once a level of the skill is mastered, its own measured loss replaces this.
DEFAULT_FLOOR = 0.001
# The trend needs this many segments at the level being learned before it decides anything: with fewer
# the slope is a line through one or two noisy points, and the hint is "none" (the mix is left alone).
MIN_TREND_SAMPLES = 3


@dataclass(frozen=True)
class LevelLoss:
    """The held-out loss of one skill level measured after one segment (the checkpoint at `step`)."""

    step: int
    skill: str
    level: int
    loss: float


@dataclass(frozen=True)
class LevelEffort:
    """What learning one level cost and gained (strain against the floor in force at each segment)."""

    skill: str
    level: int
    floor: float  # the floor in force now (its own mastery loss once mastered)
    floor_measured: bool  # False: DEFAULT_FLOOR (nothing of the skill mastered yet)
    segments: int  # segments that trained it as the level being learned, with a held-out loss
    effort: float  # sum of their positive strain
    loss_before: float | None  # its first measured held-out loss (as the next level, or its first segment)
    loss_after: float | None  # its held-out loss at the checkpoint that mastered it
    plastic_gain: float | None  # loss_before - loss_after (mastered levels only)
    efficiency: float | None  # plastic_gain / effort (None when either is missing or effort is 0)
    mastered_step: int | None


@dataclass(frozen=True)
class StrainReport:
    """Per-level floors, effort and plastic gain, the per-skill strain trend and the hero's hint."""

    floors: dict[tuple[str, int], float]  # the floor in force now for each (skill, level) seen
    mastery_losses: dict[tuple[str, int], float]  # held-out loss of each level at its mastering checkpoint
    levels: tuple[LevelEffort, ...]
    skill_strains: dict[str, list[float]]  # strain per segment at the level each skill is learning now
    skill_hints: dict[str, Hint | None]
    hint: Hint | None
    hint_reason: str


def _floor_at(
    skill: str, level: int, step: int, mastery: dict[tuple[str, int], tuple[int, float]]
) -> tuple[float, bool]:
    # Known at `step`: masteries earned strictly before it. A level's own mastery loss if it has one,
    # else the nearest mastered level below it (the skill's latest comfort zone), else DEFAULT_FLOOR.
    known = {lv: loss for (s, lv), (at, loss) in mastery.items() if s == skill and at < step and lv <= level}
    if not known:
        return DEFAULT_FLOOR, False
    return max(0.0, known[max(known)]), True


def strain_report(
    losses: Sequence[LevelLoss],
    level_ups: Sequence[tuple[str, int, int]],
    caps: dict[str, int],
    *,
    window: int = DEFAULT_WINDOW,
    min_samples: int = MIN_TREND_SAMPLES,
) -> StrainReport:
    """Replay per-level held-out losses against the level-ups (skill, mastered level, step).

    Strain of a segment at a level = its held-out loss there - the floor known when it was trained;
    effort = the sum of the positive strain at the level while it was being learned; plastic gain = the
    level's first measured loss - its loss when mastered; efficiency = gain / effort. Each skill's hint is
    `curriculum_hint` over its strain at the level it is learning now, given >= `min_samples` segments;
    the hero's hint is BACK_OFF if any skill says so, LEVEL_UP if every decided skill says so, else
    CONTINUE, and None while no skill has enough segments.
    """
    if min_samples < 1:
        raise ValueError(f"min_samples must be >= 1, got {min_samples}")
    loss_at = {(p.step, p.skill, int(p.level)): _finite(p.loss, "loss") for p in losses}
    ups = sorted((int(st), s, int(lv)) for s, lv, st in level_ups)
    mastery: dict[tuple[str, int], tuple[int, float]] = {}
    for st, s, lv in ups:
        if (st, s, lv) in loss_at and (s, lv) not in mastery:
            mastery[(s, lv)] = (st, loss_at[(st, s, lv)])
    mastered_step = {(s, lv): st for st, s, lv in reversed(ups)}  # earliest
    steps = sorted({st for st, _, _ in loss_at})

    def learning(skill: str, step: int) -> int | None:
        level = 1 + sum(1 for st, s, _ in ups if s == skill and st < step)
        return level if level <= caps.get(skill, level) else None

    strains: dict[tuple[str, int], list[float]] = {}
    for st in steps:
        for skill in caps:
            lv = learning(skill, st)
            if lv is not None and (st, skill, lv) in loss_at:
                floor, _ = _floor_at(skill, lv, st, mastery)
                strains.setdefault((skill, lv), []).append(loss_at[(st, skill, lv)] - floor)

    now = (steps[-1] + 1) if steps else 1
    seen = sorted({(s, lv) for _, s, lv in loss_at} | set(strains))
    floors = {key: _floor_at(*key, now, mastery)[0] for key in seen}
    levels = []
    for skill, lv in seen:
        if skill not in caps:
            continue
        series = strains.get((skill, lv), [])
        measured = [(st, loss) for (st, s, v), loss in loss_at.items() if s == skill and v == lv]
        before = min(measured)[1] if measured else None
        after = mastery.get((skill, lv), (None, None))[1]
        gain = before - after if before is not None and after is not None else None
        spent = effort(series)
        levels.append(
            LevelEffort(
                skill=skill,
                level=lv,
                floor=floors[(skill, lv)],
                floor_measured=_floor_at(skill, lv, now, mastery)[1],
                segments=len(series),
                effort=spent,
                loss_before=before,
                loss_after=after,
                plastic_gain=gain,
                efficiency=gain / spent if gain is not None and spent > 0 else None,
                mastered_step=mastered_step.get((skill, lv)),
            )
        )

    skill_strains: dict[str, list[float]] = {}
    skill_hints: dict[str, Hint | None] = {}
    for skill in caps:
        lv = learning(skill, now)
        series = strains.get((skill, lv), []) if lv is not None else []
        skill_strains[skill] = series
        skill_hints[skill] = curriculum_hint(series, window=window) if len(series) >= min_samples else None
    decided = {s: h for s, h in skill_hints.items() if h is not None}
    waiting = ", ".join(f"{s} {len(skill_strains[s])}/{min_samples}" for s in skill_hints if s not in decided)
    if not decided:
        hint, reason = (
            None,
            f"too few segments at the current level to read a trend ({waiting or 'no skills'})",
        )
    elif any(h is Hint.BACK_OFF for h in decided.values()):
        hint = Hint.BACK_OFF
        reason = "overloaded and not improving: " + ", ".join(
            s for s, h in decided.items() if h is Hint.BACK_OFF
        )
    elif all(h is Hint.LEVEL_UP for h in decided.values()):
        hint, reason = Hint.LEVEL_UP, "low, flat strain at every decided skill"
    else:
        hint, reason = Hint.CONTINUE, "strain productive or still moving"
    if decided and waiting:
        reason += f" (undecided: {waiting})"
    mastery_losses = {key: loss for key, (_, loss) in mastery.items()}
    return StrainReport(floors, mastery_losses, tuple(levels), skill_strains, skill_hints, hint, reason)


def floor_for(report: StrainReport, skill: str, level: int) -> float:
    """The floor in force now for (skill, level): its own mastery loss, else the nearest mastered below it."""
    known = {lv: loss for (s, lv), loss in report.mastery_losses.items() if s == skill and lv <= level}
    return max(0.0, known[max(known)]) if known else DEFAULT_FLOOR
