"""Training package: tokenizer, answer-only labels, packing, segment learning, checkpoints, determinism."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from realm_pipeline.training.strain import zone

torch = pytest.importorskip("torch")

from tiny_hero import TINY, row_length  # noqa: E402

from realm_pipeline.training.data import IGNORE, ExampleEncoder, _chat_ids, pack_examples, token_nll  # noqa: E402
from realm_pipeline.training.hero import HeroWeightsMissing, build_tiny_hero, load_base  # noqa: E402
from realm_pipeline.training.tokenizer import build_char_tokenizer  # noqa: E402
from realm_pipeline.training.trainer import (  # noqa: E402
    SegmentSpec,
    spec_from_json,
    spec_to_json,
    train_segment,
)

CHAT = [
    {"role": "system", "content": "answer tersely"},
    {"role": "user", "content": "bin: ①⓪+⓪①="},
    {"role": "assistant", "content": "①①"},
]


def _spec(out: Path, **kw) -> SegmentSpec:
    base = dict(
        output_dir=str(out),
        base={"tiny": TINY},
        lr=3e-3,
        batch_size=8,
        max_length=row_length(("bin", 1)),
        steps=30,
        save_every=0,
        seed=1,
        mix=[("bin", 1, 1.0)],
        heldout=[("bin", 1, 100)],
    )
    base.update(kw)
    return SegmentSpec(**base)


def test_tokenizer_round_trip(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from realm_pipeline.skills import CHARACTERS

    tok = build_char_tokenizer(CHARACTERS)
    assert build_char_tokenizer(CHARACTERS).get_vocab() == tok.get_vocab()  # deterministic order
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "bin: ①⓪+⓪①=\n①① ~ Zz"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert len(tok(text)["input_ids"]) == len(text)  # one token per character
    assert again.decode(tok(text)["input_ids"]) == text
    assert _chat_ids(again, CHAT, False) == _chat_ids(tok, CHAT, False)
    rendered = again.decode(_chat_ids(again, CHAT[:2], True))
    assert rendered.endswith("<|assistant|>")
    assert again.pad_token_id == tok.pad_token_id and again.eos_token_id == tok.eos_token_id


def test_labels_mask_everything_but_the_answer() -> None:
    tok = build_char_tokenizer("⓪①")
    enc = ExampleEncoder(tok)
    ids, labels = enc.encode(CHAT)
    assert ids == _chat_ids(tok, CHAT, False)  # the fast path matches the chat template exactly
    supervised = [t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE]
    assert tok.decode(supervised) == "①①<|end|>"
    # The generic (template-driven) path used for real tokenizers labels the same tokens.
    enc.fast = False
    assert enc.encode(CHAT) == (ids, labels)


def test_a_tiny_heros_initial_weights_follow_its_seed() -> None:
    tok = build_char_tokenizer("⓪①")
    weights = [build_tiny_hero({**TINY, "seed": s}, tok).lm_head.weight for s in (1, 1, 2)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_packed_loss_equals_unpacked_loss() -> None:
    tok = build_char_tokenizer("⓪①")
    model = build_tiny_hero(TINY, tok).eval()
    enc = ExampleEncoder(tok)
    examples = [
        enc.encode([{"role": "user", "content": "⓪①" * k}, {"role": "assistant", "content": "①" * (k + 1)}])
        for k in range(1, 12)
    ]
    batches = pack_examples(examples, batch_size=2, max_length=48, pad_id=tok.pad_token_id)
    assert sum(b.n_examples for b in batches) == len(examples)
    assert any(int((b.position_ids[0] == 0).sum()) > 2 for b in batches)  # rows really hold several examples
    with torch.no_grad():
        packed = sum(float(token_nll(model, b)[0].sum()) for b in batches)
        alone = 0.0
        for e in examples:
            (b,) = pack_examples([e], 1, len(e[0]), tok.pad_token_id)
            alone += float(token_nll(model, b)[0].sum())
    assert packed == pytest.approx(alone, rel=1e-5)


def test_segments_learn_reload_and_are_deterministic(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parent = None
    losses, seconds = [], []
    for seg in range(3):
        t0 = time.perf_counter()
        # 15 steps per segment: the first ends mid-way through learning the answer format, later ones refine.
        spec = _spec(tmp_path / f"seg{seg}", parent_dir=parent, seed=seg + 1, steps=15)
        r = train_segment(spec)
        seconds.append(time.perf_counter() - t0)
        losses.append(r.heldout_loss)
        assert r.step == 15 and r.tokens > 0 and r.tokens_per_s > 0 and r.peak_memory_bytes > 0
        assert r.strain_source == "heldout" and r.zone == zone(r.strain).value.title()
        assert not (Path(spec.output_dir) / "resume").exists()
        parent = spec.output_dir
    print("heldout losses per segment", losses, "seconds", seconds)
    assert losses[-1] < 0.8 * losses[0]

    model = AutoModelForCausalLM.from_pretrained(parent)
    tok = AutoTokenizer.from_pretrained(parent)
    as_base, _ = load_base(
        {"id": "local-hero", "path": parent}
    )  # a checkpoint dir also serves as a hero base
    assert type(as_base) is type(model)
    assert model.config.vocab_size == len(tok)
    prompt = tok.apply_chat_template(
        CHAT[1:2], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**prompt, max_new_tokens=4, do_sample=False, eos_token_id=tok.eos_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]

    # Same spec, fresh dir -> bit-identical weights; a finished dir is returned as-is (idempotent).
    first = train_segment(_spec(tmp_path / "a", steps=10))
    second = train_segment(_spec(tmp_path / "b", steps=10))
    assert first.sha256 == second.sha256
    assert train_segment(_spec(tmp_path / "a", steps=10)) == first


def test_surprise_weighted_and_mix_extras(tmp_path: Path) -> None:
    reflections = [CHAT[1:], CHAT]
    spec = _spec(
        tmp_path / "s", steps=5, surprise_weighted=True, quests=[CHAT], reflections=reflections, heldout=[]
    )
    assert spec_from_json(spec_to_json(spec)) == spec
    r = train_segment(spec)
    assert r.heldout_loss is None and r.strain_source == "train" and r.step == 5
    assert r.reflections_trained > 0 and r.mirror_probes == 0  # reflections trained on; no Mirror probing


def test_trained_tokens_record_the_mix_it_trained(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from realm_pipeline.training.data import MixStream
    from realm_pipeline.training.trainer import mix_sources

    spec = _spec(tmp_path / "m", steps=6, mix=[("bin", 1, 0.7), ("bin", 2, 0.3)], quests=[CHAT], heldout=[])
    r = train_segment(spec)
    assert set(r.trained_tokens) == {"bin@1", "bin@2", "quests"}
    assert sum(r.trained_tokens.values()) == r.tokens  # every packed token belongs to one source
    # Replay the same stream for the examples the segment consumed, counting tokens per source.
    encoder = ExampleEncoder(AutoTokenizer.from_pretrained(spec.output_dir))
    stream = MixStream(mix_sources(spec), spec.seed, encoder)
    replayed: dict[str, int] = {}
    for _ in range(r.examples):
        name = stream.next_source()
        replayed[name] = replayed.get(name, 0) + len(stream.consume()[0])
    assert replayed == r.trained_tokens
    assert r.trained_tokens["bin@1"] > r.trained_tokens["bin@2"]  # 0.7 against 0.3 of the examples


def test_hero_weights_missing(tmp_path: Path) -> None:
    from huggingface_hub import constants

    with pytest.raises(HeroWeightsMissing) as err:
        load_base("realm-test/no-such-hero-0.6B")
    msg = str(err.value)
    assert "realm-test/no-such-hero-0.6B" in msg and str(constants.HF_HUB_CACHE) in msg
    assert "huggingface-cli download realm-test/no-such-hero-0.6B" in msg and "base.path" in msg

    missing = tmp_path / "nowhere"
    with pytest.raises(HeroWeightsMissing, match=str(missing)):
        load_base({"id": "Qwen/Qwen3-0.6B", "path": str(missing)})


def test_lora_segment_saves_a_plain_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    r = train_segment(_spec(tmp_path / "lora", steps=4, save_every=2, method="lora", lr=1e-2))
    model = AutoModelForCausalLM.from_pretrained(r.path)  # LoRA is merged: no adapter files, no peft needed
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert not (tmp_path / "lora" / "adapter_config.json").exists()
