"""Entry point `python -m realm_pipeline.training.segment`: Dagster Pipes, or standalone with --spec FILE."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from .trainer import RESULT_FILE, SegmentResult, spec_from_json, train_segment


def result_metadata(result: SegmentResult) -> dict[str, Any]:
    """Materialization metadata for a segment result (None values dropped: Pipes metadata needs a value)."""
    return {k: v for k, v in dataclasses.asdict(result).items() if v is not None}


def _run(spec_data: str | dict, log: Any) -> SegmentResult:
    spec = spec_from_json(spec_data)

    def progress(p: dict[str, Any]) -> None:
        log(
            f"step {p['step']}/{p['steps']} loss {p['loss']:.4f} lr {p['lr']:.2e} "
            f"tokens {p['tokens']} tok/s {p['tokens_per_s']:.0f}"
        )

    result = train_segment(spec, on_progress=progress)
    # train_segment already wrote it inside the atomic swap; rewrite defensively in case the dir was reused.
    path = Path(spec.output_dir) / RESULT_FILE
    if not path.exists():
        path.write_text(json.dumps(dataclasses.asdict(result), indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    """Run one segment; under Pipes the spec comes from extras["spec"], else from --spec FILE.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", help="SegmentSpec JSON file (standalone mode)")
    args = parser.parse_args(argv)

    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            spec_data = pipes.get_extra("spec")
            result = _run(spec_data, pipes.log.info)
            pipes.report_asset_materialization(metadata=result_metadata(result))
        return 0

    if not args.spec:
        parser.error("not under Dagster Pipes: pass --spec FILE.json")
    result = _run(Path(args.spec).read_text(), lambda msg: print(msg, flush=True))
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
