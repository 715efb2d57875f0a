"""A simulated hero whose capacity is known (pure: no torch, no Dagster).

It stands in for the model and nothing else: realm trains it on the segment's real mix (tokens per skill
and level), saves its state as the checkpoint, and evaluates it on the real eval items with the real scorer.
What it answers depends on its state alone, so every rule realm applies to a campaign can be checked
against the truth the simulator knows (`simulation.oracle`).

Dynamics, per skill and level `l` (every quantity in tokens, so they are independent of segment length):

* *Scale.* Level `l` needs `T_l = base_tokens * growth ** (l - 1)` tokens per e-fold of learning.
* *Experience* `e_l` grows with the tokens practised on `l` and never shrinks: tokens trained on `l`, plus
  `transfer` times the tokens trained on its neighbours `l - 1` and `l + 1` (levels share structure).
  What the hero could know is `a_l = 1 - exp(-e_l / T_l)`; a slow learner (`plateau` < 1 from level
  `plateau_from` on) knows at most `plateau` of it until `plateau_delay * T_l` tokens, then learns the rest.
* *Hold* `h_l` in [0, 1] is how much of that it still expresses. Practice pulls it up at rate
  `1 / (relearn * T_l)` per practised token (relearning is faster than learning when `relearn` < 1);
  every token trained on another level of the skill (`cross_skill` times a token of another skill) pushes
  it down at `interference` times that rate: forgetting grows with what else is trained. Within a segment
  both act together, so `h` relaxes towards `u / (u + interference * v)` (u practised, v interfering).
* *Capacity.* A skill holds `capacity` units; level `l` occupies `size_growth ** (l - 1)` units times
  `a_l * h_l` (a level known better takes more room). Over capacity every level of the skill is squeezed by
  `capacity / load`: holding a new level costs the lower ones.
* *Shocks* (temporary forgetting): at the segment index given, every level's hold is multiplied by the
  factor given; practice brings it back.

Accuracy `p_l = a_l * h_l * min(1, capacity / load)`. The hero answers an eval item with the reference
answer with probability `p_l`, else a wrong answer, decided by a hash of (seed, checkpoint, item): the
same checkpoint answers the same item the same way every time, and an eval set of n items is a binomial
sample of size n, as a real eval is.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

# What each SimParams field must satisfy (said in its error; checked in SimParams.__post_init__).
RANGES = {
    "base_tokens": "> 0",
    "growth": ">= 1",
    "transfer": "0 <= transfer < 1",
    "interference": ">= 0",
    "cross_skill": ">= 0",
    "relearn": "> 0",
    "capacity": "> 0, or null for none",
    "size_growth": ">= 1",
    "plateau": "0 < plateau <= 1",
    "plateau_from": ">= 1",
    "plateau_delay": ">= 0",
}
STATE_FILE = "simulated_hero.json"  # the checkpoint: the simulator's whole state, written atomically
WRONG_ANSWER = "?"  # what the hero says when it is wrong (never a reference answer)


class SimParamError(ValueError):
    """A SimParams value out of range: names the field (dotted, e.g. `capacities.bin`), value and reason."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"simulated hero: field {field!r}: value {value!r} {reason}")
        self.field, self.value, self.reason = field, value, reason


