"""WordNet 3.0 read from Debian's `wordnet-base` files (data.* / index.*), parsed here.

The database format (wndb(5)): each data line is
`offset lex_filenum ss_type w_cnt word lex_id ... p_cnt {symbol offset pos source/target} [frames] | gloss`,
with w_cnt and lex_id in hex; each index line is `lemma pos synset_cnt p_cnt {symbol} sense_cnt
tagsense_cnt offset...`, offsets ordered by sense frequency. SY's clues (synonyms, hypernyms,
hyponyms, antonyms, domains, related forms) come from these pointers.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

WORDNET_DIR = Path(os.environ.get("REALM_WORDNET_DIR", "/usr/share/wordnet"))
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
# Pointer symbols SY uses, by what they give a clue.
POINTERS = {
    "@": "hypernym",
    "@i": "hypernym",
    "~": "hyponym",
    "~i": "hyponym",
    "!": "antonym",
    ";c": "domain",
    "+": "related",
    "&": "similar",
}


# The lexicographer files by number (lexnames(5)): a synset's broad category.
LEXNAMES = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)


class Pointer(NamedTuple):
    """One typed pointer of a synset. `source` and `target` are WordNet's word numbers (1-based lemma
    positions): 0 and 0 for a semantic pointer (synset to synset), else a lexical one from the source
    lemma to the target lemma only (antonyms and derivational links are lexical: "gain" in {gain,
    increase} is the opposite of "loss", not of "decrease")."""

    kind: str
    offset: str
    pos: str
    source: int = 0
    target: int = 0


class WordNetMissing(RuntimeError):
    """The WordNet database files are not installed."""


@dataclass(frozen=True)
class Synset:
    """One WordNet sense: its lemmas, gloss definition, example sentences and typed pointers."""

    offset: str
    pos: str
    lemmas: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]
    pointers: tuple[Pointer, ...]
    category: str = ""  # the lexicographer file (lexnames(5)), e.g. "noun.animal"


def _require(directory: Path) -> None:
    missing = [f"data.{name}" for name in POS_FILES.values() if not (directory / f"data.{name}").is_file()]
    if missing:
        raise WordNetMissing(
            f"WordNet database not found in {directory} (missing {', '.join(missing)}): "
            "install it with `make wordnet` or `apt-get install -y wordnet-base`, "
            "or point REALM_WORDNET_DIR at a WordNet 3.0 dict folder"
        )


def parse_data_line(line: str, pos: str) -> Synset:
    """One data.* line as a Synset (the pos of its file; adjective satellites `s` count as `a`)."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, w_cnt = fields[0], int(fields[3], 16)
    lemmas = tuple(fields[4 + 2 * k].split("(")[0].replace("_", " ") for k in range(w_cnt))
    at = 4 + 2 * w_cnt
    p_cnt = int(fields[at])
    pointers = []
    for k in range(p_cnt):
        symbol, target, target_pos, words = fields[at + 1 + 4 * k : at + 5 + 4 * k]
        if symbol in POINTERS:
            pos_of_target = "a" if target_pos == "s" else target_pos
            pointers.append(
                Pointer(POINTERS[symbol], target, pos_of_target, int(words[:2], 16), int(words[2:], 16))
            )
    parts = [p.strip() for p in gloss.strip().split(";")]
    definition = "; ".join(p for p in parts if not p.startswith('"'))
    examples = tuple(p.strip('"') for p in parts if p.startswith('"') and p.endswith('"'))
    category = LEXNAMES[int(fields[1])] if int(fields[1]) < len(LEXNAMES) else ""
    return Synset(offset, pos, lemmas, definition, examples, tuple(pointers), category)


@functools.lru_cache(maxsize=2)
def synsets(directory: Path = WORDNET_DIR) -> dict[tuple[str, str], Synset]:
    """Every synset, keyed by (pos, offset)."""
    _require(directory)
    out: dict[tuple[str, str], Synset] = {}
    for pos, name in POS_FILES.items():
        with open(directory / f"data.{name}", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.startswith(" "):  # the licence header lines start with two spaces
                    synset = parse_data_line(line, pos)
                    out[(pos, synset.offset)] = synset
    return out


@functools.lru_cache(maxsize=2)
def senses(directory: Path = WORDNET_DIR) -> dict[str, tuple[tuple[str, str], ...]]:
    """Each single-word lowercase lemma's senses, commonest first, as (pos, offset) keys."""
    _require(directory)
    out: dict[str, list[tuple[str, str]]] = {}
    for pos, name in POS_FILES.items():
        with open(directory / f"index.{name}", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(" "):
                    continue
                fields = line.split()
                lemma, synset_cnt, p_cnt = fields[0], int(fields[2]), int(fields[3])
                if not lemma.isalpha():
                    continue
                offsets = fields[4 + p_cnt + 2 :][:synset_cnt]
                out.setdefault(lemma, []).extend((pos, o) for o in offsets)
    return {lemma: tuple(keys) for lemma, keys in out.items()}


def related_lemmas(sense: Synset, word: str, kind: str, table: dict[tuple[str, str], Synset]) -> list[str]:
    """The lemmas `word` (one of `sense`'s lemmas) reaches by pointers of `kind`: every lemma of the
    target synset for a semantic pointer; for a lexical one, only a pointer from `word` itself, and only
    its one target lemma."""
    position = next((i for i, lemma in enumerate(sense.lemmas, 1) if lemma.lower() == word), 0)
    out: list[str] = []
    for pointer in sense.pointers:
        target = table.get((pointer.pos, pointer.offset))
        if pointer.kind != kind or target is None:
            continue
        if pointer.source == 0:
            out.extend(target.lemmas)
        elif pointer.source == position and 0 < pointer.target <= len(target.lemmas):
            out.append(target.lemmas[pointer.target - 1])
    return out
