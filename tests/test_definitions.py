"""The Definitions load, validate, and import no torch."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg


def test_definitions_validate_loadable() -> None:
    from realm_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_assets_def("eval_sets") is not None


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

    bindir = Path(sys.executable).parent
    env = {**os.environ, "REALM_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    repo = Path(__file__).resolve().parent.parent
    for cmd in (
        [str(bindir / "dagster"), "definitions", "validate", "-m", "realm_pipeline.definitions"],
        [str(bindir / "dg"), "check", "defs"],
    ):
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
        assert "passed validation" in proc.stdout + proc.stderr or "loaded successfully" in proc.stdout
