"""SY v4 against the reference (its configs/skills/sy.yaml and its eval loop's prompt): the level table
axis by axis, checked on generated items; the prompt's word slots and bank; WordNet clues, antonyms by
WordNet's lexical links; the reference's answer contract and an exact scorer; vocabulary size."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import wordfreq

from realm_pipeline.skills import get_skill
from realm_pipeline.skills.base import SkillItem
from realm_pipeline.skills.lexicon import senses, synsets
from realm_pipeline.skills.sy import clue, lexicon
from realm_pipeline.skills.syllables import pronunciations, syllabify

SY = get_skill("sy")

# The reference's level_progression, L1-L10, written out here from its yaml (not read from sy.py):
# words, syllables, zipf, overlap %, red herrings, and the clue kinds its hints column allows
# ("+ slight overlap" at L3 adds none; "any (may be minimal)" at L10 adds the minimal clue).
STRONG = {"definition", "synonym"}
AXES = ("words", "syllables", "zipf", "overlap", "herrings", "new")
ROWS = {
    1: ((4, 4), (2, 3), 5.5, 0, (0, 0), STRONG),
    2: ((4, 5), (2, 3), 5.0, 0, (0, 0), set()),
    3: ((5, 5), (2, 4), 4.5, 10, (0, 0), set()),
    4: ((5, 6), (3, 4), 4.0, 20, (0, 1), {"category"}),
    5: ((6, 6), (3, 5), 3.5, 30, (1, 2), {"example"}),
    6: ((6, 7), (3, 5), 3.0, 40, (1, 2), {"hypernym", "hyponym"}),
    7: ((7, 7), (4, 5), 2.8, 50, (2, 3), {"antonym", "domain"}),
    8: ((7, 8), (4, 6), 2.5, 60, (3, 4), {"morphology"}),
    9: ((8, 9), (4, 6), 2.5, 70, (4, 5), {"etymology"}),
    10: ((9, 10), (4, 6), 2.0, 80, (5, 6), {"minimal"}),
}
REFERENCE = {level: dict(zip(AXES, row, strict=True)) for level, row in ROWS.items()}
# realm's Zipf half-width per level (not the reference's: it draws from a small word list): 1.0, wider
# where English has too few words near the target for 10x the eval words (README, BENCHMARKS.md)
BAND = {level: 1.0 for level in ROWS} | {1: 1.4, 10: 1.5}
for _level in range(1, 11):  # the kinds a level allows: every kind added up to it
    REFERENCE[_level]["kinds"] = set().union(*(ROWS[lv][-1] for lv in range(1, _level + 1)))

# A clue's kind read from its wording alone (definitions are the rest).
CLUE_FORMS = {
    "synonym": r"synonym: .+",
    "category": r"category: [a-z]+ \((noun|verb)\)",
    "example": r'as in ".*___.*"',
    "hypernym": r"a kind of .+",
    "hyponym": r"includes .+",
    "antonym": r"opposite of .+",
    "domain": r"a term of .+",
    "morphology": r"related form: .+",
    "etymology": r'from [A-Z][^"]* ".+"',
    "minimal": r"starts with [A-Z]",
}


def _kind(text: str) -> str:
    kinds = [k for k, form in CLUE_FORMS.items() if re.fullmatch(form, text)]
    assert len(kinds) <= 1, text
    return kinds[0] if kinds else "definition"


SLOT = re.compile(r"(\d+)\. ((?:___ )*___) \u2014 (.+)")


def _slots(item: SkillItem) -> list[tuple[int, int, str]]:
    """(slot number, blanks, clue) per word slot of the prompt."""
    return [
        (int(m[1]), m[2].count("___"), m[3]) for ln in item.prompt.split("\n") if (m := SLOT.fullmatch(ln))
    ]


def _parts(item: SkillItem) -> tuple[list[str], list[str], dict]:
    lines = item.prompt.split("\n")
    bank = next(ln for ln in lines if ln.startswith("Syllable bank: "))
    tiles = bank.removeprefix("Syllable bank: ").split(", ")
    return tiles, [text for _, _, text in _slots(item)], json.loads(item.answer)


def test_levels_1_to_10_follow_the_reference_table_on_all_six_axes() -> None:
    """Each axis, per level, checked on generated items (the count of words, each word's syllables and
    Zipf frequency from wordfreq, the overlap ratio, the unused tiles, each clue's kind from its wording)."""
    for level, ref in REFERENCE.items():
        kinds_seen: set[str] = set()
        zipfs: list[float] = []
        for i in range(25):
            item = SY.generate(level, 11, i)
            tiles, clues, answer = _parts(item)
            solutions = answer["solutions"]
            # axis 1, words
            assert ref["words"][0] <= len(solutions) == len(clues) <= ref["words"][1], (level, "words")
            # axis 2, syllables
            low, high = ref["syllables"]
            assert all(low <= len(s["syllables"]) <= high for s in solutions), (level, "syllables")
            # axis 3, zipf: every word near the target (within the level's documented band)
            word_zipf = [wordfreq.zipf_frequency(s["answer"].lower(), "en") for s in solutions]
            assert all(abs(z - ref["zipf"]) <= BAND[level] + 1e-9 for z in word_zipf), (level, word_zipf)
            zipfs += word_zipf
            # axis 4, overlap: (word tiles - distinct tiles) / word tiles never above the cap
            word_tiles = [t for s in solutions for t in s["syllables"]]
            ratio = (len(word_tiles) - len(set(word_tiles))) / len(word_tiles)
            assert ratio <= ref["overlap"] / 100 + 1e-9, (level, "overlap", ratio)
            # axis 5, red herrings: the bank's tiles no word uses, as many as the prompt states
            unused = Counter(tiles) - Counter(word_tiles)
            assert not Counter(word_tiles) - Counter(tiles)
            herrings = sum(unused.values())
            assert ref["herrings"][0] <= herrings <= ref["herrings"][1], (level, "herrings")
            assert (f"except {herrings} red herrings" in item.prompt) == (herrings > 0)
            # axis 6, clue kind
            kinds = {_kind(c) for c in clues}
            assert kinds <= ref["kinds"], (level, "clue kinds", kinds - ref["kinds"])
            kinds_seen |= kinds
        # the mean is near the target: L1's sits lowest (few common 2-3 syllable words), 4.6 for 5.5
        assert abs(sum(zipfs) / len(zipfs) - ref["zipf"]) <= 1.0, (level, "zipf mean")
        assert ref["new"] <= kinds_seen, (level, "the level's new clue kinds appear")


def test_overlap_reaches_towards_its_cap_and_is_zero_where_the_cap_is() -> None:
    def ratios(level: int) -> list[float]:
        out = []
        for i in range(40):
            tiles = [
                t for s in json.loads(SY.generate(level, 3, i).answer)["solutions"] for t in s["syllables"]
            ]
            out.append((len(tiles) - len(set(tiles))) / len(tiles))
        return out

    assert set(ratios(1)) == {0.0} and set(ratios(2)) == {0.0}
    high = ratios(10)
    assert max(high) <= 0.8 and sum(high) / len(high) > 0.15  # shared tiles are common at L10


def test_clues_come_from_wordnet_and_a_word_without_the_drawn_kind_is_not_drawn() -> None:
    table, index = synsets(), senses()
    phones = pronunciations(frozenset(e.word for e in lexicon()))
    for level in (1, 4, 6, 7, 8, 9, 10):
        for i in range(12):
            _, clues, answer = _parts(SY.generate(level, 5, i))
            for text, solution in zip(clues, answer["solutions"], strict=True):
                word = solution["answer"].lower()
                kind = _kind(text)
                assert clue(word, kind) == text  # the clue of its kind that the word has
                assert word not in text.lower().replace(" ", "")  # no clue gives the word away...
                if kind not in ("morphology", "etymology"):  # ...nor its stem, but where that is the clue
                    stem = word[: min(6, len(word) - 1)]
                    assert not any(t.startswith(stem) for t in re.findall(r"[a-z]+", text.lower())), text
                # syllables: the word's own split; a word the split refuses is never drawn
                assert syllabify(word, phones[word]) == tuple(solution["syllables"])
                lemmas_of_senses = {x.lower() for k in index[word] for x in table[k].lemmas}
                if kind == "synonym":
                    assert text.removeprefix("synonym: ").lower() in lemmas_of_senses
                if kind == "minimal":
                    assert text == f"starts with {word[0].upper()}"
                if kind == "antonym":  # WordNet's lexical link from this very word to that word
                    assert _lexical_antonyms(word) and text.removeprefix("opposite of ") in _lexical_antonyms(
                        word
                    )
    # WordNet's own gloss of ORTHODOXY names its stem; such a definition is refused
    orthodoxy = next(synsets()[k] for k in senses()["orthodoxy"])
    assert "orthodox " in orthodoxy.definition and clue("orthodoxy", "definition") != orthodoxy.definition
    # words lacking a kind exist in every pool (so generation must redraw), e.g. antonyms are rare
    pool = [e.word for entries in SY.pool(7).values() for e in entries]
    assert sum(clue(w, "antonym") is None for w in pool[:300]) > 150


def _lexical_antonyms(word: str) -> set[str]:
    """The words WordNet links to `word` by an antonym pointer whose source is `word` itself (resolved
    here from the parsed synsets, independently of sy.py and lexicon.related_lemmas)."""
    table, index = synsets(), senses()
    out = set()
    for key in index.get(word, ()):
        sense = table[key]
        for p in sense.pointers:
            if p.kind == "antonym" and p.source and sense.lemmas[p.source - 1].lower() == word:
                out.add(table[(p.pos, p.offset)].lemmas[p.target - 1])
    return out


def test_an_antonym_clue_is_the_words_own_antonym_not_another_lemmas() -> None:
    """{small, little} is one WordNet synset, but its antonym links are lexical: small <-> large and
    little <-> big. Taking the target synset's first lemma (v3) clued LITTLE as "opposite of large"."""
    assert clue("small", "antonym") == "opposite of large"
    assert clue("little", "antonym") == "opposite of big"
    assert "big" in _lexical_antonyms("little") and "large" not in _lexical_antonyms("little")
    # and every antonym clue a level-7 pool can give is such a link (a sample of 400 words)
    pool = [e.word for entries in SY.pool(7).values() for e in entries][:400]
    given = [(w, c) for w in pool if (c := clue(w, "antonym"))]
    assert len(given) > 20
    assert all(c.removeprefix("opposite of ") in _lexical_antonyms(w) for w, c in given)


def test_the_prompt_is_the_references_word_slots_and_bank() -> None:
    """One numbered slot per answer word, a blank per syllable of that word, the clue after an em dash;
    the bank holds exactly the tiles (words' syllables and herrings), shuffled, comma-separated."""
    unsorted = 0
    for level in (1, 5, 10, 30):
        for i in range(10):
            item = SY.generate(level, 4, i)
            tiles, _, answer = _parts(item)
            slots = _slots(item)
            assert [n for n, _, _ in slots] == list(range(1, len(answer["solutions"]) + 1))
            assert [b for _, b, _ in slots] == [len(s["syllables"]) for s in answer["solutions"]]
            assert Counter(tiles) == Counter(answer["inventory_check"]["usage"])
            assert item.prompt.startswith("SYLLO Puzzle\n") and item.prompt.endswith("\nReturn valid JSON:")
            assert f"- {len(slots)} target words." in item.prompt
            unsorted += tiles != sorted(tiles)
    assert unsorted > 30  # shuffled: a sorted bank would hand the model an order to read words from


def test_vocabulary_is_ten_times_the_eval_words_at_every_reference_level() -> None:
    """(words training can draw) / (distinct words of the eval set of 50 items, the configured size)."""
    ratios = {}
    for level in range(1, 11):
        eval_words, pool = SY.vocabulary(level, 50)
        ratios[level] = pool / eval_words
    assert all(ratio >= 10 for ratio in ratios.values()), ratios


# ---------------------------------------------------------------- the reference's contract, scored exactly


def test_the_answer_is_the_reference_contract_in_clue_order() -> None:
    item = SY.generate(6, 1, 0)
    tiles, clues, answer = _parts(item)
    assert list(answer) == ["solutions", "inventory_check"]
    solutions = answer["solutions"]
    assert [list(s) for s in solutions] == [["ans_num", "syllables", "answer"]] * len(clues)
    assert [s["ans_num"] for s in solutions] == list(range(1, len(clues) + 1))
    assert all(s["answer"] == "".join(s["syllables"]).upper() for s in solutions)
    inventory = answer["inventory_check"]
    assert list(inventory) == ["total_tiles", "usage", "used", "unused_tiles", "status"]
    assert inventory["total_tiles"] == len(tiles) and inventory["usage"] == dict(Counter(tiles))
    used = Counter(t for s in solutions for t in s["syllables"])
    assert inventory["used"] == dict(used)
    assert sorted(inventory["unused_tiles"]) == sorted((Counter(tiles) - used).elements())


def _reference_format(answer: dict) -> str:
    """The answer as the reference's output_schema prints it: indented, spaces after separators."""
    return "```json\n" + json.dumps(answer, indent=2) + "\n```"


def test_the_scorer_accepts_the_reference_answer_and_rejects_one_change() -> None:
    item = SY.generate(8, 2, 0)
    ref = json.loads(item.answer)
    n = len(ref["solutions"])
    assert SY.score(item, item.answer).correct
    assert SY.score(item, _reference_format(ref)).correct

    def changed(edit) -> dict:
        data = json.loads(item.answer)
        edit(data)
        return data

    def first_syllable(d: dict) -> None:
        d["solutions"][0]["syllables"][0] += "x"

    def swap_numbers(d: dict) -> None:
        d["solutions"][0]["ans_num"], d["solutions"][1]["ans_num"] = 2, 1

    def swap_order(d: dict) -> None:
        d["solutions"][0], d["solutions"][1] = d["solutions"][1], d["solutions"][0]

    def lowercase(d: dict) -> None:
        d["solutions"][0]["answer"] = d["solutions"][0]["answer"].lower()

    cases = {
        "one wrong syllable": (first_syllable, (n - 1) / n),
        "ans_num out of clue order": (swap_numbers, (n - 2) / n),
        "solutions out of clue order": (swap_order, (n - 2) / n),
        # the reference's rule "answers must be UPPERCASE": a lowercase answer is wrong
        "lowercase answer": (lowercase, (n - 1) / n),
        "missing inventory_check": (lambda d: d.pop("inventory_check"), 1.0),
        "inventory miscounted": (lambda d: d["inventory_check"].update(total_tiles=1), 1.0),
        "herring claimed used": (lambda d: d["inventory_check"]["unused_tiles"].pop(), 1.0),
        "a solution missing": (lambda d: d["solutions"].pop(), (n - 1) / n),
        "a string ans_num": (lambda d: d["solutions"][0].update(ans_num="1"), (n - 1) / n),
    }
    for name, (edit, partial) in cases.items():
        res = SY.score(item, _reference_format(changed(edit)))
        assert not res.correct, name
        assert res.partial == pytest.approx(partial), name
    for junk in ("not json", "[]", '{"solutions": 3}', "{}"):
        res = SY.score(item, junk)
        assert not res.correct and res.partial == 0.0


def test_the_references_rule_takes_its_answer_in_any_order_and_rejects_one_letter() -> None:
    """`scoring: reference` scores as the reference's eval loop does: the set of answer words, order,
    case and inventory aside; one letter changed in one word, a word missing or one extra is wrong."""
    item = SY.generate(6, 2, 1)
    ref = json.loads(item.answer)
    words = [s["answer"] for s in ref["solutions"]]
    shuffled = {"solutions": list(reversed(ref["solutions"]))}  # no inventory, clue order reversed
    lowercase = {"solutions": [dict(s, answer=s["answer"].lower()) for s in ref["solutions"]]}
    for accepted in (item.answer, _reference_format(ref), json.dumps(shuffled), json.dumps(lowercase)):
        assert SY.score_reference(item, accepted).correct
    assert not SY.score(item, json.dumps(shuffled)).correct  # the exact scorer is stricter
    assert SY.score_reference(item, "The words: " + ", ".join(words) + ".").correct  # its last resort
    one_letter = json.loads(item.answer)
    first = one_letter["solutions"][0]
    first["answer"] = first["answer"][:-1] + ("X" if first["answer"][-1] != "X" else "Y")
    missing = {"solutions": ref["solutions"][1:]}
    extra = {"solutions": ref["solutions"] + [{"ans_num": 99, "syllables": ["ba"], "answer": "BANANA"}]}
    for rejected, partial in ((one_letter, 1 - 1 / len(words)), (missing, 1 - 1 / len(words)), (extra, 1.0)):
        res = SY.score_reference(item, json.dumps(rejected))
        assert not res.correct and res.partial == pytest.approx(partial)


def test_version_4_makes_a_version_3_score_stale(tmp_path, config_dir) -> None:
    """An SY score stored under v3's protocol is not current once SY is v4: stale_scores lists it and
    the automation re-scores it (the champion's); the same score under v4's protocol is current."""
    from realm_pipeline import ledger
    from realm_pipeline.evaluation.scores import (
        checkpoints_to_rescore,
        current_scores,
        declare_protocols,
        protocol_key,
        protocol_spec,
        stale_scores,
    )
    from realm_pipeline.settings import Settings
    from realm_pipeline.skills.heldout import eval_items, eval_set_hash
    from tests.test_sensors_regression import score

    assert SY.version == "4"
    settings = Settings(config_dir)
    set_hash = eval_set_hash(eval_items(SY, 1, 50))
    con = ledger.duckdb.connect(str(tmp_path / "realm.duckdb"))
    ledger.migrate(con)
    ledger.upsert(con, "eval_sets", [{"skill": "sy", "level": 1, "n_items": 50, "eval_set_hash": set_hash}])
    ckpts = ["tiny.000150", "tiny.000300"]
    rows = [
        {"checkpoint_id": c, "hero": "tiny", "step": int(c[-6:]), "path": f"/x/{c}", "tokens": 1}
        for c in ckpts
    ]
    ledger.upsert(con, "checkpoints", rows)
    declare_protocols(con, settings)

    def under(version: str, ckpt: str) -> dict:
        protocol = protocol_key(protocol_spec(settings, "tiny", "sy", version, set_hash))
        return score(ckpt, 1, 0.9, t=0, protocol=protocol) | {
            "skill": "sy",
            "fingerprint": f"{ckpt}:{version}",
        }

    ledger.upsert(con, "eval_scores", [under("3", ckpts[0]), under("4", ckpts[1])])
    assert stale_scores(con) == [(ckpts[0], "sy")]
    con.execute("INSERT INTO hero_state (hero, champion) VALUES ('tiny', ?)", [ckpts[0]])
    assert checkpoints_to_rescore(con, "tiny") == [(ckpts[0], "sy")]  # what the automation re-scores
    assert [r["checkpoint_id"] for r in current_scores(con, hero="tiny")] == [ckpts[1]]


def test_a_word_the_split_refuses_is_never_drawn() -> None:
    """WordNet and CMUdict both know these, but their spelling cannot be cut into CMUdict's syllable
    count (syllables.py refuses them): they are not in SY's lexicon, so no level can draw them."""
    refused = ["algorithm", "announcement", "arrangement"]
    phones = pronunciations(frozenset(refused))
    assert all(w in senses() and w in phones and syllabify(w, phones[w]) is None for w in refused)
    drawable = {e.word for e in lexicon()}
    assert not drawable & set(refused)
    assert {"water", "animal", "television"} <= drawable
