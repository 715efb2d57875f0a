"""Training strain: how far a hero's loss sits above its floor, and what that says about the curriculum.

strain = loss - floor: the excess of the loss (nats per answer token) over the floor the task allows
(0 for the exact skills realm generates, whose answers are fully determined by their prompts). Negative
strain (loss under the estimated floor) is allowed: it means the floor estimate is stale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
