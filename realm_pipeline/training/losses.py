"""Training losses of the schools: the Scribe's answer-token cross-entropy and the Oracle's surprise weighting.

The Oracle ("focus where uncertainty dwells") is an enhancer on any school: each supervised token's
cross-entropy is weighted by how surprised the model is by it, relative to the batch,

    w_t = clip(nll_t / mean(nll), lo, hi)    (detached: the weights steer the gradient, not the loss path)
    loss = sum(w_t * nll_t) / N

so tokens the model already predicts confidently (low nll) get less gradient than uncertain ones. The
clip keeps a single very surprising token from taking the whole batch's gradient. With the Oracle off
the loss is exactly `torch.nn.functional.cross_entropy` with its mean over the supervised tokens.
torch is imported inside the functions (realm's rule for pure modules).
"""

from __future__ import annotations

from typing import Any

IGNORE = -100
SURPRISE_CLIP = (0.5, 2.0)


def surprise_weights(nll: Any, mask: Any, clip: tuple[float, float] = SURPRISE_CLIP) -> Any:
    """The Oracle's per-token weights: nll_t / mean supervised nll, clipped, detached; 0 where not supervised."""
    import torch

    lo, hi = clip
    if not 0 < lo <= 1 <= hi:
        raise ValueError(f"surprise clip must satisfy 0 < lo <= 1 <= hi, got {clip}")
    nll, mask = nll.detach(), mask.to(nll.dtype)
    mean = (nll * mask).sum() / mask.sum().clamp_min(1)
    # A batch the model already predicts perfectly (mean 0) has nothing to focus on: uniform weights.
    ratio = (nll / mean) if float(mean) > 0 else torch.ones_like(nll)
    return ratio.clamp(lo, hi) * mask


def answer_loss(logits: Any, labels: Any, *, oracle: bool = False) -> tuple[Any, Any, Any]:
    """(loss to backpropagate, plain mean cross-entropy, supervised-token count) for shifted labels.

    `logits` is (..., vocab) predicting `labels` (...) position by position; labels of IGNORE are not
    supervised. With `oracle` the loss is surprise-weighted (module docstring), else it is plain CE.
    """
    import torch.nn.functional as F

    flat_logits = logits.float().reshape(-1, logits.shape[-1])
    flat_labels = labels.reshape(-1)
    mask = flat_labels != IGNORE
    count = mask.sum()
    if not oracle:
        plain = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE)
        return plain, plain.detach(), count
    nll = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE, reduction="none")
    plain = nll.sum() / count.clamp_min(1)
    weights = surprise_weights(nll, mask)
    return (weights * nll).sum() / count.clamp_min(1), plain.detach(), count
