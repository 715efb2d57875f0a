"""Segment training for heroes: char tokenizer, tiny Qwen3, packed data, resumable trainer."""

from __future__ import annotations

from typing import Any

__all__ = [
    "HeroWeightsMissing",
    "SegmentResult",
    "SegmentSpec",
    "build_char_tokenizer",
    "build_tiny_hero",
    "load_base",
    "spec_from_json",
    "spec_to_json",
    "train_segment",
]

# Lazy attributes keep `import realm_pipeline.training` free of torch/transformers for Dagster definitions.
_LAZY = {
    "HeroWeightsMissing": "hero",
    "build_tiny_hero": "hero",
    "load_base": "hero",
    "build_char_tokenizer": "tokenizer",
    "SegmentResult": "trainer",
    "SegmentSpec": "trainer",
    "spec_from_json": "trainer",
    "spec_to_json": "trainer",
    "train_segment": "trainer",
}


def __getattr__(name: str) -> Any:
    """Import the defining submodule on first attribute access."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
