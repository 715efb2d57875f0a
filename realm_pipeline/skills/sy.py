"""SY v4: the reference's syllacrostic puzzle, clued from WordNet 3.0, 50 levels.

A puzzle is the reference's prompt (its curriculum eval loop's `format_puzzle_prompt`, "matching the
actual training data format"): its rules, one numbered word slot per answer word with a blank per
syllable and the clue after an em dash, and the shuffled, comma-separated syllable bank. The texts of the
clue kinds other than definitions ("synonym: X", "a kind of X", ...) are realm's wording: the reference
names its hint types but never shows them. The answer is the
reference's contract (its configs/skills/sy.yaml, `output_schema`): a JSON object
`{"solutions": [{"ans_num", "syllables", "answer"}], "inventory_check": {...}}`, one solution per clue
in clue order (ans_num 1, 2, ...), syllables before the word, answers UPPERCASE, every tile used
exactly once except the stated red herrings. The inventory_check holds the bank's size (total_tiles),
each tile's count in the bank (usage) and in the solutions (used), the herrings (unused_tiles) and a
status line. Scoring is exact: each solution at its clue's place with its ans_num, syllables and
UPPERCASE answer (the reference's rule: a lowercase answer is wrong), and the inventory's counts; the
status line is free prose, and text around the JSON object is ignored. Tiles are real syllables:
CMUdict counts them and an orthographic split cuts the spelling (skills/syllables.py); a word it
cannot split is never drawn.

Levels 1-10 are the reference's level table on its six axes; 11-50 extrapolate:
- words: puzzle size, a range drawn per puzzle (4 at L1, 9-10 at L10 and beyond);
- syllables: the counts a word may have (2-3 at L1, 4-6 from L8);
- zipf: the target Zipf frequency (5.5 at L1, 2.0 at L10, 1.75 at L50); a level draws from every
  lexicon word with its syllable count whose frequency lies within the level's band of it (1.0; 1.4
  at L1 and 1.5 from L10, where English has too few such words for 10x the eval words; ZIPF_FLOOR);
- overlap: the reference's cap on the overlap ratio (word tiles - distinct tiles) / word tiles
  (0 at L1-2, 0.8 at L10, 0.9 at L50); below the cap a word sharing a tile is preferred with that
  probability, so the ratio approaches the cap;
- herrings: unused tiles in the bank, a range drawn per puzzle (0 to 5-6 at L10, 8-9 at L50);
- clue kinds: what a clue may be, one drawn per clue, weakening along the reference's hint column:
  definitions and synonyms (L1), + categories (L4), + examples (L5), + hypernyms/hyponyms (L6),
  + antonyms and domains (L7), + morphology (L8), + etymology (L9), + minimal (L10: "starts with X";
  the slot's blanks give the syllable count). From L11 the strongest kinds retire. A drawn word that has no clue of the
  drawn kind is put back and another word drawn (after DRAWS_PER_SLOT misses, the slot takes a kind
  every word has: its definition, or the minimal clue once definitions retire).
Clues come from WordNet (skills/lexicon.py): glosses, synonyms, lexicographer categories, gloss
examples, hypernyms, hyponyms, topic domains; antonyms and derivationally related forms follow WordNet's
lexical pointers (from the word itself to its one target word, not between synsets); etymologies
from the `ety` package's offline data (read as a file, not imported: ety's import needs setuptools).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from realm_pipeline.skills.base import Score, SkillItem
from realm_pipeline.skills.drills import check_index, check_level, make_rng
from realm_pipeline.skills.lexicon import related_lemmas
from realm_pipeline.skills.syllables import pronunciations, syllabify

MIN_SYLLABLES, MAX_SYLLABLES = 2, 6
# Clue kinds, strongest first (the reference's hint_types: strong, moderate, weak).
KINDS = (
    "definition",
    "synonym",
    "category",
    "example",
    "hypernym",
    "hyponym",
    "antonym",
    "domain",
    "morphology",
    "etymology",
    "minimal",
)
# A level draws words whose Zipf frequency lies within its band (SyParams.band) of the target; words
# wordfreq does not know (Zipf 0) or barely knows (below the floor) are never drawn.
ZIPF_FLOOR = 1.0
MAX_CLUE = 80  # longer glosses and examples are skipped: every level must fit the hero's max_length
# Draws per slot for the drawn clue kind before the slot settles for a kind every word has.
DRAWS_PER_SLOT = 200
RED_HERRINGS = "red herrings"
# The reference's prompt (its curriculum eval loop renders "the actual training data format"): word
# slots with one blank per syllable, a clue after an em dash, then the shuffled, comma-separated bank.
SLOT_BLANK, CLUE_DASH = "___", " \u2014 "
# Every character SY writes beyond printable ASCII (the tiny tokenizer's alphabet).
SY_CHARACTERS = CLUE_DASH.strip()
# The reference's level names (sy.yaml level_progression); levels past 10 extrapolate its Master.
LEVEL_NAMES = (
    "Beginner", "Easy", "Novice", "Learning", "Intermediate",
    "Competent", "Proficient", "Advanced", "Expert", "Master",
)  # fmt: skip


class Entry(NamedTuple):
    """One lexicon word: its syllables and English Zipf frequency."""

    word: str
    syllables: tuple[str, ...]
    zipf: float


class SyParams(NamedTuple):
    """The six difficulty axes at one level."""

    words: tuple[int, int]  # puzzle size, lowest and highest
    syllables: tuple[int, ...]  # the syllable counts a word may have
    zipf: float  # target Zipf frequency of the words
    overlap: float  # cap on (word tiles - distinct tiles) / word tiles
    herrings: tuple[int, int]  # unused tiles, lowest and highest
    kinds: tuple[str, ...]  # clue kinds a clue may be
    # realm's, not the reference's: the Zipf half-width a level draws from, wide enough that its
    # training can draw at least 10x the words of its 50-item eval set (BENCHMARKS.md)
    band: float = 1.0


def _upto(last: str) -> tuple[str, ...]:
    return KINDS[: KINDS.index(last) + 1]


# The reference's levels 1-10 (configs/skills/sy.yaml `level_progression`), axis by axis.
REFERENCE_LEVELS: tuple[SyParams, ...] = (
    # L1: English has few common 2-3 syllable words; +-1.4 gives 10x the eval words (mean Zipf 4.6)
    SyParams((4, 4), (2, 3), 5.5, 0.0, (0, 0), _upto("synonym"), band=1.4),
    SyParams((4, 5), (2, 3), 5.0, 0.0, (0, 0), _upto("synonym")),
    SyParams((5, 5), (2, 3, 4), 4.5, 0.1, (0, 0), _upto("synonym")),  # "+ slight overlap"
    SyParams((5, 6), (3, 4), 4.0, 0.2, (0, 1), _upto("category")),
    SyParams((6, 6), (3, 4, 5), 3.5, 0.3, (1, 2), _upto("example")),
    SyParams((6, 7), (3, 4, 5), 3.0, 0.4, (1, 2), _upto("hyponym")),
    SyParams((7, 7), (4, 5), 2.8, 0.5, (2, 3), _upto("domain")),
    SyParams((7, 8), (4, 5, 6), 2.5, 0.6, (3, 4), _upto("morphology")),
    SyParams((8, 9), (4, 5, 6), 2.5, 0.7, (4, 5), _upto("etymology")),
    # L10: few rare 4-6 syllable words that wordfreq knows (the floor cuts below); +-1.5 gives 10x
    SyParams((9, 10), (4, 5, 6), 2.0, 0.8, (5, 6), KINDS, band=1.5),
)


@functools.lru_cache(maxsize=1)
def lexicon() -> tuple[Entry, ...]:
    """WordNet's single-word lowercase lemmas that CMUdict + the orthographic split cut into 2-6
    syllables and wordfreq knows (Zipf >= ZIPF_FLOOR), commonest first."""
    import wordfreq  # imported lazily: only SY needs it

    from realm_pipeline.skills.lexicon import senses, synsets

    table = synsets()
    # index lemmas are lowercased: a word is kept only where some sense spells it so (no proper nouns)
    words = [
        w
        for w, keys in senses().items()
        if w.isascii() and w.isalpha() and w.islower() and any(w in table[k].lemmas for k in keys)
    ]
    phones = pronunciations(frozenset(words))
    entries = []
    for word in words:
        syllables = syllabify(word, phones[word]) if word in phones else None
        if syllables and MIN_SYLLABLES <= len(syllables) <= MAX_SYLLABLES:
            zipf = wordfreq.zipf_frequency(word, "en")
            if zipf >= ZIPF_FLOOR:
                entries.append(Entry(word, syllables, zipf))
    return tuple(sorted(entries, key=lambda e: (-e.zipf, e.word)))


@functools.lru_cache(maxsize=1)
def _all_syllables() -> tuple[str, ...]:
    """Every distinct syllable in the lexicon, sorted (a stable population for herring draws)."""
    return tuple(sorted({s for e in lexicon() for s in e.syllables}))


@functools.lru_cache(maxsize=1)
def _by_word() -> dict[str, Entry]:
    return {e.word: e for e in lexicon()}


@functools.lru_cache(maxsize=1)
def _etymologies() -> dict[str, list[dict[str, str]]]:
    """ety's English etymologies {word: [{root: language code}]}, read from its data file."""
    spec = importlib.util.find_spec("ety")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("SY etymology clues need the `ety` package: pip install ety")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "etymologies.json"
    return json.loads(path.read_text("utf-8"))["eng"]


