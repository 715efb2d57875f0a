"""Batched greedy decoding with a KV cache whose per-item outputs do not depend on the batch size.

Why outputs can depend on the batch size at all: a batch changes the shapes the kernels see (how many
rows, how much left padding), which can change the order of floating-point reductions; a logit that
moves by an ulp can flip an argmax, and the whole continuation after it.

How we rule that out on CPU (``dtype="auto"``): every row is decoded in float32, and each greedy pick
is checked against a tie margin. A pick whose top-two logit gap is at least ``tie_margin`` (relative
to the top logit, at least 1.0) cannot be flipped by batch noise, which is orders of magnitude smaller
for the models we run on CPU (<1e-6 in float32, see TIE_MARGIN). A row that meets a closer call is dropped
from its batch and re-decoded ALONE in float64, a computation that does not involve any other prompt.
While batch noise stays below the margin, either path yields the float64 greedy answer, so a row's
output is the same whichever batch it was in (and equals a float64 one-at-a-time reference).
Padding itself is inert: masked positions get exactly zero attention weight, and positions are counted
from the attention mask, so a left-padded row sees exactly the RoPE positions it sees alone.
``dtype="float64"`` skips the guard and decodes everything in float64 (about 2-3x slower on CPU).

On CUDA, ``"auto"`` keeps the model's dtype with no guard (low-precision noise is far larger, and
float64 is slow there): outputs are deterministic for a fixed batch size but may differ across batch
sizes; backends then put the batch size into the eval fingerprint. Pass ``tie_margin`` to opt in.

torch/transformers are imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from realm_pipeline.lm.dtypes import torch_dtype

Prompt = str | Sequence[int]


def resolve_dtype(model: Any, dtype: Any = "auto") -> Any:
    """The dtype decoding runs in: "auto" = float32 on CPU (tie-guarded), else the model's own."""
    import torch

    if dtype is None:
        return next(model.parameters()).dtype
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        device = next(model.parameters()).device
        return torch.float32 if device.type == "cpu" else next(model.parameters()).dtype
    return torch_dtype(dtype)


# Measured on tiny heroes: float32 logits (batched or alone) sit within 5.3e-7 of float64 ones at logit
# scale ~0.7, so a 1e-4 margin (relative to max(1, |top logit|)) leaves a ~200x safety factor.
TIE_MARGIN = 1e-4


def resolve_tie_margin(model: Any, dtype: Any = "auto", tie_margin: float | None = None) -> float:
    """The tie guard in effect: explicit value, else TIE_MARGIN for float32 on CPU, else 0 (off)."""
    import torch

    if tie_margin is not None:
        return float(tie_margin)
    on_cpu = next(model.parameters()).device.type == "cpu"
    return TIE_MARGIN if on_cpu and resolve_dtype(model, dtype) == torch.float32 else 0.0


def is_batch_invariant(model: Any, dtype: Any = "auto", tie_margin: float | None = None) -> bool:
    """True when outputs cannot depend on the batch size: CPU with float64 or a float32 tie guard."""
    import torch

    if next(model.parameters()).device.type != "cpu":
        return False
    compute = resolve_dtype(model, dtype)
    return compute == torch.float64 or resolve_tie_margin(model, dtype, tie_margin) > 0


