"""Knowledge index: ledger reports and skill docs, chunked, embedded, searched in pgvector (no dagster)."""

from realm_pipeline.knowledge.chunking import Chunk, chunk_document, chunk_documents
from realm_pipeline.knowledge.documents import Document, Fact, build_documents
from realm_pipeline.knowledge.embedding import Embedder
from realm_pipeline.knowledge.retrieval_eval import (
    Question,
    RefreshReport,
    RetrievalScores,
    ask,
    evaluate,
    format_answer,
    generate_questions,
    refresh_index,
    should_promote,
)
from realm_pipeline.knowledge.store import Hit, build_version, live_version, promote, query

__all__ = [
    "Chunk",
    "Document",
    "Embedder",
    "Fact",
    "Hit",
    "Question",
    "RefreshReport",
    "RetrievalScores",
    "ask",
    "build_documents",
    "build_version",
    "chunk_document",
    "chunk_documents",
    "evaluate",
    "format_answer",
    "generate_questions",
    "live_version",
    "promote",
    "query",
    "refresh_index",
    "should_promote",
]
