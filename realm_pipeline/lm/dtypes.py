"""Dtype names as configs write them, to torch dtypes: shared by the trainer and the evaluators."""

from __future__ import annotations

from typing import Any

DTYPE_ALIASES = {"fp64": "float64", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def torch_dtype(dtype: Any) -> Any:
    """A torch.dtype from its name (float64/32, bfloat16, float16 or fp64/fp32/bf16/fp16); None passes."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):  # callers holding a torch.dtype already pass it
        return dtype
    name = DTYPE_ALIASES.get(str(dtype), str(dtype))
    if name not in ("float64", "float32", "bfloat16", "float16"):
        raise ValueError(
            f"unknown dtype {dtype!r}; valid: float64, float32, bfloat16, float16 (or fp64/fp32/bf16/fp16)"
        )
    return getattr(torch, name)