@dataclass(frozen=True)
class SimParams:
    """A simulated hero's constants (`base:` of a `kind: simulated` hero YAML)."""

    base_tokens: float = 20_000.0
    growth: float = 1.5
    transfer: float = 0.3
    interference: float = 0.004
    cross_skill: float = 0.0
    relearn: float = 0.5
    capacity: float | None = None  # units per skill; None: no capacity limit
    capacities: Mapping[str, float] = field(default_factory=dict)  # per-skill override of `capacity`
    size_growth: float = 1.3
    plateau: float = 1.0
    plateau_from: int = 1
    plateau_delay: float = 0.0
    shocks: tuple[tuple[int, float], ...] = ()  # (segment index, hold factor)
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "base_tokens": self.base_tokens > 0,
            "growth": self.growth >= 1,
            "transfer": 0 <= self.transfer < 1,
            "interference": self.interference >= 0,
            "cross_skill": self.cross_skill >= 0,
            "relearn": self.relearn > 0,
            "capacity": self.capacity is None or self.capacity > 0,
            "size_growth": self.size_growth >= 1,
            "plateau": 0 < self.plateau <= 1,
            "plateau_from": self.plateau_from >= 1,
            "plateau_delay": self.plateau_delay >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise SimParamError(name, getattr(self, name), f"out of range ({RANGES[name]})")
        for skill, cap in self.capacities.items():
            if not cap > 0:
                raise SimParamError(f"capacities.{skill}", cap, "must be > 0")
        object.__setattr__(self, "shocks", tuple((int(i), float(f)) for i, f in self.shocks))
        for n, (i, f) in enumerate(self.shocks):
            if i < 0 or not 0 < f <= 1:
                raise SimParamError(f"shocks.{n}", [i, f], "needs segment index >= 0 and 0 < factor <= 1")

    def tokens_per_efold(self, level: int) -> float:
        """T_l: tokens per e-fold of learning level `level`."""
        return self.base_tokens * self.growth ** (level - 1)

    def size(self, level: int) -> float:
        """Capacity units a fully held level occupies."""
        return self.size_growth ** (level - 1)

    def capacity_of(self, skill: str) -> float | None:
        """The skill's capacity in units (None: unlimited)."""
        return self.capacities.get(skill, self.capacity)

    def knowable(self, level: int, experience: float) -> float:
        """a_l: how much of the level `experience` tokens of practice could teach."""
        t = self.tokens_per_efold(level)
        full = 1 - math.exp(-experience / t)
        if self.plateau >= 1 or level < self.plateau_from:
            return full
        late = 1 - math.exp(-max(0.0, experience - self.plateau_delay * t) / t)
        return self.plateau * full + (1 - self.plateau) * late

    @classmethod
    def from_mapping(cls, data: Mapping) -> SimParams:
        """Build from a YAML mapping (unknown keys refused by the caller's schema)."""
        values = dict(data)
        if "shocks" in values:
            values["shocks"] = tuple(tuple(s) for s in values["shocks"])
        if "capacities" in values:
            values["capacities"] = dict(values["capacities"])
        return cls(**values)


