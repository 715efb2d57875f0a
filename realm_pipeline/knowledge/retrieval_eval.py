"""Retrieval eval (recall@5, MRR) on questions whose answers the documents state, and the promotion rule.

A chunk answers a question when it contains the question's answer sentence verbatim and comes from the
document that stated it (score sentences of different checkpoints can read alike, so text alone is not
enough). Every version is scored on the same question set, built from the current documents, so the live
version and a candidate are compared fairly.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from realm_pipeline.knowledge import store
from realm_pipeline.knowledge.chunking import Chunk, Chunker, chunk_document, chunk_documents
from realm_pipeline.knowledge.documents import Document

MAX_QUESTIONS = 300
MRR_DEPTH = 10


@dataclass(frozen=True)
class Question:
    """A question, the sentences that answer it, and the documents allowed to answer it."""

    text: str
    answers: tuple[str, ...]
    doc_ids: frozenset[str]


@dataclass(frozen=True)
class RetrievalScores:
    """Aggregates of one eval: recall@5 and MRR@10 over `n_questions`."""

    recall_at_5: float
    mrr: float
    n_questions: int


def generate_questions(docs: Sequence[Document], limit: int = MAX_QUESTIONS) -> list[Question]:
    """Questions from the documents' facts; a deterministic sample of at most `limit`."""
    stated: dict[str, dict[str, Document]] = defaultdict(dict)  # question -> answer -> stating doc
    for doc in docs:
        for fact in doc.facts:
            stated[fact.question].setdefault(fact.answer, doc)
    # Sample by hash, not by position: the same documents always give the same question set.
    texts = sorted(stated, key=lambda q: hashlib.sha256(q.encode()).hexdigest())[:limit]
    by_checkpoint: dict[str, list[Document]] = defaultdict(list)
    for doc in docs:
        if doc.checkpoint_id is not None:
            by_checkpoint[doc.checkpoint_id].append(doc)
    questions = []
    for text in texts:
        ids: set[str] = set()
        for answer, doc in stated[text].items():
            # A score sentence is stated by a checkpoint report and its eval report: either may answer.
            peers = by_checkpoint[doc.checkpoint_id] if doc.checkpoint_id is not None else [doc]
            ids |= {d.doc_id for d in peers if answer in d.text} | {doc.doc_id}
        questions.append(Question(text, tuple(sorted(stated[text])), frozenset(ids)))
    return questions


def is_relevant(question: Question, chunk: Chunk) -> bool:
    """The chunk comes from a document that states an answer, and contains that answer itself."""
    return chunk.doc_id in question.doc_ids and any(a in chunk.text for a in question.answers)


def evaluate(conn: Any, embedder: Any, questions: Sequence[Question], version: int) -> RetrievalScores:
    """recall@5 and MRR@10 of one index version."""
    if not questions:
        return RetrievalScores(0.0, 0.0, 0)
    vecs = embedder.embed([q.text for q in questions])
    hits_at_5 = 0
    rr = 0.0
    for q, vec in zip(questions, vecs, strict=True):
        hits = store.query(conn, vec, k=MRR_DEPTH, version=version)
        rank = next((i for i, h in enumerate(hits, 1) if is_relevant(q, h.chunk)), None)
        if rank is not None:
            hits_at_5 += rank <= 5
            rr += 1.0 / rank
    return RetrievalScores(hits_at_5 / len(questions), rr / len(questions), len(questions))


def should_promote(new: RetrievalScores, live: RetrievalScores | None, tolerance: float = 0.0) -> bool:
    """Promote unless the candidate scores below the live version on recall@5 or MRR (beyond `tolerance`)."""
    if live is None:
        return True
    return new.recall_at_5 >= live.recall_at_5 - tolerance and new.mrr >= live.mrr - tolerance


@dataclass(frozen=True)
class RefreshReport:
    """What one refresh did: the version built, its scores, the live one's, and whether it went live."""

    version: int
    n_chunks: int
    scores: RetrievalScores
    live_before: int | None
    live_scores: RetrievalScores | None
    promoted: bool
    reused: bool  # identical content: an existing version was returned, nothing new was written

    @property
    def live_after(self) -> int:
        """The live version once the refresh is done."""
        return self.version if self.promoted else (self.live_before or self.version)


def refresh_index(
    conn: Any, docs: Sequence[Document], embedder: Any, chunker: Chunker = chunk_document
) -> RefreshReport:
    """Docs -> chunks -> embeddings -> new version -> eval (beside the live one) -> promote if not worse."""
    chunks = chunk_documents(docs, chunker)
    live = store.live_version(conn)
    before = {v.version for v in store.versions(conn)}
    version = store.build_version(
        conn, chunks, embedder.embed([c.text for c in chunks]), model=getattr(embedder, "name", "unknown")
    )
    reused = version in before
    questions = generate_questions(docs)
    scores = evaluate(conn, embedder, questions, version)
    store.record_scores(conn, version, scores.recall_at_5, scores.mrr)
    live_scores = None
    if live is not None and live != version:
        live_scores = evaluate(conn, embedder, questions, live)
    promoted = live == version or should_promote(scores, live_scores)
    if promoted and live != version:
        store.promote(conn, version)
    return RefreshReport(version, len(chunks), scores, live, live_scores, promoted, reused)


def ask(conn: Any, embedder: Any, question: str, k: int = 5, version: int | None = None) -> list[store.Hit]:
    """The k chunks of the live index (or `version`) that best match a free-text question."""
    return store.query(conn, embedder.embed_one(question), k=k, version=version)


def format_answer(results: Sequence[store.Hit]) -> str:
    """Top chunks with score and provenance, for the terminal."""
    if not results:
        return "No knowledge index yet (materialize knowledge_index first), or nothing matched."
    out = []
    for i, (chunk, score, prov) in enumerate(results, 1):
        where = ", ".join(
            f"{k} {prov[k]}"
            for k in ("source", "hero", "checkpoint_id", "created_at")
            if prov.get(k) is not None
        )
        body = "\n".join("    " + line for line in chunk.text.strip().splitlines())
        out.append(f"[{i}] score {score:.3f}  ({where}; doc {chunk.doc_id})\n{body}")
    return "\n\n".join(out)


__all__ = [
    "Question",
    "RefreshReport",
    "RetrievalScores",
    "ask",
    "chunk_document",
    "evaluate",
    "format_answer",
    "generate_questions",
    "refresh_index",
    "should_promote",
]