@contextlib.contextmanager
def _as_dtype(model: Any, dtype: Any) -> Iterator[None]:
    """Temporarily cast floating params/buffers to `dtype`; restoring is exact (widening round-trips)."""
    tensors = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    original = [t.dtype for t in tensors]
    if all(d == dtype for d in original):
        yield
        return
    for t in tensors:
        t.data = t.data.to(dtype)
    try:
        yield
    finally:
        for t, d in zip(tensors, original, strict=True):
            t.data = t.data.to(d)


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends a turn: the tokenizer's EOS plus the generation config's EOS (int or list)."""
    ids: set[int] = set()
    candidates = [getattr(tokenizer, "eos_token_id", None)]
    gen_config = getattr(model, "generation_config", None)
    candidates.append(getattr(gen_config, "eos_token_id", None))
    for c in candidates:
        if isinstance(c, int):
            ids.add(c)
        elif isinstance(c, list | tuple):
            ids.update(int(x) for x in c)
    return ids


def _encode(tokenizer: Any, prompts: Sequence[Prompt]) -> list[list[int]]:
    texts = [i for i, p in enumerate(prompts) if isinstance(p, str)]
    encoded: list[list[int]] = [list(p) if not isinstance(p, str) else [] for p in prompts]
    if texts:
        # Rendered chat text already carries its special tokens: adding BOS etc. again would change it.
        ids = tokenizer([prompts[i] for i in texts], add_special_tokens=False)["input_ids"]
        for i, row in zip(texts, ids, strict=True):
            encoded[i] = list(row)
    for i, row in enumerate(encoded):
        if not row:
            raise ValueError(f"prompt {i} is empty after tokenization")
    return encoded


def _trim_stop(text: str, stop_strings: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest occurrence of any stop string; report whether one was found."""
    cut = min((pos for s in stop_strings if s and (pos := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int,
    stop_strings: Sequence[str] = (),
    batch_size: int = 32,
    dtype: Any = "auto",
    tie_margin: float | None = None,
    stats: dict | None = None,
) -> list[str]:
    """Greedy-decode each prompt (rendered text or token ids); outputs are in input order, stops trimmed.

    `stats`, when given, is filled with counts: prompts, batches, close_calls (rows re-decoded in float64).
    """
    import torch

    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not prompts:
        return []
    encoded = _encode(tokenizer, prompts)
    if max_new_tokens == 0:
        return [""] * len(prompts)
    eos = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = min(eos) if eos else 0
    stops = [s for s in stop_strings if s]
    # Sorting by length keeps similar lengths together, so batches carry little padding.
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    outputs: list[str | None] = [None] * len(encoded)
    target = resolve_dtype(model, dtype)
    margin = resolve_tie_margin(model, dtype, tie_margin) if target != torch.float64 else 0.0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _as_dtype(model, target):
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                texts = _decode_chunk(
                    model, tokenizer, [encoded[i] for i in chunk], max_new_tokens, eos, pad_id, stops, margin
                )
                for i, text in zip(chunk, texts, strict=True):
                    outputs[i] = text
        fallback = [i for i, text in enumerate(outputs) if text is None]
        if stats is not None:
            stats.update(
                prompts=len(encoded),
                batches=-(-len(order) // batch_size),
                close_calls=len(fallback),
                dtype=str(target).removeprefix("torch."),
                tie_margin=margin,
            )
        if fallback:
            # Close calls: each such row is decoded alone in float64, independent of every other prompt.
            with torch.inference_mode(), _as_dtype(model, torch.float64):
                for i in fallback:
                    outputs[i] = _decode_chunk(
                        model, tokenizer, [encoded[i]], max_new_tokens, eos, pad_id, stops, 0.0
                    )[0]
    finally:
        model.train(was_training)
    return [text or "" for text in outputs]


def _decode_chunk(
    model: Any,
    tokenizer: Any,
    rows: list[list[int]],
    max_new_tokens: int,
    eos: set[int],
    pad_id: int,
    stops: list[str],
    tie_margin: float,
) -> list[str | None]:
    """One left-padded batch: prefill, then one token per step until every row has stopped.

    A row whose greedy pick is a close call (top-two gap below the tie margin) comes back as None.
    """
    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    n, width = len(rows), max(len(r) for r in rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for b, row in enumerate(rows):
        input_ids[b, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[b, width - len(row) :] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    # Positions count real tokens only, so a padded row gets exactly the RoPE positions it gets alone.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    cache_kw = {_cache_kwarg(model): cache}
    generated: list[list[int]] = [[] for _ in range(n)]
    close_call: set[int] = set()
    alive = list(range(n))  # batch slot -> row; finished rows are dropped from the batch
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        **cache_kw,
        use_cache=True,
        logits_to_keep=1,
    )
    for step in range(max_new_tokens):
        logits = out.logits[:, -1, :]
        next_ids = logits.argmax(-1)
        tokens = next_ids.tolist()
        if tie_margin > 0:
            top = logits.float().topk(2, dim=-1).values
            close = (top[:, 0] - top[:, 1]) < tie_margin * top[:, 0].abs().clamp(min=1.0)
            close_slots = set(close.nonzero().flatten().tolist())
        keep: list[int] = []
        for slot, row in enumerate(alive):
            tok = tokens[slot]
            if tie_margin > 0 and slot in close_slots:
                close_call.add(row)
                continue
            if tok in eos:
                continue
            generated[row].append(tok)
            if stops and _trim_stop(tokenizer.decode(generated[row], skip_special_tokens=True), stops)[1]:
                continue
            keep.append(slot)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(alive):
            # Drop finished rows to save their compute; survivors' picks stay guarded (or float64).
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, positions, next_ids = mask[index], positions[index], next_ids[index]
            alive = [alive[s] for s in keep]
        mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=-1)
        positions = positions[:, -1:] + 1
        out = model(
            input_ids=next_ids[:, None],
            attention_mask=mask,
            position_ids=positions,
            **cache_kw,
            use_cache=True,
        )
    texts: list[str | None] = []
    for row in range(n):
        if row in close_call:
            texts.append(None)
            continue
        text = tokenizer.decode(generated[row], skip_special_tokens=True)
        texts.append(_trim_stop(text, stops)[0] if stops else text)
    return texts


def _cache_kwarg(model) -> str:
    """`cache`, the KV cache's keyword since transformers renamed it (`past_key_values` warns there);
    `past_key_values` on the older releases pyproject still allows."""
    import inspect

    # a PEFT wrapper forwards **kwargs: the base model's signature decides
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
