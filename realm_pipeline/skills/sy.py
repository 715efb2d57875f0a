"""SY: syllacrostic puzzles over a shipped clue lexicon, 50 levels.

A puzzle gives a sorted bank of syllable tiles and one clue per answer word. The answer is a JSON list
of {"syllables": [...], "word": ...} objects in clue order - the syllables come first, so the answer
assembles the tiles before it commits to the word; ANY ORDER of objects is accepted. Every tile is
used exactly once except the stated number of unused red herrings. Tiles are real syllables: CMUdict
counts them and an orthographic split cuts the spelling (see skills/syllables.py).

Levels degrade the signal along six axes:
- words: how many clued words (4 at L1, 10 at L50);
- syllables: the syllable counts a word may have (2 at L1, 2-3 from L5, up to 4 from L15, 5 from
  L25 and 6 from L35); a word's count is drawn first, then a word of that count;
- rarity: where each count's window sits in the lexicon's Zipf ranking (0 = the commonest words:
  Zipf about 5.5 at L1; 1 = the rarest);
- overlap: the probability that the next word shares a tile with one already on the board;
- herrings: unused tiles in the bank (0 up to L7, 5 at L50);
- hint: the strength of the bracket after each clue, strongest first: first letter + length +
  syllable count, first letter + length, length, syllable count, nothing.
Levels 1-10 move one axis at a time (CALIBRATION below, pinned by a test), so an accuracy drop
between two levels names the axis that caused it; levels 11-50 move every axis steadily.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections import Counter
from typing import Any, NamedTuple

from realm_pipeline.skills.base import Score, SkillItem
from realm_pipeline.skills.drills import check_index, check_level, make_rng
from realm_pipeline.skills.syllables import pronunciations, syllabify

MIN_SYLLABLES, MAX_SYLLABLES = 2, 6
HINTS = ("full", "letter", "length", "syllables", "none")  # the hint-strength axis, strongest first
# Each count's rarity window holds this many words (or all of a smaller count): at rarity 0 the
# 2-syllable window is the 50 commonest, Zipf 5.27-6.25, mean 5.6.
WINDOW = 50


class Entry(NamedTuple):
    """One lexicon word: its clue, syllables and English Zipf frequency."""

    word: str
    clue: str
    syllables: tuple[str, ...]
    zipf: float


@functools.lru_cache(maxsize=1)
def lexicon() -> tuple[Entry, ...]:
    """Clued words split into 2-6 syllables by CMUdict + the orthographic split, commonest first."""
    import wordfreq  # imported lazily: only SY needs it

    text = importlib.resources.files("realm_pipeline.skills").joinpath("data/sy_clues.tsv").read_text("utf-8")
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        word, clue = (part.strip() for part in line.split("\t", 1))
        if word.isascii() and word.isalpha() and word.islower() and clue.isascii():
            rows.setdefault(word, clue)
    phones = pronunciations(frozenset(rows))
    entries = []
    for word, clue in rows.items():
        syllables = syllabify(word, phones[word]) if word in phones else None
        if syllables and MIN_SYLLABLES <= len(syllables) <= MAX_SYLLABLES:
            entries.append(Entry(word, clue, syllables, wordfreq.zipf_frequency(word, "en")))
    return tuple(sorted(entries, key=lambda e: (-e.zipf, e.word)))


@functools.lru_cache(maxsize=1)
def _all_syllables() -> tuple[str, ...]:
    """Every distinct syllable in the lexicon, sorted (a stable population for herring draws)."""
    return tuple(sorted({s for e in lexicon() for s in e.syllables}))


class SyParams(NamedTuple):
    """The six difficulty axes at one level."""

    words: int
    syllables: tuple[int, ...]  # the syllable counts a word may have
    rarity: float  # 0 = commonest window, 1 = rarest
    overlap: float
    herrings: int
    hint: str  # one of HINTS


# Levels 1-10, one axis moved per level: L1 is the easiest puzzle, then in turn hint, words, rarity,
# syllables, overlap, hint, herrings, words, rarity.
CALIBRATION: tuple[SyParams, ...] = (
    SyParams(4, (2,), 0.0, 0.0, 0, "full"),
    SyParams(4, (2,), 0.0, 0.0, 0, "letter"),
    SyParams(5, (2,), 0.0, 0.0, 0, "letter"),
    SyParams(5, (2,), 0.05, 0.0, 0, "letter"),
    SyParams(5, (2, 3), 0.05, 0.0, 0, "letter"),
    SyParams(5, (2, 3), 0.05, 0.2, 0, "letter"),
    SyParams(5, (2, 3), 0.05, 0.2, 0, "length"),
    SyParams(5, (2, 3), 0.05, 0.2, 1, "length"),
    SyParams(6, (2, 3), 0.05, 0.2, 1, "length"),
    SyParams(6, (2, 3), 0.1, 0.2, 1, "length"),
)


class SySkill:
    """Syllacrostic puzzles; see the module docstring for the level design."""

    name = "sy"
    version = "2"
    max_level = 50

    def params(self, level: int) -> SyParams:
        """Difficulty axes at a level: the calibration table to L10, then steady growth to L50."""
        check_level(self.name, level, self.max_level)
        if level <= len(CALIBRATION):
            return CALIBRATION[level - 1]
        last = CALIBRATION[-1]
        t = (level - len(CALIBRATION)) / (self.max_level - len(CALIBRATION))  # (0, 1]
        top = 3 if level < 15 else 4 if level < 25 else 5 if level < 35 else MAX_SYLLABLES
        hint = "length" if level <= 20 else "syllables" if level <= 35 else "none"
        return SyParams(
            words=last.words + round(4 * t),
            syllables=tuple(range(MIN_SYLLABLES, top + 1)),
            rarity=round(last.rarity + (1 - last.rarity) * t, 4),
            overlap=round(last.overlap + (1 - last.overlap) * t, 4),
            herrings=last.herrings + round(4 * t),
            hint=hint,
        )

    def windows(self, level: int) -> dict[int, tuple[Entry, ...]]:
        """Per syllable count, the level's rarity window: a slice of that count's Zipf ranking."""
        return _windows(self.params(level))

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one puzzle: choose words, build the tile bank with herrings, render clues."""
        p = self.params(level)
        check_index(self.name, seed, index)
        rng = make_rng(self.name, level, seed, index)
        windows = self.windows(level)
        chosen: list[Entry] = []
        while len(chosen) < p.words:
            left = [e for e in windows[rng.choice(p.syllables)] if e not in chosen]
            used = {s for e in chosen for s in e.syllables}
            sharing = [e for e in left if used & set(e.syllables)]
            # overlap axis: prefer words whose tiles collide with tiles already on the board
            pick_from = sharing if sharing and rng.random() < p.overlap else left
            chosen.append(rng.choice(pick_from))
        tiles = [s for e in chosen for s in e.syllables]
        # herrings come from the whole lexicon, so one may duplicate a real tile: "similar tiles"
        tiles += rng.sample(_all_syllables(), p.herrings)
        lines = [self._instruction(p.herrings), "tiles: " + " ".join(sorted(tiles))]
        lines += [f"{i}. {e.clue}{_hint(e, p.hint)}" for i, e in enumerate(chosen, 1)]
        answer = "[" + ",".join(_answer_object(e) for e in chosen) + "]"
        tags = {"primitive": "seq_transform", "operation": "syllacrostic", "signal": f"hint-{p.hint}"}
        return SkillItem(self.name, level, seed, index, "\n".join(lines), answer, tags=tags)

    def score(self, item: SkillItem, output: str) -> Score:
        """JSON parses; each word and its syllables match; non-herring tiles used exactly once."""
        ref = {d["word"]: d["syllables"] for d in json.loads(item.answer)}
        entries = _parse_entries(output)
        if entries is None:
            return Score(False, 0.0, {"error": "no JSON list of objects", "words": len(ref)})
        right: set[str] = set()
        wrong: list[str] = []
        for word, syllables in entries:
            if word in ref and syllables == ref[word] and word not in right:
                right.add(word)
            else:
                wrong.append(word)
        used = Counter(s for _, syllables in entries for s in syllables)
        tiles_ok = used == Counter(s for syllables in ref.values() for s in syllables)
        partial = len(right) / len(ref)
        correct = len(right) == len(ref) and not wrong and tiles_ok
        detail = {"words_right": len(right), "words": len(ref), "wrong": wrong, "tiles_ok": tiles_ok}
        return Score(correct, partial, detail)

    def distinct_prompts(self, level: int) -> int | None:
        """Always None: even L1 chooses 4 of dozens of words in order, far beyond 10**6."""
        check_level(self.name, level, self.max_level)
        return None

    def facts(self, item: SkillItem) -> str:
        """The answer words, sorted and comma-joined: clue order, hints and herrings are phrasing."""
        return ",".join(sorted(d["word"] for d in json.loads(item.answer)))

    def longest(self, level: int) -> tuple[int, int]:
        """Upper bound: the fixed lines plus, for tiles, clue lines and answer objects, the sum of the
        `words` largest per-word lengths over the level's windows (the words of a puzzle are distinct)."""
        p = self.params(level)
        window = [e for entries in self.windows(level).values() for e in entries]

        def top(lengths: list[int]) -> int:
            return sum(sorted(lengths, reverse=True)[: p.words])

        instruction = len(self._instruction(p.herrings))
        longest_syllable = max(map(len, _all_syllables()))
        # each word adds its letters and one separator per tile; herrings add a tile each
        tiles = len("tiles: ") + top([len(e.word) + len(e.syllables) for e in window])
        tiles += p.herrings * (longest_syllable + 1) - 1
        numbering = sum(len(f"{i}. ") for i in range(1, p.words + 1))
        clues = numbering + top([len(e.clue) + len(_hint(e, p.hint)) for e in window])
        prompt = instruction + 1 + tiles + 1 + clues + p.words - 1
        answer = 2 + top([len(_answer_object(e)) for e in window]) + p.words - 1
        return prompt, answer

    @staticmethod
    def _instruction(herrings: int) -> str:
        return (
            "sy: rebuild each clued word from the tiles; use every tile once"
            + (f" except {herrings} unused" if herrings else "")
            + '. Reply JSON [{"syllables":[..],"word":..}], any order.'
        )