@functools.lru_cache(maxsize=1)
def _languages() -> dict[str, str]:
    spec = importlib.util.find_spec("ety")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "iso-639-3.json"
    return json.loads(path.read_text("utf-8"))


def _clean(text: str, word: str, stem_ok: bool = False) -> str | None:
    """The clue text if it is short, plain ASCII and does not give the word away: the word never
    appears in it (spaces and hyphens ignored), nor, unless `stem_ok` (morphology, etymology), a word
    sharing its first min(6, len - 1) letters ("orthodox" for ORTHODOXY)."""
    text = " ".join(text.split())
    if not text or len(text) > MAX_CLUE or not text.isascii():
        return None
    low = text.lower()
    if word in low or word in re.sub(r"[\s-]", "", low):
        return None
    stem = word[: min(6, len(word) - 1)]
    if not stem_ok and any(token.startswith(stem) for token in re.findall(r"[a-z]+", low)):
        return None
    return text


def _other_lemma(lemmas: tuple[str, ...], word: str) -> str | None:
    """The first lemma that is neither the word nor contains it (nor is contained in it)."""
    for lemma in lemmas:
        low = lemma.lower()
        if word not in low and low not in word and lemma.isascii():
            return lemma
    return None


@functools.lru_cache(maxsize=200_000)
def clue(word: str, kind: str) -> str | None:
    """A clue of `kind` for `word` from its commonest sense of each part of speech (None: it has none)."""
    from realm_pipeline.skills.lexicon import senses as sense_index
    from realm_pipeline.skills.lexicon import synsets

    if kind == "minimal":  # the reference's "starts with X"; the slot's blanks give the syllable count
        return f"starts with {word[0].upper()}"
    if kind == "etymology":
        for origin in _etymologies().get(word, []):
            for root, lang in origin.items():
                name = _languages().get(lang, "")
                text = (
                    _clean(f'from {name} "{root}"', word, stem_ok=True)
                    if name and root.lower() != word
                    else None
                )
                if text and not root.startswith("-") and not root.endswith("-") and root.lower() not in word:
                    return text
        return None
    table = sense_index()
    synset_table = synsets()
    firsts: dict[str, tuple[str, str]] = {}
    for key in table.get(word, ()):
        firsts.setdefault(key[0], key)
    for key in firsts.values():
        sense = synset_table[key]
        text = _sense_clue(word, kind, sense, synset_table)
        if text:
            return text
    return None


