"""Versioned chunk index in PostgreSQL + pgvector: build beside the live version, then promote.

Layout: `index_versions` holds one row per version (model, chunk count, content hash, eval scores,
promotion); each version's chunks live in their own table `chunks_v<N>` with an HNSW cosine index, so
building version N+1 never touches the table or index that queries are reading, and dropping an old
version is one DROP TABLE.

Idempotency: within a version, rows are keyed by chunk id (a hash of doc id, position and text).
Across versions, `content_hash` (model + sorted chunk ids) identifies the content: building the same
chunks with the same model again returns the existing version instead of creating a duplicate table.
The live version is the one promoted most recently (`promoted_at`), so rolling back is promoting again.
Connections should be autocommit (the resource's are): writes open their own transactions, and reads
then hold no snapshot that would block a concurrent version build's DDL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from realm_pipeline.knowledge.chunking import Chunk

DIM = 384
# HNSW build/search knobs: pgvector's defaults (m=16, ef_construction=64) with a wider search beam,
# which keeps recall@10 near 1 at 100k rows for a sub-millisecond cost (see bench/knowledge.py).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
EF_SEARCH = 100
MAINTENANCE_WORK_MEM = "512MB"  # the 100k-chunk graph of bench/knowledge.py fits in ~200 MB
_LOCK_KEY = 7_349_001  # advisory lock serializing version allocation across processes

SCHEMA = """
CREATE TABLE IF NOT EXISTS index_versions (
    version      integer PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    model        text NOT NULL,
    n_chunks     integer NOT NULL,
    content_hash text NOT NULL,
    recall_at_5  double precision,
    mrr          double precision,
    promoted     boolean NOT NULL DEFAULT false,
    promoted_at  timestamptz
)
"""


class Hit(NamedTuple):
    """One query result: the chunk, its cosine similarity, and its provenance."""

    chunk: Chunk
    score: float
    provenance: dict[str, Any]


@dataclass(frozen=True)
class VersionInfo:
    """One row of index_versions."""

    version: int
    model: str
    n_chunks: int
    content_hash: str
    recall_at_5: float | None
    mrr: float | None
    promoted: bool


def table_name(version: int) -> str:
    """The chunks table of one version."""
    return f"chunks_v{int(version)}"


def ensure_schema(conn: Any) -> None:
    """Create the vector extension (when allowed) and index_versions; register the vector type."""
    from pgvector.psycopg import register_vector

    with conn.transaction():
        # Checked first: CREATE EXTENSION needs privileges an external database may not grant.
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(SCHEMA)
    register_vector(conn)


def content_hash(chunks: Sequence[Chunk], model: str) -> str:
    """Identity of an index's content: the model and the set of chunk ids."""
    h = hashlib.sha256(model.encode())
    for cid in sorted({c.chunk_id for c in chunks}):
        h.update(b"\x00" + cid.encode())
    return h.hexdigest()


