"""Per-skill verdicts and the level cap, as the design defines it (pure: no Dagster, no torch).

The design ("What Maxed Out Means"): a hero is maxed out when the experience needed to gain a new
level costs too much regression in what it already mastered: the maintenance multiplier blows up.
realm judges that per skill, from what was really trained (tokens per skill and level per segment, the
trainer's record) and from regressions the reserve sample confirmed.

Definitions, all in tokens the trainer recorded (a segment with no record contributes nothing):

* *Learning level* of a skill at a segment: the level it was learning when the segment's mix was chosen
  (1 + its level-ups at checkpoints before the segment's step). Tokens at that level or above are the
  skill's *learning tokens*; tokens at a lower (mastered) level are review.
* *Earning tokens*: the learning tokens trained on a level from the skill's previous level-up up to
  the checkpoint that earned it. Unknown (None) when a segment of that span has no record.
* *Regression episode*: a mastered level evaluated below `threshold` (the onset) until an eval at or
  above it. It counts only when the reserve sample confirmed it (the newest `Check` of that level at
  or after the onset says so); a refuted or unchecked drop is shown but counts for nothing.
* *Blame*: a confirmed episode is attributed to the skills whose learning was trained in the segments
  between the level's last passing eval and the onset (those segments caused the drop), in proportion
  to their learning tokens there. One skill's learning can so knock down levels of any skill, its own
  included; with no record of those segments the episode is attributed to no skill.
* *Maintenance tokens* of a skill: tokens trained on the levels of its confirmed episodes in segments
  after the onset (while the episode is open), times its blame share, counted since its last level-up.
* *Multiplier*: maintenance tokens / earning tokens of the skill's last level; `None` (undefined) when
  it has earned no level, or that level's earning tokens are unknown. No floor: it never turns into a
  count of segments.
* *Trend*: least-squares slope (per eval) over the last `window` evals of the current level since the
  last level-up; of a regressed level, over its evals from the onset on (never the evals before the
  drop). *Climbing* / *recovering*: slope above `min_trend`. Fewer than `min_trend_points` evals: no
  trend (too few to judge), which never calls a cap.

Verdicts: *complete* (its cap mastered); *capped* when ALL of: levels left; current level not climbing
(judged); no level-up in the last `window` segments; a confirmed episode it caused still regressed and
none of them recovering (judged); maintenance really trained in at least `maintenance_min` segments;
multiplier above `multiplier_max` (the next level cost more than that many times the earning tokens in
maintenance alone); *learning* while it levels up or its current level climbs (or too few evals to say);
*plateau* otherwise (stalled, but nothing confirmed forgotten, recovering, maintenance not tried, or
the multiplier at most the max or undefined). The hero is maxed out when every skill with levels left
is capped (every skill complete: maxed out at the caps).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from realm_pipeline.evaluation.cap_rule import Forgetting, cap_call, forgetting

LEARNING, PLATEAU, CAPPED, COMPLETE = "learning", "plateau", "capped", "complete"
# realm.yaml progression.cap_rule: "forgetting" (evaluation/cap_rule.py, the default) or "multiplier", the
# rule before it (maintenance tokens over earning tokens), kept as the baseline bench/cap_detection.py
# prints beside it
CAP_RULES = ("forgetting", "multiplier")


@dataclass(frozen=True)
class Check:
    """A confirming re-run's verdict on one level's drop, at the checkpoint it scored."""

    skill: str
    level: int
    checkpoint_id: str
    step: int
    confirmed: bool


@dataclass(frozen=True)
class Episode:
    """A mastered level below the threshold from `onset_step` (until `end_step`, None while open)."""

    skill: str
    level: int
    onset_checkpoint: str
    onset_step: int
    held_step: int  # its last passing eval before the onset (the level-up's, if none since)
    end_step: int | None
    accuracy: float  # its newest accuracy within the episode
    status: str  # confirmed | refuted | unconfirmed (the reserve sample's say)
    trend: float | None  # slope from the onset on (None: too few evals)
    blame: dict[str, float] = field(default_factory=dict)  # skill -> share of the learning that caused it
    maintenance_tokens: int = 0  # tokens trained on this level after the onset, within the episode

    @property
    def open(self) -> bool:
        """Still below the threshold at its newest eval."""
        return self.end_step is None

    def to_json(self) -> dict:
        """JSON-ready dict."""
        return {
            "skill": self.skill,
            "level": self.level,
            "onset": self.onset_checkpoint,
            "onset_step": self.onset_step,
            "held_step": self.held_step,
            "recovered_step": self.end_step,
            "accuracy": round(self.accuracy, 4),
            "status": self.status,
            "trend_since_drop": None if self.trend is None else round(self.trend, 4),
            "blame": {k: round(v, 4) for k, v in sorted(self.blame.items())},
            "maintenance_tokens": self.maintenance_tokens,
        }


@dataclass(frozen=True)
class SkillVerdict:
    """One skill's verdict and the evidence for it."""

    skill: str
    verdict: str  # learning | plateau | capped | complete
    reason: str
    level: int
    cap: int
    earned: dict[int, int | None]  # level mastered -> the tokens that earned it (None: not recorded)
    learning_tokens: int  # tokens trained on the current level since the last level-up
    maintenance_tokens: int  # attributed maintenance since the last level-up
    maintenance_segments: int  # segments since the last level-up with attributed maintenance recorded
    multiplier: float | None  # maintenance / earning tokens of the last level; None: undefined
    trend: float | None  # slope of the current level since the last level-up
    knocked_down: tuple[Episode, ...]  # confirmed episodes its learning caused (any skill), newest last
    cap_level: int | None = None  # a capped skill: the level the call says the hero holds at most
    forgotten: tuple[Forgetting, ...] = ()  # the forgetting rule's evidence: its mastered levels lost

    def to_json(self) -> dict:
        """JSON-ready dict."""
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "level": self.level,
            "cap": self.cap,
            "earned_tokens": {str(k): v for k, v in sorted(self.earned.items())},
            "learning_tokens": self.learning_tokens,
            "maintenance_tokens": self.maintenance_tokens,
            "maintenance_segments": self.maintenance_segments,
            "multiplier": None if self.multiplier is None else round(self.multiplier, 4),
            "trend": None if self.trend is None else round(self.trend, 4),
            "knocked_down": [e.to_json() for e in self.knocked_down],
            "cap_level": self.cap_level,
            "forgotten": [f.to_json() for f in self.forgotten],
        }

    def summary(self) -> str:
        """One line: `bin capped at L3 (learning L4): reason`, or under the multiplier rule
        `bin L4 capped (multiplier 6.00x): reason`."""
        if self.forgotten:  # the forgetting rule's evidence: the multiplier is not what decided
            claim = f" at L{self.cap_level}" if self.cap_level is not None else ""
            return f"{self.skill} {self.verdict}{claim} (learning L{self.level}): {self.reason}"
        mult = "undefined" if self.multiplier is None else f"{self.multiplier:.2f}x"
        return f"{self.skill} L{self.level} {self.verdict} (multiplier {mult}): {self.reason}"


