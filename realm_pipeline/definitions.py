"""The one Definitions object: loading it imports no torch (sensors tick fast)."""

import os

import dagster as dg

from realm_pipeline.assets.checkpoints import checkpoint_partitions, checkpoints
from realm_pipeline.assets.curriculum import curriculum
from realm_pipeline.assets.eval_scores import eval_partitions, eval_scores
from realm_pipeline.assets.eval_sets import eval_sets
from realm_pipeline.assets.leaderboard import leaderboard
from realm_pipeline.ops.retention import retention_job
from realm_pipeline.partitions import skill_partitions
from realm_pipeline.resources.ledger import LedgerResource
from realm_pipeline.resources.realm import RealmResource
from realm_pipeline.sensors.campaign import campaign_sensor
from realm_pipeline.settings import CONFIG_DIR_ENV, DEFAULT_CONFIG_DIR, ledger_path, realm_home

eval_sets_job = dg.define_asset_job("eval_sets_job", selection=[eval_sets], partitions_def=skill_partitions)
train_job = dg.define_asset_job("train_job", selection=[checkpoints], partitions_def=checkpoint_partitions)
eval_job = dg.define_asset_job("eval_job", selection=[eval_scores], partitions_def=eval_partitions)
rollup_job = dg.define_asset_job("rollup_job", selection=[curriculum, leaderboard])


def build_defs() -> dg.Definitions:
    """Assemble assets, jobs, sensors and resources for the REALM_HOME of this process."""
    return dg.Definitions(
        assets=[eval_sets, checkpoints, eval_scores, curriculum, leaderboard],
        jobs=[eval_sets_job, train_job, eval_job, rollup_job, retention_job],
        sensors=[campaign_sensor],
        resources={
            "realm": RealmResource(
                home=str(realm_home()), config_dir=os.environ.get(CONFIG_DIR_ENV, str(DEFAULT_CONFIG_DIR))
            ),
            "ledger_db": LedgerResource(database=str(ledger_path())),
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
        },
    )


defs = build_defs()
