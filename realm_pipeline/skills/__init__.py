"""Skill registry: every leveled skill by name, plus the character set any of them can emit."""

from __future__ import annotations

import string

from realm_pipeline.skills.base import Score, Skill, SkillItem
from realm_pipeline.skills.bin import OP_SYMBOLS, SYMBOLS, BinSkill
from realm_pipeline.skills.drills import AttnCount, SeqReverse, XfmMap
from realm_pipeline.skills.sy import SY_CHARACTERS, SySkill

SKILLS: dict[str, Skill] = {s.name: s for s in (BinSkill(), SySkill(), SeqReverse(), AttnCount(), XfmMap())}

# Every prompt/answer is printable ASCII plus newline, except BIN's notation (circled digits, mapping
# and operation-renaming symbols, the × and → operators) and SY's em dash before each clue. Taking all
# of printable ASCII keeps the set valid if the SY clue lexicon gains a new punctuation mark; tests
# sample every skill to prove coverage.
CHARACTERS: str = "".join(
    sorted(set(string.printable[:95]) | {"\n"} | set("⓪①×→" + SYMBOLS + OP_SYMBOLS + SY_CHARACTERS))
)


def get_skill(name: str) -> Skill:
    """Look a skill up by name; unknown names raise a ValueError listing the known ones."""
    try:
        return SKILLS[name]
    except KeyError:
        raise ValueError(f"unknown skill {name!r}; known skills: {', '.join(sorted(SKILLS))}") from None


__all__ = ["CHARACTERS", "SKILLS", "Score", "Skill", "SkillItem", "get_skill"]