# Clue kinds read from one WordNet pointer: (pointer kind, clue wording).
POINTER_CLUES = {
    "hypernym": ("hypernym", "a kind of {}"),
    "hyponym": ("hyponym", "includes {}"),
    "antonym": ("antonym", "opposite of {}"),
    "domain": ("domain", "a term of {}"),
    "morphology": ("related", "related form: {}"),
}


def _sense_clue(word: str, kind: str, sense: Any, synset_table: dict) -> str | None:
    def targets(pointer: str) -> list[Any]:
        keys = [(p.pos, p.offset) for p in sense.pointers if p.kind == pointer]
        return [synset_table[key] for key in keys if key in synset_table]

    if kind == "definition":
        return _clean(sense.definition, word)
    if kind == "synonym":
        other = _other_lemma(tuple(x for x in sense.lemmas if x.lower() != word), word)
        return _clean(f"synonym: {other}", word) if other else None
    if kind == "category":
        if not sense.category or sense.category.split(".")[0] not in ("noun", "verb"):
            return None
        pos, name = sense.category.split(".")
        return None if name == "Tops" else _clean(f"category: {name} ({pos})", word)
    if kind == "example":
        pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
        for example in sense.examples:
            if pattern.search(example):
                text = _clean(f'as in "{pattern.sub("___", example)}"', word)
                if text:
                    return text
        return None
    pointer, template = POINTER_CLUES[kind]
    if kind in ("antonym", "morphology"):
        # lexical pointers: the word's own antonym or derived form, not another lemma's of its synset
        candidates = [(lemma,) for lemma in related_lemmas(sense, word, pointer, synset_table)]
    else:
        candidates = [target.lemmas for target in targets(pointer)]
    for lemmas in candidates:
        other = _other_lemma(lemmas, word)
        text = _clean(template.format(other), word, stem_ok=kind == "morphology") if other else None
        if text:
            return text
    return None


