"""SY: syllacrostic puzzles over a shipped clue lexicon, 50 levels.

A puzzle gives a sorted bank of syllable tiles and one clue per answer word. The answer is a JSON list
of {"word": ..., "syllables": [...]} objects, one per clue; ANY ORDER is accepted (the reference lists
them in clue order). Every tile is used exactly once except the stated number of unused red herrings.

Levels degrade the signal along six axes (t = (level-1)/49):
words 4 -> 10; syllables per word 2 (L1-10), 2-3 (L11-25), 2-4 (L26-50); rarity: a window sliding
down the lexicon's Zipf-frequency ranking; tile overlap: probability t that the next word shares a
syllable with one already chosen; red herrings 0 below L10, then 1 + (level-10)//10 (5 at L50);
hints: clue + first letter + length (L1-16), clue + length (L17-33), clue only (L34-50).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections import Counter
from typing import Any, NamedTuple

from realm_pipeline.skills.base import Score, SkillItem
from realm_pipeline.skills.drills import check_index, check_level, make_rng


class Entry(NamedTuple):
    """One lexicon word: its clue, pyphen syllables and English Zipf frequency."""

    word: str
    clue: str
    syllables: tuple[str, ...]
    zipf: float


@functools.lru_cache(maxsize=1)
def lexicon() -> tuple[Entry, ...]:
    """Clued words that pyphen (en_US) splits into 2-4 syllables rejoining to the word, commonest first."""
    import pyphen  # imported lazily: only SY needs it, and loading its dictionaries takes time
    import wordfreq

    text = importlib.resources.files("realm_pipeline.skills").joinpath("data/sy_clues.tsv").read_text("utf-8")
    dic = pyphen.Pyphen(lang="en_US")
    entries: dict[str, Entry] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        word, clue = line.split("\t", 1)
        word, clue = word.strip(), clue.strip()
        syllables = tuple(dic.inserted(word).split("-"))
        if not (word.isascii() and word.isalpha() and word.islower() and clue.isascii()):
            continue
        if "".join(syllables) != word or not 2 <= len(syllables) <= 4 or word in entries:
            continue
        entries[word] = Entry(word, clue, syllables, wordfreq.zipf_frequency(word, "en"))
    return tuple(sorted(entries.values(), key=lambda e: (-e.zipf, e.word)))


@functools.lru_cache(maxsize=1)
def _all_syllables() -> tuple[str, ...]:
    """Every distinct syllable in the lexicon, sorted (a stable population for herring draws)."""
    return tuple(sorted({s for e in lexicon() for s in e.syllables}))


class SyParams(NamedTuple):
    """The six difficulty axes at one level."""

    words: int
    syllable_counts: tuple[int, ...]
    window: tuple[int, int]  # per-syllable-set candidate ranking: [start, stop)
    overlap: float
    herrings: int
    hint: str  # "strong" | "medium" | "weak"


class SySkill:
    """Syllacrostic puzzles; see the module docstring for the level design."""

    name = "sy"
    version = "1"
    max_level = 50

    def params(self, level: int) -> SyParams:
        """Difficulty axes at a level."""
        check_level(self.name, level, self.max_level)
        t = (level - 1) / (self.max_level - 1)
        words = 4 + round(6 * t)
        counts = (2,) if level <= 10 else (2, 3) if level <= 25 else (2, 3, 4)
        pool = len(self._candidates(counts))
        width = min(pool, max(4 * words, pool // 3))
        start = round(t * (pool - width))
        herrings = 0 if level < 10 else 1 + (level - 10) // 10
        hint = "strong" if level <= 16 else "medium" if level <= 33 else "weak"
        return SyParams(words, counts, (start, start + width), t, herrings, hint)

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def _candidates(counts: tuple[int, ...]) -> tuple[Entry, ...]:
        return tuple(e for e in lexicon() if len(e.syllables) in counts)

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one puzzle: choose words, build the tile bank with herrings, render clues."""
        p = self.params(level)
        check_index(self.name, seed, index)
        rng = make_rng(self.name, level, seed, index)
        window = list(self._candidates(p.syllable_counts)[p.window[0] : p.window[1]])
        chosen: list[Entry] = []
        while len(chosen) < p.words:
            left = [e for e in window if e not in chosen]
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
        `words` largest per-word lengths in the level's window (the words of a puzzle are distinct)."""
        p = self.params(level)
        window = self._candidates(p.syllable_counts)[p.window[0] : p.window[1]]

        def top(lengths: list[int]) -> int:
            return sum(sorted(lengths, reverse=True)[: p.words])

        instruction = len(self._instruction(p.herrings))
        longest_syllable = max(map(len, _all_syllables()))
        most_tiles = p.words * max(p.syllable_counts) + p.herrings
        tiles = (
            len("tiles: ")
            + top([len(e.word) for e in window])
            + p.herrings * longest_syllable
            + most_tiles
            - 1
        )
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
            + '. Reply JSON [{"word":..,"syllables":[..]}], any order.'
        )


def _hint(entry: Entry, strength: str) -> str:
    """The bracketed hint after a clue at a hint strength ("" for clue only)."""
    if strength == "strong":
        return f" [{entry.word[0]}, {len(entry.word)} letters]"
    if strength == "medium":
        return f" [{len(entry.word)} letters]"
    return ""


def _answer_object(entry: Entry) -> str:
    """One word's compact JSON object in the reference answer."""
    return json.dumps({"word": entry.word, "syllables": list(entry.syllables)}, separators=(",", ":"))


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
