"""`eval_sets`: the fixed held-out items of every level of one skill."""

import dagster as dg

from realm_pipeline import ledger
from realm_pipeline.defs.automation import eval_sets_condition
from realm_pipeline.defs.owners import REALM_OWNERS
from realm_pipeline.defs.partitions import skill_partitions
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.evaluation.eval_sets import build_eval_sets
from realm_pipeline.evaluation.scores import declare_protocols
from realm_pipeline.skills import SKILLS


def skills_code_version() -> str:
    """One code version for every skill, `bin=2,sy=1,...`: bumping a generator or scorer version changes it."""
    return ",".join(f"{name}={SKILLS[name].version}" for name in sorted(SKILLS))


@dg.asset(
    partitions_def=skill_partitions,
    group_name="evaluation",
    owners=REALM_OWNERS,
    kinds={"duckdb"},
    code_version=skills_code_version(),
    automation_condition=eval_sets_condition(),
)
def eval_sets(context: dg.AssetExecutionContext, realm: RealmResource, ledger_db: LedgerResource):
    """Writes every level's held-out eval items of the skill, with their hash; idempotent."""
    skill = context.partition_key
    cfg = realm.settings.skills[skill]
    rows = build_eval_sets(skill, cfg.level_cap, cfg.eval_items_per_level)
    with ledger_db.get_connection() as con:
        con.execute("BEGIN TRANSACTION")
        # Replace the skill's rows whole: a level cap lowered since last time leaves no stale levels.
        con.execute("DELETE FROM eval_items WHERE skill = ?", [skill])
        con.execute("DELETE FROM eval_sets WHERE skill = ?", [skill])
        ledger.upsert(con, "eval_sets", rows.sets)
        ledger.upsert(con, "eval_items", rows.items)
        # the new hashes are part of the protocol in force: scores of the old set are stale from now on
        declare_protocols(con, realm.settings)
        con.execute("COMMIT")
    return dg.MaterializeResult(
        metadata={
            "levels": len(rows.sets),
            "items": len(rows.items),
            "eval_set_hash": rows.combined_hash,
            "smallest_level_items": min(s["n_items"] for s in rows.sets),
        },
        # downstream evals react to a changed data version only: a byte-identical rebuild requests nothing
        data_version=dg.DataVersion(rows.content_hash),
    )