class SySkill:
    """Syllacrostic puzzles in the reference's format; see the module docstring for the level design."""

    name = "sy"
    version = "4"
    max_level = 50

    def params(self, level: int) -> SyParams:
        """Difficulty axes at a level: the reference's table to L10, then extrapolated to L50."""
        check_level(self.name, level, self.max_level)
        if level <= len(REFERENCE_LEVELS):
            return REFERENCE_LEVELS[level - 1]
        last = REFERENCE_LEVELS[-1]
        t = (level - len(REFERENCE_LEVELS)) / (self.max_level - len(REFERENCE_LEVELS))  # (0, 1]
        more_herrings = round(3 * t)
        # the strongest kinds retire one by one; the weak ones (from "antonym") always stay
        retired = round(KINDS.index("antonym") * t)
        return SyParams(
            words=last.words,  # puzzle size stays: every level must fit the hero's max_length
            syllables=last.syllables,
            zipf=round(last.zipf - 0.25 * t, 4),
            overlap=round(last.overlap + 0.1 * t, 4),
            herrings=(last.herrings[0] + more_herrings, last.herrings[1] + more_herrings),
            kinds=KINDS[retired:],
            band=last.band,
        )

    def pool(self, level: int) -> dict[int, tuple[Entry, ...]]:
        """Per syllable count, every word the level can draw: its Zipf band (cached per level)."""
        return _pool(self.params(level))

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one puzzle: draw a clue kind and a word with such a clue per slot, under the overlap cap."""
        p = self.params(level)
        check_index(self.name, seed, index)
        rng = make_rng(self.name, level, seed, index)
        pool = self.pool(level)
        chosen: list[tuple[Entry, str, str]] = []  # (entry, kind, clue)
        for _ in range(rng.randint(*p.words)):
            kind = rng.choice(p.kinds)
            count = rng.choice(p.syllables)
            board = Counter(s for e, _, _ in chosen for s in e.syllables)
            words = {e.word for e, _, _ in chosen}
            share = rng.random() < p.overlap
            # the drawn kind first; then a kind every word has (definition to L10, minimal from L10)
            universal = "definition" if "definition" in p.kinds else "minimal"
            for attempt in range(2 * DRAWS_PER_SLOT):
                fallback = attempt >= DRAWS_PER_SLOT
                entry = rng.choice(pool[count])
                # the overlap axis: prefer a word sharing a tile with the board
                if (
                    share
                    and board
                    and attempt < DRAWS_PER_SLOT // 2
                    and not board.keys() & set(entry.syllables)
                ):
                    continue
                if entry.word in words or not _fits(board, entry, p.overlap):
                    continue
                text = clue(entry.word, universal if fallback else kind)
                if text:
                    chosen.append((entry, universal if fallback else kind, text))
                    break
            else:
                raise RuntimeError(
                    f"sy L{level}: no word fits slot {len(chosen) + 1} (seed {seed}, index {index})"
                )
        herrings = rng.sample(_all_syllables(), rng.randint(*p.herrings))
        bank = [s for e, _, _ in chosen for s in e.syllables] + herrings
        rng.shuffle(bank)
        slots = [(len(e.syllables), text) for e, _, text in chosen]
        prompt = _prompt(level, slots, bank, len(herrings))
        answer = _answer([e for e, _, _ in chosen], sorted(bank), herrings)
        weakest = max((k for _, k, _ in chosen), key=KINDS.index)
        tags = {"primitive": "seq_transform", "operation": "syllacrostic", "signal": f"clue-{weakest}"}
        return SkillItem(self.name, level, seed, index, prompt, answer, tags=tags)

    def score(self, item: SkillItem, output: str) -> Score:
        """Exact, in the reference's contract: solution k has ans_num k, the clue's syllables and the
        UPPERCASE answer; the inventory_check's counts are the bank's. `partial`: solutions right."""
        ref = json.loads(item.answer)
        expected = ref["solutions"]
        data = _parse_object(output)
        if data is None or not isinstance(data.get("solutions"), list):
            return Score(
                False, 0.0, {"error": "no JSON object with a solutions list", "words": len(expected)}
            )
        got = data["solutions"]
        right = sum(1 for k, want in enumerate(expected) if k < len(got) and _same_solution(got[k], want))
        inventory_ok = _inventory_ok(data.get("inventory_check"), ref["inventory_check"])
        correct = right == len(expected) == len(got) and inventory_ok
        detail = {
            "words_right": right,
            "words": len(expected),
            "given": len(got),
            "inventory_ok": inventory_ok,
        }
        return Score(correct, right / len(expected), detail)

    def score_reference(self, item: SkillItem, output: str) -> Score:
        """The reference's rule (its eval loop's check_answer): the set of answer words equals the set of
        expected words, case and order aside; inventory and syllables are not checked. Words come from
        the JSON's solutions (`answer`), else, as its last resort, from the UPPERCASE words of 4+ letters."""
        expected = {s["answer"].lower() for s in json.loads(item.answer)["solutions"]}
        data = _parse_object(output)
        solutions = data.get("solutions") if data is not None else None
        words = {
            str(s["answer"]).lower() for s in solutions or [] if isinstance(s, dict) and "answer" in s
        } or {w.lower() for w in re.findall(r"\b([A-Z]{4,})\b", output)}
        right = len(expected & words)
        detail = {"mode": "reference", "words_right": right, "words": len(expected)}
        return Score(words == expected, right / len(expected), detail)

    def distinct_prompts(self, level: int) -> int | None:
        """Always None: even L1 chooses 4 of hundreds of words in order, far beyond 10**6."""
        check_level(self.name, level, self.max_level)
        return None

    def facts(self, item: SkillItem) -> str:
        """The answer words, sorted and comma-joined: clue order, clue kinds and herrings are phrasing."""
        return ",".join(sorted(s["answer"] for s in json.loads(item.answer)["solutions"]))

    def vocabulary(self, level: int, eval_count: int) -> tuple[int, int]:
        """(distinct words of the level's eval set of `eval_count` items, words its training can draw)."""
        from realm_pipeline.skills.heldout import eval_items  # lazily: heldout is the caller's layer

        items = eval_items(self, level, eval_count)
        eval_words = {s["answer"] for i in items for s in json.loads(i.answer)["solutions"]}
        return len(eval_words), sum(len(v) for v in self.pool(level).values())

    def longest(self, level: int) -> tuple[int, int]:
        """Upper bound: the prompt's frame plus, for the largest puzzle with the most herrings, the sum of
        the largest per-word lengths over the level's pool (slots, bank, solutions, inventory)."""
        p = self.params(level)
        words = [e for entries in self.pool(level).values() for e in entries]
        most_words, most_herrings = p.words[1], p.herrings[1]
        most_tiles = most_words * max(p.syllables) + most_herrings
        count_digits = len(str(most_tiles))

        def top(lengths: list[int]) -> int:
            return sum(sorted(lengths, reverse=True)[:most_words])

        longest_syllable = max(map(len, _all_syllables()))
        frame = len(_prompt(level, [], [], most_herrings, words=most_words))
        numbering = sum(len(f"{i}. ") for i in range(1, most_words + 1))
        blanks = len(" ".join([SLOT_BLANK] * max(p.syllables)))
        slots = numbering + most_words * (blanks + len(CLUE_DASH) + MAX_CLUE + 1)
        bank = top([len(e.word) + 2 * len(e.syllables) for e in words]) + most_herrings * (
            longest_syllable + 2
        )
        prompt = frame + slots + bank
        # one inventory key per tile at most: `"tile":N,` in usage and in used, `"tile",` in unused
        per_tile = [len(e.word) + len(e.syllables) * (4 + count_digits) for e in words]
        herring_key = longest_syllable + 4 + count_digits
        # herrings: a usage key each and an unused_tiles entry each
        inventory = 2 * top(per_tile) + most_herrings * (herring_key + longest_syllable + 3)
        inventory += len(json.dumps(_inventory_shell(most_tiles, most_herrings), separators=(",", ":")))
        solutions = top([len(_solution(most_words, e)) + 1 for e in words])
        return prompt, solutions + inventory + len('{"solutions":[],"inventory_check":}')

    def longest_bytes(self, level: int) -> tuple[int, int]:
        """`longest` in UTF-8 bytes: every character SY writes is ASCII but the slots' em dashes."""
        prompt, answer = self.longest(level)
        wide = len(SY_CHARACTERS.encode("utf-8")) - 1
        return prompt + self.params(level).words[1] * wide, answer


