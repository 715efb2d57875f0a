"""The one Definitions object: every module under realm_pipeline/defs/, loaded with load_from_defs_folder.

Loading it imports no torch (sensors tick fast).
"""

from pathlib import Path

import dagster as dg

from realm_pipeline.defs.partition_errors import install_for_cli


def build_defs() -> dg.Definitions:
    """Assemble assets, checks, jobs, sensors and resources for the REALM_HOME of this process."""
    install_for_cli()  # a bad --partition from Dagster's CLI is one line naming the valid keys
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


defs = build_defs()