@dataclass
class SimState:
    """Experience and hold of every (skill, level) the hero has met, and segments trained so far."""

    experience: dict[tuple[str, int], float] = field(default_factory=dict)
    hold: dict[tuple[str, int], float] = field(default_factory=dict)
    segments: int = 0
    tokens: int = 0

    def to_json(self) -> dict:
        """JSON-ready dict (keys `skill@level`)."""
        return {
            "segments": self.segments,
            "tokens": self.tokens,
            "experience": {f"{s}@{lv}": v for (s, lv), v in sorted(self.experience.items())},
            "hold": {f"{s}@{lv}": v for (s, lv), v in sorted(self.hold.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping) -> SimState:
        """Inverse of `to_json`."""

        def keyed(m: Mapping) -> dict[tuple[str, int], float]:
            out = {}
            for k, v in m.items():
                skill, _, level = str(k).rpartition("@")
                out[(skill, int(level))] = float(v)
            return out

        return cls(
            keyed(data.get("experience", {})),
            keyed(data.get("hold", {})),
            int(data.get("segments", 0)),
            int(data.get("tokens", 0)),
        )


def train(params: SimParams, state: SimState, tokens: Mapping[tuple[str, int], float]) -> SimState:
    """The state after one segment that trained `tokens` per (skill, level) (see the module docstring)."""
    trained = {k: float(v) for k, v in tokens.items() if v > 0}
    by_skill: dict[str, float] = {}
    for (skill, _), n in trained.items():
        by_skill[skill] = by_skill.get(skill, 0.0) + n
    total = sum(by_skill.values())
    levels = set(state.experience) | set(trained)
    for skill, level in trained:  # neighbours receive transfer even when never trained themselves
        levels |= {(skill, near) for near in (level - 1, level + 1) if near >= 1}
    experience, hold = dict(state.experience), dict(state.hold)
    for skill, level in levels:
        own = trained.get((skill, level), 0.0)
        near = trained.get((skill, level - 1), 0.0) + trained.get((skill, level + 1), 0.0)
        practised = own + params.transfer * near
        interfering = max(by_skill.get(skill, 0.0) - practised, 0.0) + params.cross_skill * (
            total - by_skill.get(skill, 0.0)
        )
        experience[(skill, level)] = experience.get((skill, level), 0.0) + practised
        rate = 1.0 / (params.relearn * params.tokens_per_efold(level))
        pull, push = rate * practised, rate * params.interference * interfering
        h = hold.get((skill, level), 1.0)
        if pull + push > 0:
            target = pull / (pull + push)
            h = target + (h - target) * math.exp(-(pull + push))
        hold[(skill, level)] = h
    segments = state.segments + 1
    for index, factor in params.shocks:
        if index == segments:
            hold = {k: v * factor for k, v in hold.items()}
    return SimState(experience, hold, segments, state.tokens + int(round(total)))


def accuracy(params: SimParams, state: SimState, skill: str, level: int) -> float:
    """The probability the hero answers an item of `skill` level `level` right (its true accuracy)."""
    return accuracies(params, state, skill, [level])[level]


def accuracies(params: SimParams, state: SimState, skill: str, levels: list[int]) -> dict[int, float]:
    """True accuracy of each of `levels` of `skill`: known x held, squeezed by the skill's capacity."""
    known = {
        lv: params.knowable(lv, e) * state.hold.get((s, lv), 1.0)
        for (s, lv), e in state.experience.items()
        if s == skill
    }
    cap = params.capacity_of(skill)
    load = sum(params.size(lv) * v for lv, v in known.items())
    squeeze = 1.0 if cap is None or load <= cap else cap / load
    return {lv: known.get(lv, 0.0) * squeeze for lv in levels}


def answers_right(seed: int, checkpoint: str, item_key: str, probability: float) -> bool:
    """Whether the hero answers this item right: a uniform draw from a hash of (seed, checkpoint, item)."""
    digest = hashlib.sha256(f"{seed}|{checkpoint}|{item_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < probability


def answer(
    params: SimParams, state: SimState, checkpoint: str, skill: str, level: int, item_key: str, reference: str
) -> str:
    """The hero's answer to one eval item: the reference with its true accuracy, else a wrong answer."""
    p = accuracy(params, state, skill, level)
    return reference if answers_right(params.seed, checkpoint, item_key, p) else WRONG_ANSWER


def save_state(directory: Path, params: SimParams, state: SimState) -> Path:
    """Write the checkpoint file (params and state) atomically into `directory`; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    staged = path.with_suffix(".tmp")
    payload = {"params": params_json(params), "state": state.to_json()}
    staged.write_text(json.dumps(payload, indent=1, sort_keys=True))
    staged.replace(path)
    return path


def load_state(directory: Path) -> SimState:
    """Read a checkpoint's simulator state (a clear error naming the file when it is unreadable)."""
    path = directory / STATE_FILE
    try:
        return SimState.from_json(json.loads(path.read_text())["state"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a simulated hero checkpoint ({type(exc).__name__}: {exc})") from exc


def params_json(params: SimParams) -> dict:
    """JSON-ready dict of the constants (what a checkpoint file and an eval fingerprint record)."""
    data = asdict(params)
    data["capacities"] = dict(params.capacities)
    data["shocks"] = [list(s) for s in params.shocks]
    return data
