"""`leaderboard`: ranked rows per (bench, lane), rebuilt in DuckDB SQL from the current scores; each build
also records every hero's standing per bench, which the `leaderboard_regression` check compares."""

import json
from datetime import UTC, datetime

import dagster as dg

from realm_pipeline.defs.automation import rollup_condition
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.evaluation.leaderboard import rebuild_leaderboard
from realm_pipeline.evaluation.regressions import find_drops, latest_version, record_standings

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
    """Rank every checkpoint on every skill@level; mark each hero's champion; record hero standings."""
    lb = realm.settings.realm.leaderboard
    built_at = datetime.now(UTC).replace(tzinfo=None)
    with ledger_db.get_connection() as con:
        rows = rebuild_leaderboard(
            con,
            vote_minimum=lb.vote_minimum,
            price_per_gpu_hour=lb.price_per_gpu_hour,
            built_at=built_at,
        )
        mastered = {
            hero: {skill: list(range(1, level)) for skill, level in json.loads(levels or "{}").items()}
            for hero, levels in con.execute("SELECT hero, levels_json FROM hero_state").fetchall()
        }
        con.execute("BEGIN TRANSACTION")
        version = record_standings(con, mastered, built_at=built_at)
        con.execute("COMMIT")
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
            "standings_version": version or 0,
        }
    )


@dg.asset_check(asset=leaderboard, name="leaderboard_regression")
def leaderboard_regression(realm: RealmResource, ledger_db: LedgerResource) -> dg.AssetCheckResult:
    """WARN when a hero's standing on a bench (mastered levels included) fell more than tau below the
    previous build's; the regression sensor raises a confirming re-run on the reserve sample for each."""
    tau = realm.settings.realm.regression.tau
    with ledger_db.read() as con:
        version = latest_version(con)
        drops = find_drops(con, tau, version)
    return dg.AssetCheckResult(
        passed=not drops,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(drops)} standing(s) fell more than tau={tau} below the previous build"
            if drops
            else f"no standing fell more than tau={tau} below the previous build"
        ),
        metadata={
            "standings_version": version or 0,
            "tau": tau,
            "drops": dg.MetadataValue.json([d.to_json() for d in drops]),
        },
    )
