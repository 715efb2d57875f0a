"""Training and eval render through one function: a pretrained (Qwen3-template) hero that learned its
labels answers the eval prompt with exactly its reference answer, which every skill's scorer accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from realm_pipeline.lm.chat import render
from realm_pipeline.skills import SKILLS
from realm_pipeline.skills.heldout import eval_items
from realm_pipeline.training.data import IGNORE, ExampleEncoder

# Qwen3's public chat template (as shipped with Qwen/Qwen3-0.6B), tools included.
QWEN3_TEMPLATE = (Path(__file__).parent / "data" / "qwen3_chat_template.jinja").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def qwen3_tokenizer():
    """A byte-level BPE tokenizer built here (no download) with Qwen3's special tokens and chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        t
        for s in SKILLS.values()
        for lv in (1, 2)
        for i in eval_items(s, lv, 20)
        for t in (i.prompt, i.answer)
    ]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer)
    # as in Qwen3's tokenizer: the think tags are added tokens, not special ones (decoding keeps them)
    bpe.add_tokens([AddedToken("<think>", special=False), AddedToken("</think>", special=False)])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN3_TEMPLATE,
    )


def test_the_tokenizer_really_has_qwen3s_think_behaviour(qwen3_tokenizer) -> None:
    messages = [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]
    full = qwen3_tokenizer.apply_chat_template(messages, tokenize=False)
    assert full.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n")  # labels' think block
    plain = qwen3_tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert plain.endswith("<|im_start|>assistant\n")  # without the option the prompt stops before it
    assert render(qwen3_tokenizer, messages[:1]).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.parametrize("skill_name", sorted(SKILLS))
def test_a_trained_pretrained_heros_answer_is_scored_correct(qwen3_tokenizer, skill_name: str) -> None:
    skill = SKILLS[skill_name]
    encoder = ExampleEncoder(qwen3_tokenizer)
    assert not encoder.fast  # the generic (any chat template) path pretrained heroes train on
    for item in eval_items(skill, 1, 5) + eval_items(skill, 2, 5):
        ids, labels = encoder.encode(item.messages)
        prompt = qwen3_tokenizer(render(qwen3_tokenizer, item.messages[:-1]), add_special_tokens=False)[
            "input_ids"
        ]
        start = next(i for i, t in enumerate(labels) if t != IGNORE)
        # the eval prompt is exactly the training prefix: the labels begin where the eval prompt ends
        assert ids[: len(prompt)] == prompt and start == len(prompt), item.prompt
        # a hero that learned its labels generates them after the eval prompt, stopping at the end marker
        learned = [t for t in labels[start:] if t != IGNORE]
        answer = learned[: learned.index(qwen3_tokenizer.eos_token_id)]
        output = qwen3_tokenizer.decode(answer, skip_special_tokens=True)
        assert skill.score(item, output).correct, (item.prompt, output)
