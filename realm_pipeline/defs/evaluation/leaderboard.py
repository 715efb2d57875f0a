"""`leaderboard`: ranked rows per (bench, lane), rebuilt in DuckDB SQL from the eval scores."""

from datetime import UTC, datetime

import dagster as dg

from realm_pipeline.defs.automation import rollup_condition
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.evaluation.leaderboard import rebuild_leaderboard

# External: people vote with `realm pref`, which records the vote in the ledger and reports this asset.
human_votes = dg.AssetSpec(
    "human_votes",
    group_name="campaign",
    kinds={"duckdb"},
    description="Human preference votes on compare runs (`realm pref`), in the ledger's human_prefs.",
)


@dg.asset(
    group_name="campaign",
    kinds={"duckdb"},
    deps=["eval_scores", "curriculum", human_votes, "checkpoints"],
    automation_condition=rollup_condition("eval_scores", "curriculum", human_votes.key),
)
def leaderboard(realm: RealmResource, ledger_db: LedgerResource) -> dg.MaterializeResult:
    """Rank every checkpoint on every skill@level; mark each hero's champion."""
    lb = realm.settings.realm.leaderboard
    with ledger_db.get_connection() as con:
        rows = rebuild_leaderboard(
            con,
            vote_minimum=lb.vote_minimum,
            price_per_gpu_hour=lb.price_per_gpu_hour,
            built_at=datetime.now(UTC).replace(tzinfo=None),
        )
        benches, lanes = con.execute(
            "SELECT count(DISTINCT bench), count(DISTINCT lane) FROM leaderboard_rows"
        ).fetchone()
        champions = dict(
            con.execute(
                "SELECT DISTINCT hero, lane FROM leaderboard_rows WHERE champion ORDER BY hero"
            ).fetchall()
        )
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "benches": benches,
            "lanes": lanes,
            "champions": dg.MetadataValue.json(champions),
        }
    )
