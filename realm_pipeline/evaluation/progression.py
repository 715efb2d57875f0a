"""Progression rules (pure): replay a hero's evals and segments into levels, events, maxed-out, hero sheet.

Rules, all replayed in step order so the same history always gives the same state:

* A skill starts learning level 1. Only evals at the level being learned count toward a level-up, and it
  takes `evals_required` *consecutive* evals of that level at or above `threshold` (a failing eval resets
  the streak; a checkpoint not evaluated at that level neither counts nor breaks it). The checkpoint that
  completes the streak earns the level. Levels never go down.
* Levels are decided per checkpoint: the level being learned is the one in force before the checkpoint's
  evals are applied, so one checkpoint earns at most one level per skill.
* Mastering a skill's cap completes it: its level stays at the cap and nothing more is learned.
* Regression: a mastered level whose latest accuracy is below `threshold`. A `Regression` event marks
  the onset (the eval that took it below); a later eval back at or above the threshold clears it.
* Maintenance: a segment that started while some mastered level was in regression (or had a confirmed
  regression on the newest checkpoint) is a maintenance segment: its mix gives those levels more weight
  (`training_mix`: each skill its own review share); a level still regressed after `maintenance_min`
  segments trained it is lost (`lost_levels`) and trained as a learning target again.
  Maintenance multiplier: cost of maintenance segments over the cost of segments that earned a level.
  Cost is tokens when every segment has tokens, else steps. The denominator is floored at
  one mean segment, so a stall reads "maintenance worth N segments" instead of infinity.
* Trend: the least-squares slope of a level's accuracy over its last `window` evals (per eval), shown
  per checkpoint in the timeline; no trend is judged from fewer than `min_trend_points` evals.
* Maxed out (the level cap): per skill, as the design defines it (evaluation/verdicts.py): a skill is
  capped when, after maintenance was really trained (the trainer's per-level token record), the
  maintenance its learning forced costs more than `maintenance_max` x the tokens that earned its last
  level, with the confirmed regressions it caused not recovering and its current level flat; the hero
  is maxed out when every skill with levels left is capped, or every skill completed its cap.
* Champion: among checkpoints at the highest total level (levels mastered across all skills after the
  checkpoint's evals), the best mean accuracy over the levels it was evaluated as learning; ties go
  to the later step.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from realm_pipeline.evaluation.verdicts import Check, HeroVerdict, judge
from realm_pipeline.evaluation.verdicts import trend as _slope
from realm_pipeline.training.strain import Hint, curriculum_hint, zone

# How far the strain hint moves the next segment's mix (see `training_mix`).
BACK_OFF_SHIFT = 0.25  # overload: this share of the learning weight moves to the mastered levels
LEVEL_UP_KEEP = 0.5  # recovery: the mastered share is multiplied by this ...
NEXT_LEVEL_SHARE = 0.25  # ... and this share of each skill's learning weight previews its next level


@dataclass(frozen=True)
class EvalPoint:
    """One checkpoint's accuracy on one skill level."""

    checkpoint_id: str
    step: int
    skill: str
    level: int
    accuracy: float
    items: int | None = None  # the eval set's size (None: the caller's `eval_items`)


@dataclass(frozen=True)
class SegmentPoint:
    """One finished training segment, identified by the checkpoint it produced."""

    checkpoint_id: str
    step: int
    tokens: int | None
    strain: float | None


@dataclass(frozen=True)
class LevelUp:
    """A level earned: `mastered` was passed at `checkpoint_id`, the skill now stands at `level`."""

    skill: str
    level: int
    mastered: int
    checkpoint_id: str
    step: int
    accuracy: float


@dataclass(frozen=True)
class Regression:
    """Onset of a regression: a mastered level evaluated below the threshold."""

    skill: str
    level: int
    checkpoint_id: str
    step: int
    accuracy: float


