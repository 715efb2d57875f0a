"""The one "current score" (pure: DuckDB): what every consumer reads, and the protocol that keys it.

A score's *fingerprint* hashes everything that decided it, the checkpoint's own weights included. Its
*protocol* hashes how it was measured, from the configuration alone (`protocol_spec`: eval-set hash,
skill version, decoding and chat-template options, dtype, backend, device, library versions): two scores
are comparable exactly when their protocols are equal. The protocol *in force* for a (hero, skill, level)
is the one the running code would use now; `declare_protocols` writes it to `protocols_in_force`, and the
ledger's `current_scores` view (`ledger.CURRENT_SCORES_VIEW`) keeps, per (checkpoint, skill, level), the
score under it. A score under another protocol is stale (`stale_scores`), however new: re-scoring one
checkpoint another way changes no other checkpoint's current score.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from realm_pipeline.evaluation.fingerprint import (  # noqa: F401  (protocol_of: re-exported)
    FINGERPRINT_SCHEMA,
    canonical_json,
    library_versions,
    protocol_of,
    skill_identity,
)
from realm_pipeline.lm.chat import CHAT_TEMPLATE_OPTIONS

if TYPE_CHECKING:
    from realm_pipeline.settings import Settings

EVAL_SAMPLE = "eval"  # the stored held-out eval set
RESERVE_SAMPLE = "reserve"  # a second held-out sample of the level, scored by confirming re-runs only


LOCAL_DTYPE = "auto"  # the dtype build_backend loads a checkpoint in (its saved dtype)


def protocol_spec(
    settings: Settings, hero: str, skill_name: str, skill_version: str, eval_set_hash: str
) -> dict[str, Any]:
    """How the running configuration scores `hero` on one eval set: everything but the weights."""
    hero_cfg = settings.heroes[hero]
    eval_cfg = settings.realm.eval
    served = hero_cfg.eval
    backend: dict[str, Any] = {
        "kind": served.backend,
        "device": settings.memory_profiles[hero_cfg.memory_profile].device,
    }
    if served.backend == "openai":  # how the checkpoint gets into the server, not where it listens
        backend |= {"serve_command": served.serve_command, "load_endpoint": served.load_endpoint}
    if hero_cfg.base.kind == "simulated":  # its constants decide every answer: never mixed with others
        from realm_pipeline.simulation.hero import params_json

        backend = {**backend, "kind": "simulated", "params": params_json(hero_cfg.base.params())}
    return {
        "schema": FINGERPRINT_SCHEMA,
        "eval_set_hash": eval_set_hash,
        "skill": skill_identity(skill_name, skill_version, skill_scoring(settings, skill_name)),
        "decoding": {
            "greedy": True,
            "answer_margin_tokens": eval_cfg.answer_margin_tokens,
            "max_new_tokens_ceiling": eval_cfg.max_new_tokens,
            "chat_template": dict(CHAT_TEMPLATE_OPTIONS),
        },
        "dtype": LOCAL_DTYPE,
        "backend": backend,
        "versions": library_versions(),
    }


def skill_scoring(settings: Settings, skill_name: str) -> str:
    """How the configuration scores a skill's eval sets (`scoring` of configs/skills; exact if unconfigured)."""
    cfg = settings.skills.get(skill_name)
    return cfg.scoring if cfg is not None else "exact"


def protocol_key(spec: dict[str, Any]) -> str:
    """sha256 hex[:16] of a protocol spec: the value of eval_scores.protocol."""
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()[:16]


