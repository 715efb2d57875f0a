"""Fine-tuning methods (full, LoRA, QLoRA, GaLore) and the optimizers that go with them.

torch, transformers, peft, bitsandbytes and galore-torch are imported inside functions so that importing
this module stays cheap (Dagster code locations import every asset module at load time).
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

from realm_pipeline.lm.dtypes import torch_dtype

METHODS: tuple[str, ...] = ("full", "lora", "qlora", "galore")
OPTIMIZERS: tuple[str, ...] = ("adamw", "adamw_8bit", "paged_adamw", "muon")
DEFAULT_LORA_TARGETS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
GPU_EXTRA_HINT = "pip install realm[gpu]"

# GaLore defaults from the paper's LLaMA recipes (Zhao et al. 2024): rank 128, refresh the projection
# every 200 steps, scale 0.25.
GALORE_RANK = 128
GALORE_UPDATE_PROJ_GAP = 200
GALORE_SCALE = 0.25


class MethodUnavailable(RuntimeError):
    """A training method or optimizer cannot run on this machine (no CUDA, missing package)."""


class MissingDependency(MethodUnavailable, ImportError):
    """An optional package needed by a method or optimizer is not installed."""


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown training method {method!r}; valid methods: {', '.join(METHODS)}")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _require_cuda(what: str) -> None:
    if not _cuda_available():
        raise MethodUnavailable(
            f"{what} requires a CUDA GPU, but torch.cuda.is_available() is False on this machine; "
            "use method 'lora' or 'full' (or the cpu_tiny profile) instead"
        )


def _require_package(module: str, package: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{what} needs the '{package}' package, which is not installed; "
            f"install it with `{GPU_EXTRA_HINT}` (or `pip install {package}`)"
        ) from exc


def _is_4bit(model: Any) -> bool:
    if getattr(model, "is_loaded_in_4bit", False):
        return True
    qc = getattr(getattr(model, "config", None), "quantization_config", None)
    if isinstance(qc, dict):
        return bool(qc.get("load_in_4bit"))
    return bool(getattr(qc, "load_in_4bit", False))


def _enable_checkpointing(model: Any) -> None:
    # use_reentrant=False works with frozen inputs (LoRA) without enable_input_require_grads hacks.
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        # transformers >= 5.x renamed the API; the old name still works but warns.
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def prepare_model(
    model: Any,
    method: str,
    *,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_target_modules: list[str] | None = None,
    gradient_checkpointing: bool = False,
    lora_dropout: float = 0.0,
) -> Any:
    """Make `model` ready for `method`: set trainable params, wrap with LoRA, enable checkpointing."""
    _check_method(method)
    if method == "qlora":
        # Fail before touching the model: a half-prepared model is worse than none.
        _require_cuda("method 'qlora' (bitsandbytes 4-bit)")
        _require_package("bitsandbytes", "bitsandbytes", "method 'qlora'")
        if not _is_4bit(model):
            raise ValueError(
                "method 'qlora' needs a model loaded in 4-bit; load it with "
                "load_for_method(path, 'qlora') instead of a plain from_pretrained"
            )

    if gradient_checkpointing:
        _enable_checkpointing(model)
        if getattr(model, "config", None) is not None:
            model.config.use_cache = False  # KV cache is useless in training and conflicts with checkpointing

    if method in ("full", "galore"):
        # GaLore trains all weights; the low-rank projection lives in the optimizer (build_optimizer).
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    from peft import LoraConfig, get_peft_model

    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    lora_config = LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha,
        target_modules=list(lora_target_modules or DEFAULT_LORA_TARGETS),
        lora_dropout=lora_dropout,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora_config)


def load_for_method(
    path_or_id: str, method: str, dtype: str | Any = "bfloat16", local_files_only: bool = True
) -> Any:
    """Load a causal LM as `method` needs it (NF4 4-bit for qlora, else plain); dtype: name or torch.dtype."""
    _check_method(method)
    resolved = torch_dtype(dtype)
    if method == "qlora":
        _require_cuda("method 'qlora' (bitsandbytes 4-bit loading)")
        _require_package("bitsandbytes", "bitsandbytes", "method 'qlora'")
        import torch
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        bnb_config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=resolved,
        )
        return AutoModelForCausalLM.from_pretrained(
            path_or_id,
            quantization_config=bnb_config,
            dtype=resolved,
            # 4-bit weights must be placed on the GPU at load time; quantized params cannot be .to()'d later.
            device_map={"": torch.cuda.current_device()},
            local_files_only=local_files_only,
        )
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path_or_id, dtype=resolved, local_files_only=local_files_only)


def _decay_groups(named: list[tuple[str, Any]], weight_decay: float) -> list[dict[str, Any]]:
    # Weight decay on norms and biases only shrinks scales toward 0; standard practice skips 1-D params.
    decay = [p for _, p in named if p.ndim >= 2]
    no_decay = [p for _, p in named if p.ndim < 2]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _embedding_param_ids(model: Any) -> set[int]:
    ids: set[int] = set()
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        fn = getattr(model, getter, None)
        module = fn() if callable(fn) else None
        if module is not None:
            ids.update(id(p) for p in module.parameters())
    return ids


def _is_embedding_name(name: str) -> bool:
    # Fallback for models without get_*_embeddings (and belt-and-braces for tied weights).
    return "embed" in name or name.endswith("lm_head.weight") or ".lm_head." in name


def build_optimizer(
    model: Any, name: str, lr: float, weight_decay: float = 0.0, *, method: str = "full"
) -> Any:
    """Build a torch optimizer over the trainable params of `model` (GaLore when method == 'galore')."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
    _check_method(method)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters; call prepare_model first")

    if method == "galore":
        return _build_galore(model, named, name, lr, weight_decay)

    if name == "adamw":
        import torch

        # fused is the fastest AdamW kernel but only exists for CUDA tensors; foreach is the CPU fallback.
        on_cuda = all(p.is_cuda for _, p in named)
        kwargs = {"fused": True} if on_cuda else {"foreach": True}
        return torch.optim.AdamW(_decay_groups(named, weight_decay), lr=lr, **kwargs)

    if name in ("adamw_8bit", "paged_adamw"):
        bnb = _require_package("bitsandbytes", "bitsandbytes", f"optimizer {name!r}")
        _require_cuda(f"optimizer {name!r} (bitsandbytes)")
        cls = bnb.optim.AdamW8bit if name == "adamw_8bit" else bnb.optim.PagedAdamW
        return cls(_decay_groups(named, weight_decay), lr=lr)

    return _build_muon(model, named, lr, weight_decay)


