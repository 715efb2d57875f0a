"""Generation and training budgets from the data: every level fits, ceilings refuse, nothing is truncated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from realm_pipeline.lm.budgets import (
    BudgetError,
    eval_max_new_tokens,
    level_lengths,
    segment_max_length,
    training_tokens,
)
from realm_pipeline.settings import ConfigError, Settings
from realm_pipeline.skills import CHARACTERS, SKILLS, get_skill
from realm_pipeline.skills.heldout import eval_items, training_items


@pytest.fixture(scope="module")
def char_tokenizer():
    from realm_pipeline.training.tokenizer import build_char_tokenizer

    return build_char_tokenizer(CHARACTERS)


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_every_shipped_level_fits_the_tiny_heros_eval_budget_and_training_length(char_tokenizer) -> None:
    """For every shipped skill and level, in the tiny hero's own tokens: the whole assistant turn of
    every eval item (answer + end marker, what greedy decoding must emit) fits the level's
    max_new_tokens, and every eval item and fresh training item, encoded as trained, fits the row
    length a segment training that level gets, which fits the tiny hero's max_length."""
    from realm_pipeline.training.data import IGNORE, ExampleEncoder

    settings = Settings()
    tiny = settings.heroes["tiny"]
    eval_cfg = settings.realm.eval
    encoder = ExampleEncoder(char_tokenizer)
    checked = 0
    for name, cfg in settings.skills.items():
        skill = get_skill(name)
        for level in range(1, skill.max_level + 1):
            items = eval_items(skill, level, cfg.eval_items_per_level)
            budget = eval_max_new_tokens(
                char_tokenizer, items, margin=eval_cfg.answer_margin_tokens, ceiling=eval_cfg.max_new_tokens
            )
            row = segment_max_length(
                "char", [(skill, level, cfg.eval_items_per_level)], ceiling=tiny.training.max_length
            )
            assert row <= tiny.base.config["max_position_embeddings"]
            # training items from a seed the length sample does not use: a bound, not a replay
            stream = training_items(skill, level, seed=7919, eval_count=cfg.eval_items_per_level)
            fresh = [next(stream) for _ in range(60)]
            for item in items + fresh:
                ids, labels = encoder.encode(item.messages)
                assert len(ids) <= row, (name, level, len(ids), row)
                if item.seed < 0:  # an eval item: everything supervised is what generation must emit
                    emitted = sum(label != IGNORE for label in labels)
                    assert emitted <= budget, (name, level, emitted, budget)
                checked += 1
    assert checked > 5000


def test_budgets_follow_each_levels_own_answers(char_tokenizer) -> None:
    """Short levels are not charged for long ones: the budget is the level's own longest answer."""
    bin_skill = get_skill("bin")
    short = eval_items(bin_skill, 1, 50)
    # BIN v4 asks every layout at every level (L1's longest eval answer, a [trace] chain, is 321
    # characters; L20's 1092): L30's 32-bit answers (1794) keep the 4x gap this test always asked for
    long = eval_items(bin_skill, 30, 50)
    small = eval_max_new_tokens(char_tokenizer, short, margin=4, ceiling=10_000)
    big = eval_max_new_tokens(char_tokenizer, long, margin=4, ceiling=10_000)
    assert small == max(len(i.answer) for i in short) + 4
    assert big == max(len(i.answer) for i in long) + 4 and big > 4 * small
    assert segment_max_length("char", [(bin_skill, 1, 50)], ceiling=4096) < segment_max_length(
        "char", [(bin_skill, 1, 50), (bin_skill, 30, 50)], ceiling=4096
    )


def test_an_eval_ceiling_below_a_levels_answers_is_refused(char_tokenizer) -> None:
    sy = get_skill("sy")
    items = eval_items(sy, 3, 20)
    needed = max(len(i.answer) for i in items) + 4
    with pytest.raises(BudgetError) as err:
        eval_max_new_tokens(char_tokenizer, items, margin=4, ceiling=48)
    message = str(err.value)
    assert "skill sy level 3" in message and f"needs {needed} tokens" in message and "is 48" in message


def test_a_hero_whose_max_length_cannot_fit_a_level_is_refused_naming_it(config_dir: Path) -> None:
    hero_file = config_dir / "heroes" / "tiny.yaml"
    _edit_yaml(hero_file, lambda d: d["training"].update(max_length=200))
    with pytest.raises(ConfigError) as err:
        _ = Settings(config_dir).heroes
    message = str(err.value)
    assert str(hero_file) in message and "field 'training.max_length': value 200" in message
    found = re.search(r"skill bin level (\d+) needs (\d+) tokens", message)
    assert found, message
    level, needed = int(found[1]), int(found[2])
    # the first level that does not fit is named, with what it needs
    bin_skill, count = get_skill("bin"), 50
    assert needed > 200 and needed == training_tokens("char", level_lengths(bin_skill, level, count))
    assert all(training_tokens("char", level_lengths(bin_skill, lv, count)) <= 200 for lv in range(1, level))


def test_a_hero_level_cap_below_the_long_levels_makes_the_same_max_length_valid(config_dir: Path) -> None:
    bin_skill = get_skill("bin")
    ceiling = training_tokens("char", level_lengths(bin_skill, 3, 50))  # fits BIN L1-L3, not L30
    assert ceiling < training_tokens("char", level_lengths(bin_skill, 30, 50))
    _edit_yaml(config_dir / "heroes" / "tiny.yaml", lambda d: d["training"].update(max_length=ceiling))
    with pytest.raises(ConfigError, match="skill bin level"):
        _ = Settings(config_dir).heroes
    fits = max(
        lv for lv in range(1, 31) if training_tokens("char", level_lengths(bin_skill, lv, 50)) <= ceiling
    )
    _edit_yaml(config_dir / "skills" / "bin.yaml", lambda d: d.update(level_cap=fits))
    assert Settings(config_dir).heroes["tiny"].training.max_length == ceiling


