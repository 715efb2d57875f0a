"""The ledger: schema from one declaration, forward migrations, upserts that never duplicate, locks."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import duckdb
import pytest

from realm_pipeline import ledger
from realm_pipeline.defs.resources import LedgerBusy, LedgerResource


def test_migrate_creates_every_declared_table_and_column(tmp_path: Path) -> None:
    path = tmp_path / "realm.duckdb"
    with ledger.connect(path) as con:
        assert ledger.migrate(con) == ledger.SCHEMA_VERSION
        assert ledger.migrate(con) == ledger.SCHEMA_VERSION  # a second run is a no-op
        versions = con.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(v,) for v, _ in ledger.MIGRATIONS] and versions[-1] == (ledger.SCHEMA_VERSION,)
        for name, table in ledger.TABLES.items():
            cols = [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]
            assert cols == [c.name for c in table.columns]


def test_every_column_declares_visibility() -> None:
    with pytest.raises(TypeError):
        ledger.Column("x", "VARCHAR")  # type: ignore[call-arg]
    for table in ledger.TABLES.values():
        assert set(table.public_columns) | set(table.private_columns) == {c.name for c in table.columns}
    # what the design calls private stays private
    assert "prompt" in ledger.TABLES["eval_items"].private_columns
    assert "output" in ledger.TABLES["eval_generations"].private_columns
    assert "note" in ledger.TABLES["human_prefs"].private_columns
    assert "path" in ledger.TABLES["checkpoints"].private_columns
    assert "eval_generations" in ledger.PRIVATE_TABLES and "quest_examples" in ledger.PRIVATE_TABLES


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "realm.duckdb"
    with ledger.connect(path) as con:
        ledger.migrate(con)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [ledger.SCHEMA_VERSION + 1])
        with pytest.raises(RuntimeError, match="newer than this realm"):
            ledger.migrate(con)


def test_upsert_replaces_rather_than_duplicates(tmp_path: Path) -> None:
    res = LedgerResource(database=str(tmp_path / "realm.duckdb"))
    row = {"skill": "bin", "level": 1, "n_items": 16, "eval_set_hash": "a", "skill_version": "1"}
    for n in (16, 12):
        with res.get_connection() as con:
            ledger.upsert(con, "eval_sets", [{**row, "n_items": n}])
    with res.read() as con:
        assert con.execute("SELECT n_items FROM eval_sets").fetchall() == [(12,)]
    with res.get_connection() as con, pytest.raises(KeyError, match="no column"):
        ledger.upsert(con, "eval_sets", [{**row, "bogus": 1}])


def _hold_write_lock(path: str, ready, release) -> None:
    con = duckdb.connect(path)
    ready.set()
    release.wait(30)
    con.close()


def test_busy_file_skips_readers_and_waits_writers(tmp_path: Path) -> None:
    path = str(tmp_path / "realm.duckdb")
    res = LedgerResource(database=path, lock_timeout_s=20)
    with res.get_connection():
        pass
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_write_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(LedgerBusy), res.read(wait=False):
            pass
        # a writer waits the lock out instead of failing: release it shortly after it starts waiting
        import threading

        threading.Timer(0.5, release.set).start()
        with res.get_connection() as con:
            ledger.upsert(
                con,
                "eval_sets",
                [{"skill": "sy", "level": 1, "n_items": 1, "eval_set_hash": "h", "skill_version": "1"}],
            )
    finally:
        release.set()
        holder.join(30)
    with res.read(wait=False) as con:
        assert con.execute("SELECT count(*) FROM eval_sets").fetchone()[0] == 1


def test_v1_ledger_migrates_scores_to_protocols(tmp_path: Path) -> None:
    """A ledger written before protocols existed gets them from its stored fingerprints."""
    import json

    from realm_pipeline.evaluation.scores import protocol_of

    path = tmp_path / "realm.duckdb"
    fp = {"schema": 1, "eval_set_hash": "e", "checkpoint_sha256": "c1", "backend": {"kind": "local"}}
    with ledger.connect(path) as con:
        con.execute(ledger.TABLES["schema_version"].ddl())
        con.execute(
            "CREATE TABLE eval_scores (checkpoint_id VARCHAR, hero VARCHAR, step BIGINT, skill VARCHAR, "
            "level INTEGER, fingerprint VARCHAR, n INTEGER, correct INTEGER, accuracy DOUBLE, partial DOUBLE, "
            "eval_set_hash VARCHAR, skill_version VARCHAR, backend VARCHAR, gpu_seconds DOUBLE, "
            "fingerprint_json VARCHAR, created_at TIMESTAMP, PRIMARY KEY (checkpoint_id, skill, level, fingerprint))"
        )
        con.execute("INSERT INTO schema_version VALUES (1, now())")
        con.execute(
            "INSERT INTO eval_scores VALUES ('tiny.000150', 'tiny', 150, 'bin', 1, 'f1', 10, 9, 0.9, 0.9, "
            "'e', '1', 'local', 0, ?, now())",
            [json.dumps(fp)],
        )
        assert ledger.migrate(con) == ledger.SCHEMA_VERSION
        row = con.execute("SELECT protocol, sample FROM eval_scores").fetchone()
        assert row == (protocol_of(fp), "eval")
        assert con.execute("SELECT accuracy FROM current_scores").fetchall() == [(0.9,)]


def test_resource_honours_its_duckdb_configuration(tmp_path: Path) -> None:
    # default_order is DuckDB's 'asc' unless configured: a setting no machine changes on its own
    res = LedgerResource(database=str(tmp_path / "realm.duckdb"), connection_config={"default_order": "desc"})
    with res.get_connection() as con:
        assert con.execute("SELECT current_setting('default_order')").fetchone()[0].lower().startswith("desc")
    with res.read() as con:
        assert con.execute("SELECT current_setting('default_order')").fetchone()[0].lower().startswith("desc")
    with LedgerResource(database=str(tmp_path / "other.duckdb")).get_connection() as con:
        assert con.execute("SELECT current_setting('default_order')").fetchone()[0].lower().startswith("asc")


def test_a_v1_ledger_gains_the_hero_status_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "realm.duckdb"
    with ledger.connect(path) as con:
        ledger.migrate(con)
        # back to the v1 shape: hero_state without its status, schema version 1
        con.execute("ALTER TABLE hero_state DROP COLUMN status")
        con.execute("DELETE FROM schema_version WHERE version > 1")
        con.execute("INSERT INTO hero_state (hero, paused, levels_json) VALUES ('tiny', true, '{}')")
        assert ledger.migrate(con) == ledger.SCHEMA_VERSION
        row = con.execute("SELECT hero, paused, status FROM hero_state").fetchall()
    assert row == [("tiny", True, None)]