def _build_muon(model: Any, named: list[tuple[str, Any]], lr: float, weight_decay: float) -> Any:
    import torch

    if not hasattr(torch.optim, "Muon"):
        raise MethodUnavailable(
            f"optimizer 'muon' needs torch.optim.Muon (torch >= 2.9); found {torch.__version__}"
        )
    embed_ids = _embedding_param_ids(model)
    # Muon orthogonalises 2-D updates; that is meaningful for hidden matrices only. Embeddings/lm_head are
    # lookup tables / classifiers and 1-D params are scales, so they go to AdamW (Keller Jordan's recipe).
    hidden = [
        (n, p) for n, p in named if p.ndim == 2 and id(p) not in embed_ids and not _is_embedding_name(n)
    ]
    hidden_ids = {id(p) for _, p in hidden}
    rest = [(n, p) for n, p in named if id(p) not in hidden_ids]
    optimizers = []
    if hidden:
        # match_rms_adamw rescales the orthogonalised update to AdamW's RMS, so one lr serves both halves.
        optimizers.append(
            torch.optim.Muon(
                [p for _, p in hidden], lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw"
            )
        )
    if rest:
        optimizers.append(torch.optim.AdamW(_decay_groups(rest, weight_decay), lr=lr, foreach=True))
    if len(optimizers) == 1:
        return optimizers[0]
    return _combined_optimizer_cls()(optimizers)


