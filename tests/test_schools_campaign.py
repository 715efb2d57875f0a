"""The schools and strain through a real Dagster instance: Mirror counts, reflections, level losses, effort."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from tiny_hero import set_training_key

from realm_pipeline.ledger import connect
from realm_pipeline.training.strain import DEFAULT_FLOOR


def _run(defs: dg.Definitions, job: str, partition_key: str | dg.MultiPartitionKey | None = None) -> None:
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition_key)
    assert result.success, job


@pytest.fixture
def mirror_defs(realm_env: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    """The tiny hero with the Mirror and Oracle schools and 10-step segments (so it still misses probes)."""
    hero = config_dir / "heroes" / "tiny.yaml"
    text = hero.read_text().replace("schools: [scribe]", "schools: [scribe, mirror, oracle]")
    hero.write_text(
        text.replace("segment_steps: 150", "segment_steps: 10").replace("probes: 32", "probes: 12")
    )
    set_training_key(hero, "preview_share", 0)  # measured: exactly the level being learned and the next
    set_training_key(hero, "strain_hint", "false")  # the sheet says the mix ignores the hint
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    from realm_pipeline.definitions import build_defs

    return build_defs()


@pytest.mark.proof
@pytest.mark.slow  # two training segments: ~1-2 minutes on a loaded 2-core box
def test_mirror_reflections_flow_into_the_next_segment(realm_env: Path, mirror_defs: dg.Definitions) -> None:
    from realm_pipeline.training.sparring import REFLECTIONS_FILE, load_reflections

    _run(mirror_defs, "eval_sets_job", "bin")
    for key in ("tiny.000010", "tiny.000020"):
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("checkpoints", [key])
        _run(mirror_defs, "train_job", key)
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey("checkpoints"), limit=5).records
    meta = {r.partition_key: r.asset_materialization.metadata for r in records}
    first, second = meta["tiny.000010"], meta["tiny.000020"]
    assert first["mirror_probes"].value == 12 and first["mirror_misses"].value > 0  # 10 steps: still bad
    assert first["mirror_examples"].value == 3 * first["mirror_misses"].value
    assert first["schools"].value == "scribe, mirror, oracle"
    reflections = load_reflections(realm_env / "checkpoints" / "tiny" / "tiny.000010")
    assert len(reflections) == first["mirror_examples"].value
    assert (realm_env / "checkpoints" / "tiny" / "tiny.000020" / REFLECTIONS_FILE).exists()
    # the second segment drew the first one's reflections into its mix; the first had none to draw
    assert "reflections_trained" not in first or first["reflections_trained"].value == 0
    assert second["reflections_trained"].value > 0

    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        rows = con.execute(
            "SELECT checkpoint_id, skill, level, heldout_loss FROM level_losses ORDER BY 1, 3"
        ).fetchall()
        spec = con.execute(
            "SELECT spec_json FROM checkpoints WHERE checkpoint_id = 'tiny.000020'"
        ).fetchone()[0]
    # the level being learned and the next one are measured after every segment
    assert [(c, s, lv) for c, s, lv, _ in rows] == [
        ("tiny.000010", "bin", 1),
        ("tiny.000010", "bin", 2),
        ("tiny.000020", "bin", 1),
        ("tiny.000020", "bin", 2),
    ]
    assert all(loss > 0 for *_, loss in rows)
    import json

    spec = json.loads(spec)
    assert spec["surprise_weighted"] is True and spec["mirror_probes"] == 12
    assert spec["loss_floors"] == [["bin", 1, pytest.approx(DEFAULT_FLOOR)]]  # nothing mastered yet

    with dg.DagsterInstance.get() as instance:
        # No evals ran, so the rollup's public_mirror refuses an empty leaderboard; curriculum still runs.
        mirror_defs.resolve_job_def("rollup_job").execute_in_process(instance=instance, raise_on_error=False)
    with dg.DagsterInstance.get() as instance:
        cur = instance.fetch_materializations(dg.AssetKey("curriculum"), limit=1).records[0]
    cmeta = cur.asset_materialization.metadata
    effort_rows = cmeta["tiny/effort_by_level"].value
    assert [(e["skill"], e["level"], e["segments"]) for e in effort_rows] == [("bin", 1, 2), ("bin", 2, 0)]
    assert cmeta["tiny/effort"].value > 0
    assert cmeta["tiny/hint"].value == "none" and "2/3" in cmeta["tiny/hint_reason"].value
    assert cmeta["tiny/hint_reason"].value.endswith("the mix ignores it (training.strain_hint: false)")