@dataclass(frozen=True)
class HeroVerdict:
    """Every skill's verdict and the hero's: maxed out when every skill with levels left is capped."""

    skills: dict[str, SkillVerdict]
    episodes: tuple[Episode, ...]
    maxed_out: bool
    reason: str
    # the multiplier rule's verdicts on the same history, where the forgetting rule decided (a baseline)
    multiplier_skills: dict[str, SkillVerdict] = field(default_factory=dict)

    def to_json(self) -> dict:
        """JSON-ready dict."""
        return {
            "maxed_out": self.maxed_out,
            "reason": self.reason,
            "skills": {name: v.to_json() for name, v in self.skills.items()},
            "regressions": [e.to_json() for e in self.episodes],
        }


def trend(accuracies: Sequence[float], window: int, min_points: int) -> float | None:
    """Least-squares slope (per eval) of the last `window` accuracies; None below `min_points`."""
    points = list(accuracies)[-window:]
    if len(points) < max(min_points, 2):
        return None
    if len(set(points)) == 1:
        return 0.0
    return statistics.linear_regression(range(len(points)), points).slope


def judge(
    *,
    caps: Mapping[str, int],
    complete: Mapping[str, bool],
    level_ups: Sequence[tuple[str, int, int]],
    history: Mapping[tuple[str, int], Sequence[tuple[int, str, float]]],
    segments: Sequence[tuple[str, int]],
    trained: Mapping[str, Mapping[tuple[str, int], int]],
    checks: Sequence[Check] = (),
    threshold: float,
    multiplier_max: float,
    window: int,
    min_trend: float,
    min_trend_points: int,
    maintenance_min: int,
    cap_rule: str = "forgetting",
    samples: Mapping[tuple[str, int], Sequence[tuple[int, float, int]]] | None = None,
) -> HeroVerdict:
    """Every skill's verdict (see the module docstring; `cap_rule` "forgetting": evaluation/cap_rule.py).

    `samples`: (skill, level) -> (step, accuracy, items) of every eval, the forgetting rule's input.

    `level_ups`: (skill, level mastered, step); `history`: (skill, level) -> (step, checkpoint_id,
    accuracy) in step order; `segments`: (checkpoint_id, step) of every trained segment; `trained`: checkpoint_id ->
    (skill, level) -> tokens the trainer recorded for that segment; `checks`: reserve-sample verdicts.
    """
    segs = sorted(((int(st), ck) for ck, st in segments))
    ups: dict[str, list[tuple[int, int]]] = {name: [] for name in caps}  # skill -> [(step, level)]
    for skill, level, step in sorted(level_ups, key=lambda u: (u[2], u[1])):
        if skill in ups:
            ups[skill].append((int(step), int(level)))

    def learning_level(skill: str, step: int) -> int | None:
        """The level `skill` was learning when the segment ending at `step` was chosen (None: complete)."""
        done = [lv for st, lv in ups[skill] if st < step]
        if done and max(done) >= caps[skill]:
            return None
        return min(len(done) + 1, caps[skill])

    def learning_tokens_by_skill(step_lo: float, step_hi: float) -> dict[str, int]:
        out: dict[str, int] = {}
        for st, ck in segs:
            if step_lo < st <= step_hi:
                for (sk, lv), n in (trained.get(ck) or {}).items():
                    cur = learning_level(sk, st) if sk in caps else None
                    if cur is not None and lv >= cur:
                        out[sk] = out.get(sk, 0) + int(n)
        return out

    # Regression episodes of every mastered level, replayed from its evals after the level-up.
    episodes: list[Episode] = []
    for skill, earned in ups.items():
        for up_step, level in earned:
            points = [p for p in history.get((skill, level), ()) if p[0] > up_step]
            last_pass = up_step
            onset: tuple[int, str, int] | None = None
            since: list[float] = []
            for st, ck, acc in points:
                if onset is None and acc < threshold:
                    onset, since = (st, ck, last_pass), [acc]
                elif onset is not None and acc < threshold:
                    since.append(acc)
                elif onset is not None:
                    episodes.append(
                        _episode(skill, level, onset, st, since, checks, window, min_trend_points)
                    )
                    onset, since = None, []
                if acc >= threshold:
                    last_pass = st
            if onset is not None:
                episodes.append(_episode(skill, level, onset, None, since, checks, window, min_trend_points))

    # Blame and maintenance of each confirmed episode.
    costed: list[Episode] = []
    for e in episodes:
        if e.status != "confirmed":
            costed.append(e)
            continue
        shares = learning_tokens_by_skill(e.held_step, e.onset_step)
        total = sum(shares.values())
        blame = {k: v / total for k, v in shares.items() if v} if total else {}
        hi = e.end_step if e.end_step is not None else float("inf")
        maint = sum(
            int((trained.get(ck) or {}).get((e.skill, e.level), 0))
            for st, ck in segs
            if e.onset_step < st <= hi
        )
        costed.append(replace(e, blame=blame, maintenance_tokens=maint))
    episodes = costed

    verdicts = {}
    last_seg_steps = [st for st, _ in segs][-window:]
    for name in sorted(caps):
        verdicts[name] = _skill_verdict(
            name,
            caps[name],
            bool(complete.get(name)),
            ups[name],
            history,
            segs,
            trained,
            episodes,
            last_seg_steps,
            multiplier_max=multiplier_max,
            window=window,
            min_trend=min_trend,
            min_trend_points=min_trend_points,
            maintenance_min=maintenance_min,
            n_segments=len(segs),
        )
    if cap_rule not in CAP_RULES:
        raise ValueError(f"cap_rule must be one of {', '.join(CAP_RULES)}, got {cap_rule!r}")
    baseline = {
        n: replace(v, cap_level=v.level - 1) if v.verdict == CAPPED else v for n, v in verdicts.items()
    }
    for name, v in list(verdicts.items()):
        if cap_rule == "multiplier":
            verdicts[name] = baseline[name]
            continue
        if v.verdict == COMPLETE:
            continue
        lost = _forgotten(name, ups[name], samples or {}, segs, trained, threshold, maintenance_min)
        experience: dict[int, int] = {}
        for _, ck in segs:
            for (sk, lv), n in (trained.get(ck) or {}).items():
                if sk == name:
                    experience[lv] = experience.get(lv, 0) + int(n)
        call = cap_call(lost, [(st, lv) for st, lv in ups[name]], [st for st, _ in segs], experience)
        if call is not None:
            verdicts[name] = replace(v, verdict=CAPPED, reason=call[1], cap_level=call[0], forgotten=lost)
        elif v.verdict == CAPPED:  # the multiplier's call is not this rule's
            verdicts[name] = replace(v, verdict=PLATEAU, reason=_not_lost(lost), forgotten=lost)
        else:
            verdicts[name] = replace(v, forgotten=lost)
    hero = _hero(verdicts, tuple(episodes))
    return replace(hero, multiplier_skills=baseline) if cap_rule != "multiplier" else hero


