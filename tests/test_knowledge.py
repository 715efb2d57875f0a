"""Knowledge index against a real PostgreSQL + pgvector started by the resource (no model training)."""

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import psutil
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may download: the model ships in a package

from realm_pipeline import ledger  # noqa: E402
from realm_pipeline.defs.knowledge.resources import VectorIndexResource  # noqa: E402
from realm_pipeline.knowledge import (  # noqa: E402
    Document,
    Embedder,
    build_documents,
    chunk_document,
    chunk_documents,
    format_answer,
    refresh_index,
    store,
)
from realm_pipeline.knowledge.chunking import Chunk, chunk_id  # noqa: E402
from realm_pipeline.knowledge.documents import score_line  # noqa: E402
from realm_pipeline.knowledge.retrieval_eval import ask  # noqa: E402

T0 = datetime(2026, 1, 1, 12, 0, 0)
ACC = {  # (hero, checkpoint) -> {(skill, level): accuracy}
    ("alpha", "alpha-s0100"): {("bin", 1): 0.95, ("bin", 2): 0.40, ("sy", 1): 0.20},
    ("alpha", "alpha-s0200"): {("bin", 1): 0.98, ("bin", 2): 0.85, ("bin", 3): 0.30, ("sy", 1): 0.55},
    ("beta", "beta-s0100"): {("bin", 1): 0.60, ("seq", 1): 0.90, ("seq", 2): 0.15},
}


def populate_ledger(path: Path) -> None:
    """A few checkpoints, scores and curriculum events, written straight into the ledger."""
    ckpts, scores, events = [], [], []
    for i, ((hero, cid), accs) in enumerate(ACC.items()):
        step = int(cid.rsplit("s", 1)[1])
        spec = {"mix": [["bin", 2, 0.7], ["sy", 1, 0.3]], "path": "/secret/host/path"}
        ckpts.append(
            {
                "checkpoint_id": cid,
                "hero": hero,
                "step": step,
                "segment": i,
                "parent_id": None,
                "tokens": step * 1000,
                "train_loss": 1.5 - i * 0.1,
                "heldout_loss": 1.7,
                "zone": "green",
                "spec_json": json.dumps(spec),
                "path": "/secret/ckpt",
                "host": "secret-host",
                "created_at": T0 + timedelta(hours=i),
            }
        )
        for (skill, level), acc in accs.items():
            scores.append(
                {
                    "checkpoint_id": cid,
                    "hero": hero,
                    "step": step,
                    "skill": skill,
                    "level": level,
                    "fingerprint": "f",
                    "n": 40,
                    "correct": round(acc * 40),
                    "accuracy": acc,
                    "partial": acc,
                    "backend": "hf",
                    "created_at": T0 + timedelta(hours=i),
                    "protocol": "p1",
                    "sample": "eval",
                }
            )
    events.append(
        {
            "hero": "alpha",
            "skill": "bin",
            "level": 2,
            "event": "level_up",
            "checkpoint_id": "alpha-s0200",
            "step": 200,
            "accuracy": 0.85,
            "created_at": T0,
        }
    )
    events.append(
        {
            "hero": "alpha",
            "skill": "bin",
            "level": 3,
            "event": "regression",
            "checkpoint_id": "alpha-s0200",
            "step": 200,
            "accuracy": 0.30,
            "created_at": T0,
        }
    )
    with ledger.connect(path) as con:
        ledger.migrate(con)
        ledger.upsert(con, "checkpoints", ckpts)
        ledger.upsert(con, "eval_scores", scores)
        ledger.upsert(con, "curriculum_events", events)


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A REALM_HOME with a populated ledger and one knowledge note."""
    home = tmp_path_factory.mktemp("realm_home")
    populate_ledger(home / "realm.duckdb")
    (home / "knowledge").mkdir()
    (home / "knowledge" / "notes.md").write_text(
        "# Operator notes\n\nThe beta hero runs on the spare H100 with a batch size of 16.\n"
    )
    return home


@pytest.fixture(scope="session")
def docs(home: Path) -> list[Document]:
    """Documents built from the test ledger."""
    with ledger.connect(home / "realm.duckdb", read_only=True) as con:
        return build_documents(con, home)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The packaged MiniLM, loaded once."""
    return Embedder()