@dataclass(frozen=True)
class TimelineRow:
    """One evaluated checkpoint as the campaign saw it: levels, accuracy and trend at the level being
    learned, regressions, and the maintenance multiplier over the window ending here."""

    checkpoint_id: str
    step: int
    levels: dict[str, int]
    accuracy: dict[str, float | None]  # skill -> accuracy at the level it was learning at this checkpoint
    trend: dict[str, float | None]  # skill -> slope of that level's accuracy over the window (None: too few)
    regressed: dict[str, tuple[int, ...]]
    maintenance: bool  # the segment that produced this checkpoint was a maintenance segment
    window_multiplier: float | None  # None: no level-up in the window, nothing earned to divide by
    strain: float | None

    def to_json(self) -> dict:
        """JSON-ready dict."""
        return {
            "checkpoint_id": self.checkpoint_id,
            "step": self.step,
            "levels": self.levels,
            "accuracy": self.accuracy,
            "trend": {k: None if v is None else round(v, 4) for k, v in self.trend.items()},
            "regressed": {k: list(v) for k, v in self.regressed.items() if v},
            "maintenance": self.maintenance,
            "window_multiplier": _rounded(self.window_multiplier),
            "strain": self.strain,
            "zone": None if self.strain is None else zone(self.strain).value.title(),
        }


@dataclass(frozen=True)
class SkillState:
    """Where one skill stands: the level being learned (the cap once complete) and what is mastered."""

    skill: str
    level: int
    cap: int
    mastered: tuple[int, ...]
    complete: bool
    streak: int
    regressed: tuple[int, ...]

    def describe(self) -> str:
        """The skill's standing in words: the levels earned (passed) and the one being learned."""
        # `level` is the level being learned, so "bin L1" alone reads as earned when nothing is yet
        if not self.mastered:
            text = f"{self.skill}: learning L{self.level}, none earned yet"
        else:
            top = self.mastered[-1]
            earned = "L1" if top == 1 else f"L1-L{top}"
            text = f"{self.skill}: {earned} earned, " + (
                "complete (its cap)" if self.complete else f"learning L{self.level}"
            )
        if self.regressed:
            text += f" (regressed: {', '.join(f'L{lv}' for lv in self.regressed)})"
        return text


@dataclass(frozen=True)
class CurriculumState:
    """Everything the replay decided; `hero_sheet()` and `training_mix()` read from it."""

    skills: dict[str, SkillState]
    level_ups: tuple[LevelUp, ...]
    regressions: tuple[Regression, ...]
    # hero-wide, all skills pooled (each skill's own is in `verdicts`): maintenance cost over the cost of
    # the segments that earned a level, over all segments and over the window; None where none earned one
    maintenance_multiplier: float | None
    window_maintenance_multiplier: float | None
    cost_unit: str  # "tokens" | "steps"
    maxed_out: bool
    maxed_out_reason: str
    latest_step: int
    xp: int  # cumulative tokens trained (steps when tokens are missing)
    acc: float | None
    latest_strain: float | None
    champion: str | None
    champion_accuracy: float | None
    checkpoint_levels: dict[str, int] = field(default_factory=dict)  # checkpoint -> total levels mastered
    timeline: tuple[TimelineRow, ...] = ()
    boosted: dict[str, tuple[int, ...]] = field(default_factory=dict)  # mastered levels the next mix favours
    verdicts: HeroVerdict | None = None  # per-skill verdicts and their evidence (evaluation/verdicts.py)

    def levels(self) -> dict[str, int]:
        """Current level of every skill."""
        return {name: s.level for name, s in self.skills.items()}

    def hero_sheet(self) -> dict:
        """JSON-ready summary of the hero: level, XP, skill levels, ACC, strain zone, hint, champion."""
        strain = self.latest_strain
        return {
            "level": round(self.latest_step / 1000, 2),
            "step": self.latest_step,
            "xp": self.xp,
            "xp_unit": self.cost_unit,
            "skills": self.levels(),
            "mastered": {name: list(s.mastered) for name, s in self.skills.items()},
            "regressed": {name: list(s.regressed) for name, s in self.skills.items() if s.regressed},
            "acc": None if self.acc is None else round(self.acc, 4),
            "strain": strain,
            # Title case, as the trainer writes checkpoints.zone.
            "zone": None if strain is None else zone(strain).value.title(),
            # One value, no trend: Recovery -> level_up, Overload -> back_off, else continue.
            "hint": None if strain is None else curriculum_hint([strain], window=1).value,
            "champion": self.champion,
            "champion_accuracy": self.champion_accuracy,
            "maintenance_multiplier": _rounded(self.maintenance_multiplier),
            "window_maintenance_multiplier": _rounded(self.window_maintenance_multiplier),
            "trend": self.timeline[-1].to_json()["trend"] if self.timeline else {},
            "maxed_out": self.maxed_out,
            "maxed_out_reason": self.maxed_out_reason,
            "verdicts": {} if self.verdicts is None else self.verdicts.to_json()["skills"],
            "regressions": [] if self.verdicts is None else self.verdicts.to_json()["regressions"],
        }

    def training_mix(
        self,
        mastered_share: float,
        skills: list[str] | None = None,
        hint: Hint | str | None = None,
        **schedule: Any,
    ) -> list[tuple[str, int, float]]:
        """The next segment's (skill, level, weight) mix; `schedule`: the keywords of `training_mix`."""
        return training_mix(
            self,
            list(self.skills) if skills is None else skills,
            mastered_share=mastered_share,
            hint=hint,
            **schedule,
        )

    def cap_claim(self) -> str:
        """The campaign's claim in one line: levels reached, and whether (and why) that is the cap."""
        verdicts = self.verdicts.skills if self.verdicts is not None else {}
        levels = ", ".join(
            f"{name} L{s.level}" + (f" ({verdicts[name].verdict})" if name in verdicts else "")
            for name, s in self.skills.items()
        )
        verdict = "capped there" if self.maxed_out else "no cap found"
        return f"reached {levels}; {verdict}: {self.maxed_out_reason}"


