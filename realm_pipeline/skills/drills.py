"""Primitive drills (reverse, count, map) plus the helpers every skill module shares.

The helpers live here because drills are the most primitive skills; `bin` and `sy` import them.
"""

from __future__ import annotations

import hashlib
import random
import string

from realm_pipeline.skills.base import Score, SkillItem

LOWER = string.ascii_lowercase


def make_rng(name: str, level: int, seed: int, index: int) -> random.Random:
    """A private RNG that is a pure function of (skill, level, seed, index), stable across processes."""
    # sha256, not hash(): Python's str hash is salted per process.
    return random.Random(hashlib.sha256(f"{name}|{level}|{seed}|{index}".encode()).digest())


def check_level(name: str, level: object, max_level: int) -> int:
    """Return `level` if it is an int in [1, max_level], else raise a ValueError naming skill and range."""
    # bool is an int subclass; True as a level is a bug, not level 1.
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= max_level:
        raise ValueError(f"skill {name!r}: invalid level {level!r}; valid levels are 1..{max_level}")
    return level


def check_index(name: str, seed: object, index: object) -> None:
    """Raise a ValueError unless seed and index are plain ints."""
    for label, value in (("seed", seed), ("index", index)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"skill {name!r}: {label} must be an int, got {value!r}")


def char_fraction(expected: str, got: str) -> float:
    """Fraction of expected positions that `got` reproduces (length mismatch counts against it)."""
    if not expected:
        return 1.0 if not got else 0.0
    hits = sum(1 for a, b in zip(expected, got, strict=False) if a == b)
    return hits / max(len(expected), len(got))


# Each drill targets one of the reference's primitives; xfm_map's three modes all exercise xfm_map.
_DRILL_PRIMITIVE = {
    "reverse": "seq_reverse",
    "count": "attn_count",
    "up": "xfm_map",
    "shift": "xfm_map",
    "table": "xfm_map",
}


def _tags(operation: str) -> dict[str, str]:
    """Primitive tags of a drill item (drills carry no difficulty signal)."""
    return {"primitive": _DRILL_PRIMITIVE[operation], "operation": operation, "signal": "none"}


def _bounded(space: int) -> int | None:
    """The prompt-space size, or None once it is too large to matter for eval capping."""
    return space if space <= 10**6 else None


class SeqReverse:
    """Reverse a lowercase string; length is level + 2."""

    name = "seq_reverse"
    version = "1"
    max_level = 20

    def length(self, level: int) -> int:
        """String length at this level."""
        return check_level(self.name, level, self.max_level) + 2

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one reverse item."""
        n = self.length(level)
        check_index(self.name, seed, index)
        rng = make_rng(self.name, level, seed, index)
        text = "".join(rng.choice(LOWER) for _ in range(n))
        return SkillItem(self.name, level, seed, index, f"rev: {text}", text[::-1], tags=_tags("reverse"))

    def score(self, item: SkillItem, output: str) -> Score:
        """Exact match; partial is the fraction of characters in place."""
        got = output.strip()
        return Score(got == item.answer, char_fraction(item.answer, got), {"expected": item.answer})

    def distinct_prompts(self, level: int) -> int | None:
        """26 ** length, or None when large."""
        return _bounded(len(LOWER) ** self.length(level))

    def facts(self, item: SkillItem) -> str:
        """The input string: the prompt has one phrasing, so its body is the whole fact."""
        return item.prompt.removeprefix("rev: ")

    def longest(self, level: int) -> tuple[int, int]:
        """Exact: "rev: " plus the level's fixed length, and the reversed string."""
        n = self.length(level)
        return len("rev: ") + n, n


