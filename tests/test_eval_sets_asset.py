"""`eval_sets` materialized through a real Dagster instance into a real DuckDB file."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


def _materialize(skill: str) -> dg.ExecuteInProcessResult:
    from realm_pipeline.definitions import build_defs

    defs = build_defs()
    with dg.DagsterInstance.get() as instance:
        return defs.resolve_job_def("eval_sets_job").execute_in_process(
            instance=instance, partition_key=skill
        )


def test_eval_sets_twice_gives_the_same_rows(realm_env: Path) -> None:
    from realm_pipeline.ledger import connect

    first = _materialize("bin")
    assert first.success
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        rows1 = con.execute("SELECT * FROM eval_items ORDER BY level, item_index").fetchall()
        sets1 = con.execute("SELECT * FROM eval_sets ORDER BY level").fetchall()
    assert len(sets1) == 30
    # BIN L1 has a tiny prompt space: its eval set is capped by it, and all prompts differ
    l1 = [r for r in rows1 if r[1] == 1]
    assert 0 < len(l1) <= 50 and len({r[4] for r in l1}) == len(l1)
    assert _materialize("bin").success
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        assert con.execute("SELECT * FROM eval_items ORDER BY level, item_index").fetchall() == rows1
        assert con.execute("SELECT * FROM eval_sets ORDER BY level").fetchall() == sets1

    with dg.DagsterInstance.get() as instance:
        mats = instance.fetch_materializations(dg.AssetKey("eval_sets"), limit=10).records
        assert len(mats) == 2
        hashes = {m.asset_materialization.metadata["eval_set_hash"].value for m in mats}
        assert len(hashes) == 1 and {m.asset_materialization.partition for m in mats} == {"bin"}
