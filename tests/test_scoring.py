"""Per-skill eval scoring (`scoring: exact | reference` in configs/skills): the evaluator scores with the
configured scorer, and the choice is part of the protocol, so switching it makes old scores stale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from realm_pipeline.evaluation.runner import evaluate_items, scorer
from realm_pipeline.evaluation.scores import current_scores, declare_protocols, skill_scoring, stale_scores
from realm_pipeline.settings import ConfigError, Settings
from realm_pipeline.skills import get_skill
from realm_pipeline.skills.base import SkillItem
from realm_pipeline.skills.bin import NAME_POOLS
from tests.test_protocols import CKPTS, _in_force, _ledger_with_history

BIN = get_skill("bin")


class CannedBackend:
    """Answers each prompt with a fixed response: the model's place in the eval path, nothing else faked."""

    kind = "canned"

    def __init__(self, responses: dict[str, str]) -> None:
        self.responses = responses
        self.max_new_tokens = 4096

    def render(self, messages: list[dict[str, str]]) -> str:
        return messages[-1]["content"]

    def complete(self, prompts: list[str]) -> list[str]:
        return [self.responses[p] for p in prompts]

    def describe(self) -> dict:
        return {"kind": self.kind}


def _set_scoring(config_dir: Path, scoring: str, skill: str = "bin") -> Settings:
    path = config_dir / "skills" / f"{skill}.yaml"
    data = yaml.safe_load(path.read_text())
    data["scoring"] = scoring
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return Settings(config_dir)


def _find(level: int, want) -> SkillItem:
    return next(it for seed in (1, 2) for i in range(20_000) if want(it := BIN.generate(level, seed, i)))


def _scored(settings: Settings, item: SkillItem, responses: list[str]) -> list[bool]:
    """Each response scored as the eval asset scores it: the configured scorer, through evaluate_items."""
    scoring = skill_scoring(settings, "bin")
    return [
        row[2]
        for r in responses
        for row in evaluate_items(CannedBackend({item.prompt: r}), BIN, [item], scoring).rows
    ]


def _flip_first_result_bit(item: SkillItem) -> str:
    call, result = item.answer.split(" = ")
    flipped = {"⓪": "①", "①": "⓪"}[result[0]] + result[1:]
    return f"{call} = {flipped}"


def test_reference_scoring_takes_the_references_answer_and_rejects_one_digit_sign_or_symbol(
    config_dir: Path,
) -> None:
    settings = _set_scoring(config_dir, "reference")
    assert skill_scoring(settings, "bin") == "reference"
    example = _find(1, lambda it: it.prompt == "Compute: add(①⓪, ①)")
    assert _scored(settings, example, ["add(①⓪, ①) = ①①", "Sure: add(①⓪, ①) = ①①."]) == [True, True]
    assert _scored(settings, example, ["add(①⓪, ①) = ①⓪", "add(①⓪, ①) = ①①⓪"]) == [False, False]

    # one sign: a negative signed result with its sign bit flipped
    signed = _find(
        3,
        lambda it: (
            it.tags == {"primitive": "logic_chain", "operation": "add_signed", "signal": "none"}
            and it.answer.split(" = ")[1].startswith("①")
        ),
    )
    assert _scored(settings, signed, [signed.answer, _flip_first_result_bit(signed)]) == [True, False]

    # one renamed symbol: the operation under another name of its pool than the Operations table gives,
    # or one bit written in a symbol the Symbol Key does not define
    keyed = _find(
        9,
        lambda it: (
            it.prompt.startswith("Symbol Key:")
            and it.tags["operation"] == "add"
            and it.tags["signal"] == "none"
            and "= add\n" in it.prompt
        ),
    )
    shown = re.search(r"^  (\S+) = add$", keyed.prompt, re.M)[1]
    other = next(n for n in NAME_POOLS["add"] if n != shown and n not in keyed.prompt)
    zero = re.search(r"^  (\S+) = 0 \(zero bit\)$", keyed.prompt, re.M)[1]
    assert keyed.answer.startswith(f"{shown}(")
    renamed = keyed.answer.replace(f"{shown}(", f"{other}(", 1)
    alien = keyed.answer[::-1].replace(zero[::-1], "⓪"[::-1], 1)[::-1]  # the last zero bit as a circled digit
    assert alien != keyed.answer
    assert _scored(settings, keyed, [keyed.answer, renamed, alien]) == [True, False, False]


def test_exact_scoring_rejects_a_right_result_with_a_wrong_verification_line(config_dir: Path) -> None:
    verified = _find(2, lambda it: it.tags["signal"] == "verify" and it.tags["operation"] == "add")
    result, verification = verified.answer.split("\n")
    total = int(verification.rsplit(" ", 1)[1])
    wrong = f"{result}\n{verification.rsplit(' ', 1)[0]} {total + 1}"
    exact = Settings(config_dir)  # the default
    assert skill_scoring(exact, "bin") == "exact"
    assert _scored(exact, verified, [verified.answer, wrong, result]) == [True, False, False]
    # the reference's rule reads the result line only
    assert _scored(_set_scoring(config_dir, "reference"), verified, [verified.answer, wrong]) == [True, True]


def test_switching_scoring_makes_the_old_scores_stale(tmp_path: Path, config_dir: Path) -> None:
    con, exact_protocol = _ledger_with_history(tmp_path, Settings(config_dir))
    assert len(current_scores(con, hero="tiny")) == 3
    declare_protocols(con, _set_scoring(config_dir, "reference"))
    assert _in_force(con) != exact_protocol
    assert current_scores(con, hero="tiny") == []  # scored the exact way: not current under reference
    assert stale_scores(con) == [(c, "bin") for c in CKPTS[:3]]
    declare_protocols(con, _set_scoring(config_dir, "exact"))  # back: the same protocol as before the field
    assert _in_force(con) == exact_protocol and len(current_scores(con, hero="tiny")) == 3


def test_reference_scoring_for_a_skill_without_a_reference_scorer_is_refused(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"seq_reverse\.yaml: line \d+: field 'scoring': value 'reference'"):
        _ = _set_scoring(config_dir, "reference", skill="seq_reverse").skills
    with pytest.raises(ValueError, match="no reference scorer"):
        scorer(get_skill("seq_reverse"), "reference")
    with pytest.raises(ValueError, match="scoring must be one of"):
        scorer(BIN, "lenient")