class AttnCount:
    """Count how often a character occurs in a string over a small alphabet."""

    name = "attn_count"
    version = "1"
    max_level = 10

    def shape(self, level: int) -> tuple[int, int]:
        """(string length, alphabet size) at this level: both grow so counts stay non-trivial."""
        check_level(self.name, level, self.max_level)
        return 2 + 2 * level, min(26, 2 + level)

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one count item."""
        n, k = self.shape(level)
        check_index(self.name, seed, index)
        rng = make_rng(self.name, level, seed, index)
        alphabet = LOWER[:k]
        target = rng.choice(alphabet)
        text = "".join(rng.choice(alphabet) for _ in range(n))
        answer = str(text.count(target))
        return SkillItem(
            self.name, level, seed, index, f"count {target}: {text}", answer, tags=_tags("count")
        )

    def score(self, item: SkillItem, output: str) -> Score:
        """Exact decimal count."""
        ok = output.strip() == item.answer
        return Score(ok, 1.0 if ok else 0.0, {"expected": item.answer})

    def distinct_prompts(self, level: int) -> int | None:
        """target choices times strings, or None when large."""
        n, k = self.shape(level)
        return _bounded(k * k**n)

    def facts(self, item: SkillItem) -> str:
        """Target letter and string, e.g. "a|abca"."""
        target, text = item.prompt.removeprefix("count ").split(": ", 1)
        return f"{target}|{text}"

    def longest(self, level: int) -> tuple[int, int]:
        """Exact: "count x: " plus the string; the count has at most as many digits as the length."""
        n, _ = self.shape(level)
        return len("count x: ") + n, len(str(n))


class XfmMap:
    """Apply a per-character map: uppercase (L1-3), Caesar shift (L4-6), explicit table (L7-10)."""

    name = "xfm_map"
    version = "1"
    max_level = 10

    def mode(self, level: int) -> str:
        """Which transform family this level uses."""
        check_level(self.name, level, self.max_level)
        return "up" if level <= 3 else "shift" if level <= 6 else "table"

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one map item."""
        mode = self.mode(level)
        check_index(self.name, seed, index)
        rng = make_rng(self.name, level, seed, index)
        n = level + 2
        if mode == "up":
            text = "".join(rng.choice(LOWER) for _ in range(n))
            return SkillItem(self.name, level, seed, index, f"up: {text}", text.upper(), tags=_tags("up"))
        if mode == "shift":
            k = rng.randint(1, 3)
            text = "".join(rng.choice(LOWER) for _ in range(n))
            out = "".join(LOWER[(LOWER.index(c) + k) % 26] for c in text)
            return SkillItem(self.name, level, seed, index, f"shift {k}: {text}", out, tags=_tags("shift"))
        # table: a few source letters, each mapped to a distinct letter given in the prompt
        src = rng.sample(LOWER, 3 if level < 9 else 4)
        dst = rng.sample(LOWER, len(src))
        table = dict(zip(src, dst, strict=True))
        text = "".join(rng.choice(src) for _ in range(n))
        spec = " ".join(f"{a}>{table[a]}" for a in sorted(src))
        answer = "".join(table[c] for c in text)
        return SkillItem(self.name, level, seed, index, f"map {spec}: {text}", answer, tags=_tags("table"))

    def score(self, item: SkillItem, output: str) -> Score:
        """Exact match; partial is the fraction of characters in place."""
        got = output.strip()
        return Score(got == item.answer, char_fraction(item.answer, got), {"expected": item.answer})

    def distinct_prompts(self, level: int) -> int | None:
        """Exact for the uppercase levels' small spaces, else None (all other levels exceed 10**6)."""
        if self.mode(level) == "up":
            return _bounded(26 ** (level + 2))
        return None

    def facts(self, item: SkillItem) -> str:
        """The transform (up, shift k, or the table) and the string, e.g. "shift 2|abc"."""
        transform, text = item.prompt.split(": ", 1)
        return f"{transform}|{text}"

    def longest(self, level: int) -> tuple[int, int]:
        """Exact: the level's transform header plus level + 2 letters; the answer keeps the length."""
        mode, n = self.mode(level), level + 2
        if mode == "up":
            header = len("up")
        elif mode == "shift":
            header = len("shift k")
        else:  # "map " + pairs "a>b" joined by spaces
            pairs = 3 if level < 9 else 4
            header = len("map ") + 4 * pairs - 1
        return header + len(": ") + n, n
