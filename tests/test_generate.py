"""Batched greedy decoding: batch-size invariance, agreement with HF generate, stop strings."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from openai_server import build_test_hero

from realm_pipeline.lm.generate import generate_batch
from realm_pipeline.skills import get_skill
from realm_pipeline.skills.heldout import eval_items

MAX_NEW = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def hero():
    return build_test_hero()


@pytest.fixture(scope="module")
def prompts(hero):
    """48 eval prompts of mixed lengths: BIN levels 1-3 and seq_reverse levels 1 and 4."""
    _, tokenizer = hero
    items = []
    for skill, level in [("bin", 1), ("bin", 2), ("bin", 3), ("seq_reverse", 1), ("seq_reverse", 4)]:
        items += eval_items(get_skill(skill), level, 10)
    return [
        tokenizer.apply_chat_template(i.messages[:-1], add_generation_prompt=True, tokenize=False)
        for i in items
    ]


@pytest.fixture(scope="module")
def reference(hero, prompts):
    model, tokenizer = hero
    return generate_batch(model, tokenizer, prompts, max_new_tokens=MAX_NEW, batch_size=8)


def test_outputs_do_not_depend_on_batch_size(hero, prompts, reference):
    model, tokenizer = hero
    assert len(prompts) >= 40 and len({len(p) for p in prompts}) >= 4
    assert len(set(reference)) > 10, "degenerate outputs would make the invariance check vacuous"
    for batch_size in (1, 32):
        out = generate_batch(model, tokenizer, prompts, max_new_tokens=MAX_NEW, batch_size=batch_size)
        assert out == reference, f"batch_size={batch_size} changed outputs"


def test_guarded_float32_equals_float64(hero, prompts, reference):
    """The tie guard's promise: float32 picks (or float64 re-decodes) give the float64 greedy answer."""
    model, tokenizer = hero
    f64 = generate_batch(model, tokenizer, prompts, max_new_tokens=MAX_NEW, batch_size=32, dtype="float64")
    assert f64 == reference


@pytest.mark.parametrize("margin", [0.3, float("inf")])
def test_close_call_fallback_path(hero, prompts, reference, margin):
    """Force close calls (some rows, then every row) through the alone-in-float64 re-decode."""
    model, tokenizer = hero
    stats: dict = {}
    sub = prompts[::3]
    out = generate_batch(
        model, tokenizer, sub, max_new_tokens=MAX_NEW, batch_size=8, tie_margin=margin, stats=stats
    )
    assert out == reference[::3]
    assert 0 < stats["close_calls"] <= len(sub)
    assert margin != float("inf") or stats["close_calls"] == len(sub)


def test_matches_unbatched_hf_generate(hero, prompts, reference):
    import torch

    model, tokenizer = hero
    ref_model = copy.deepcopy(model).to(torch.float64)  # the answer tie-guarded float32 decoding guarantees
    for i in (0, 12, 25, 33, 47):  # one prompt per skill/level, shortest to longest
        ids = tokenizer(prompts[i], add_special_tokens=False, return_tensors="pt")["input_ids"]
        out = ref_model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=MAX_NEW,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        new = [t for t in out[0, ids.shape[1] :].tolist() if t != tokenizer.eos_token_id]
        assert reference[i] == tokenizer.decode(new, skip_special_tokens=True), f"prompt {i}"


def test_stop_strings_are_trimmed(hero, prompts, reference):
    model, tokenizer = hero
    picks = [i for i, text in enumerate(reference) if len(text) >= 4][:6]
    assert picks
    sub = [prompts[i] for i in picks]
    # Stop on each output's third character: the result must be the text before its first occurrence.
    stops = sorted({reference[i][2] for i in picks})
    out = generate_batch(model, tokenizer, sub, max_new_tokens=MAX_NEW, stop_strings=stops, batch_size=4)
    for i, text in zip(picks, out, strict=True):
        cut = min(p for s in stops if (p := reference[i].find(s)) >= 0)
        assert text == reference[i][:cut]
        assert not any(s in text for s in stops)


def test_token_id_prompts_and_edge_cases(hero, prompts, reference):
    import torch

    model, tokenizer = hero
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[:5]]
    assert generate_batch(model, tokenizer, ids, max_new_tokens=MAX_NEW) == reference[:5]
    assert generate_batch(model, tokenizer, [], max_new_tokens=MAX_NEW) == []
    assert generate_batch(model, tokenizer, prompts[:2], max_new_tokens=0) == ["", ""]
    f32 = generate_batch(model, tokenizer, prompts[:8], max_new_tokens=MAX_NEW, dtype="float32")
    assert len(f32) == 8 and next(model.parameters()).dtype == torch.float32


def test_dtype_cast_is_restored_exactly(hero, prompts):
    model, tokenizer = hero
    before = {k: v.clone() for k, v in model.state_dict().items()}
    generate_batch(model, tokenizer, prompts[:2], max_new_tokens=2)
    after = model.state_dict()
    assert all(after[k].dtype == v.dtype and after[k].equal(v) for k, v in before.items())


def test_decoding_uses_the_current_cache_api(hero, prompts):
    """No `past_key_values is deprecated` FutureWarning: a campaign's terminal holds only realm's lines."""
    import warnings

    model, tokenizer = hero
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        texts = generate_batch(model, tokenizer, prompts[:4], max_new_tokens=4, batch_size=2)
    assert len(texts) == 4


def test_evaluation_package_imports_without_torch():
    code = (
        "import sys; import realm_pipeline.lm.generate, realm_pipeline.evaluation.backends, "
        "realm_pipeline.evaluation.runner, realm_pipeline.evaluation.fingerprint; "
        "bad = [m for m in ('torch', 'transformers', 'dagster', 'httpx') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
