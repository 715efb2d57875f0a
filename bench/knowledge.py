"""Knowledge index: embedding throughput, and HNSW vs exact-scan latency and recall@10 at 100,000 chunks.

Run: python bench/knowledge.py [--texts 512] [--rows 100000] [--queries 200] [--exact-queries 50]
Embedding: all-MiniLM-L6-v2 (the packaged model) over synthetic checkpoint-report chunks (~350 chars).
Index: random unit 384-d vectors (structureless, so a hard case for HNSW recall) loaded with
`store.build_version` (binary COPY + HNSW build) into an embedded PostgreSQL in a temp dir. Recall@10
takes the exact scan (`enable_indexscan = off`, a sequential scan ordered by cosine distance) as truth.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from realm_pipeline.knowledge import store  # noqa: E402
from realm_pipeline.knowledge.chunking import Chunk  # noqa: E402
from realm_pipeline.knowledge.embedding import Embedder  # noqa: E402
from realm_pipeline.resources.vector_index import VectorIndexResource  # noqa: E402


def synthetic_texts(n: int) -> list[str]:
    """Chunks shaped like checkpoint-report score sections."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        skill = ["bin", "sy", "seq", "attn", "xfm"][i % 5]
        lines = [f"# Checkpoint hero{i % 7}-s{i:05d} > ## Scores > ### {skill}", ""]
        for level in range(1, 6):
            acc = rng.random()
            ckpt = f"hero{i % 7}-s{i:05d}"
            lines.append(f"- {ckpt} scored accuracy {acc:.1%} ({int(acc * 40)}/40) on {skill} level {level}.")
        out.append("\n".join(lines))
    return out


def pct(xs: list[float], q: float) -> float:
    """Percentile in milliseconds."""
    return float(np.percentile(np.asarray(xs) * 1e3, q))


def knn(conn, vec: np.ndarray, table: str, k: int, exact: bool, ef_search: int) -> tuple[list[str], float]:
    """Top-k chunk ids and wall seconds, by HNSW or by exact sequential scan."""
    t = time.perf_counter()
    with conn.transaction():
        if exact:
            conn.execute("SET LOCAL enable_indexscan = off")  # forces the exact seq scan + sort
        else:
            conn.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
        rows = conn.execute(
            f"SELECT chunk_id FROM {table} ORDER BY embedding <=> %s LIMIT %s", (vec, k)
        ).fetchall()
    return [r[0] for r in rows], time.perf_counter() - t


def main() -> None:
    """Run both benches and print a summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact-queries", type=int, default=50)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[40, store.EF_SEARCH, 200])
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    import torch

    emb = Embedder(device=args.device)
    texts = synthetic_texts(args.texts)
    emb.embed(texts[:8])  # load + warm up
    t = time.perf_counter()
    emb.embed(texts)
    dt = time.perf_counter() - t
    device = emb._model[2]
    print(
        f"embedding: {len(texts)} chunks in {dt:.2f}s = {len(texts) / dt:,.1f} chunks/s "
        f"(device {device}, torch threads {torch.get_num_threads()}, batch {emb.batch_size})"
    )

    home = Path(tempfile.mkdtemp(prefix="realm-bench-knowledge-"))
    resource = VectorIndexResource(home=str(home))
    try:
        with resource.running(), resource.get_connection() as conn:
            rng = np.random.default_rng(1)
            vecs = rng.standard_normal((args.rows, store.DIM)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            chunks = [Chunk(f"c{i:07d}", f"doc{i // 10}", f"chunk {i}", "bench") for i in range(args.rows)]
            t = time.perf_counter()
            version = store.build_version(conn, chunks, vecs, model="random")
            build_s = time.perf_counter() - t
            print(
                f"index: {args.rows:,} rows loaded + HNSW (m={store.HNSW_M}, "
                f"ef_construction={store.HNSW_EF_CONSTRUCTION}) built in {build_s:.1f}s"
            )
            table = store.table_name(version)
            queries = rng.standard_normal((args.queries, store.DIM)).astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)

            truth, exact_lat = [], []
            for q in queries[: args.exact_queries]:
                ids, s = knn(conn, q, table, 10, exact=True, ef_search=0)
                truth.append(set(ids))
                exact_lat.append(s)
            print(
                f"exact scan: p50 {pct(exact_lat, 50):.1f} ms, p99 {pct(exact_lat, 99):.1f} ms "
                f"({len(exact_lat)} queries)"
            )
            for ef in args.ef_search:
                lat, hits = [], []
                for i, q in enumerate(queries):
                    ids, s = knn(conn, q, table, 10, exact=False, ef_search=ef)
                    lat.append(s)
                    if i < len(truth):
                        hits.append(len(truth[i] & set(ids)) / 10)
                print(
                    f"hnsw ef_search={ef}: p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms, "
                    f"recall@10 {np.mean(hits):.3f} ({len(lat)} queries, recall over {len(hits)})"
                )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
