"""`eval_protocols`: the protocol every hero is scored under now, observed from the configuration.

An observable source asset: what it observes is outside the pipeline (the configs, the skills' versions,
the installed libraries). Its data version is `configured_protocols_version`; `staleness_sensor` observes
it whenever that differs from the last observation (`protocol_drifted`), and a new data version is what
makes `eval_scores` re-score the stale checkpoints that matter. Observing also records the protocols in
the ledger's `protocols_in_force`, so the re-scoring sees the same protocol the observation versioned.
"""

import dagster as dg

from realm_pipeline.defs.automation import EVAL_PROTOCOLS, eval_protocols_condition
from realm_pipeline.defs.owners import REALM_OWNERS
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.evaluation.scores import configured_protocols_version, declare_protocols
from realm_pipeline.settings import Settings


# a multi_observable_source_asset of one spec: the single-asset decorator takes no owners
@dg.multi_observable_source_asset(
    specs=[
        dg.AssetSpec(
            EVAL_PROTOCOLS,
            group_name="evaluation",
            owners=REALM_OWNERS,
            automation_condition=eval_protocols_condition(),
            description="The protocol each hero is scored under now (decoding, backend, device, skill and "
            "library versions, from the configuration); data version = their hash. A new one re-scores "
            "the stale checkpoints that matter (each level-up's, the champion, the newest).",
        )
    ],
)
def eval_protocols(realm: RealmResource, ledger_db: LedgerResource) -> dg.ObserveResult:
    """Observe the configured protocols: record them in `protocols_in_force`, version them by their hash."""
    settings = Settings(realm.config_dir or None)  # the configuration as it is now, not as first read
    with ledger_db.get_connection() as con:
        con.execute("BEGIN TRANSACTION")
        declared = declare_protocols(con, settings)
        con.execute("COMMIT")
    return dg.ObserveResult(
        data_version=dg.DataVersion(configured_protocols_version(settings)),
        metadata={"heroes": len(settings.heroes), "declared_levels": declared},
    )