def _forgotten(
    skill: str,
    ups: list[tuple[int, int]],
    samples: Mapping[tuple[str, int], Sequence[tuple[int, float, int]]],
    segs: list[tuple[int, str]],
    trained: Mapping[str, Mapping[tuple[str, int], int]],
    threshold: float,
    owed: int,
) -> tuple[Forgetting, ...]:
    """Every mastered level of `skill` its newest test says lost (cap_rule.forgetting)."""
    learning = {st: 1 + sum(1 for up, _ in ups if up < st) for st, _ in segs}
    out = []
    pooled: dict[int, list[float]] = {}  # step -> [correct, items] over every mastered level
    for earned_step, level in ups:
        points = [p for p in samples.get((skill, level), ()) if p[0] > earned_step]
        for st, acc, n in points:
            tally = pooled.setdefault(st, [0.0, 0])
            tally[0] += acc * n
            tally[1] += n
        spent = [(st, int((trained.get(ck) or {}).get((skill, level), 0))) for st, ck in segs]
        found = forgetting(
            skill, level, points, threshold=threshold, learning_level=learning, trained_since=spent, owed=owed
        )
        if found is not None:
            out.append(found)
    if len(ups) > 1:  # every mastered level together: the test with the most items
        review = [
            (st, sum(n for (sk, _), n in (trained.get(ck) or {}).items() if sk == skill)) for st, ck in segs
        ]
        points = [(st, c / n, int(n)) for st, (c, n) in sorted(pooled.items())]
        found = forgetting(
            skill, 0, points, threshold=threshold, learning_level=learning, trained_since=review, owed=owed
        )
        if found is not None:
            out.append(found)
    return tuple(out)


