"""The one Definitions object: loading it imports no torch (sensors tick fast)."""

import dagster as dg

from realm_pipeline.assets.eval_sets import eval_sets
from realm_pipeline.partitions import skill_partitions
from realm_pipeline.resources.ledger import LedgerResource
from realm_pipeline.resources.realm import RealmResource
from realm_pipeline.settings import CONFIG_DIR_ENV, DEFAULT_CONFIG_DIR, ledger_path, realm_home

eval_sets_job = dg.define_asset_job("eval_sets_job", selection=[eval_sets], partitions_def=skill_partitions)


def build_defs() -> dg.Definitions:
    """Assemble assets, jobs, sensors and resources for the REALM_HOME of this process."""
    import os

    home = realm_home()
    return dg.Definitions(
        assets=[eval_sets],
        jobs=[eval_sets_job],
        resources={
            "realm": RealmResource(
                home=str(home), config_dir=os.environ.get(CONFIG_DIR_ENV, str(DEFAULT_CONFIG_DIR))
            ),
            "ledger_db": LedgerResource(database=str(ledger_path())),
        },
    )


defs = build_defs()
