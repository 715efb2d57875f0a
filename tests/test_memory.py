"""Tests for realm_pipeline.training.memory (pure arithmetic, no torch)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from realm_pipeline.training.memory import (
    GIB,
    MemoryEstimate,
    WillNotFit,
    check_fits,
    estimate_memory,
    model_shape_for,
    suggest_profile,
)

# Qwen3-0.6B config.json (the fields that matter for the shape).
QWEN3_06B = {
    "model_type": "qwen3",
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
}
QWEN3_8B = {
    **QWEN3_06B,
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "tie_word_embeddings": False,
}


def _est(shape=None, **overrides) -> MemoryEstimate:
    shape = dict(shape or model_shape_for(QWEN3_06B))
    kwargs = dict(method="full", optimizer="adamw", batch_size=1, seq_len=512)
    kwargs.update(overrides)
    n_params = shape.pop("n_params")
    return estimate_memory(n_params, **shape, **kwargs)


def test_import_is_light():
    code = "import sys, realm_pipeline.training.memory; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_shape_for_matches_published_sizes():
    s = model_shape_for(QWEN3_06B)
    # Qwen3-0.6B: 0.6B total, 0.44B non-embedding (model card).
    assert 0.58e9 < s["n_params"] < 0.61e9
    assert 0.43e9 < s["n_params"] - 151936 * 1024 < 0.45e9
    assert (s["hidden_size"], s["num_layers"], s["vocab_size"], s["num_heads"]) == (1024, 28, 151936, 16)
    # Qwen3-8B: 8.2B total, untied embeddings.
    s8 = model_shape_for(QWEN3_8B)
    assert 8.1e9 < s8["n_params"] < 8.3e9 and not s8["tied_embeddings"]
    with pytest.raises(ValueError, match="hidden_size"):
        model_shape_for({"vocab_size": 3})


def test_qwen3_06b_full_adamw_is_realistic():
    # Arithmetic (596M params, bf16, no master copy, AdamW fp32 moments):
    #   weights 596M*2 = 1.11 GiB, grads 1.11 GiB, Adam 596M*8 = 4.44 GiB,
    #   activations 28 layers * 512*1024*(34 + 5*16*512/1024) B = 28 * 38.8 MB = 1.01 GiB,
    #   logits 512*151936*4 = 0.29 GiB, overhead 0.75 GiB + 10 % = 1.55 GiB  ->  ~9.5 GiB.
    e = _est()
    assert 8 * GIB < e.total < 20 * GIB, e.table()
    assert e.optimizer_state == pytest.approx(4 * e.weights, rel=1e-6)
    # An fp32 master copy (AMP/ZeRO mixed precision) adds 4 B per param.
    assert _est(master_weights=True).total > e.total + 2 * GIB


@pytest.mark.parametrize("field", ["batch_size", "seq_len"])
def test_monotonic_in_batch_and_seq(field):
    totals = [_est(**{field: v}).total for v in (1, 2, 4, 8)]
    assert totals == sorted(totals) and len(set(totals)) == 4
    acts = [_est(**{field: v}).activations for v in (1, 2, 4, 8)]
    assert acts == sorted(acts)


def test_checkpointing_reduces_activations():
    plain = _est(seq_len=2048)
    ckpt = _est(seq_len=2048, gradient_checkpointing=True)
    assert ckpt.activations < plain.activations / 5
    assert ckpt.weights == plain.weights and ckpt.logits == plain.logits


def test_qlora_weights_smaller_than_full_and_lora_trains_less():
    s8 = model_shape_for(QWEN3_8B)
    full = _est(s8)
    qlora = _est(s8, method="qlora")
    lora = _est(s8, method="lora")
    # NF4 linears are ~4x smaller; the fp32-upcast embeddings (peft's kbit prep) keep it above a quarter.
    assert qlora.weights < 0.6 * full.weights
    assert _est(method="qlora").weights < _est().weights  # also for the tied-embedding 0.6B
    assert lora.gradients < full.gradients / 50
    assert qlora.optimizer_state == lora.optimizer_state


def test_optimizer_states_ordering():
    adam = _est(optimizer="adamw").optimizer_state
    muon = _est(optimizer="muon").optimizer_state
    eight_bit = _est(optimizer="adamw_8bit").optimizer_state
    galore = _est(method="galore", optimizer="adamw").optimizer_state
    assert eight_bit < muon < adam
    assert galore < adam


def test_bad_inputs():
    with pytest.raises(ValueError, match="method"):
        _est(method="dora")
    with pytest.raises(ValueError, match="optimizer"):
        _est(optimizer="sgd")
    with pytest.raises(ValueError):
        _est(batch_size=0)


def test_table_is_gib():
    text = _est().table()
    assert "weights" in text and "total" in text and "GiB" in text


@pytest.mark.parametrize(
    ("size", "vram", "expected"),
    [
        (0.6, 24, "24gb_full_small"),
        (3.0, 24, "24gb_galore"),
        # Plain GaLore keeps full bf16 weights + grads (16 GB at 4B): past 90 % of 24 GiB, so QLoRA.
        (4.0, 24, "24gb_qlora"),
        (8.0, 24, "24gb_qlora"),
        (0.05, 0, "cpu_tiny"),
        (4.0, 80, "80gb_full"),
        # 8B full AdamW is 16 + 16 + 64 GB before activations: too big for one 80 GB card.
        (8.0, 80, "24gb_galore"),
    ],
)
def test_suggest_profile(size, vram, expected):
    choice = suggest_profile(size, vram)
    assert choice == expected
    assert isinstance(choice, str) and choice.reason


@pytest.mark.parametrize(("size", "vram"), [(70, 8), (8, 0), (32, 24)])
def test_suggest_profile_will_not_fit(size, vram):
    with pytest.raises(WillNotFit):
        suggest_profile(size, vram)


def test_check_fits():
    e = _est()
    check_fits(e, 24 * GIB, "RTX 4090")
    with pytest.raises(WillNotFit, match="RTX 3060") as info:
        check_fits(e, 6 * GIB, "RTX 3060")
    msg = str(info.value)
    assert "6.00 GiB" in msg and "optimizer state" in msg and f"{e.total / GIB:.2f}" in msg
