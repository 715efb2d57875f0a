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
