"""A hero's `base.config` checked against the fields of transformers' own model configuration class.

Importing a transformers configuration class imports torch (seconds), and loading configs must stay
cheap (a sensor tick loads them). So the class's fields and their annotated types are read from the
installed transformers' *source* of that class with `ast`, never imported: the check follows whatever
transformers version is installed, and a test proves the real class refuses what this check refuses.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

# The architecture realm builds config heroes with (training/hero.py: build_tiny_hero).
MODEL_TYPE = "qwen3"
MODEL_CLASS = "Qwen3Config"

# Keys realm reads itself and never passes to the class (training/hero.py pops them).
REALM_KEYS: dict[str, tuple[type, ...]] = {"characters": (str,), "dtype": (str,)}
# Keyword arguments the class accepts outside its declared fields (folded into rope_parameters).
LEGACY_KEYS: dict[str, tuple[type, ...]] = {"rope_theta": (float, int)}
# Fields realm sets from the tokenizer or fixes for deterministic training: a value here would clash.
SET_BY_REALM = frozenset({"pad_token_id", "bos_token_id", "eos_token_id", "use_cache", "attention_dropout"})
# Sizes and counts: a zero or negative one builds no model.
_POSITIVE = ("_size", "num_", "head_dim", "max_position_embeddings", "vocab_size")

_SIMPLE = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


class ModelConfigSchemaError(RuntimeError):
    """The installed transformers has no readable source for the model configuration class."""


def _types(annotation: ast.expr) -> tuple[type, ...] | None:
    """Python types an annotation allows (`int | None` -> (int, NoneType)); None when not checkable."""
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        left, right = _types(annotation.left), _types(annotation.right)
        return None if left is None or right is None else left + right
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return (type(None),)
    if isinstance(annotation, ast.Subscript):
        return _types(annotation.value)
    if isinstance(annotation, ast.Name) and annotation.id in _SIMPLE:
        return (_SIMPLE[annotation.id],)
    if isinstance(annotation, ast.Name) and annotation.id == "None":
        return (type(None),)
    return None  # a class of transformers' own (RopeParameters, ...): any YAML scalar is passed on


def _default_types(default: ast.expr) -> tuple[type, ...] | None:
    # transformers 4.x declares fields as __init__ keywords: the default's type is the field's type.
    if isinstance(default, ast.Constant) and default.value is not None:
        kind = type(default.value)
        return (float, int) if kind is float else (kind,)
    return None


@lru_cache(maxsize=4)
def model_config_fields(model_type: str = MODEL_TYPE, class_name: str = MODEL_CLASS) -> dict[str, Any]:
    """{field: allowed types or None} of the installed transformers' configuration class, from its source."""
    spec = importlib.util.find_spec("transformers")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelConfigSchemaError("transformers is not installed: cannot check a hero's base.config")
    source = (
        Path(next(iter(spec.submodule_search_locations)))
        / "models"
        / model_type
        / f"configuration_{model_type}.py"
    )
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError) as exc:
        raise ModelConfigSchemaError(f"cannot read {class_name} from {source}: {exc}") from exc
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if cls is None:
        raise ModelConfigSchemaError(f"{source} defines no class {class_name}")
    fields: dict[str, Any] = {}
    for node in cls.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and "ClassVar" not in ast.unparse(node.annotation)
        ):
            fields[node.target.id] = _types(node.annotation)
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if not fields and init is not None:
        args = init.args.args[1:]
        defaults = init.args.defaults
        for arg, default in zip(args[len(args) - len(defaults) :], defaults, strict=True):
            fields[arg.arg] = _default_types(default)
    if not fields:
        raise ModelConfigSchemaError(f"found no fields of {class_name} in {source}")
    return fields


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(dict.fromkeys("null" if t is type(None) else t.__name__ for t in types))


def _accepts(types: tuple[type, ...], value: Any) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int):
        return int in types  # the class is strict: `rms_norm_eps: 1` is refused, write 1.0
    return isinstance(value, tuple(t for t in types if t is not bool))


def base_config_problems(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, problem) for every key of a hero's base.config the model configuration class would refuse."""
    fields = model_config_fields()
    known = {**fields, **LEGACY_KEYS, **REALM_KEYS}
    problems: list[tuple[str, str]] = []
    for key, value in config.items():
        if key == "seed":
            # One seed per hero: two knobs would let `--seeds` arms differ in data but not in weights.
            problems.append((key, "the hero's top-level `seed` seeds the initial weights; set it there"))
            continue
        if key in SET_BY_REALM and key in fields:
            problems.append((key, "set by realm from the tokenizer / for determinism; remove it"))
            continue
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((key, f"not a field of transformers' {MODEL_CLASS}{hint}"))
            continue
        types = known[key]
        if types is not None and not _accepts(types, value):
            problems.append((key, f"{MODEL_CLASS}.{key} expects {_type_names(types)}"))
            continue
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and value <= 0 and (key.endswith(_POSITIVE) or key.startswith(_POSITIVE)):
            problems.append((key, "must be > 0"))
    heads, kv = config.get("num_attention_heads"), config.get("num_key_value_heads")
    if type(heads) is int and type(kv) is int and heads > 0 and kv > 0 and heads % kv:
        problems.append(("num_key_value_heads", f"must divide num_attention_heads ({heads})"))
    return problems