def _prompt(
    level: int, slots: list[tuple[int, str]], bank: list[str], herrings: int, words: int | None = None
) -> str:
    """The reference's puzzle prompt: its rules, one line of blanks (one per syllable) and a clue per
    word slot, the bank; `words` states another count (the length bound renders the frame alone)."""
    name = LEVEL_NAMES[min(level, len(LEVEL_NAMES)) - 1]
    unused = f", except {herrings} {RED_HERRINGS} that stay unused" if herrings else ""
    lines = [
        "SYLLO Puzzle",
        "You must recover every hidden word by assigning syllable tiles to definitions.",
        f"Difficulty: {name} (level {level}).",
        "Rules:",
        f"- {len(slots) if words is None else words} target words.",
        "- Each word lists its syllable count via blank slots.",
        f"- Use every tile exactly once{unused}.",
        "- Return your answers as JSON with keys `solutions` and `inventory_check`;"
        " answers UPPERCASE, in slot order.",
        "",
        "Word slots:",
    ]
    lines += [
        f"{i}. {' '.join([SLOT_BLANK] * count)}{CLUE_DASH}{text}" for i, (count, text) in enumerate(slots, 1)
    ]
    lines += ["", "Syllable bank: " + ", ".join(bank), "", "Return valid JSON:"]
    return "\n".join(lines)


