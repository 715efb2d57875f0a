"""`knowledge_documents_sensor`: an observation of $REALM_HOME/knowledge/ whenever its files changed."""

import dagster as dg

from realm_pipeline.defs.knowledge.assets import knowledge_documents
from realm_pipeline.defs.resources import RealmResource
from realm_pipeline.knowledge.documents import KNOWLEDGE_DIR, knowledge_files, knowledge_files_fingerprint


@dg.sensor(
    name="knowledge_documents_sensor",
    asset_selection=[knowledge_documents],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="An observation of $REALM_HOME/knowledge/ when its files changed (none when they did not).",
)
def knowledge_documents_sensor(context: dg.SensorEvaluationContext, realm: RealmResource):
    """Requests one observation of `knowledge_documents` per change of the folder's fingerprint, else skips.

    Reading the folder is cheap; the observation run records the data version that staleness_sensor
    compares, so an unchanged folder costs no run and a changed one exactly one.
    """
    if context.cursor is None and not knowledge_files(realm.home_path):
        return dg.SkipReason(f"no knowledge documents in {realm.home_path / KNOWLEDGE_DIR}")
    fingerprint = knowledge_files_fingerprint(realm.home_path)
    if fingerprint == context.cursor:
        return dg.SkipReason(f"knowledge documents unchanged ({fingerprint[:12]})")
    # no run_key: the cursor already asks once per change, and a folder may return to an earlier state
    return dg.SensorResult(
        run_requests=[dg.RunRequest(asset_selection=[knowledge_documents.key])], cursor=fingerprint
    )
