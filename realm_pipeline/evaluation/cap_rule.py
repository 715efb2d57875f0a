"""The level cap, as the design says it, with every eval treated as a sample (pure: no Dagster, no torch).

The design: a hero is maxed out on a skill when the experience a new level needs costs too much
regression in what it already mastered. realm reads that sentence so:

* *Regression* is what the evals say was forgotten, never what realm chose to spend on maintenance: a
  mastered level is **lost** when its accuracy, pooled over its last `POOLED_EVALS` evals (each a sample
  of its set's size), is below the mastery threshold with confidence `1 - ALPHA` (the upper Wilson bound
  under the threshold: `significantly_below`).
* *Too much* is the bound the design already names: the mastery threshold itself. A level below it is
  not held, and a hero that cannot hold every lower level while it learns the next has no room for the
  next (a cap at `L - 1` means levels 1..L-1 held together; the threshold is what "held" means).
* *The experience a new level needs* is paid first: the loss must outlast `PERSIST` consecutive evals of
  the level and `maintenance_min` segments that trained it since the loss began (realm's replay boosts
  a lost level), so forgetting that maintenance repairs, a slow learner that forgets nothing, and one
  unlucky sample are not a cap. Only the skill's own levels count: the claim is about the skill.
* The claim: the skill caps at the level below the one it was learning when the loss began.

Error rate: a level truly held at the threshold tests lost with probability at most ALPHA per test, and
a call needs PERSIST consecutive tests; bench/cap_detection.py measures precision, recall and delay
against simulated heroes whose capacity is known (BENCHMARKS.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ALPHA = 0.01  # one-sided error rate of one "lost" test on a level truly held at the threshold
Z = 2.326  # the standard normal quantile of 1 - ALPHA
POOLED_EVALS = 3  # evals pooled into one test: three 50-item sets are 150 items
PERSIST = 3  # consecutive lost tests (checkpoints) before the loss counts
Z_RECOVERY = 1.645  # one-sided bound on the slope of a loss's accuracy since it began ...
RECOVERY_HORIZON = 10  # ... that, kept up this many more evals, would mend it: still recovering
OBSERVED = 8  # evals since the loss began before a recovery can be ruled out (a sudden loss needs time)


@dataclass(frozen=True)
class Forgetting:
    """A mastered level lost (`significantly_below` the threshold), with the evidence for it."""

    skill: str
    level: int
    onset_step: int  # the first checkpoint of the current run of lost tests
    learning_at_onset: int  # the level the skill was learning then: the cap claimed is one below
    tests: int  # consecutive lost tests up to the newest eval
    accuracy: float  # pooled accuracy of the newest test
    upper: float  # its upper confidence bound (below the threshold)
    maintenance_segments: int  # segments since the onset that trained this level
    maintenance_tokens: int
    rising: bool  # it may still mend by itself (`recovering`)

    @property
    def counts(self) -> bool:
        """Whether it has outlasted the evals and the maintenance it is owed (see the module docstring)."""
        return self.tests >= PERSIST and self.maintenance_segments >= self.owed and not self.rising

    owed: int = 3  # maintenance segments owed (realm.yaml progression.maintenance_min)

    def to_json(self) -> dict:
        """JSON-ready dict."""
        return {
            "skill": self.skill,
            "level": self.level,
            "onset_step": self.onset_step,
            "learning_at_onset": self.learning_at_onset,
            "lost_tests": self.tests,
            "accuracy": round(self.accuracy, 4),
            "upper_bound": round(self.upper, 4),
            "maintenance_segments": self.maintenance_segments,
            "maintenance_tokens": self.maintenance_tokens,
            "recovering": self.rising,
            "counts": self.counts,
        }


def wilson_upper(correct: float, n: int, z: float | None = None) -> float:
    """Upper Wilson score bound of a binomial proportion (`correct` of `n`; `z` default Z)."""
    z = Z if z is None else z
    if n <= 0:
        return 1.0
    p = correct / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def significantly_below(points: Sequence[tuple[float, int]], threshold: float) -> tuple[bool, float, float]:
    """(lost, pooled accuracy, upper bound) of evals given as (accuracy, items): upper bound < threshold."""
    n = sum(items for _, items in points)
    correct = sum(acc * items for acc, items in points)
    upper = wilson_upper(correct, n)
    return upper < threshold, (correct / n if n else 0.0), upper


def recovering(points: Sequence[tuple[int, float, int]], threshold: float, now: float) -> bool:
    """Whether the loss may still mend by itself: from `now`, the slope of `points` (step, accuracy,
    items) at its upper Z_RECOVERY bound would regain `threshold` within RECOVERY_HORIZON evals."""
    if len(points) < OBSERVED:
        return True  # too few evals since the loss began to tell a recovery from a plateau
    xs = list(range(len(points)))
    mean_x = sum(xs) / len(xs)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    items = [n for _, _, n in points]
    mean_p = sum(a * n for _, a, n in points) / sum(items)
    mean_y = sum(a for _, a, _ in points) / len(points)
    slope = sum((x - mean_x) * (a - mean_y) for x, (_, a, _) in zip(xs, points, strict=True)) / sxx
    # Var(slope) = sum (x - mean)^2 Var(y_x) / sxx^2 with the binomial Var(y_x) = p (1 - p) / n_x
    var = sum((x - mean_x) ** 2 * mean_p * (1 - mean_p) / n for x, n in zip(xs, items, strict=True)) / sxx**2
    return now + (slope + Z_RECOVERY * math.sqrt(var)) * RECOVERY_HORIZON >= threshold


def _pooled(points: Sequence[tuple[int, float, int]]) -> float:
    n = sum(items for _, _, items in points)
    return sum(acc * items for _, acc, items in points) / n if n else 1.0


def forgetting(
    skill: str,
    level: int,
    points: Sequence[tuple[int, float, int]],
    *,
    threshold: float,
    learning_level: Mapping[int, int],
    trained_since: Sequence[tuple[int, int]],
    owed: int,
) -> Forgetting | None:
    """The current loss of a mastered level (or, `level` 0, of every mastered level pooled), if its
    newest test says lost; None otherwise.

    `points`: its evals since it was mastered as (step, accuracy, items), in step order, one per step;
    `learning_level`: step -> the level the skill was learning then; `trained_since`: (step, tokens on
    the level) of every segment. The loss began where the pooled accuracy last fell below the threshold.
    """
    run: list[tuple[int, float, float]] = []  # the current run of lost tests, newest first
    i = len(points) - 1
    while i >= POOLED_EVALS - 1:
        window = [(acc, n) for _, acc, n in points[i - POOLED_EVALS + 1 : i + 1]]
        lost, pooled, upper = significantly_below(window, threshold)
        if not lost:
            break
        run.append((points[i][0], pooled, upper))
        i -= 1
    if not run:
        return None
    run.reverse()
    # The loss began at the first eval of the first lost test, or earlier: back while the pooled accuracy
    # of the evals before stayed under the threshold (a level sliding down is lost from its first slip).
    began = i + 1 - (POOLED_EVALS - 1)
    while began > 0 and _pooled(points[max(began - POOLED_EVALS, 0) : began]) < threshold:
        began -= 1
    onset = points[began][0]
    maintenance = [(st, n) for st, n in trained_since if st > onset and n > 0]
    return Forgetting(
        skill,
        level,
        onset,
        learning_level.get(onset, level + 1),
        len(run),
        run[-1][1],
        run[-1][2],
        len(maintenance),
        sum(n for _, n in maintenance),
        recovering(points[began:], threshold, run[-1][1]),
        owed,
    )


def cap_call(
    forgotten: Sequence[Forgetting],
    earned: Sequence[tuple[int, int]] = (),
    steps: Sequence[int] = (),
    experience: Mapping[int, int] | None = None,
) -> tuple[int, str] | None:
    """(cap level, reason) when a lost level counts; else None.

    The claim is the highest level held before the earliest counting loss began: mastered at least
    POOLED_EVALS evals (`steps`, the checkpoints) before it. A level earned later was earned while the
    hold was already sliding (a lucky streak on the way down), never held with the others. `earned`:
    (step, level) of the skill's level-ups; `experience`: level -> tokens trained on it so far, previews
    included (the evidence of what the new level was given).
    """
    counting = sorted((f for f in forgotten if f.counts), key=lambda f: (f.onset_step, f.level))
    if not counting:
        return None
    first = counting[0]
    cap = first.learning_at_onset - 1
    for step, level in sorted(earned, reverse=True):
        if level <= cap and sum(1 for st in steps if step < st < first.onset_step) < POOLED_EVALS - 1:
            cap = level - 1  # earned too close to the loss to have been held
    lost = ", ".join(
        f"{'mastered levels pooled' if f.level == 0 else f'L{f.level}'} {f.accuracy:.2f} (< {f.upper:.2f})"
        for f in counting
    )
    given = (experience or {}).get(first.learning_at_onset)
    spent = f" after {given} tokens on it (previews included)" if given else ""
    return cap, (
        f"learning L{first.learning_at_onset}{spent} cost what it mastered: {lost} below the threshold for "
        f"{first.tests} tests and {first.maintenance_segments} maintenance segments; caps at L{cap}"
    )