@functools.lru_cache(maxsize=64)
def _windows(p: SyParams) -> dict[int, tuple[Entry, ...]]:
    """The rarity windows of a level's parameters (cached: every item of a level reuses them)."""
    out = {}
    for count in p.syllables:
        ranked = [e for e in lexicon() if len(e.syllables) == count]
        width = min(len(ranked), WINDOW)
        start = round(p.rarity * (len(ranked) - width))
        out[count] = tuple(ranked[start : start + width])
    return out


def _hint(entry: Entry, strength: str) -> str:
    """The bracketed hint after a clue at a hint strength ("" for none)."""
    letters, count = f"{len(entry.word)} letters", f"{len(entry.syllables)} syllables"
    return {
        "full": f" [{entry.word[0]}, {letters}, {count}]",
        "letter": f" [{entry.word[0]}, {letters}]",
        "length": f" [{letters}]",
        "syllables": f" [{count}]",
        "none": "",
    }[strength]


def _answer_object(entry: Entry) -> str:
    """One word's compact JSON object in the reference answer: syllables first, then the word."""
    return json.dumps({"syllables": list(entry.syllables), "word": entry.word}, separators=(",", ":"))


def _parse_entries(output: str) -> list[tuple[str, list[str]]] | None:
    """(word, syllables) pairs from a model's output, or None when it holds no JSON list."""
    text = output.strip()
    start, stop = text.find("["), text.rfind("]")
    if start < 0 or stop < start:
        return None
    try:
        data: Any = json.loads(text[start : stop + 1])
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    entries = []
    for obj in data:
        if not isinstance(obj, dict):
            entries.append(("", []))
            continue
        word = obj.get("word")
        syllables = obj.get("syllables")
        ok = (
            isinstance(word, str)
            and isinstance(syllables, list)
            and all(isinstance(s, str) for s in syllables)
        )
        entries.append((word.strip().lower(), [s.strip().lower() for s in syllables]) if ok else ("", []))
    return entries