def _build_galore(model: Any, named: list[tuple[str, Any]], name: str, lr: float, weight_decay: float) -> Any:
    if name not in ("adamw", "adamw_8bit"):
        raise ValueError(f"method 'galore' supports optimizers 'adamw' and 'adamw_8bit', not {name!r}")
    galore = _require_package("galore_torch", "galore-torch", "method 'galore'")
    embed_ids = _embedding_param_ids(model)
    # GaLore projects gradients of the hidden 2-D matrices; embeddings and 1-D params keep plain Adam states
    # (as in the paper, which targets attention and MLP weights).
    low_rank = [p for n, p in named if p.ndim == 2 and id(p) not in embed_ids and not _is_embedding_name(n)]
    low_rank_ids = {id(p) for p in low_rank}
    regular = [p for _, p in named if id(p) not in low_rank_ids]
    groups: list[dict[str, Any]] = []
    if regular:
        groups.append({"params": regular})
    if low_rank:
        groups.append(
            {
                "params": low_rank,
                "rank": GALORE_RANK,
                "update_proj_gap": GALORE_UPDATE_PROJ_GAP,
                "scale": GALORE_SCALE,
                "proj_type": "std",
            }
        )
    cls = galore.GaLoreAdamW if name == "adamw" else galore.GaLoreAdamW8bit
    return cls(groups, lr=lr, weight_decay=weight_decay)


@functools.cache
def _combined_optimizer_cls() -> type:
    # Built lazily because subclassing torch.optim.Optimizer needs torch at class-creation time.
    from collections import OrderedDict

    import torch

    class CombinedOptimizer(torch.optim.Optimizer):
        """Several optimizers over disjoint params, presented as one (for LR schedulers and checkpoints)."""

        def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
            # Optimizer.__init__ is deliberately not called: the children own param groups and state.
            if not optimizers:
                raise ValueError("CombinedOptimizer needs at least one optimizer")
            self.optimizers = list(optimizers)
            self.defaults: dict[str, Any] = {}
            self._optimizer_step_pre_hooks = OrderedDict()
            self._optimizer_step_post_hooks = OrderedDict()
            self._optimizer_state_dict_pre_hooks = OrderedDict()
            self._optimizer_state_dict_post_hooks = OrderedDict()
            self._optimizer_load_state_dict_pre_hooks = OrderedDict()
            self._optimizer_load_state_dict_post_hooks = OrderedDict()

        @property
        def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
            # The same dict objects as the children's, so a scheduler's lr writes reach them.
            return [g for opt in self.optimizers for g in opt.param_groups]

        @property
        def state(self) -> dict[Any, Any]:  # type: ignore[override]
            merged: dict[Any, Any] = {}
            for opt in self.optimizers:
                merged.update(opt.state)
            return merged

        def add_param_group(self, param_group: dict[str, Any]) -> None:
            raise NotImplementedError("add param groups to the wrapped optimizers directly")

        @torch.no_grad()
        def step(self, closure: Any = None) -> Any:
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for opt in self.optimizers:
                opt.step()
            return loss

        def zero_grad(self, set_to_none: bool = True) -> None:
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=set_to_none)

        def state_dict(self) -> dict[str, Any]:
            return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            states = state_dict["optimizers"]
            if len(states) != len(self.optimizers):
                raise ValueError(
                    f"state_dict holds {len(states)} optimizers, "
                    f"this CombinedOptimizer has {len(self.optimizers)}"
                )
            for opt, sd in zip(self.optimizers, states, strict=True):
                opt.load_state_dict(sd)

        def __repr__(self) -> str:
            inner = ", ".join(type(o).__name__ for o in self.optimizers)
            return f"CombinedOptimizer({inner})"

    return CombinedOptimizer


def __getattr__(name: str) -> Any:
    # `from realm_pipeline.training.methods import CombinedOptimizer` works without importing torch eagerly.
    if name == "CombinedOptimizer":
        return _combined_optimizer_cls()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
