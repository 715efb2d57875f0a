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