@dataclass
class _Skill:
    cap: int
    level: int = 1
    complete: bool = False
    streak: int = 0
    latest: dict[int, float] = field(default_factory=dict)  # mastered level -> latest accuracy
    regressed: set[int] = field(default_factory=set)

    def mastered(self) -> tuple[int, ...]:
        return tuple(range(1, self.level + 1 if self.complete else self.level))


def _ratio(maint: float, prog: float) -> float | None:
    """Maintenance cost per unit of earning cost; None (undefined) where nothing was earned: no floor
    that would turn it into a count of maintenance segments."""
    return maint / prog if prog > 0 else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def apply_progression(
    evals: list[EvalPoint],
    segments: list[SegmentPoint],
    *,
    level_caps: dict[str, int],
    threshold: float,
    evals_required: int,
    window: int,
    maintenance_max: float,
    min_trend: float = 0.005,
    min_trend_points: int = 3,
    maintenance_min: int = 3,
    confirmed: Sequence[tuple[str, int, str]] = (),
    earned: Sequence[tuple[str, int, str, int, float]] = (),
    trained: Mapping[str, Mapping[tuple[str, int], int]] | None = None,
    checks: Sequence[Check] = (),
    cap_rule: str = "forgetting",
    eval_items: int | None = None,
) -> CurriculumState:
    """Replay evals and segments in step order into the hero's curriculum state (see module docstring).

    `confirmed` holds (skill, level, checkpoint_id) of confirmed regressions (a drop the reserve sample
    reproduced): on the checkpoint they name, those levels count as needing maintenance.
    `earned` holds recorded level-up facts (skill, mastered level, checkpoint_id, step, accuracy): a level
    once earned stays earned from that step on, whatever the scores replayed now (stale, deleted) say.
    `trained` holds, per checkpoint, the tokens its segment really trained per (skill, level) (the
    trainer's record); `checks` the reserve sample's verdicts on drops. Both feed the per-skill verdicts.
    `cap_rule` picks the cap rule (evaluation/verdicts.py CAP_RULES); an eval without its set's size
    counts as `eval_items` items (default 50, realm's `eval_items_per_level`).
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if evals_required < 1 or window < 1:
        raise ValueError(f"evals_required and window must be >= 1, got {evals_required}, {window}")
    confirmed_at: dict[str, set[tuple[str, int]]] = {}
    for skill, level, ckpt in confirmed:
        confirmed_at.setdefault(ckpt, set()).add((skill, int(level)))
    skills = {name: _Skill(cap=int(cap)) for name, cap in sorted(level_caps.items())}

    # One eval per (checkpoint, skill, level): a re-run given later replaces the earlier one.
    unique: dict[tuple[str, str, int], EvalPoint] = {}
    for e in evals:
        if e.skill in skills:  # the campaign's skills are the caps' keys; others are not tracked
            unique[(e.checkpoint_id, e.skill, int(e.level))] = e
    by_ckpt: dict[tuple[int, str], list[EvalPoint]] = {}
    for e in unique.values():
        by_ckpt.setdefault((int(e.step), e.checkpoint_id), []).append(e)

    level_ups: list[LevelUp] = []
    regressions: list[Regression] = []
    snap_steps: list[int] = []  # after each evaluated checkpoint: was any mastered level regressed?
    snap_regressed: list[bool] = []
    ckpt_total: dict[str, int] = {}
    ckpt_score: dict[str, tuple[int, float]] = {}  # checkpoint -> (step, mean acc at learned levels)
    history: dict[tuple[str, int], list[float]] = {}  # (skill, level) -> accuracies in step order
    points_at: dict[tuple[str, int], list[tuple[int, str, float]]] = {}  # ... with their step, checkpoint
    samples: dict[tuple[str, int], list[tuple[int, float, int]]] = {}  # ... (step, accuracy, items)
    default_items = eval_items or 50
    snaps: list[
        tuple[str, int, dict, dict, dict, dict]
    ] = []  # per checkpoint: id, step, levels, acc, trend, regr

    pending = sorted((int(st), sk, int(lv), ck, float(acc)) for sk, lv, ck, st, acc in earned if sk in skills)

    def grant(upto: float) -> None:
        """Apply the recorded level-ups up to step `upto` the replay has not reached by itself."""
        while pending and pending[0][0] <= upto:
            st, sk, lv, ck, acc = pending.pop(0)
            s = skills[sk]
            if s.complete or s.level > lv:
                continue
            s.latest[lv] = acc
            s.streak = 0
            s.complete = lv >= s.cap
            s.level = min(lv + 1, s.cap)
            level_ups.append(LevelUp(sk, s.level, lv, ck, st, acc))

    for (step, ckpt), points in sorted(by_ckpt.items()):
        grant(step - 0.5)
        learning = {name: s.level for name, s in skills.items()}  # frozen for this checkpoint
        at_level: list[float] = []
        for e in sorted(points, key=lambda p: (p.skill, p.level)):
            s, acc = skills[e.skill], float(e.accuracy)
            if not math.isfinite(acc):
                raise ValueError(f"accuracy of {e} must be finite")
            history.setdefault((e.skill, int(e.level)), []).append(acc)
            points_at.setdefault((e.skill, int(e.level)), []).append((step, ckpt, acc))
            samples.setdefault((e.skill, int(e.level)), []).append((step, acc, e.items or default_items))
            if e.level == learning[e.skill]:
                at_level.append(acc)
            if e.level < learning[e.skill] or (s.complete and e.level == s.cap):
                s.latest[e.level] = acc
                if acc < threshold and e.level not in s.regressed:
                    s.regressed.add(e.level)
                    regressions.append(Regression(e.skill, e.level, ckpt, step, acc))
                elif acc >= threshold:
                    s.regressed.discard(e.level)
            elif e.level == learning[e.skill] and not s.complete:
                s.streak = s.streak + 1 if acc >= threshold else 0
                if s.streak >= evals_required:
                    passed = s.level
                    s.latest[passed] = acc
                    s.streak = 0
                    if passed >= s.cap:
                        s.complete = True
                    else:
                        s.level += 1
                    level_ups.append(LevelUp(e.skill, s.level, passed, ckpt, step, acc))
            # evals above the level being learned say nothing about progression
        grant(step)
        ckpt_total[ckpt] = sum(len(s.mastered()) for s in skills.values())
        if at_level:
            ckpt_score[ckpt] = (step, sum(at_level) / len(at_level))
        snap_steps.append(step)
        snap_regressed.append(any(s.regressed for s in skills.values()) or bool(confirmed_at.get(ckpt)))
        acc_at = {
            name: next((p.accuracy for p in points if p.skill == name and p.level == lv), None)
            for name, lv in learning.items()
        }
        trend_at = {
            name: _trend(history.get((name, lv), []), window, min_trend_points)
            for name, lv in learning.items()
        }
        snaps.append(
            (
                ckpt,
                step,
                dict(learning),
                acc_at,
                trend_at,
                {n: tuple(sorted(s.regressed)) for n, s in skills.items()},
            )
        )

    grant(math.inf)  # facts of checkpoints with no current score left (re-scored elsewhere, or deleted)
    segs = sorted(segments, key=lambda g: (int(g.step), g.checkpoint_id))
    use_tokens = bool(segs) and all((g.tokens or 0) > 0 for g in segs)
    costs: list[float] = []
    prev_step = 0
    for g in segs:
        costs.append(float(g.tokens) if use_tokens else float(max(int(g.step) - prev_step, 0)))
        prev_step = int(g.step)
    ups_at: dict[str, int] = {}
    for u in level_ups:
        ups_at[u.checkpoint_id] = ups_at.get(u.checkpoint_id, 0) + 1
    maint_flags: list[bool] = []
    for g in segs:
        # The segment's mix was chosen from the state before it: the last evaluated checkpoint below its step.
        i = bisect.bisect_left(snap_steps, int(g.step)) - 1
        maint_flags.append(i >= 0 and snap_regressed[i])
    n_ups = [ups_at.get(g.checkpoint_id, 0) for g in segs]

    def multiplier(lo: int, hi: int | None = None) -> float | None:
        """Maintenance multiplier over segments lo..hi-1 (to the newest by default)."""
        hi = len(segs) if hi is None else hi
        maint = sum(c for c, m in zip(costs[lo:hi], maint_flags[lo:hi], strict=True) if m)
        prog = sum(c for c, u in zip(costs[lo:hi], n_ups[lo:hi], strict=True) if u)
        return _ratio(maint, prog)

    overall = multiplier(0)
    lo = max(len(segs) - window, 0)
    recent_mult = multiplier(lo)
    seg_index = {g.checkpoint_id: i for i, g in enumerate(segs)}
    timeline = []
    for ckpt, step, levels, acc_at, trend_at, regressed in snaps:
        i = seg_index.get(ckpt)
        seg = segs[i] if i is not None else None
        timeline.append(
            TimelineRow(
                ckpt,
                step,
                levels,
                acc_at,
                trend_at,
                regressed,
                maintenance=bool(i is not None and maint_flags[i]),
                window_multiplier=multiplier(max(i + 1 - window, 0), i + 1) if i is not None else None,
                strain=None if seg is None or seg.strain is None else float(seg.strain),
            )
        )
    verdicts = judge(
        caps={name: s.cap for name, s in skills.items()},
        complete={name: s.complete for name, s in skills.items()},
        level_ups=[(u.skill, u.mastered, u.step) for u in level_ups],
        history=points_at,
        segments=[(g.checkpoint_id, int(g.step)) for g in segs],
        trained=trained or {},
        checks=checks,
        threshold=threshold,
        multiplier_max=maintenance_max,
        window=window,
        min_trend=min_trend,
        min_trend_points=min_trend_points,
        maintenance_min=maintenance_min,
        cap_rule=cap_rule,
        samples=samples,
    )
    newest = snaps[-1][0] if snaps else None
    # a drop the reserve sample refuted is no regression: it gets no maintenance weight
    refuted = {(e.skill, e.level) for e in verdicts.episodes if e.open and e.status == "refuted"}
    boosted = {
        name: tuple(
            lv
            for lv in sorted(set(s.regressed) | {lv for sk, lv in confirmed_at.get(newest, ()) if sk == name})
            if (name, lv) not in refuted
        )
        for name, s in skills.items()
    }

    champion, champion_acc = None, None
    if ckpt_score:
        top = max(ckpt_total[c] for c in ckpt_score)
        champion = max(
            (c for c in ckpt_score if ckpt_total[c] == top),
            key=lambda c: (ckpt_score[c][1], ckpt_score[c][0], c),
        )
        champion_acc = ckpt_score[champion][1]
    latest_eval = max(ckpt_score.items(), key=lambda kv: (kv[1][0], kv[0]), default=None)
    last_seg = segs[-1] if segs else None
    latest_step = max([int(g.step) for g in segs] + [k[0] for k in by_ckpt], default=0)

    return CurriculumState(
        skills={
            name: SkillState(
                name, s.level, s.cap, s.mastered(), s.complete, s.streak, tuple(sorted(s.regressed))
            )
            for name, s in skills.items()
        },
        level_ups=tuple(level_ups),
        regressions=tuple(regressions),
        maintenance_multiplier=overall,
        window_maintenance_multiplier=recent_mult,
        cost_unit="tokens" if use_tokens else "steps",
        maxed_out=verdicts.maxed_out,
        maxed_out_reason=verdicts.reason,
        latest_step=latest_step,
        xp=int(sum(costs)),
        acc=None if latest_eval is None else latest_eval[1][1],
        latest_strain=None if last_seg is None or last_seg.strain is None else float(last_seg.strain),
        champion=champion,
        champion_accuracy=champion_acc,
        checkpoint_levels=ckpt_total,
        timeline=tuple(timeline),
        boosted={k: v for k, v in boosted.items() if v},
        verdicts=verdicts,
    )


def _trend(accuracies: list[float], window: int, min_points: int) -> float | None:
    """Least-squares slope (per eval) of the last `window` accuracies; None below `min_points`."""
    return _slope(accuracies, window, min_points)


MAINTENANCE_SHARE = 0.5  # at least this share of a maintenance segment goes to mastered levels
BOOST = 3.0  # weight of a level needing maintenance against 1.0 for a held mastered level
# How a segment's learning weight is shared among the skills (the reference's schedule.yaml strategies).
SKILL_STRATEGIES = ("equal", "focus", "weighted", "lowest_first", "catch_up")


def lost_levels(
    state: CurriculumState, trained: Sequence[tuple[int, Mapping[tuple[str, int], float]]], *, after: int
) -> dict[str, tuple[int, ...]]:
    """Mastered levels still regressed after `after` segments trained them since their regression began.

    `trained` holds, per finished segment, (the step of the checkpoint it produced, what it trained of each
    (skill, level)): its mix weights, or tokens where the ledger records them; only > 0 counts. A level
    lost this way is a learning target again (`training_mix`); its earned level stays on record.
    """
    onset: dict[tuple[str, int], int] = {}
    for r in state.regressions:  # in step order: the latest onset of each level wins
        onset[(r.skill, r.level)] = r.step
    lost: dict[str, list[int]] = {}
    for name, s in state.skills.items():
        for lv in s.regressed:
            since = onset.get((name, lv))
            if since is None:
                continue
            tries = sum(1 for step, amounts in trained if step > since and amounts.get((name, lv), 0) > 0)
            if tries >= after:
                lost.setdefault(name, []).append(lv)
    return {name: tuple(sorted(levels)) for name, levels in lost.items()}


def _learning_skills(
    strategy: str,
    current: dict[str, int],
    levels: dict[str, int],
    *,
    weights: Mapping[str, float],
    priority: Sequence[str],
    catch_up_gap: int,
) -> dict[str, float]:
    """Which skills learn their current level this segment, and their relative weights (not normalised).

    `current`: skill -> the level it is learning (skills with nothing left to learn are absent);
    `levels`: every skill's level, complete ones at their cap (catch_up measures the gap to the leader).
    """
    if not current:
        return {}
    if strategy == "equal":
        return dict.fromkeys(current, 1.0)
    if strategy == "weighted":
        return {name: float(weights.get(name, 1.0)) for name in current}
    if strategy == "focus":  # master one skill before the next: the priority list, then the campaign order
        order = [n for n in priority if n in current] + [n for n in current if n not in priority]
        return {order[0]: 1.0}
    lowest = min(current.values())
    if strategy == "catch_up" and max(levels.values()) - lowest < catch_up_gap:
        return dict.fromkeys(current, 1.0)  # nobody far enough behind: equal
    if strategy in ("lowest_first", "catch_up"):
        return {name: 1.0 for name, lv in current.items() if lv == lowest}
    raise ValueError(f"skill strategy must be one of {', '.join(SKILL_STRATEGIES)}, got {strategy!r}")


def _hinted_share(mastered_share: float, hint: Hint | str | None) -> tuple[float, Hint | None]:
    """The mastered share the strain hint leaves (back_off raises it, level_up lowers it), and the hint."""
    if not 0 <= mastered_share <= 1:
        raise ValueError(f"mastered_share must be in [0, 1], got {mastered_share}")
    hint = Hint(hint) if hint is not None else None
    if hint is Hint.BACK_OFF:
        mastered_share += BACK_OFF_SHIFT * (1 - mastered_share)
    elif hint is Hint.LEVEL_UP:
        mastered_share *= LEVEL_UP_KEEP
    return mastered_share, hint


def _preview(level: int, cap: int, hint: Hint | None, share: float, levels: int) -> list[tuple[int, float]]:
    """(level above, share of the current level's weight) for a current level: the configured preview, or
    the level_up hint's NEXT_LEVEL_SHARE of the next level where that is larger; nothing at the cap."""
    if hint is Hint.LEVEL_UP and share < NEXT_LEVEL_SHARE:
        share, levels = NEXT_LEVEL_SHARE, 1
    above = list(range(level + 1, min(level + levels, cap) + 1)) if share > 0 else []
    return [(up, share / len(above)) for up in above]


def pooled_mix(
    state: CurriculumState, skills: list[str], *, mastered_share: float, hint: Hint | str | None = None
) -> list[tuple[str, int, float]]:
    """The curriculum before per-skill replay (`curriculum: pooled`, a baseline arm): the review share is
    split over every skill's mastered levels together (a level needing maintenance BOOST times a held one),
    the learning share equally over the skills' current levels, and a lost level is never a target again.
    The hint and the maintenance floor act as in `training_mix`."""
    mastered_share, hint = _hinted_share(mastered_share, hint)
    learn: list[tuple[str, int, int]] = []  # (skill, level, cap)
    review: list[tuple[str, int, float]] = []
    for name in skills:
        s = state.skills.get(name)
        if s is None:  # a skill never evaluated starts at level 1
            learn.append((name, 1, 1))
            continue
        if not s.complete:
            learn.append((name, s.level, s.cap))
        boosted = state.boosted.get(name, ())
        review += [(name, lv, BOOST if lv in boosted else 1.0) for lv in s.mastered]
    share = mastered_share
    if any(w > 1.0 for *_, w in review):
        share = max(share, MAINTENANCE_SHARE)
    share = 1.0 if not learn else 0.0 if not review else share
    mix: list[tuple[str, int, float]] = []
    for name, lv, cap in learn:
        weight = (1 - share) / len(learn)
        ahead = _preview(lv, cap, hint, 0.0, 1)
        kept = 1 - sum(w for _, w in ahead)
        mix += [(name, lv, weight * kept), *((name, up, weight * w) for up, w in ahead)]
    total = sum(w for *_, w in review)
    mix += [(name, lv, share * w / total) for name, lv, w in review]
    return [m for m in mix if m[2] > 0]


def uniform_mix(caps: Mapping[str, int], top: int) -> list[tuple[str, int, float]]:
    """No curriculum: levels 1..top of every skill (within its cap), all of equal weight, summing to 1."""
    levels = [(name, level) for name, cap in caps.items() for level in range(1, min(top, cap) + 1)]
    return [(name, level, 1.0 / len(levels)) for name, level in levels]


def training_mix(
    state: CurriculumState,
    skills: list[str],
    *,
    mastered_share: float,
    hint: Hint | str | None = None,
    strategy: str = "equal",
    weights: Mapping[str, float] | None = None,
    priority: Sequence[str] = (),
    catch_up_gap: int = 3,
    lost: Mapping[str, Sequence[int]] | None = None,
    preview_share: float = 0.0,
    preview_levels: int = 1,
) -> list[tuple[str, int, float]]:
    """Next segment's (skill, level, weight): levels being learned get 1 - mastered_share, mastered the rest.

    Replay is per skill: every skill with mastered levels keeps its own review share, whatever the number
    of levels the other skills hold; a skill with a level needing maintenance (regressed, or confirmed on
    the newest checkpoint) gets BOOST times the review share of a skill holding all its levels, and within
    a skill that level BOOST times the weight of a held one. While any level needs maintenance the mastered
    group gets at least MAINTENANCE_SHARE. `lost` levels (`lost_levels`: still regressed after
    maintenance) leave the review group and are trained as learning targets of their skill again.
    The learning weight goes to the skills `strategy` picks (`_learning_skills`: equal, weighted by
    `weights`, focus in `priority` order, lowest_first, catch_up once a skill is `catch_up_gap` levels
    behind the leader); a skill with a lost level always learns it, whatever the strategy. Within a skill
    the learning weight is shared equally by its targets. When nothing is mastered, or nothing is left to
    learn, the whole weight goes to the other group. Weights sum to 1.
    The strain hint (training.strain.strain_report) moves the share: back_off (overload) gives the
    mastered levels BACK_OFF_SHIFT more of the learning weight; level_up (recovery) multiplies the
    mastered share by LEVEL_UP_KEEP and gives NEXT_LEVEL_SHARE of each current level's weight to its
    next level (within the cap); continue or None (too few segments to judge) leave it as configured.
    The maintenance floor applies after the hint: a regression is never out-voted by it.
    `preview_share` of each current level's weight always goes to the `preview_levels` levels above it
    (within the cap, equally): the levels of a skill share their structure, so training ahead helps the
    current one (BENCHMARKS, "Whose cap it is"); with the level_up hint the larger of the two shares holds.
    """
    if not 0 <= preview_share < 1 or preview_levels < 1:
        raise ValueError(
            f"preview_share must be in [0, 1) and preview_levels >= 1, got {preview_share}, {preview_levels}"
        )
    mastered_share, hint = _hinted_share(mastered_share, hint)
    lost = lost or {}
    current: dict[str, int] = {}  # skill -> level it is learning
    levels: dict[str, int] = {}
    relearn: dict[str, list[int]] = {}  # skill -> lost levels trained as targets again
    review: dict[str, list[tuple[int, float]]] = {}  # skill -> (mastered level, weight within the skill)
    for name in skills:
        s = state.skills.get(name)
        if s is None:  # a skill never evaluated starts at level 1
            current[name], levels[name] = 1, 1
            continue
        levels[name] = s.level
        if not s.complete:
            current[name] = s.level
        gone = sorted(set(lost.get(name, ())) & set(s.mastered))
        if gone:
            relearn[name] = gone
        boosted = state.boosted.get(name, ())
        held = [(lv, BOOST if lv in boosted else 1.0) for lv in s.mastered if lv not in gone]
        if held:
            review[name] = held
    chosen = _learning_skills(
        strategy, current, levels, weights=weights or {}, priority=priority, catch_up_gap=catch_up_gap
    )
    targets: dict[str, list[int]] = {}
    for name in skills:
        own = ([current[name]] if name in chosen else []) + relearn.get(name, [])
        if own:
            targets[name] = own
    share = mastered_share
    if any(w > 1.0 for held in review.values() for _, w in held):
        share = max(share, MAINTENANCE_SHARE)
    if not targets:
        share = 1.0
    if not review:
        share = 0.0
    # A skill relearning a lost level but not picked by the strategy weighs 1 (as under equal).
    learn_weight = {name: chosen.get(name, 1.0) for name in targets}
    learn_total = sum(learn_weight.values())
    mix: list[tuple[str, int, float]] = []
    for name, own in targets.items():
        per_target = (1 - share) * learn_weight[name] / learn_total / len(own)
        s = state.skills.get(name)
        cap = s.cap if s is not None else 1
        for lv in own:
            ahead = _preview(lv, cap, hint, preview_share, preview_levels) if lv == current.get(name) else ()
            kept = 1 - sum(w for _, w in ahead)
            mix += [(name, lv, per_target * kept), *((name, up, per_target * w) for up, w in ahead)]
    skill_weight = {name: BOOST if any(w > 1.0 for _, w in held) else 1.0 for name, held in review.items()}
    review_total = sum(skill_weight.values())
    for name, held in review.items():
        within = sum(w for _, w in held)
        mix += [(name, lv, share * skill_weight[name] / review_total * w / within) for lv, w in held]
    return [m for m in mix if m[2] > 0]