def _not_lost(lost: tuple[Forgetting, ...]) -> str:
    if not lost:
        return "no mastered level is lost (each within its evals' error of the threshold or above)"
    return "; ".join(
        f"L{f.level} lost for {f.tests} tests and {f.maintenance_segments} maintenance segments "
        "(not yet what the loss is owed)"
        for f in lost
    )


def _episode(
    skill: str,
    level: int,
    onset: tuple[int, str, int],
    end_step: int | None,
    since: list[float],
    checks: Sequence[Check],
    window: int,
    min_points: int,
) -> Episode:
    onset_step, onset_checkpoint, held_step = onset
    hi = end_step if end_step is not None else float("inf")
    relevant = [c for c in checks if (c.skill, int(c.level)) == (skill, level) and onset_step <= c.step < hi]
    newest = max(relevant, key=lambda c: (c.step, c.confirmed), default=None)
    status = "unconfirmed" if newest is None else ("confirmed" if newest.confirmed else "refuted")
    return Episode(
        skill,
        level,
        onset_checkpoint,
        onset_step,
        held_step,
        end_step,
        since[-1],
        status,
        trend(since, window, min_points),
    )


def _skill_verdict(
    name: str,
    cap: int,
    complete: bool,
    ups: list[tuple[int, int]],
    history: Mapping[tuple[str, int], Sequence[tuple[int, str, float]]],
    segs: list[tuple[int, str]],
    trained: Mapping[str, Mapping[tuple[str, int], int]],
    episodes: list[Episode],
    last_seg_steps: list[int],
    *,
    multiplier_max: float,
    window: int,
    min_trend: float,
    min_trend_points: int,
    maintenance_min: int,
    n_segments: int,
) -> SkillVerdict:
    # Earning tokens of every level earned: its learning tokens since the previous level-up.
    earned: dict[int, int | None] = {}
    prev = 0
    for up_step, level in ups:
        total, recorded = 0, True
        for st, ck in segs:
            if prev < st <= up_step:
                rec = trained.get(ck)
                if rec is None:
                    recorded = False
                    continue
                total += int(rec.get((name, level), 0))
        earned[level] = total if recorded and total > 0 else None
        prev = up_step
    last_up = ups[-1][0] if ups else 0
    level = min(len(ups) + 1, cap) if not complete else cap
    learning_tokens = sum(
        int((trained.get(ck) or {}).get((name, level), 0)) for st, ck in segs if st > last_up
    )
    mine = [e for e in episodes if e.status == "confirmed" and e.blame.get(name)]
    maint_tokens, maint_segments = 0, 0
    for st, ck in segs:
        if st <= last_up:
            continue
        rec = trained.get(ck) or {}
        here = 0.0
        for e in mine:
            if e.onset_step < st and (e.end_step is None or st <= e.end_step):
                here += e.blame[name] * rec.get((e.skill, e.level), 0)
        if here > 0:
            maint_tokens += round(here)
            maint_segments += 1
    base = earned.get(ups[-1][1]) if ups else None
    multiplier = maint_tokens / base if base else None
    current = [a for st, _, a in history.get((name, level), ()) if st > last_up]
    slope = trend(current, window, min_trend_points)
    evidence = dict(
        skill=name,
        level=level,
        cap=cap,
        earned=earned,
        learning_tokens=learning_tokens,
        maintenance_tokens=maint_tokens,
        maintenance_segments=maint_segments,
        multiplier=multiplier,
        trend=slope,
        knocked_down=tuple(mine),
    )

    def verdict(kind: str, reason: str) -> SkillVerdict:
        return SkillVerdict(verdict=kind, reason=reason, **evidence)

    if complete:
        return verdict(COMPLETE, f"mastered its cap L{cap}")
    recent_ups = [st for st, _ in ups if last_seg_steps and st >= last_seg_steps[0]]
    if recent_ups or n_segments < window:
        if recent_ups:
            return verdict(LEARNING, f"levelled up in the last {window} segments")
        return verdict(LEARNING, f"only {n_segments} of the {window} segments needed to judge")
    if slope is None:
        return verdict(LEARNING, f"L{level}: too few evals to judge its trend")
    if slope > min_trend:
        return verdict(LEARNING, f"L{level} climbing ({slope:+.3f}/eval)")
    stalled = f"no level-up in {window} segments, L{level} flat ({slope:+.3f}/eval)"
    still = [e for e in mine if e.open]
    if not still:
        return verdict(PLATEAU, f"{stalled}; nothing its learning knocked down is regressed (confirmed)")
    unjudged = [e for e in still if e.trend is None]
    if unjudged:
        lv = ", ".join(f"{e.skill} L{e.level}" for e in unjudged)
        return verdict(PLATEAU, f"{stalled}; {lv} regressed, too few evals since the drop to judge")
    recovering = [e for e in still if e.trend > min_trend]
    if recovering:
        lv = ", ".join(f"{e.skill} L{e.level} {e.trend:+.3f}/eval" for e in recovering)
        return verdict(PLATEAU, f"{stalled}; recovering since the drop: {lv}")
    regressed = ", ".join(f"{e.skill} L{e.level}" for e in still)
    if maint_segments < maintenance_min:
        return verdict(
            PLATEAU,
            f"{stalled}; {regressed} regressed, maintenance trained in {maint_segments} of the "
            f"{maintenance_min} segments needed",
        )
    if multiplier is None:
        return verdict(PLATEAU, f"{stalled}; {regressed} regressed, multiplier undefined (no earning tokens)")
    if multiplier <= multiplier_max:
        return verdict(
            PLATEAU,
            f"{stalled}; {regressed} regressed, maintenance {multiplier:.2f}x <= {multiplier_max:.2f}x",
        )
    return verdict(
        CAPPED,
        f"{stalled}; {regressed} regressed and not recovering after {maint_segments} maintenance segments: "
        f"{maint_tokens} maintenance tokens = {multiplier:.2f}x the {base} that earned L{ups[-1][1]} "
        f"> {multiplier_max:.2f}x",
    )


def _hero(verdicts: dict[str, SkillVerdict], episodes: tuple[Episode, ...]) -> HeroVerdict:
    if not verdicts:
        return HeroVerdict(verdicts, episodes, False, "no skills")
    left = [v for v in verdicts.values() if v.verdict != COMPLETE]
    if not left:
        return HeroVerdict(verdicts, episodes, True, "every skill reached its level cap")
    capped = [v for v in left if v.verdict == CAPPED]
    if len(capped) == len(left):
        return HeroVerdict(
            verdicts,
            episodes,
            True,
            "every skill with levels left is capped: " + "; ".join(v.summary() for v in capped),
        )
    others = [v for v in left if v.verdict != CAPPED]
    head = f"{', '.join(v.skill for v in capped)} capped, but " if capped else ""
    return HeroVerdict(
        verdicts,
        episodes,
        False,
        head + "; ".join(f"{v.skill} L{v.level} {v.verdict}: {v.reason}" for v in others),
    )