def test_a_max_length_beyond_the_models_positions_is_refused(config_dir: Path) -> None:
    _edit_yaml(
        config_dir / "heroes" / "tiny.yaml", lambda d: d["base"]["config"].update(max_position_embeddings=512)
    )
    with pytest.raises(
        ConfigError, match=r"value \d+: above the model's base.config.max_position_embeddings 512"
    ):
        _ = Settings(config_dir).heroes


def test_every_shipped_hero_config_is_valid() -> None:
    heroes = Settings().heroes
    assert set(heroes) >= {"tiny", "dio", "flo", "ojas"}
    assert all(h.eval.backend == "local" for h in heroes.values())


def test_the_segment_row_fits_its_mix_and_refuses_an_over_long_quest(tmp_path: Path) -> None:
    from realm_pipeline.training.plan import CheckpointKey, segment_spec

    settings = Settings()
    hero, profile = settings.heroes["tiny"], settings.memory_profiles["cpu_tiny"]
    key = CheckpointKey("tiny", 150)

    def spec(mix, quests=()):
        return segment_spec(
            hero,
            profile,
            key,
            output_dir=tmp_path,
            parent_dir=None,
            mix=mix,
            quests=list(quests),
            eval_items_per_level={"bin": 50},
        )

    low = spec([("bin", 1, 1.0)])
    high = spec([("bin", 1, 0.5), ("bin", 20, 0.5)])
    assert low.max_length < high.max_length <= hero.training.max_length
    ceiling = hero.training.max_length
    long_quest = [{"role": "user", "content": "x" * ceiling}, {"role": "assistant", "content": "y"}]
    with pytest.raises(
        BudgetError,
        match=rf"quest line\) needs {ceiling + 5} tokens but hero tiny's training.max_length is {ceiling}",
    ):
        spec([("bin", 1, 1.0)], [long_quest])


def test_over_long_training_examples_raise_instead_of_being_truncated(char_tokenizer) -> None:
    from realm_pipeline.training.data import (
        ExampleEncoder,
        ExampleTooLong,
        MixStream,
        Source,
        pack_examples,
        pack_from_stream,
    )

    encoder = ExampleEncoder(char_tokenizer)
    stream = MixStream([Source(1.0, skill="bin", level=20, name="bin@20")], seed=3, encoder=encoder)
    first_ids, _ = stream.peek()
    short = len(first_ids) - 1  # a row one token shorter than the first example
    with pytest.raises(
        ExampleTooLong,
        match=rf"training example #0 \(bin@20\) has {len(first_ids)} tokens, more than the row length "
        rf"max_length={short}",
    ):
        pack_from_stream(stream, batch_size=2, max_length=short, pad_id=char_tokenizer.pad_token_id)
    assert stream.state.position == 0  # nothing consumed: a resumed segment would meet the same example
    item = eval_items(SKILLS["sy"], 1, 1)[0]
    ids, labels = encoder.encode(item.messages)
    with pytest.raises(ExampleTooLong, match=rf"example #1 of 2 has {len(ids)} tokens"):
        pack_examples([(ids[:10], labels[:10]), (ids, labels)], 2, 100, char_tokenizer.pad_token_id)


# Qwen3's ChatML shape: role headers, an end marker per turn, and an empty think block before an answer.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}<think>\n\n</think>\n\n{% endif %}{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n</think>\n\n{% endif %}"
)


def _byte_level_bpe():
    """A real byte-level BPE tokenizer (the kind pretrained heroes use), trained here on skill text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        text
        for name, skill in sorted(SKILLS.items())
        for level in (1, skill.max_level // 2, skill.max_level)
        for item in (skill.generate(level, 11, i) for i in range(20))
        for text in (item.prompt, item.answer)
    ]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    trainer = trainers.BpeTrainer(
        vocab_size=2000, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHATML
    return tok


def test_a_pretrained_heros_byte_bound_holds_for_a_real_byte_level_bpe() -> None:
    """`bytes` counting (pretrained heroes, sized before any tokenizer loads) bounds what a byte-level
    BPE with a ChatML template really produces, on every skill's longest levels."""
    from realm_pipeline.training.data import ExampleEncoder

    tok = _byte_level_bpe()
    encoder = ExampleEncoder(tok)
    for name, skill in sorted(SKILLS.items()):
        for level in sorted({1, skill.max_level // 2, skill.max_level}):
            bound = training_tokens("bytes", level_lengths(skill, level, 50))
            # the longest items of a large eval draw: the bound is on a level's longest item, and BIN v4's
            # longest layouts ([trace] chains) are a few % of its items
            items = sorted(eval_items(skill, level, 300), key=lambda i: len((i.prompt + i.answer).encode()))
            items = items[-8:]
            for item in items:
                ids, _ = encoder.encode(item.messages)
                assert len(ids) <= bound, (name, level, len(ids), bound)
            # the bound is not vacuous: it is within a small factor of the real count
            real = max(len(encoder.encode(i.messages)[0]) for i in items)
            assert bound < 8 * real + 64, (name, level, real, bound)
