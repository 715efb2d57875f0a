"""Sensors only read and request: evaluating every sensor once, as the UI's preview does, on a real
instance and a real ledger with work to do, writes nothing to the ledger or the inbox."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from realm_pipeline.ledger import TABLES, connect

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
HERO = "sim_cap3"  # the subject is the campaign's mechanics, not training: a simulated segment takes seconds
FIRST = f"{HERO}.000010"

SENSORS = [
    "campaign_sensor",
    "leaderboard_regression_sensor",
    "staleness_sensor",
    "quest_inbox_sensor",
    "knowledge_documents_sensor",
]
# Sensors that still change state in a tick, and who moves that change into an asset (issue 11).


def _files(root: Path) -> dict[str, str]:
    """Every file under root (the ledger file, its WAL, the inbox) by path, as a sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(db: Path) -> dict[str, list]:
    with connect(db, read_only=True) as con:
        return {name: sorted(map(repr, con.execute(f"SELECT * FROM {name}").fetchall())) for name in TABLES}


def _use(home: Path, mp: pytest.MonkeyPatch) -> None:
    """Point realm and Dagster at the campaign's home and at its configs (the simulated hero active)."""
    mp.setenv("REALM_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    mp.setenv("REALM_CONFIG_DIR", str(home.parent / "configs"))


@pytest.fixture(scope="module")
def campaign_with_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained, evaluated and rolled-up checkpoint of the active (simulated) hero; then a leaderboard
    newer than the mirror, and a good and a bad quest file in the inbox: every sensor has something to
    request."""
    root = tmp_path_factory.mktemp("readonly")
    home = root / "realm_home"
    realm_yaml = shutil.copytree(CONFIGS, root / "configs") / "realm.yaml"
    realm_yaml.write_text(realm_yaml.read_text().replace("active_heroes: [tiny]", f"active_heroes: [{HERO}]"))
    with pytest.MonkeyPatch.context() as mp:
        _use(home, mp)
        from realm_pipeline.cli import init_instance
        from realm_pipeline.definitions import build_defs
        from realm_pipeline.settings import Settings

        assert Settings().realm.campaign.active_heroes == [HERO]
        init_instance()
        defs = build_defs()
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("checkpoints", [FIRST])
            for job, partition, assets in [
                ("eval_sets_job", "bin", None),
                ("train_job", FIRST, None),
                ("eval_job", dg.MultiPartitionKey({"checkpoint": FIRST, "skill": "bin"}), None),
                ("rollup_job", None, None),
                ("rollup_job", None, [dg.AssetKey("leaderboard")]),  # the mirror is now behind
            ]:
                result = defs.resolve_job_def(job).execute_in_process(
                    instance=instance, partition_key=partition, asset_selection=assets
                )
                assert result.success, job
    inbox = home / "inbox"
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    (inbox / "good.jsonl").write_text(json.dumps(good) + "\n")
    (inbox / "bad.jsonl").write_text("{not json\n")
    return home


def test_every_sensor_of_the_definitions_is_covered(campaign_with_work: Path, monkeypatch) -> None:
    _use(campaign_with_work, monkeypatch)
    from realm_pipeline.definitions import build_defs

    names = {s.name for s in build_defs().get_repository_def().sensor_defs}
    assert names == set(SENSORS)


@pytest.mark.parametrize("name", SENSORS)
def test_evaluating_a_sensor_writes_nothing(
    name: str, campaign_with_work: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    home = campaign_with_work
    _use(home, monkeypatch)
    from realm_pipeline.definitions import build_defs

    defs = build_defs()
    sensor = defs.get_repository_def().get_sensor_def(name)
    ledger_files = {k: v for k, v in _files(home).items() if k.startswith("realm.duckdb")}
    rows = _rows(home / "realm.duckdb")
    inbox = _files(home / "inbox")
    with dg.DagsterInstance.get() as instance:
        if isinstance(sensor, dg.AutomationConditionSensorDefinition):
            # the declarative automation sensor: its evaluation without launching, as the UI's preview
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
            requested = result.total_requested
        else:
            # as the UI's preview does: call the sensor on a context built over the real instance
            with dg.build_sensor_context(
                instance=instance, resources=dict(defs.resources), definitions=defs
            ) as ctx:
                result = sensor(ctx)
            requested = len(result.run_requests or []) if isinstance(result, dg.SensorResult) else 0
    assert {k: v for k, v in _files(home).items() if k.startswith("realm.duckdb")} == ledger_files
    assert _rows(home / "realm.duckdb") == rows
    assert _files(home / "inbox") == inbox
    if name == "campaign_sensor":  # it had work: the next segment (a tick that requested nothing proves less)
        assert requested >= 1
        assert f"{HERO}.000020" in {r.partition_key for r in result.run_requests}
