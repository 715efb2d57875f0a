"""The identity of a checkpoint's weights: what the trainer records and the eval backends verify."""

from __future__ import annotations

import hashlib
from pathlib import Path


def weights_sha256(directory: str | Path) -> str:
    """sha256 over the directory's *.safetensors files (name and bytes), sorted by name."""
    h = hashlib.sha256()
    for p in sorted(Path(directory).glob("*.safetensors")):
        h.update(p.name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def safetensors_parameters(directory: str | Path) -> int:
    """Parameters in the directory's *.safetensors files, read from their headers (no tensor is loaded)."""
    import json
    import math
    import struct

    total = 0
    for p in sorted(Path(directory).glob("*.safetensors")):
        with p.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def safetensors_problem(path: str | Path) -> str | None:
    """Why a *.safetensors file cannot be loaded (truncated, corrupt header), read from its header; None
    when its header and size agree."""
    import json
    import struct

    p = Path(path)
    size = p.stat().st_size
    if size < 8:
        return f"{p}: truncated weights file ({size} bytes, not even the 8-byte header length)"
    with p.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if 8 + length > size:
            return f"{p}: truncated weights file (its header alone is {length} bytes, the file {size})"
        try:
            header = json.loads(f.read(length))
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return f"{p}: corrupt weights file (unreadable safetensors header: {exc})"
    if 8 + length + end > size:
        return f"{p}: truncated weights file ({size} bytes; its header describes {8 + length + end})"
    return None


def checkpoint_problem(directory: str | Path) -> str | None:
    """Why a checkpoint directory cannot be loaded (missing, no weights, a truncated weights file, an
    unreadable simulated state); None when it looks whole. Cheap: reads the weights' headers only."""
    d = Path(directory)
    if not d.is_dir():
        return f"checkpoint directory missing ({d})"
    from realm_pipeline.simulation.hero import STATE_FILE, load_state

    if (d / STATE_FILE).exists():  # a simulated hero's checkpoint: its state, not weights
        try:
            load_state(d)
        except ValueError as exc:
            return str(exc)
        return None
    files = sorted(d.glob("*.safetensors"))
    if not files:
        return f"no *.safetensors weights in {d}"
    for f in files:
        problem = safetensors_problem(f)
        if problem is not None:
            return problem
    return None