@functools.lru_cache(maxsize=64)
def _pool(p: SyParams) -> dict[int, tuple[Entry, ...]]:
    low, high = max(ZIPF_FLOOR, p.zipf - p.band), p.zipf + p.band
    return {
        count: tuple(e for e in lexicon() if len(e.syllables) == count and low <= e.zipf <= high)
        for count in p.syllables
    }


def _fits(board: Counter, entry: Entry, cap: float) -> bool:
    """Whether the board plus the word keeps the overlap ratio (tiles - distinct) / tiles within cap."""
    total = board.total() + len(entry.syllables)
    distinct = len(board.keys() | set(entry.syllables))
    return (total - distinct) / total <= cap + 1e-9


def overlap_ratio(solutions: list[dict[str, Any]]) -> float:
    """The reference's overlap: (word tiles - distinct word tiles) / word tiles."""
    tiles = [s for solution in solutions for s in solution["syllables"]]
    return (len(tiles) - len(set(tiles))) / len(tiles)


def _solution(number: int, entry: Entry) -> str:
    return json.dumps(
        {"ans_num": number, "syllables": list(entry.syllables), "answer": entry.word.upper()},
        separators=(",", ":"),
    )


def _inventory_shell(total: int, herrings: int) -> dict[str, Any]:
    status = "All syllable tiles consumed exactly once."
    if herrings:
        status = f"All syllable tiles consumed exactly once except {herrings} {RED_HERRINGS}."
    return {"total_tiles": total, "usage": {}, "used": {}, "unused_tiles": [], "status": status}


