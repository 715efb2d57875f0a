"""`leaderboard`: ranked rows per (bench, lane), rebuilt in DuckDB SQL from the current scores; each build
also records every hero's standing per bench and compares it with the previous build's in its
`leaderboard_regression` check, which runs with every materialization (whichever job or sensor asked)."""

import json
from datetime import UTC, datetime

import dagster as dg

from realm_pipeline.defs.automation import rollup_condition
from realm_pipeline.defs.owners import REALM_OWNERS
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.evaluation.leaderboard import rebuild_leaderboard
from realm_pipeline.evaluation.regressions import Drop, find_drops, record_standings

REGRESSION_CHECK_NAME = "leaderboard_regression"

# External: people vote with `realm pref`, which records the vote in the ledger and reports this asset.
human_votes = dg.AssetSpec(
    "human_votes",
    group_name="campaign",
    owners=REALM_OWNERS,
    kinds={"duckdb"},
    description="Human preference votes on compare runs (`realm pref`), in the ledger's human_prefs.",
)


@dg.asset(
    group_name="campaign",
    owners=REALM_OWNERS,
    kinds={"duckdb"},
    deps=["eval_scores", "curriculum", human_votes, "checkpoints"],
    automation_condition=rollup_condition("eval_scores", "curriculum", human_votes.key),
    check_specs=[
        dg.AssetCheckSpec(
            REGRESSION_CHECK_NAME,
            asset="leaderboard",
            description=(
                "WARN when a hero's standing on a bench (mastered levels included) fell more than tau "
                "below the previous build's; the regression sensor raises a confirming re-run for each."
            ),
        )
    ],
)
def leaderboard(realm: RealmResource, ledger_db: LedgerResource) -> dg.MaterializeResult:
    """Rank every checkpoint on every skill@level; mark each hero's champion; record hero standings."""
    lb = realm.settings.realm.leaderboard
    tau = realm.settings.realm.regression.tau
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
        drops = find_drops(con, tau, version)
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
        },
        check_results=[regression_check_result(drops, tau=tau, version=version)],
    )


def regression_check_result(drops: list[Drop], *, tau: float, version: int | None) -> dg.AssetCheckResult:
    """The `leaderboard_regression` verdict on this build's drops (from `find_drops`): WARN when any."""
    return dg.AssetCheckResult(
        check_name=REGRESSION_CHECK_NAME,
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
