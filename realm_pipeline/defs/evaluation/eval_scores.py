"""`eval_scores`: one checkpoint evaluated on one skill, on the `gpu` pool."""

import json
import time
from datetime import UTC, datetime

import dagster as dg

from realm_pipeline import ledger
from realm_pipeline.campaign import curriculum_state, levels_to_evaluate
from realm_pipeline.defs.automation import eval_scores_condition
from realm_pipeline.defs.evaluation.eval_sets import skills_code_version
from realm_pipeline.defs.partitions import skill_partitions
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.defs.training.assets import checkpoint_partitions

eval_partitions = dg.MultiPartitionsDefinition(
    {"checkpoint": checkpoint_partitions, "skill": skill_partitions}
)
EVAL_SET_CHECK = "eval_set_matches_stored_hash"


@dg.asset(
    partitions_def=eval_partitions,
    pool="gpu",
    group_name="evaluation",
    kinds={"pytorch", "duckdb"},
    # Dagster maps each dimension to the upstream asset with the same partitions (checkpoint, skill).
    deps=["checkpoints", "eval_sets"],
    # the scorer's version is part of it: a bumped scorer shows every score as stale (code version changed)
    code_version=skills_code_version(),
    automation_condition=eval_scores_condition(),
    check_specs=[
        dg.AssetCheckSpec(
            EVAL_SET_CHECK,
            asset="eval_scores",
            blocking=True,
            description="Before scoring: the items the generator makes now hash to the eval set stored "
            "by eval_sets (else nothing is scored; materialize eval_sets of the skill).",
        )
    ],
)
def eval_scores(context: dg.AssetExecutionContext, realm: RealmResource, ledger_db: LedgerResource):
    """Evaluates the checkpoint on the skill's mastered, current and next levels, on the fixed eval items."""
    from realm_pipeline.evaluation.backends import LocalBackend
    from realm_pipeline.evaluation.fingerprint import fingerprint
    from realm_pipeline.evaluation.runner import evaluate_items
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import eval_items, eval_set_hash

    keys = context.partition_key.keys_by_dimension  # type: ignore[union-attr]
    checkpoint_id, skill_name = keys["checkpoint"], keys["skill"]
    settings = realm.settings
    with ledger_db.read() as con:
        ckpt = con.execute(
            "SELECT hero, step, sha256, path FROM checkpoints WHERE checkpoint_id = ?", [checkpoint_id]
        ).fetchone()
        if ckpt is None:
            raise dg.Failure(
                f"eval {checkpoint_id} x {skill_name}: checkpoint not in the ledger; train it first",
                allow_retries=False,
            )
        hero, step, sha256, path = ckpt
        state = curriculum_state(con, settings, hero, before_step=step)
        stored = dict(
            con.execute("SELECT level, eval_set_hash FROM eval_sets WHERE skill = ?", [skill_name]).fetchall()
        )
    skill = get_skill(skill_name)
    cap = settings.skills[skill_name].level_cap
    levels = levels_to_evaluate(state, skill_name) if skill_name in state.skills else [1, min(2, cap)]
    eval_cfg = settings.realm.eval
    profile = settings.memory_profiles[settings.heroes[hero].memory_profile]
    count = settings.skills[skill_name].eval_items_per_level
    items_by_level = {level: eval_items(skill, level, count) for level in sorted(set(levels))}
    hashes = {level: eval_set_hash(items) for level, items in items_by_level.items()}
    # Checked before any scoring: a score against items other than the stored set would compare unlike things.
    mismatched = {
        f"L{lv}": {"stored": stored.get(lv), "generator": h}
        for lv, h in hashes.items()
        if stored.get(lv) != h
    }
    check_metadata = {"levels": dg.MetadataValue.json(sorted(hashes)), "skill_version": skill.version}
    if mismatched:
        yield dg.AssetCheckResult(
            check_name=EVAL_SET_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={**check_metadata, "mismatched": dg.MetadataValue.json(mismatched)},
        )
        raise dg.Failure(
            f"eval set of {skill_name} at {', '.join(mismatched)} in the ledger differs from the generator's "
            f"({json.dumps(mismatched)}): materialize eval_sets[{skill_name}] first",
            allow_retries=False,
        )
    backend = LocalBackend(
        path,
        batch_size=eval_cfg.batch_size,
        max_new_tokens=eval_cfg.max_new_tokens,
        dtype="auto",
        device=profile.device,
    )
    scores, generations, metadata = [], [], {}
    now = datetime.now(UTC).replace(tzinfo=None)
    for level, items in items_by_level.items():
        set_hash = hashes[level]
        started = time.perf_counter()
        result = evaluate_items(backend, skill, items)
        seconds = time.perf_counter() - started
        fp, fp_dict = fingerprint(
            eval_set_hash=set_hash,
            skill_name=skill_name,
            skill_version=skill.version,
            decoding={"greedy": True, "max_new_tokens": eval_cfg.max_new_tokens},
            dtype=backend.describe().get("dtype", "auto"),
            checkpoint_sha256=sha256,
            backend=backend.describe(),
        )
        scores.append(
            {
                "checkpoint_id": checkpoint_id,
                "hero": hero,
                "step": step,
                "skill": skill_name,
                "level": level,
                "fingerprint": fp,
                "n": result.n,
                "correct": result.correct,
                "accuracy": result.accuracy,
                "partial": result.partial,
                "eval_set_hash": set_hash,
                "skill_version": skill.version,
                "backend": "local",
                "gpu_seconds": seconds if profile.device == "cuda" else 0.0,
                "fingerprint_json": json.dumps(fp_dict, sort_keys=True),
                "created_at": now,
            }
        )
        generations.extend(
            {
                "checkpoint_id": checkpoint_id,
                "skill": skill_name,
                "level": level,
                "item_index": idx,
                "fingerprint": fp,
                "output": output,
                "correct": correct,
                "partial": partial,
            }
            for idx, output, correct, partial in result.rows
        )
        metadata[f"L{level}_accuracy"] = result.accuracy
    with ledger_db.get_connection() as con:
        # Keyed by (checkpoint, skill, level, fingerprint): a re-run with the same fingerprint replaces.
        con.execute("BEGIN TRANSACTION")
        ledger.upsert(con, "eval_scores", scores)
        ledger.upsert(con, "eval_generations", generations)
        con.execute("COMMIT")
    current = state.skills[skill_name].level if skill_name in state.skills else 1
    current_acc = next((s["accuracy"] for s in scores if s["level"] == current), None)
    yield dg.MaterializeResult(
        metadata={
            "checkpoint_id": checkpoint_id,
            "skill": skill_name,
            "current_level": current,
            "accuracy_at_current_level": current_acc,
            "levels": dg.MetadataValue.json(sorted(set(levels))),
            **metadata,
        },
        check_results=[dg.AssetCheckResult(check_name=EVAL_SET_CHECK, passed=True, metadata=check_metadata)],
    )