def _answer(entries: list[Entry], tiles: list[str], herrings: list[str]) -> str:
    """The reference answer: solutions in clue order and the inventory check of the bank."""
    inventory = _inventory_shell(len(tiles), len(herrings))
    inventory["usage"] = dict(sorted(Counter(tiles).items()))
    inventory["used"] = dict(sorted(Counter(s for e in entries for s in e.syllables).items()))
    inventory["unused_tiles"] = sorted(herrings)
    solutions = ",".join(_solution(k, e) for k, e in enumerate(entries, 1))
    return (
        '{"solutions":['
        + solutions
        + '],"inventory_check":'
        + json.dumps(inventory, separators=(",", ":"))
        + "}"
    )


def _same_solution(got: Any, want: dict[str, Any]) -> bool:
    """ans_num, syllables and the UPPERCASE answer exactly as the reference has them (tiles are lowercase)."""
    return (
        isinstance(got, dict)
        and got.get("ans_num") == want["ans_num"]
        and type(got.get("ans_num")) is int
        and got.get("syllables") == want["syllables"]
        and got.get("answer") == want["answer"]
    )


def _inventory_ok(got: Any, want: dict[str, Any]) -> bool:
    """The counts agree with the bank (total, usage, used, unused); the status line is free prose."""
    if not isinstance(got, dict) or not isinstance(got.get("status"), str):
        return False
    unused = got.get("unused_tiles")
    return (
        got.get("total_tiles") == want["total_tiles"]
        and got.get("usage") == want["usage"]
        and got.get("used") == want["used"]
        and isinstance(unused, list)
        and sorted(map(str, unused)) == want["unused_tiles"]
    )


def _parse_object(output: str) -> dict[str, Any] | None:
    """The JSON object in a model's output (first "{" to last "}"), or None."""
    text = output.strip()
    start, stop = text.find("{"), text.rfind("}")
    if start < 0 or stop < start:
        return None
    try:
        data = json.loads(text[start : stop + 1])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
