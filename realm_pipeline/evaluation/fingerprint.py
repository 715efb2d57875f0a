"""Eval fingerprints: one short hash over everything that can change an eval's outputs or scores."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any

FINGERPRINT_SCHEMA = 1  # bump when the set or meaning of fingerprinted fields changes


def _version(dist: str) -> str | None:
    # importlib.metadata reads the installed version without importing the (heavy) package.
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries whose numerics or scoring decide eval outputs (not imported)."""
    return {name: _version(name) for name in ("realm_pipeline", "torch", "transformers")}


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: the byte-stable form fingerprints hash."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def skill_identity(skill_name: str, skill_version: str, scoring: str = "exact") -> dict[str, str]:
    """The skill part of a fingerprint or protocol: name, version and, unless exact, how it is scored.
    Exact scoring (the default) adds no key, so protocols from before the `scoring` field stay current."""
    identity = {"name": skill_name, "version": skill_version}
    return identity if scoring == "exact" else {**identity, "scoring": scoring}


def fingerprint(
    *,
    eval_set_hash: str,
    skill_name: str,
    skill_version: str,
    decoding: dict,
    dtype: str,
    checkpoint_sha256: str,
    backend: dict,
    scoring: str = "exact",
) -> tuple[str, dict]:
    """(sha256 hex[:16] of the canonical JSON, the fingerprinted dict); same inputs give the same hash."""
    payload = {
        "schema": FINGERPRINT_SCHEMA,
        "eval_set_hash": eval_set_hash,
        "skill": skill_identity(skill_name, skill_version, scoring),
        "decoding": decoding,
        "dtype": str(dtype).removeprefix("torch."),
        "checkpoint_sha256": checkpoint_sha256,
        "backend": backend,
        "versions": library_versions(),
    }
    # Round-trip so the returned dict is exactly what was hashed (tuples become lists, etc.).
    payload = json.loads(canonical_json(payload))
    digest = hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:16]
    return digest, payload


# Where a fingerprint names the weights it scored: none of it may split a protocol between checkpoints.
CHECKPOINT_FIELDS = ("checkpoint_sha256",)
BACKEND_CHECKPOINT_FIELDS = ("model_sha256", "model", "path")


def protocol_of(fingerprint: dict[str, Any]) -> str:
    """sha256 hex[:16] of a fingerprint's dict without the checkpoint's identity: the comparability key."""
    payload = {k: v for k, v in fingerprint.items() if k not in CHECKPOINT_FIELDS}
    if isinstance(payload.get("backend"), dict):
        payload["backend"] = {
            k: v for k, v in payload["backend"].items() if k not in BACKEND_CHECKPOINT_FIELDS
        }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:16]
