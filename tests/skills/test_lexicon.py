"""The WordNet reader SY's clues come from: real Debian wordnet-base files, parsed by skills/lexicon.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from realm_pipeline.skills import lexicon


def test_parse_data_line_reads_lemmas_pointers_gloss_and_examples() -> None:
    line = (
        "00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 003 @ 00004227 v 0000 "
        "! 00005041 v 0000 + 00831191 n 0303 01 + 02 00 | draw air into, and expel out of, the lungs; "
        '"I can breathe better when the air is clean"  \n'
    )
    s = lexicon.parse_data_line(line, "v")
    assert s.lemmas == ("breathe", "take a breath", "respire", "suspire")
    # semantic pointers (0000) join synsets; lexical ones (0303: word 3 to word 3) join two words
    assert s.pointers == (
        ("hypernym", "00004227", "v", 0, 0),
        ("antonym", "00005041", "v", 0, 0),
        ("related", "00831191", "n", 3, 3),
    )
    assert s.definition == "draw air into, and expel out of, the lungs"
    assert s.examples == ("I can breathe better when the air is clean",)
    assert s.category == "verb.body"  # lex_filenum 29


@pytest.mark.skipif(not (lexicon.WORDNET_DIR / "data.noun").is_file(), reason="wordnet-base not installed")
def test_the_installed_database_gives_hypernyms_antonyms_and_senses_in_frequency_order() -> None:
    table, index = lexicon.synsets(), lexicon.senses()
    assert len(table) > 110_000 and len(index) > 70_000
    dog = table[index["dog"][0]]
    assert "dog" in dog.lemmas and "domesticated" in dog.definition
    hypernyms = {table[(p.pos, p.offset)].lemmas[0] for p in dog.pointers if p.kind == "hypernym"}
    assert "canine" in hypernyms
    good = next(table[k] for k in index["good"] if k[0] == "a")
    assert "bad" in lexicon.related_lemmas(good, "good", "antonym", table)
    # {small, little}: each lemma has its own antonym (lexical pointers), not the synset's
    small = next(table[k] for k in index["small"] if k[0] == "a")
    assert set(small.lemmas) >= {"small", "little"}
    assert lexicon.related_lemmas(small, "small", "antonym", table) == ["large"]
    assert lexicon.related_lemmas(small, "little", "antonym", table) == ["big"]


def test_a_missing_database_names_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(lexicon.WordNetMissing, match=r"apt-get install -y wordnet-base"):
        lexicon.synsets(tmp_path)