def _scratch() -> Path:
    # Not under pytest's basetemp: as root, pgserver runs postgres as user `pgserver`, and every pytest
    # session start (ours or a colleague's) chmods /tmp/pytest-of-root back to 0700, locking it out.
    return Path(tempfile.mkdtemp(prefix="realm-knowledge-"))


@pytest.fixture
def scratch():
    """A private directory the embedded server's user can always reach; removed afterwards."""
    path = _scratch()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg():
    """One embedded PostgreSQL for the session, started by the resource."""
    path = _scratch()
    resource = VectorIndexResource(home=str(path))
    with resource.running():
        yield resource
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def conn(pg: VectorIndexResource):
    """A connection whose tables live in a fresh schema, so every test starts from an empty index."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with pg.get_connection() as c:
        c.execute(f"CREATE SCHEMA {schema}")
        c.execute(f"SET search_path = {schema}, public")
        store.ensure_schema(c)
        yield c


def test_documents_render_public_facts_only(docs: list[Document]) -> None:
    ids = {d.doc_id for d in docs}
    assert {"checkpoint:alpha-s0200", "eval:alpha-s0200:bin", "skill:bin", "file:notes.md"} <= ids
    report = next(d for d in docs if d.doc_id == "checkpoint:alpha-s0200")
    assert score_line("alpha-s0200", "bin", 2, 0.85, 34, 40) in report.text
    assert "regressed on BIN L3" in report.text and "levelled up on BIN L2" in report.text
    assert "bin level 2: weight 0.700" in report.text  # the training mix, and nothing else of spec_json
    assert all("secret" not in d.text for d in docs)
    assert report.hero == "alpha" and report.created_at == T0 + timedelta(hours=1)


def test_chunks_are_bounded_stable_and_carry_provenance(docs: list[Document]) -> None:
    chunks = chunk_documents(docs, lambda d: chunk_document(d, max_chars=200, overlap=40))
    assert all(len(c.text) <= 200 for c in chunks)
    again = chunk_documents(docs, lambda d: chunk_document(d, max_chars=200, overlap=40))
    assert [c.chunk_id for c in chunks] == [c.chunk_id for c in again]
    score = next(c for c in chunks if "on bin level 3" in c.text and c.source == "checkpoint")
    assert score.text.startswith("# Checkpoint alpha-s0200 > ## Scores > ### bin")
    assert score.provenance["checkpoint_id"] == "alpha-s0200" and score.provenance["hero"] == "alpha"
    long = Document("x", "file", "word " * 500)
    pieces = chunk_document(long, max_chars=200, overlap=50)
    assert len(pieces) > 3 and all(len(p.text) <= 200 for p in pieces)
    assert pieces[1].text.split()[0] == "word"  # overlap starts on a word boundary


def test_index_and_query_finds_the_answering_chunk(conn, docs, embedder) -> None:
    report = refresh_index(conn, docs, embedder)
    assert report.promoted and store.live_version(conn) == report.version == 1
    assert report.scores.n_questions >= 10 and report.scores.recall_at_5 >= 0.8, report.scores
    row = conn.execute("SELECT recall_at_5, mrr, promoted, n_chunks FROM index_versions").fetchone()
    assert row == (report.scores.recall_at_5, report.scores.mrr, True, report.n_chunks)
    # An index on embedding using HNSW exists for the version table.
    defs = [
        r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'chunks_v1'").fetchall()
    ]
    assert any("USING hnsw (embedding vector_cosine_ops)" in d for d in defs), defs

    hits = ask(conn, embedder, "What was the accuracy of alpha-s0200 on bin level 2?")
    assert len(hits) == 5 and hits[0].score >= hits[-1].score
    assert score_line("alpha-s0200", "bin", 2, 0.85, 34, 40) in hits[0].chunk.text
    assert hits[0].provenance["checkpoint_id"] == "alpha-s0200"
    hits = ask(conn, embedder, "When did BIN L3 regress for hero alpha?", k=3)
    assert "regressed on BIN L3" in hits[0].chunk.text
    text = format_answer(hits)
    assert text.startswith("[1] score ") and "checkpoint_id alpha-s0200" in text


def test_reindex_is_idempotent(conn, docs, embedder) -> None:
    first = refresh_index(conn, docs, embedder)
    ids = store.chunk_ids(conn, first.version)
    second = refresh_index(conn, docs, embedder)
    assert second.version == first.version and second.reused and second.promoted
    assert [v.version for v in store.versions(conn)] == [first.version]
    assert store.chunk_ids(conn, second.version) == ids
    assert conn.execute("SELECT count(*) FROM chunks_v1").fetchone()[0] == first.n_chunks
    # New content gets a new version beside the live one.
    extra = [*docs, Document("file:new.md", "file", "# New\n\nA brand new note about GaLore.\n")]
    third = refresh_index(conn, extra, embedder)
    assert third.version == 2 and not third.reused and store.live_version(conn) in (1, 2)


def test_promotion_refused_when_recall_drops(conn, docs, embedder) -> None:
    good = refresh_index(conn, docs, embedder)

    def broken(doc: Document) -> list[Chunk]:
        """A chunker bug: every chunk truncated to 10 characters (ids follow the text, as in the real one)."""
        good = chunk_document(doc)
        return [
            replace(c, chunk_id=chunk_id(doc.doc_id, i, c.text[:10]), text=c.text[:10])
            for i, c in enumerate(good)
        ]

    bad = refresh_index(conn, docs, embedder, chunker=broken)
    assert bad.version != good.version and not bad.promoted
    assert bad.scores.recall_at_5 < good.scores.recall_at_5
    assert store.live_version(conn) == good.version
    rows = dict(conn.execute("SELECT version, promoted FROM index_versions").fetchall())
    assert rows == {good.version: True, bad.version: False}
    # Queries keep answering from the live, good version.
    assert len(ask(conn, embedder, "accuracy of beta-s0100 on seq level 1")[0].chunk.text) > 10


def test_asset_materializes_and_embedded_server_stops_cleanly(scratch: Path, monkeypatch) -> None:
    import dagster as dg

    from realm_pipeline.defs.knowledge.assets import knowledge_index, run_ask
    from realm_pipeline.defs.resources import LedgerResource, RealmResource

    monkeypatch.delenv("REALM_PG_DSN", raising=False)
    home = scratch
    populate_ledger(home / "realm.duckdb")
    resource = VectorIndexResource(home=str(home))
    result = dg.materialize(
        [knowledge_index],
        resources={
            "realm": RealmResource(home=str(home)),
            "ledger_db": LedgerResource(database=str(home / "realm.duckdb")),
            "vector_index": resource,
        },
    )
    assert result.success
    meta = result.asset_materializations_for_node("knowledge_index")[0].metadata
    assert meta["version"].value == 1 and meta["promoted"].value is True and meta["live_version"].value == 1
    assert meta["recall_at_5"].value > 0.5
    # nothing live before: the first index is not worse than it, and the check says so
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "not_worse_than_live" and check.passed
    # Teardown stopped the server: no postmaster.pid left, and the process is gone.
    assert not (home / "pg" / "postmaster.pid").exists()

    # A second start in the same directory works and sees the promoted version.
    again = VectorIndexResource(home=str(home))
    with again.running():
        pid = again.server_pid
        assert pid is not None and psutil.pid_exists(pid)
        with again.get_connection() as c:
            assert store.live_version(c) == 1
    assert _gone(pid) and not (home / "pg" / "postmaster.pid").exists()
    assert "alpha-s0200" in run_ask("accuracy of alpha-s0200 on bin level 3", k=2, home=home)


def _gone(pid: int) -> bool:
    # The container's init may not reap the detached postmaster: a zombie has exited all the same.
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
