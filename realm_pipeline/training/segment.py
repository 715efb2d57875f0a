"""Entry point `python -m realm_pipeline.training.segment`: Dagster Pipes, or standalone with --spec FILE."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from .stopping import stop_on_signals
from .trainer import RESULT_FILE, SegmentInterrupted, SegmentResult, spec_from_json, train_segment


def result_values(result: SegmentResult) -> dict[str, Any]:
    """A segment result's fields as the asset records them (None values dropped: metadata needs a value)."""
    return {k: v for k, v in dataclasses.asdict(result).items() if v is not None}


def result_metadata(result: SegmentResult) -> dict[str, Any]:
    """Pipes materialization metadata for a segment result: result_values, mappings marked as JSON."""
    # Pipes infers scalars; a mapping (level_losses) must say it is JSON.
    return {
        k: {"raw_value": v, "type": "json"} if isinstance(v, dict) else v
        for k, v in result_values(result).items()
    }


HELDOUT_CHECK = "heldout_loss_finite"
# The pid of the process that launched the segment (the Dagster step); when it dies, so does the segment.
PARENT_PID_ENV = "REALM_PARENT_PID"
ORPHANED_EXIT = 75  # the segment stopped because its parent died; its last save is kept for the retry
# The disk filled while the segment wrote (ENOSPC's own number): nothing half-written is left, the last
# whole save is kept, and the launcher reports a full disk the campaign waits out, not a crash.
DISK_FULL_EXIT = 28
# Stopped on request (SIGINT or SIGTERM: Ctrl-C, Dagster's run termination forwarded by Pipes), its resume
# save written where it stopped: 128 + SIGINT, as a shell reports a Ctrl-C.
INTERRUPTED_EXIT = 130
PR_SET_PDEATHSIG = 1


def die_with_parent(poll_s: float = 1.0) -> None:
    """Exit when the launching process dies, instead of training on with nobody to record the result.

    On Linux the kernel sends SIGKILL when the direct parent exits (PR_SET_PDEATHSIG); a watchdog thread
    also polls the launcher's pid from the environment, which covers other systems and every rank of a
    DeepSpeed segment (whose direct parent is the launcher). The resume save is atomic, so a kill never
    leaves a half-written one.
    """
    import signal
    import threading
    import time

    expected = os.environ.get(PARENT_PID_ENV, "")
    launcher = int(expected) if expected.isdigit() else None
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    def gone() -> bool:
        if launcher is not None:
            try:
                os.kill(launcher, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
        return launcher == parent and os.getppid() != parent

    if gone():  # it died before the signal was armed
        os._exit(ORPHANED_EXIT)

    def watch() -> None:
        while not gone():
            time.sleep(poll_s)
        print(
            f"segment: launcher pid {launcher or parent} is gone; stopping (the last save is kept)",
            flush=True,
        )
        os._exit(ORPHANED_EXIT)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def heldout_check(result: SegmentResult) -> tuple[bool, dict[str, Any]]:
    """(passed, metadata) of the checkpoint's held-out loss check: measured, and a finite number."""
    loss = result.heldout_loss
    passed = loss is not None and math.isfinite(loss)
    metadata: dict[str, Any] = {
        "heldout_loss": loss if passed else str(loss),
        "train_loss": result.train_loss,
    }
    return passed, metadata


def run_segment(
    spec_data: str | dict, log: Callable[[str], Any], should_stop: Callable[[], bool] | None = None
) -> SegmentResult:
    """Train the segment `spec_data` describes, logging one line per progress report through `log`;
    `should_stop` as train_segment's (SegmentInterrupted once it says yes)."""
    spec = spec_from_json(spec_data)

    def progress(p: dict[str, Any]) -> None:
        log(
            f"step {p['step']}/{p['steps']} loss {p['loss']:.4f} lr {p['lr']:.2e} "
            f"tokens {p['tokens']} tok/s {p['tokens_per_s']:.0f}"
        )

    result = train_segment(spec, on_progress=progress, should_stop=should_stop)
    # train_segment already wrote it inside the atomic swap; rewrite defensively in case the dir was reused
    # (rank 0 only: the other ranks of a DeepSpeed segment return what rank 0 wrote).
    path = Path(spec.output_dir) / RESULT_FILE
    if os.environ.get("RANK", "0") == "0" and not path.exists():
        path.write_text(json.dumps(dataclasses.asdict(result), indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    """Run one segment; under Pipes the spec comes from extras["spec"], else from --spec FILE.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", help="SegmentSpec JSON file (standalone mode, and every DeepSpeed rank)")
    parser.add_argument(
        "--deepspeed_config", help="DeepSpeed JSON: train with the engine (deepspeed launcher)"
    )
    args = parser.parse_args(argv)
    die_with_parent()
    if os.environ.get(PARENT_PID_ENV):
        # Out of the launcher's process group: a terminal's Ctrl-C (or `timeout`'s SIGTERM to the group)
        # reaches the launcher alone, which forwards one stop (Pipes' forward_termination); a second one
        # straight from the terminal would otherwise stop the segment before it saves where it stopped.
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
    from realm_pipeline.disk import DiskFull

    try:
        with stop_on_signals(_stop_at_once) as stop:
            return _main(args, parser, stop)
    except DiskFull as exc:  # already one line naming ENOSPC and the path; the traceback adds nothing
        print(f"segment: {exc}", file=sys.stderr, flush=True)
        return DISK_FULL_EXIT
    except SegmentInterrupted as exc:
        print(f"segment: {exc} ({stop.name})", file=sys.stderr, flush=True)
        return INTERRUPTED_EXIT


def _stop_at_once(signum: int) -> NoReturn:
    """A second stop signal: stop now (the last whole resume save is kept)."""
    raise KeyboardInterrupt


def _main(args: argparse.Namespace, parser: argparse.ArgumentParser, should_stop: Callable[[], bool]) -> int:
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    def spec_data(extras_spec: Any = None) -> dict:
        data = json.loads(Path(args.spec).read_text()) if args.spec else dict(extras_spec)
        if args.deepspeed_config:
            data["deepspeed_config"] = args.deepspeed_config
        return data

    # Under the deepspeed launcher every rank inherits the Pipes environment: rank 0 alone talks to Dagster.
    if PipesEnvVarParamsLoader().is_dagster_pipes_process() and os.environ.get("RANK", "0") == "0":
        with open_dagster_pipes() as pipes:
            result = run_segment(
                spec_data(pipes.get_extra("spec") if not args.spec else None), pipes.log.info, should_stop
            )
            pipes.report_asset_materialization(metadata=result_metadata(result))
            passed, check_metadata = heldout_check(result)
            pipes.report_asset_check(HELDOUT_CHECK, passed=passed, severity="ERROR", metadata=check_metadata)
        return 0
    if os.environ.get("RANK", "0") != "0":
        run_segment(spec_data(), lambda msg: None, should_stop)
        return 0

    if not args.spec:
        parser.error("not under Dagster Pipes: pass --spec FILE.json")
    result = run_segment(spec_data(), lambda msg: print(msg, flush=True), should_stop)
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
