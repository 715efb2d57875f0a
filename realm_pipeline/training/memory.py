"""Back-of-the-envelope GPU memory estimates for training a hero, and profile suggestions from them.

Precision decision: by default the estimate assumes the realm trainer's setup, where weights are loaded in
bf16 and updated in place (no fp32 master copy) while AdamW keeps its two moments in fp32 (8 B per trainable
param, as DeepSpeed/bitsandbytes-style optimizers do). Pass ``master_weights=True`` for classic AMP / ZeRO
mixed precision, which adds a 4 B/param fp32 copy of every trainable weight, or ``dtype_bytes=4`` when the
weights themselves stay fp32 under bf16 autocast (same 16 B/param for full AdamW).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

GIB = 1024**3

# Fixed cost that is not model-dependent: CUDA context + cuBLAS/cuDNN workspaces (~0.5-1 GiB on recent
# drivers). On top of that the caching allocator fragments; 10 % of the variable part is a common rule.
CUDA_CONTEXT_BYTES = int(0.75 * GIB)
FRAGMENTATION = 0.10

# NF4 4-bit weights with double quantization: 4 bits + ~0.127 bits of quantization constants per param
# (Dettmers et al. 2023, QLoRA §2: blocksize 64 fp32 absmax -> 8-bit with a second-level blocksize 256).
NF4_BYTES_PER_PARAM = 0.5 + 0.127 / 8

METHODS = ("full", "lora", "qlora", "galore")
OPTIMIZERS = ("adamw", "adamw_8bit", "paged_adamw", "muon")

# Qwen3 dense shapes (hidden, layers, heads), used to turn "a 4B model" into something the activation model
# can use. Vocab is 151,936 for all of them.
_QWEN3_SHAPES: tuple[tuple[float, int, int, int], ...] = (
    (0.6, 1024, 28, 16),
    (1.7, 2048, 28, 16),
    (4.0, 2560, 36, 32),
    (8.0, 4096, 36, 32),
    (14.0, 5120, 40, 40),
    (32.0, 5120, 64, 64),
)
_QWEN3_VOCAB = 151_936


class WillNotFit(RuntimeError):
    """The estimated training footprint exceeds the memory available."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated training memory in bytes, split by what holds it."""

    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    logits: int
    overhead: int

    @property
    def total(self) -> int:
        """Sum of all parts in bytes."""
        return (
            self.weights
            + self.gradients
            + self.optimizer_state
            + self.activations
            + self.logits
            + self.overhead
        )

    def table(self) -> str:
        """Human-readable breakdown in GiB."""
        rows = [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer state", self.optimizer_state),
            ("activations", self.activations),
            ("logits (fp32 CE)", self.logits),
            ("overhead", self.overhead),
        ]
        lines = [f"{name:<18}{value / GIB:>9.2f} GiB" for name, value in rows]
        lines.append("-" * 31)
        lines.append(f"{'total':<18}{self.total / GIB:>9.2f} GiB")
        return "\n".join(lines)


def _activation_bytes_per_layer(seq_len: int, batch_size: int, hidden_size: int, num_heads: int) -> float:
    # Korthikanti et al. 2022 ("Reducing Activation Recomputation"), eq. 1 with 16-bit activations:
    # s*b*h*(34 + 5*a*s/h) bytes per transformer layer, no tensor parallelism, no recomputation.
    return seq_len * batch_size * hidden_size * (34 + 5 * num_heads * seq_len / hidden_size)


