"""`knowledge_index`: ledger reports, skill docs and knowledge files in a new pgvector version, promoted if not worse.

`knowledge_documents` is the external input, $REALM_HOME/knowledge/: observed (data version = hash of the
files) by `knowledge_documents_sensor`, and only its new versions trigger a re-index.
"""

from pathlib import Path

import dagster as dg

from realm_pipeline.defs.automation import knowledge_index_condition
from realm_pipeline.defs.knowledge.resources import VectorIndexResource
from realm_pipeline.defs.owners import REALM_OWNERS
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.knowledge import build_documents, format_answer, refresh_index
from realm_pipeline.knowledge.documents import KNOWLEDGE_DIR, knowledge_files, knowledge_files_fingerprint
from realm_pipeline.knowledge.embedding import Embedder
from realm_pipeline.knowledge.retrieval_eval import ask

NOT_WORSE_CHECK = "not_worse_than_live"


# a multi_observable_source_asset of one spec: the single-asset decorator takes no owners
@dg.multi_observable_source_asset(
    specs=[
        dg.AssetSpec(
            "knowledge_documents",
            group_name="knowledge",
            owners=REALM_OWNERS,
            description="The documents people add under $REALM_HOME/knowledge/ (*.md, *.txt); "
            "data version = sha256 of their paths and bytes.",
        )
    ],
)
def knowledge_documents(realm: RealmResource) -> dg.ObserveResult:
    """Observe the knowledge folder: its fingerprint is the data version, so only a changed file is news."""
    files = knowledge_files(realm.home_path)
    return dg.ObserveResult(
        data_version=dg.DataVersion(knowledge_files_fingerprint(realm.home_path)),
        metadata={"files": len(files), "path": dg.MetadataValue.path(str(realm.home_path / KNOWLEDGE_DIR))},
    )


@dg.asset(
    pool="gpu",
    group_name="knowledge",
    owners=REALM_OWNERS,
    kinds={"postgres"},
    # what it reads: the documents, and the checkpoint, eval and curriculum reports in the ledger; only new documents
    # trigger a re-index (reports join at the next one), so a rollup never costs a GPU re-embedding
    deps=[knowledge_documents, "checkpoints", "eval_scores", "curriculum"],
    automation_condition=knowledge_index_condition(knowledge_documents.key),
    check_specs=[
        dg.AssetCheckSpec(
            NOT_WORSE_CHECK,
            asset="knowledge_index",
            description="The re-index retrieves at least as well as the live index (recall@5, MRR on the "
            "documents' own questions); a worse one is kept aside and the live one stays.",
        )
    ],
)
def knowledge_index(
    context: dg.AssetExecutionContext,
    realm: RealmResource,
    ledger_db: LedgerResource,
    vector_index: VectorIndexResource,
) -> dg.MaterializeResult:
    """Searchable index of checkpoint/eval reports, skill docs and $REALM_HOME/knowledge/ files."""
    with ledger_db.read() as con:
        docs = build_documents(con, realm.home_path)
    embedder = Embedder()
    with vector_index.get_connection() as conn:
        report = refresh_index(conn, docs, embedder)
    context.log.info(
        f"index v{report.version}: {report.n_chunks} chunks, recall@5 {report.scores.recall_at_5:.3f}, "
        f"MRR {report.scores.mrr:.3f}; live v{report.live_before} -> v{report.live_after}"
    )
    # Aggregates only: chunk text stays in the private database.
    metadata: dict = {
        "version": report.version,
        "documents": len(docs),
        "chunks": report.n_chunks,
        "questions": report.scores.n_questions,
        "recall_at_5": report.scores.recall_at_5,
        "mrr": report.scores.mrr,
        "promoted": report.promoted,
        "reused_version": report.reused,
        "live_version": report.live_after,
        "model": embedder.name,
    }
    check_metadata = {"recall_at_5": report.scores.recall_at_5, "mrr": report.scores.mrr}
    if report.live_scores is not None:
        metadata["live_recall_at_5"] = report.live_scores.recall_at_5
        metadata["live_mrr"] = report.live_scores.mrr
        check_metadata.update(
            live_recall_at_5=report.live_scores.recall_at_5, live_mrr=report.live_scores.mrr
        )
    # promoted: not worse (or nothing live yet); reused: the same content as a version already built
    not_worse = report.promoted or report.reused
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=NOT_WORSE_CHECK,
                passed=not_worse,
                severity=dg.AssetCheckSeverity.ERROR,
                description=None
                if not_worse
                else f"v{report.version} retrieves worse than live "
                f"v{report.live_before}: not promoted, the live index is unchanged",
                metadata=check_metadata,
            )
        ],
    )


def run_ask(question: str, k: int = 5, home: Path | str | None = None, dsn: str | None = None) -> str:
    """`realm ask`: the live index's top-k chunks for a question, formatted with provenance."""
    resource = VectorIndexResource(home=str(home) if home is not None else None, dsn=dsn)
    with resource.running(), resource.get_connection() as conn:
        return format_answer(ask(conn, Embedder(), question, k=k))


__all__ = ["ask", "format_answer", "knowledge_index", "run_ask"]