def protocols_in_force(con: duckdb.DuckDBPyConnection, settings: Settings) -> list[dict[str, Any]]:
    """One `protocols_in_force` row per (configured hero, stored eval-set level): what scores now."""
    from realm_pipeline.skills import get_skill

    now = datetime.now(UTC).replace(tzinfo=None)
    levels = con.execute("SELECT skill, level, eval_set_hash FROM eval_sets ORDER BY skill, level").fetchall()
    versions: dict[str, str | None] = {}
    rows = []
    for skill_name, level, set_hash in levels:
        if skill_name not in versions:
            try:
                versions[skill_name] = get_skill(skill_name).version
            except ValueError:  # a skill whose code is gone: nothing can score it now
                versions[skill_name] = None
        if versions[skill_name] is None:
            continue
        for hero in sorted(settings.heroes):
            spec = protocol_spec(settings, hero, skill_name, versions[skill_name], set_hash)
            rows.append(
                {
                    "hero": hero,
                    "skill": skill_name,
                    "level": level,
                    "protocol": protocol_key(spec),
                    "spec_json": canonical_json(spec),
                    "declared_at": now,
                }
            )
    return rows


def declare_protocols(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Replace `protocols_in_force` with what the running configuration scores under; the caller commits."""
    from realm_pipeline import ledger

    rows = protocols_in_force(con, settings)
    con.execute("DELETE FROM protocols_in_force")
    return ledger.upsert(con, "protocols_in_force", rows)


def configured_protocols_version(settings: Settings) -> str:
    """sha256 hex[:16] over the protocol every configured hero is scored under on every configured skill.

    Computed from the configuration, the skills' versions and the installed libraries alone (no ledger):
    the data version of the observed `eval_protocols` asset, so a changed decoding, backend, device,
    skill version or library upgrade is news to automation. The eval sets' own hashes are left out: a
    rebuilt eval set is news through `eval_sets`' data version.
    """
    from realm_pipeline.skills import get_skill

    specs = {}
    for skill_name in sorted(settings.skills):
        try:
            version = get_skill(skill_name).version
        except ValueError:  # a configured skill without code: nothing can score it, nothing to version
            continue
        for hero in sorted(settings.heroes):
            specs[f"{hero}/{skill_name}"] = protocol_spec(settings, hero, skill_name, version, "")
    return hashlib.sha256(canonical_json(specs).encode("utf-8")).hexdigest()[:16]


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


def stale_scores(con: duckdb.DuckDBPyConnection, *, hero: str | None = None) -> list[tuple[str, str]]:
    """(checkpoint, skill) pairs holding an eval-set score under a protocol no longer in force."""
    rows = con.execute(
        """
        SELECT DISTINCT s.checkpoint_id, s.skill FROM eval_scores s
        WHERE s.sample = 'eval' AND (? IS NULL OR s.hero = ?) AND NOT EXISTS (
            SELECT 1 FROM current_scores c
            WHERE c.checkpoint_id = s.checkpoint_id AND c.skill = s.skill AND c.level = s.level)
        ORDER BY 1, 2
        """,
        [hero, hero],
    ).fetchall()
    return [(c, s) for c, s in rows]


def checkpoints_to_rescore(con: duckdb.DuckDBPyConnection, hero: str) -> list[tuple[str, str]]:
    """Stale (checkpoint, skill) pairs automation re-scores after a protocol change: only the checkpoints
    that matter (each level-up's, the champion, the newest) whose files retention kept; the rest wait
    for a request (`dg launch --assets eval_scores --partition <checkpoint>|<skill>`)."""
    mattering = {
        r[0] for r in con.execute("SELECT checkpoint_id FROM level_ups WHERE hero = ?", [hero]).fetchall()
    }
    champion = con.execute("SELECT champion FROM hero_state WHERE hero = ?", [hero]).fetchone()
    if champion and champion[0]:
        mattering.add(champion[0])
    newest = con.execute(
        "SELECT checkpoint_id FROM checkpoints WHERE hero = ? ORDER BY step DESC LIMIT 1", [hero]
    ).fetchone()
    if newest:
        mattering.add(newest[0])
    kept = {
        r[0]
        for r in con.execute(
            "SELECT checkpoint_id FROM checkpoints WHERE hero = ? AND path IS NOT NULL", [hero]
        ).fetchall()
    }
    return [(c, s) for c, s in stale_scores(con, hero=hero) if c in mattering and c in kept]
