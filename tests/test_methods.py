"""Tests for realm_pipeline.training.methods on a tiny CPU Qwen3."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from realm_pipeline.training import methods  # noqa: E402
from realm_pipeline.training.methods import (  # noqa: E402
    MethodUnavailable,
    MissingDependency,
    build_optimizer,
    load_for_method,
    prepare_model,
)


def _tiny_model():
    torch.manual_seed(0)
    cfg = transformers.Qwen3Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=64,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    return transformers.Qwen3ForCausalLM(cfg)


def _train_step(model, opt):
    ids = torch.randint(0, 64, (2, 8))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_import_does_not_import_torch():
    code = (
        "import sys; import realm_pipeline.training.methods as m; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'transformers' not in sys.modules; assert 'peft' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_full_makes_all_params_trainable():
    model = _tiny_model()
    for p in model.parameters():
        p.requires_grad_(False)
    model = prepare_model(model, "full")
    assert all(p.requires_grad for p in model.parameters())


def test_galore_method_trains_all_params_and_needs_package():
    model = prepare_model(_tiny_model(), "galore")
    assert all(p.requires_grad for p in model.parameters())
    try:
        import galore_torch  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependency, match="galore-torch.*realm\\[gpu\\]"):
            build_optimizer(model, "adamw", 1e-3, method="galore")
    with pytest.raises(ValueError, match="galore"):
        build_optimizer(model, "muon", 1e-3, method="galore")


def test_lora_trains_only_adapters():
    model = prepare_model(_tiny_model(), "lora", lora_r=4, lora_alpha=8)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # Every default target projection got an adapter.
    for target in methods.DEFAULT_LORA_TARGETS:
        assert any(target in n for n in trainable), target
    opt = build_optimizer(model, "adamw", 1e-2)
    before = _snapshot(model)
    # lora_B starts at zero, so two steps make sure both A and B move.
    _train_step(model, opt)
    _train_step(model, opt)
    after = _snapshot(model)
    for n in before:
        changed = not torch.equal(before[n], after[n])
        assert changed == (n in trainable), n


def test_lora_with_gradient_checkpointing_backprops():
    model = prepare_model(_tiny_model(), "lora", gradient_checkpointing=True)
    model.train()
    assert (
        getattr(model.base_model.model, "is_activation_checkpointing", None)
        or model.base_model.model.is_gradient_checkpointing
    )
    opt = build_optimizer(model, "adamw", 1e-2)
    loss = _train_step(model, opt)
    assert torch.isfinite(loss)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_qlora_on_cpu_raises_before_work():
    model = _tiny_model()
    before = _snapshot(model)
    with pytest.raises(MethodUnavailable, match="CUDA"):
        prepare_model(model, "qlora")
    # Nothing was wrapped or frozen.
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    with pytest.raises(MethodUnavailable, match="CUDA"):
        load_for_method("/nonexistent", "qlora")


def test_load_for_method_plain(tmp_path):
    _tiny_model().save_pretrained(tmp_path)
    model = load_for_method(str(tmp_path), "full", dtype="float32")
    assert next(model.parameters()).dtype == torch.float32
    model = load_for_method(str(tmp_path), "lora")
    assert next(model.parameters()).dtype == torch.bfloat16
    model = load_for_method(str(tmp_path), "full", dtype=torch.float16)  # a torch.dtype works too
    assert next(model.parameters()).dtype == torch.float16
    with pytest.raises(ValueError, match="dtype"):
        load_for_method(str(tmp_path), "full", dtype="int3")


def test_muon_steps_hidden_and_embeddings_and_round_trips():
    model = prepare_model(_tiny_model(), "full")
    opt = build_optimizer(model, "muon", 1e-2, weight_decay=0.01)
    combined_cls = methods.CombinedOptimizer
    assert isinstance(opt, combined_cls)
    assert isinstance(opt, torch.optim.Optimizer)
    muon, adamw = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    muon_ids = {id(p) for g in muon.param_groups for p in g["params"]}
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    assert id(embed) not in muon_ids and id(head) not in muon_ids
    assert all(p.ndim == 2 for g in muon.param_groups for p in g["params"])
    q = model.model.layers[0].self_attn.q_proj.weight
    assert id(q) in muon_ids

    # An LR scheduler drives both halves through the shared param_groups.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    before = _snapshot(model)
    _train_step(model, opt)
    sched.step()
    after = _snapshot(model)
    assert not torch.equal(
        before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"]
    )
    assert not torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])
    assert all(g["lr"] == pytest.approx(5e-3) for g in muon.param_groups + adamw.param_groups)

    state = opt.state_dict()
    fresh = build_optimizer(model, "muon", 1e-2, weight_decay=0.01)
    fresh.load_state_dict(state)
    assert fresh.state_dict()["optimizers"][0]["state"].keys() == state["optimizers"][0]["state"].keys()
    for k, v in state["optimizers"][0]["state"].items():
        for name, t in v.items():
            assert torch.equal(fresh.state_dict()["optimizers"][0]["state"][k][name], t)
    assert len(opt.state) > 0
    _train_step(model, fresh)  # a restored optimizer keeps stepping


def test_adamw_on_cpu_uses_foreach():
    model = prepare_model(_tiny_model(), "full")
    opt = build_optimizer(model, "adamw", 1e-3, weight_decay=0.1)
    assert all(g["foreach"] for g in opt.param_groups)
    assert not any(g.get("fused") for g in opt.param_groups)
    # 1-D params (norms) are exempt from weight decay.
    for g in opt.param_groups:
        if any(p.ndim < 2 for p in g["params"]):
            assert g["weight_decay"] == 0.0


@pytest.mark.parametrize("name", ["adamw_8bit", "paged_adamw"])
def test_bitsandbytes_optimizers_clear_error(name):
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("bitsandbytes installed")
    model = prepare_model(_tiny_model(), "full")
    with pytest.raises(MissingDependency, match="bitsandbytes.*pip install realm\\[gpu\\]") as info:
        build_optimizer(model, name, 1e-3)
    assert isinstance(info.value, ImportError)


def test_unknown_names():
    model = _tiny_model()
    with pytest.raises(ValueError, match="'dora'.*full, lora, qlora, galore"):
        prepare_model(model, "dora")
    with pytest.raises(ValueError, match="'sgd'.*adamw"):
        build_optimizer(model, "sgd", 1e-3)
    with pytest.raises(ValueError, match="'dora'"):
        build_optimizer(model, "adamw", 1e-3, method="dora")
    with pytest.raises(ValueError, match="'dora'"):
        load_for_method("/nonexistent", "dora")


def test_no_trainable_params_is_an_error():
    model = _tiny_model()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(model, "adamw", 1e-3)
