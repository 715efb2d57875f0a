"""Knowledge index: embedding throughput, and HNSW vs exact-scan latency and recall@10 at 100,000 chunks.

Run: python bench/knowledge.py [--texts 256] [--rows 100000] [--queries 200] [--exact-queries 50]
Embedding: all-MiniLM-L6-v2 (the packaged model) over synthetic checkpoint-report chunks (~350 chars).
Index: unit 384-d vectors, `random` (iid: no neighbourhood structure, HNSW's worst case) and `lowrank32`
(32 latent dimensions, closer to real sentence embeddings), each loaded with `store.build_version`
(binary COPY + HNSW build) into an embedded PostgreSQL in a temp dir. Recall@10
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

from realm_pipeline.defs.knowledge.resources import VectorIndexResource  # noqa: E402
from realm_pipeline.knowledge import store  # noqa: E402
from realm_pipeline.knowledge.chunking import Chunk  # noqa: E402
from realm_pipeline.knowledge.embedding import Embedder  # noqa: E402


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


def unit_vectors(dataset: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """`random`: iid unit vectors (no structure: HNSW's worst case); `lowrank32`: 32 latent dimensions."""
    if dataset == "random":
        x = rng.standard_normal((n, store.DIM))
    else:
        # Sentence embeddings occupy a low-dimensional manifold; a random 32-d subspace imitates that.
        basis = np.random.default_rng(7).standard_normal((32, store.DIM))
        x = rng.standard_normal((n, 32)) @ basis
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def index_bench(conn, dataset: str, args: argparse.Namespace) -> None:
    """Load `args.rows` vectors, build HNSW, then time and score exact vs HNSW top-10 queries."""
    rng = np.random.default_rng(1)
    vecs = unit_vectors(dataset, args.rows, rng)
    chunks = [Chunk(f"{dataset}{i:07d}", f"doc{i // 10}", f"chunk {i}", "bench") for i in range(args.rows)]
    t = time.perf_counter()
    version = store.build_version(conn, chunks, vecs, model=dataset)
    print(
        f"[{dataset}] {args.rows:,} rows loaded + HNSW (m={store.HNSW_M}, "
        f"ef_construction={store.HNSW_EF_CONSTRUCTION}) built in {time.perf_counter() - t:.1f}s"
    )
    table = store.table_name(version)
    queries = unit_vectors(dataset, args.queries, np.random.default_rng(2))
    truth, exact_lat = [], []
    for q in queries[: args.exact_queries]:
        ids, s = knn(conn, q, table, 10, exact=True, ef_search=0)
        truth.append(set(ids))
        exact_lat.append(s)
    print(
        f"[{dataset}] exact scan: p50 {pct(exact_lat, 50):.1f} ms, p99 {pct(exact_lat, 99):.1f} ms "
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
            f"[{dataset}] hnsw ef_search={ef}: p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms, "
            f"recall@10 {np.mean(hits):.3f} ({len(lat)} queries, recall over {len(hits)})"
        )


def main() -> None:
    """Run both benches and print a summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact-queries", type=int, default=50)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[40, store.EF_SEARCH, 200])
    ap.add_argument("--device", default=None)
    ap.add_argument("--datasets", nargs="+", default=["random", "lowrank32"], choices=["random", "lowrank32"])
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
            for dataset in args.datasets:
                index_bench(conn, dataset, args)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
