"""SY: syllacrostic puzzles over a shipped clue lexicon, 50 levels.

A puzzle gives a sorted bank of syllable tiles and one clue per answer word. The answer is a JSON list
of {"syllables": [...], "word": ...} objects in clue order - the syllables come first, so the answer
assembles the tiles before it commits to the word; ANY ORDER of objects is accepted. Every tile is
used exactly once except the stated number of unused red herrings. Tiles are real syllables: CMUdict
counts them and an orthographic split cuts the spelling (see skills/syllables.py).

Levels degrade the signal along the reference's six axes; levels 1-10 are the reference's own
level table (its configs/skills/sy.yaml), axis by axis, and levels 11-50 extrapolate from it:
- words: puzzle size, a range drawn per puzzle (4 at L1, 9-10 at L10, 12-13 at L50);
- syllables: the counts a word may have (2-3 at L1, 4-6 from L8); a count is drawn, then a word;
- zipf: the target Zipf frequency (5.5 at L1, 2.0 at L10); each count draws from the WINDOW words
  whose frequency is nearest the target, so the rarest words are reached once the target passes them;
- overlap: the probability that the next word shares a tile with one already on the board (0 to 0.8
  at L10, 1.0 at L50);
- herrings: unused tiles in the bank, a range drawn per puzzle (0 to 5-6 at L10, 9-10 at L50);
- hints: the hint types a clue may carry (one drawn per clue). The reference grows its set from
  definitions and synonyms towards weak types (categories, ..., "starts with X") and "any (may be
  minimal)" at L10; here every clue is a definition and the bracket after it runs the same way, from
  first letter + length + syllable count down to nothing. From L11 the strongest types retire.
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
# Hint types, strongest first: what the bracket after a clue gives away.
HINTS = ("full", "letter", "ends", "length", "syllables", "initial", "final", "none")
# Each syllable count draws from this many words nearest the level's target Zipf frequency: at L1
# (target 5.5) the 2-syllable window spans Zipf 5.32-5.70 (mean 5.47), the 3-syllable 4.87-5.66.
# It exceeds the largest puzzle (13 words), so a puzzle never runs out of candidates.
WINDOW = 30


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

    words: tuple[int, int]  # puzzle size, lowest and highest
    syllables: tuple[int, ...]  # the syllable counts a word may have
    zipf: float  # target Zipf frequency of the words
    overlap: float  # probability that the next word shares a tile with the board
    herrings: tuple[int, int]  # unused tiles, lowest and highest
    hints: tuple[str, ...]  # hint types a clue may carry


# The reference's levels 1-10 (configs/skills/sy.yaml, "signal degradation model"): words, syllables,
# Zipf, overlap % and red herrings as it gives them; its hint column adds a weaker type at each of
# L4-L10, and so does this one.
REFERENCE_LEVELS: tuple[SyParams, ...] = (
    SyParams((4, 4), (2, 3), 5.5, 0.0, (0, 0), HINTS[:1]),
    SyParams((4, 5), (2, 3), 5.0, 0.0, (0, 0), HINTS[:1]),
    SyParams((5, 5), (2, 3, 4), 4.5, 0.1, (0, 0), HINTS[:1]),
    SyParams((5, 6), (3, 4), 4.0, 0.2, (0, 1), HINTS[:2]),
    SyParams((6, 6), (3, 4, 5), 3.5, 0.3, (1, 2), HINTS[:3]),
    SyParams((6, 7), (3, 4, 5), 3.0, 0.4, (1, 2), HINTS[:4]),
    SyParams((7, 7), (4, 5), 2.8, 0.5, (2, 3), HINTS[:5]),
    SyParams((7, 8), (4, 5, 6), 2.5, 0.6, (3, 4), HINTS[:6]),
    SyParams((8, 9), (4, 5, 6), 2.5, 0.7, (4, 5), HINTS[:7]),
    SyParams((9, 10), (4, 5, 6), 2.0, 0.8, (5, 6), HINTS),
)


class SySkill:
    """Syllacrostic puzzles; see the module docstring for the level design."""

    name = "sy"
    version = "2"
    max_level = 50

    def params(self, level: int) -> SyParams:
        """Difficulty axes at a level: the reference's table to L10, then extrapolated to L50."""
        check_level(self.name, level, self.max_level)
        if level <= len(REFERENCE_LEVELS):
            return REFERENCE_LEVELS[level - 1]
        last = REFERENCE_LEVELS[-1]
        t = (level - len(REFERENCE_LEVELS)) / (self.max_level - len(REFERENCE_LEVELS))  # (0, 1]
        more_words, more_herrings = round(3 * t), round(4 * t)
        return SyParams(
            words=(last.words[0] + more_words, last.words[1] + more_words),
            syllables=last.syllables,
            zipf=round(last.zipf - 0.5 * t, 4),
            overlap=round(last.overlap + (1 - last.overlap) * t, 4),
            herrings=(last.herrings[0] + more_herrings, last.herrings[1] + more_herrings),
            hints=HINTS[round((len(HINTS) - 2) * t) :],  # the strongest retire; "final"/"none" stay
        )

    def windows(self, level: int) -> dict[int, tuple[Entry, ...]]:
        """Per syllable count, the level's window: the WINDOW words nearest its target Zipf frequency."""
        return _windows(self.params(level))

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one puzzle: choose words, build the tile bank with herrings, render clues."""
        p = self.params(level)
        check_index(self.name, seed, index)
        rng = make_rng(self.name, level, seed, index)
        windows = self.windows(level)
        chosen: list[Entry] = []
        for _ in range(rng.randint(*p.words)):
            left = [e for e in windows[rng.choice(p.syllables)] if e not in chosen]
            used = {s for e in chosen for s in e.syllables}
            sharing = [e for e in left if used & set(e.syllables)]
            # overlap axis: prefer words whose tiles collide with tiles already on the board
            pick_from = sharing if sharing and rng.random() < p.overlap else left
            chosen.append(rng.choice(pick_from))
        herrings = rng.randint(*p.herrings)
        tiles = [s for e in chosen for s in e.syllables]
        # herrings come from the whole lexicon, so one may duplicate a real tile: "similar tiles"
        tiles += rng.sample(_all_syllables(), herrings)
        hints = [rng.choice(p.hints) for _ in chosen]
        lines = [self._instruction(herrings), "tiles: " + " ".join(sorted(tiles))]
        lines += [
            f"{i}. {e.clue}{_hint(e, h)}" for i, (e, h) in enumerate(zip(chosen, hints, strict=True), 1)
        ]
        answer = "[" + ",".join(_answer_object(e) for e in chosen) + "]"
        weakest = max(hints, key=HINTS.index)
        tags = {"primitive": "seq_transform", "operation": "syllacrostic", "signal": f"hint-{weakest}"}
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
        largest per-word lengths over the level's windows, for the largest puzzle (its words are
        distinct), with the most herrings and each clue's longest hint."""
        p = self.params(level)
        window = [e for entries in self.windows(level).values() for e in entries]
        most_words, most_herrings = p.words[1], p.herrings[1]

        def top(lengths: list[int]) -> int:
            return sum(sorted(lengths, reverse=True)[:most_words])

        instruction = len(self._instruction(most_herrings))
        longest_syllable = max(map(len, _all_syllables()))
        # each word adds its letters and one separator per tile; herrings add a tile each
        tiles = len("tiles: ") + top([len(e.word) + len(e.syllables) for e in window])
        tiles += most_herrings * (longest_syllable + 1) - 1
        numbering = sum(len(f"{i}. ") for i in range(1, most_words + 1))
        clues = numbering + top([len(e.clue) + max(len(_hint(e, h)) for h in p.hints) for e in window])
        prompt = instruction + 1 + tiles + 1 + clues + most_words - 1
        answer = 2 + top([len(_answer_object(e)) for e in window]) + most_words - 1
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
    """Per syllable count, the WINDOW words nearest the target Zipf frequency (cached per level)."""
    out = {}
    for count in p.syllables:
        words = [e for e in lexicon() if len(e.syllables) == count]
        out[count] = tuple(sorted(words, key=lambda e: (abs(e.zipf - p.zipf), e.word))[:WINDOW])
    return out


def _hint(entry: Entry, kind: str) -> str:
    """The bracketed hint of one type after a clue ("" for none)."""
    word = entry.word
    letters, count = f"{len(word)} letters", f"{len(entry.syllables)} syllables"
    return {
        "full": f" [{word[0]}, {letters}, {count}]",
        "letter": f" [{word[0]}, {letters}]",
        "ends": f" [{word[0]}...{word[-1]}]",
        "length": f" [{letters}]",
        "syllables": f" [{count}]",
        "initial": f" [starts with {word[0]}]",
        "final": f" [ends with {word[-1]}]",
        "none": "",
    }[kind]


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