def build_version(
    conn: Any, chunks: Sequence[Chunk], embeddings: np.ndarray, *, model: str = "all-MiniLM-L6-v2"
) -> int:
    """Write chunks into a new version (not promoted) and return it; identical content returns the old one."""
    if len(chunks) != len(embeddings):
        raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or (len(emb) and emb.shape[1] != DIM):
        raise ValueError(f"embeddings must be (n, {DIM}), got {emb.shape}")
    digest = content_hash(chunks, model)
    # Same chunk id twice (duplicate documents) would break the primary key: keep the first.
    rows: dict[str, tuple[Chunk, np.ndarray]] = {}
    for ch, vec in zip(chunks, emb, strict=True):
        rows.setdefault(ch.chunk_id, (ch, vec))
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        # Only a version whose table still exists counts as a duplicate (prune may have dropped it).
        for (version,) in conn.execute(
            "SELECT version FROM index_versions WHERE content_hash = %s ORDER BY version DESC", (digest,)
        ).fetchall():
            if _table_exists(conn, version):
                return int(version)
        version = int(conn.execute("SELECT coalesce(max(version), 0) + 1 FROM index_versions").fetchone()[0])
        table = table_name(version)
        conn.execute(
            f"""CREATE TABLE {table} (
                chunk_id text PRIMARY KEY, doc_id text NOT NULL, text text NOT NULL, source text NOT NULL,
                checkpoint_id text, hero text, created_at timestamp, embedding vector({DIM}) NOT NULL)"""
        )
        cols = "chunk_id, doc_id, text, source, checkpoint_id, hero, created_at, embedding"
        # Binary COPY: 384 floats per row as text would be ~10x the bytes to send and parse.
        with conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text", "text", "text", "text", "timestamp", "vector"])
            for ch, vec in rows.values():
                meta = (ch.chunk_id, ch.doc_id, ch.text, ch.source, ch.checkpoint_id, ch.hero, ch.created_at)
                copy.write_row((*meta, vec))
        # An HNSW build that does not fit maintenance_work_mem spills and runs several times slower.
        conn.execute(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
        # Built after the bulk load: one HNSW build is much faster than incremental inserts.
        conn.execute(
            f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
        )
        conn.execute(
            "INSERT INTO index_versions (version, model, n_chunks, content_hash) VALUES (%s, %s, %s, %s)",
            (version, model, len(rows), digest),
        )
    return version


def _table_exists(conn: Any, version: int) -> bool:
    return conn.execute("SELECT to_regclass(%s)", (table_name(version),)).fetchone()[0] is not None


def live_version(conn: Any) -> int | None:
    """The version queries use by default: the one promoted most recently, or None."""
    row = conn.execute(
        "SELECT version FROM index_versions WHERE promoted ORDER BY promoted_at DESC, version DESC LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])


def promote(conn: Any, version: int) -> None:
    """Make `version` live."""
    with conn.transaction():
        n = conn.execute(
            "UPDATE index_versions SET promoted = true, promoted_at = clock_timestamp() WHERE version = %s",
            (version,),
        ).rowcount
    if n != 1 or not _table_exists(conn, version):
        raise ValueError(f"index version {version} does not exist")


def record_scores(conn: Any, version: int, recall_at_5: float, mrr: float) -> None:
    """Store a version's retrieval-eval aggregates."""
    with conn.transaction():
        conn.execute(
            "UPDATE index_versions SET recall_at_5 = %s, mrr = %s WHERE version = %s",
            (recall_at_5, mrr, version),
        )


def versions(conn: Any) -> list[VersionInfo]:
    """Every version, oldest first."""
    rows = conn.execute(
        "SELECT version, model, n_chunks, content_hash, recall_at_5, mrr, promoted "
        "FROM index_versions ORDER BY version"
    ).fetchall()
    return [VersionInfo(*r) for r in rows]


def query(
    conn: Any,
    text_embedding: np.ndarray,
    k: int = 5,
    version: int | None = None,
    *,
    ef_search: int = EF_SEARCH,
) -> list[Hit]:
    """The k chunks nearest to the embedding (cosine) in `version` (default: live), best first."""
    if version is None:
        version = live_version(conn)
        if version is None:
            return []
    table = table_name(version)
    vec = np.asarray(text_embedding, dtype=np.float32)
    with conn.transaction():
        # ef_search must be >= k or HNSW returns fewer than k rows.
        conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), int(k))}")
        rows = conn.execute(
            "SELECT chunk_id, doc_id, text, source, checkpoint_id, hero, created_at, "
            f"embedding <=> %s AS dist FROM {table} ORDER BY embedding <=> %s LIMIT %s",
            (vec, vec, int(k)),
        ).fetchall()
    hits = []
    for cid, doc_id, text, source, ckpt, hero, created, dist in rows:
        ch = Chunk(cid, doc_id, text, source, ckpt, hero, created)
        hits.append(Hit(ch, 1.0 - float(dist), ch.provenance))
    return hits


def chunk_ids(conn: Any, version: int) -> set[str]:
    """Chunk ids stored in one version."""
    return {r[0] for r in conn.execute(f"SELECT chunk_id FROM {table_name(version)}").fetchall()}


def prune(conn: Any, keep: int = 3) -> list[int]:
    """Drop the chunk tables of all but the newest `keep` versions and the live one; scores stay."""
    live = live_version(conn)
    vs = [v.version for v in versions(conn)]
    dropped = []
    with conn.transaction():
        for v in vs[: max(len(vs) - keep, 0)]:
            if v != live and _table_exists(conn, v):
                conn.execute(f"DROP TABLE {table_name(v)}")
                dropped.append(v)
    return dropped