def estimate_memory(
    n_params: int,
    *,
    method: str,
    optimizer: str,
    batch_size: int,
    seq_len: int,
    hidden_size: int,
    num_layers: int,
    vocab_size: int,
    dtype_bytes: int = 2,
    gradient_checkpointing: bool = False,
    lora_fraction: float = 0.01,
    num_heads: int | None = None,
    tied_embeddings: bool = True,
    master_weights: bool = False,
    galore_rank: int = 128,
) -> MemoryEstimate:
    """Estimate the peak training memory of one data-parallel rank (no ZeRO sharding, no offload)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if min(n_params, batch_size, seq_len, hidden_size, num_layers, vocab_size) <= 0:
        raise ValueError("n_params, batch_size, seq_len, hidden_size, num_layers and vocab_size must be > 0")
    heads = num_heads or max(1, hidden_size // 64)
    embedding_params = min(n_params, vocab_size * hidden_size * (1 if tied_embeddings else 2))
    # Hidden 2-D matrices (attention + MLP); 1-D norms are negligible and folded in here.
    matrix_params = n_params - embedding_params

    trainable = int(n_params * lora_fraction) if method in ("lora", "qlora") else n_params

    if method == "qlora":
        # bitsandbytes quantizes the Linear layers only; peft's prepare_model_for_kbit_training then upcasts
        # every remaining bf16 param (embeddings, lm_head, norms) to fp32. LoRA adapters stay in bf16.
        weights = matrix_params * NF4_BYTES_PER_PARAM + embedding_params * 4 + trainable * dtype_bytes
    elif method == "lora":
        weights = n_params * dtype_bytes + trainable * dtype_bytes
    else:
        weights = n_params * dtype_bytes

    # Gradients exist only for trainable params, in the param dtype.
    gradients = trainable * dtype_bytes

    if optimizer in ("adamw", "paged_adamw"):
        # Two fp32 moments. paged_adamw pages them to host under pressure but peaks the same on device.
        opt_per_param = 8.0
    elif optimizer == "adamw_8bit":
        opt_per_param = 2.0  # two 8-bit moments (block-wise quantization constants are negligible)
    else:
        opt_per_param = -1.0  # muon: handled below
    if method == "galore":
        # GaLore keeps Adam moments in the rank-r projected space (r/h of the full size) plus the m x r
        # projection matrix (fp32); embeddings keep full Adam states.
        ratio = min(1.0, galore_rank / hidden_size)
        adam = 8.0 if optimizer != "adamw_8bit" else 2.0
        optimizer_state = matrix_params * ratio * (adam + 4) + embedding_params * adam
    elif optimizer == "muon":
        # Muon: one fp32 momentum buffer (4 B) for the 2-D hidden matrices; AdamW (8 B) for the rest.
        if method in ("lora", "qlora"):
            optimizer_state = trainable * 4.0  # LoRA A/B are all 2-D hidden matrices
        else:
            optimizer_state = matrix_params * 4.0 + embedding_params * 8.0
    else:
        optimizer_state = trainable * opt_per_param
    if master_weights and dtype_bytes < 4:
        optimizer_state += trainable * 4

    full_layer = _activation_bytes_per_layer(seq_len, batch_size, hidden_size, heads)
    if gradient_checkpointing:
        # Only each layer's input is kept (s*b*h 16-bit values = 2*s*b*h bytes), plus one layer recomputed.
        activations = 2 * seq_len * batch_size * hidden_size * num_layers + full_layer
    else:
        activations = full_layer * num_layers

    # Cross-entropy upcasts logits to fp32: b*s*V*4 bytes (the bf16 logits and the grad are transient).
    logits = batch_size * seq_len * vocab_size * 4

    variable = weights + gradients + optimizer_state + activations + logits
    overhead = CUDA_CONTEXT_BYTES + FRAGMENTATION * variable
    return MemoryEstimate(
        weights=int(weights),
        gradients=int(gradients),
        optimizer_state=int(optimizer_state),
        activations=int(activations),
        logits=int(logits),
        overhead=int(overhead),
    )


def model_shape_for(hf_config: dict[str, Any]) -> dict[str, Any]:
    """Shape of a causal LM from its HF config dict: n_params, hidden/layers/vocab/heads, tied embeddings."""
    cfg = dict(hf_config)
    if "text_config" in cfg and "hidden_size" not in cfg:
        cfg = dict(cfg["text_config"])  # multimodal wrappers nest the LM config
    try:
        hidden = int(cfg["hidden_size"])
        layers = int(cfg["num_hidden_layers"])
        vocab = int(cfg["vocab_size"])
    except KeyError as exc:
        raise ValueError(f"config dict lacks {exc.args[0]!r}; is it a causal-LM config.json?") from exc
    heads = int(cfg.get("num_attention_heads") or max(1, hidden // 64))
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    inter = int(cfg.get("intermediate_size") or 4 * hidden)
    tied = bool(cfg.get("tie_word_embeddings", False))
    # Qwen3/Llama-style block: q and o are h x (heads*head_dim), k and v are h x (kv_heads*head_dim), SwiGLU
    # MLP has three h x inter matrices; norms are 1-D (2 per layer + q/k norms of head_dim in Qwen3).
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    if cfg.get("attention_bias"):
        attn += heads * head_dim + 2 * kv_heads * head_dim + hidden
    mlp = 3 * hidden * inter
    norms = 2 * hidden + (2 * head_dim if cfg.get("model_type") == "qwen3" else 0)
    embeddings = vocab * hidden * (1 if tied else 2)
    n_params = layers * (attn + mlp + norms) + embeddings + hidden
    return {
        "n_params": n_params,
        "hidden_size": hidden,
        "num_layers": layers,
        "vocab_size": vocab,
        "num_heads": heads,
        "tied_embeddings": tied,
    }


class ProfileSuggestion(str):
    """A profile name (a plain str) that also carries the reason and the estimate behind it."""

    reason: str
    estimate: MemoryEstimate | None

    def __new__(cls, name: str, reason: str, estimate: MemoryEstimate | None = None) -> ProfileSuggestion:
        obj = super().__new__(cls, name)
        obj.reason = reason
        obj.estimate = estimate
        return obj


def _approx_shape(model_size_b: float) -> dict[str, Any]:
    # Nearest Qwen3 shape by log-size, with the layer count stretched so params match the requested size.
    _, hidden, _, heads = min(_QWEN3_SHAPES, key=lambda s: abs(math.log(s[0] / model_size_b)))
    n_params = int(model_size_b * 1e9)
    embed = _QWEN3_VOCAB * hidden
    per_layer = 12 * hidden * hidden  # attention 4h^2 + SwiGLU MLP ~8h^2 (Qwen3 uses inter ~3-6x h)
    layers = max(1, round(max(n_params - embed, per_layer) / per_layer))
    return {
        "n_params": n_params,
        "hidden_size": hidden,
        "num_layers": layers,
        "vocab_size": _QWEN3_VOCAB,
        "num_heads": heads,
        "tied_embeddings": model_size_b < 5,  # Qwen3 ties embeddings up to 4B
    }


# Candidate profiles from cheapest to most aggressive: (name, method, optimizer, checkpointing), mirroring
# configs/memory_profiles/*.yaml. Estimated in bf16 weights, as those profiles declare.
_PROFILE_CANDIDATES: tuple[tuple[str, str, str, bool], ...] = (
    ("24gb_full_small", "full", "adamw", False),
    ("24gb_galore", "galore", "adamw", True),
    ("24gb_qlora", "qlora", "adamw", True),
)
CPU_TINY_MAX_B = 0.1  # the from-config tiny hero; anything real on CPU is too slow to be a profile
BIG_GPU_GB = 40.0
# Only plan to use 90 % of the card: the estimate is approximate and other processes (display, NCCL buffers)
# take their share.
HEADROOM = 0.90


def suggest_profile(
    model_size_b: float, vram_gb: float, *, batch_size: int = 1, seq_len: int = 512
) -> ProfileSuggestion:
    """Pick the memory profile for a model of `model_size_b` billion params on `vram_gb` GiB of VRAM."""
    if model_size_b <= 0:
        raise ValueError(f"model_size_b must be > 0, got {model_size_b}")
    if vram_gb <= 0:
        if model_size_b <= CPU_TINY_MAX_B:
            return ProfileSuggestion(
                "cpu_tiny", f"no GPU and a {model_size_b}B model: train the tiny hero on CPU"
            )
        raise WillNotFit(
            f"no GPU available and a {model_size_b}B model is beyond the cpu_tiny profile "
            f"(<= {CPU_TINY_MAX_B}B)"
        )
    shape = _approx_shape(model_size_b)
    available = vram_gb * GIB * HEADROOM

    def est(method: str, optimizer: str, ckpt: bool) -> MemoryEstimate:
        return estimate_memory(
            shape["n_params"],
            method=method,
            optimizer=optimizer,
            batch_size=batch_size,
            seq_len=seq_len,
            hidden_size=shape["hidden_size"],
            num_layers=shape["num_layers"],
            vocab_size=shape["vocab_size"],
            num_heads=shape["num_heads"],
            tied_embeddings=shape["tied_embeddings"],
            gradient_checkpointing=ckpt,
        )

    if vram_gb >= BIG_GPU_GB:
        e = est("full", "adamw", True)
        if e.total <= available:
            return ProfileSuggestion(
                "80gb_full",
                f"full fine-tuning of {model_size_b}B with AdamW + checkpointing needs "
                f"{e.total / GIB:.1f} GiB of {vram_gb} GiB",
                e,
            )
    tried = []
    for name, method, optimizer, ckpt in _PROFILE_CANDIDATES:
        e = est(method, optimizer, ckpt)
        tried.append(f"{name}: {e.total / GIB:.1f} GiB")
        if e.total <= available:
            return ProfileSuggestion(
                name,
                f"{method} with {optimizer}{' + checkpointing' if ckpt else ''} for {model_size_b}B needs "
                f"{e.total / GIB:.1f} GiB of {vram_gb} GiB (batch {batch_size}, seq {seq_len})",
                e,
            )
    raise WillNotFit(
        f"a {model_size_b}B model does not fit in {vram_gb} GiB even with QLoRA "
        f"(batch {batch_size}, seq {seq_len}); estimates: {'; '.join(tried)}"
    )


def check_fits(estimate: MemoryEstimate, available_bytes: int, device_name: str) -> None:
    """Raise WillNotFit with the breakdown when `estimate` exceeds `available_bytes` on `device_name`."""
    if estimate.total > available_bytes:
        raise WillNotFit(
            f"estimated {estimate.total / GIB:.2f} GiB exceeds the {available_bytes / GIB:.2f} GiB "
            f"available on {device_name} (short by {(estimate.total - available_bytes) / GIB:.2f} GiB)\n"
            f"{estimate.table()}"
        )
