"""Build tiny Qwen3 heroes from a config dict, or load real heroes from local weights only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from realm_pipeline.lm.dtypes import torch_dtype

# A ~0.8M-parameter Qwen3: big enough to learn low skill levels in seconds on CPU, small enough for tests.
DEFAULT_TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "intermediate_size": 384,
    "max_position_embeddings": 512,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "seed": 0,
}

# Qwen3-0.6B's shape (random weights) for throughput/MFU benchmarks without downloading anything.
QWEN3_06B_SHAPE: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 3072,
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
}


class HeroWeightsMissing(FileNotFoundError):
    """A real hero's weights are not on this machine (loading is offline-only)."""


def build_tiny_hero(model_config: dict, tokenizer: Any) -> Any:
    """Build a seeded, random-init `Qwen3ForCausalLM` whose vocab and special ids match `tokenizer`."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = {**DEFAULT_TINY_CONFIG, **model_config}
    seed = int(cfg.pop("seed", 0))
    cfg.pop("characters", None)
    cfg.pop("dtype", None)
    cfg.setdefault("vocab_size", len(tokenizer))
    config = Qwen3Config(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attention_dropout=0.0,
        use_cache=False,
        **cfg,
    )
    # Seed a private generator state so building a hero never perturbs the caller's RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    return model


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def load_base(source: dict | str, *, dtype: Any = None, method: str = "full") -> tuple[Any, Any]:
    """(model, tokenizer) for a hero base: {"tiny": config} builds one; an id or path loads offline."""
    if isinstance(source, dict) and "tiny" in source:
        from .tokenizer import build_char_tokenizer

        tiny = dict(source["tiny"] or {})
        characters = tiny.pop("characters", None)
        if characters is None:
            from realm_pipeline.skills import CHARACTERS

            characters = CHARACTERS
        tokenizer = build_char_tokenizer(characters)
        model = build_tiny_hero(tiny, tokenizer)
        if dtype is not None:
            model = model.to(torch_dtype(dtype))
        return model, tokenizer

    if isinstance(source, dict):
        model_id = source.get("id") or source.get("path")
        path = source.get("path")
    else:
        model_id, path = source, None
    if not model_id:
        raise ValueError(f"hero base needs 'tiny', 'id' or 'path': {source!r}")
    target = path or model_id
    is_local = path is not None or os.path.isdir(str(target)) or str(target).startswith(("/", "./", "~"))
    where = str(Path(str(target)).expanduser()) if is_local else f"the Hugging Face cache {_hf_cache_dir()}"
    if is_local and not Path(str(target)).expanduser().is_dir():
        raise HeroWeightsMissing(_missing_message(model_id, where))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(target), local_files_only=True)
        if method == "qlora":
            from .methods import load_for_method  # only the QLoRA path needs a quantized load

            model = load_for_method(str(target), method, torch_dtype(dtype))
        else:
            kwargs = {"dtype": torch_dtype(dtype)} if dtype is not None else {}
            model = AutoModelForCausalLM.from_pretrained(str(target), local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:  # HF raises OSError/EnvironmentError when files are absent offline
        raise HeroWeightsMissing(_missing_message(model_id, where)) from exc
    return model, tokenizer


def _missing_message(model_id: str, where: str) -> str:
    return (
        f"Hero weights for {model_id!r} are not available offline: looked in {where}. "
        f"Fetch them on a connected machine with `huggingface-cli download {model_id}` "
        f"(then copy the cache here), or set the hero's `base.path` to a local checkpoint directory."
    )
