"""The one Definitions object: loading it imports no torch (sensors tick fast)."""

import os

import dagster as dg

from realm_pipeline.jobs import ASSETS, JOBS, eval_job, knowledge_job, mirror_job, rollup_job
from realm_pipeline.resources.ledger import LedgerResource
from realm_pipeline.resources.realm import RealmResource
from realm_pipeline.resources.vector_index import VectorIndexResource
from realm_pipeline.sensors.campaign import campaign_sensor
from realm_pipeline.sensors.quest_inbox import quest_inbox_sensor
from realm_pipeline.sensors.regression import leaderboard_regression_sensor
from realm_pipeline.sensors.staleness import build_staleness_sensor
from realm_pipeline.settings import find_config_dir, ledger_path, realm_home

staleness_sensor = build_staleness_sensor([eval_job, rollup_job, mirror_job, knowledge_job])


def build_defs() -> dg.Definitions:
    """Assemble assets, jobs, sensors and resources for the REALM_HOME of this process."""
    home = str(realm_home())
    config_dir = str(find_config_dir())  # $REALM_CONFIG_DIR, ./configs, or the shipped defaults
    return dg.Definitions(
        assets=ASSETS,
        jobs=JOBS,
        sensors=[campaign_sensor, leaderboard_regression_sensor, staleness_sensor, quest_inbox_sensor],
        resources={
            "realm": RealmResource(home=home, config_dir=config_dir),
            "ledger_db": LedgerResource(database=str(ledger_path())),
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
            "vector_index": VectorIndexResource(home=home, dsn=os.environ.get("REALM_PG_DSN")),
        },
    )


defs = build_defs()
