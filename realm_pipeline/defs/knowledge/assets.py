"""`knowledge_index`: ledger reports and skill docs in a new pgvector version, promoted if not worse."""

from pathlib import Path

import dagster as dg

from realm_pipeline.defs.knowledge.resources import VectorIndexResource
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.knowledge import build_documents, format_answer, refresh_index
from realm_pipeline.knowledge.embedding import Embedder
from realm_pipeline.knowledge.retrieval_eval import ask


@dg.asset(pool="gpu", group_name="knowledge", kinds={"postgres"}, deps=["curriculum"])
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
    if report.live_scores is not None:
        metadata["live_recall_at_5"] = report.live_scores.recall_at_5
        metadata["live_mrr"] = report.live_scores.mrr
    return dg.MaterializeResult(metadata=metadata)


def run_ask(question: str, k: int = 5, home: Path | str | None = None, dsn: str | None = None) -> str:
    """`realm ask`: the live index's top-k chunks for a question, formatted with provenance."""
    resource = VectorIndexResource(home=str(home) if home is not None else None, dsn=dsn)
    with resource.running(), resource.get_connection() as conn:
        return format_answer(ask(conn, Embedder(), question, k=k))


__all__ = ["ask", "format_answer", "knowledge_index", "run_ask"]
