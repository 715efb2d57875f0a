"""Eval protocols: what makes two scores comparable, and what must never split them."""

from __future__ import annotations

from realm_pipeline.evaluation.fingerprint import fingerprint
from realm_pipeline.evaluation.scores import protocol_of


def _fp(**over) -> dict:
    args = {
        "eval_set_hash": "e1",
        "skill_name": "bin",
        "skill_version": "3",
        "decoding": {"greedy": True, "max_new_tokens": 12},
        "dtype": "float32",
        "checkpoint_sha256": "aaa",
        "backend": {"kind": "local", "model_sha256": "aaa", "dtype": "float32"},
    }
    return fingerprint(**{**args, **over})[1]


def test_two_checkpoints_under_one_protocol_compare() -> None:
    # Each checkpoint's own weights appear twice (its sha and the backend's): neither splits the protocol.
    a = _fp()
    b = _fp(checkpoint_sha256="bbb", backend={"kind": "local", "model_sha256": "bbb", "dtype": "float32"})
    assert protocol_of(a) == protocol_of(b)
    served = _fp(backend={"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "tiny.000150"})
    other = _fp(backend={"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "tiny.000300"})
    assert protocol_of(served) == protocol_of(other)


def test_anything_that_decides_a_score_splits_the_protocol() -> None:
    base = protocol_of(_fp())
    changed = [
        _fp(skill_version="4"),  # a changed generator or scorer
        _fp(eval_set_hash="e2"),  # a changed eval set
        _fp(decoding={"greedy": True, "max_new_tokens": 13}),  # another generation budget
        _fp(dtype="bfloat16"),
        _fp(backend={"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "x"}),  # served
    ]
    assert all(protocol_of(c) != base for c in changed)
    assert len({protocol_of(c) for c in changed}) == len(changed)
