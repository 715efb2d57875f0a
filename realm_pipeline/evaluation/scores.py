"""The one "current score" (pure: DuckDB): what every consumer reads, and the protocol that keys it.

A score's *fingerprint* hashes everything that decided it, the checkpoint's own weights included. Its
*protocol* is the same hash without the checkpoint: two scores are comparable exactly when their
protocols are equal (same eval set, generator and scorer version, decoding, dtype, backend, library
versions). The ledger's `current_scores` view (see `ledger.CURRENT_SCORES_VIEW`) keeps, per (checkpoint,
skill, level), the score under the protocol now in force for the hero's skill level; scores of another
protocol are stale and get re-evaluated, never mixed in.
"""

from __future__ import annotations

import hashlib
from typing import Any

import duckdb

from realm_pipeline.evaluation.fingerprint import canonical_json

EVAL_SAMPLE = "eval"  # the stored held-out eval set
RESERVE_SAMPLE = "reserve"  # a second held-out sample of the level, scored by confirming re-runs only


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


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def current_scores(
    con: duckdb.DuckDBPyConnection,
    *,
    hero: str | None = None,
    checkpoint_id: str | None = None,
    before_step: int | None = None,
) -> list[dict[str, Any]]:
    """Current score rows (one per checkpoint, skill, level), filtered, ordered by step, skill, level."""
    clauses, params = [], []
    if hero is not None:
        clauses.append("hero = ?")
        params.append(hero)
    if checkpoint_id is not None:
        clauses.append("checkpoint_id = ?")
        params.append(checkpoint_id)
    if before_step is not None:
        clauses.append("step < ?")
        params.append(before_step)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return _dicts(
        con.execute(
            f"SELECT * FROM current_scores {where} ORDER BY step, checkpoint_id, skill, level", params
        )
    )


def stale_scores(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(checkpoint, skill) pairs holding an eval-set score under a protocol no longer in force."""
    rows = con.execute(
        """
        SELECT DISTINCT s.checkpoint_id, s.skill FROM eval_scores s
        WHERE s.sample = 'eval' AND NOT EXISTS (
            SELECT 1 FROM current_scores c
            WHERE c.checkpoint_id = s.checkpoint_id AND c.skill = s.skill AND c.level = s.level)
        ORDER BY 1, 2
        """
    ).fetchall()
    return [(c, s) for c, s in rows]
