"""The Definitions load, validate, and import no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg


def test_definitions_validate_loadable() -> None:
    from realm_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_assets_def("eval_sets") is not None


def test_every_sensor_and_job_is_described_and_every_asset_owned() -> None:
    from realm_pipeline.definitions import defs

    undescribed = [s.name for s in defs.sensors if not s.description]
    undescribed += [
        j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__") and not j.description
    ]
    assert undescribed == []  # what the UI's Jobs and Automation pages show beside each name
    graph = defs.resolve_asset_graph()
    unowned = [k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).owners]
    assert unowned == []
    assert graph.get(dg.AssetKey("knowledge_documents")).is_observable  # still observed, not built


def test_loading_definitions_imports_no_torch() -> None:
    code = (
        "import sys, realm_pipeline.definitions as d; d.defs.resolve_all_job_defs();"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'deepspeed') if m in sys.modules];"
        "print(','.join(heavy)); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"heavy modules imported at load: {proc.stdout} {proc.stderr[-2000:]}"


def test_dagster_and_dg_clis_validate_the_project(tmp_path) -> None:
    import os
    from pathlib import Path

    from realm_pipeline.definitions import defs

    bindir = Path(sys.executable).parent
    env = {**os.environ, "REALM_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    repo = Path(__file__).resolve().parent.parent
    outputs = {}
    for cmd in (
        [str(bindir / "dagster"), "definitions", "validate", "-m", "realm_pipeline.definitions"],
        [str(bindir / "dg"), "check", "defs"],
        [str(bindir / "dg"), "list", "defs", "--json"],
    ):
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
        outputs[cmd[1]] = proc.stdout
    assert "passed validation" in outputs["definitions"] or "loaded successfully" in outputs["definitions"]
    assert "loaded successfully" in outputs["check"]
    # `dg list defs` (run from the project directory, through [tool.dg]) sees the defs/ folder's contents
    listed = json.loads(outputs["list"])
    listed_assets = {a["asset_key"] for a in listed["assets"]}
    listed_sensors = {s["name"] for s in listed["sensors"]}
    assert listed_assets == {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()}
    assert listed_sensors == {sensor.name for sensor in defs.sensors}


def test_the_database_password_is_bound_as_an_env_var(realm_env, monkeypatch) -> None:
    from realm_pipeline.definitions import build_defs

    monkeypatch.setenv("REALM_PG_DSN", "postgresql://realm:s3cret@db.example/realm")
    resource = build_defs().resources["vector_index"]
    # the UI's Resources page shows the variable's name, never the value
    assert isinstance(resource.dsn, dg.EnvVar) and resource.dsn == "REALM_PG_DSN"
    assert "s3cret" not in repr(resource)
    monkeypatch.delenv("REALM_PG_DSN")
    assert build_defs().resources["vector_index"].dsn is None  # unset: the embedded server
