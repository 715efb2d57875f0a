"""bench/gpu_check (issue 40): the dry run on CPU writes every item's JSON, skips what needs CUDA with its
reason, runs the rest, and sums them up; one item failing, dying or overrunning never stops the next."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WRAPPER = REPO / "bench" / "gpu_check.sh"
# Every item, in the order the script runs them.
ITEMS = [
    "env",
    "full_bf16",
    "lora",
    "qlora",
    "galore",
    "adamw_8bit",
    "paged_adamw",
    "muon",
    "estimate_refused",
    "train_throughput",
    "eval_throughput",
    "deepspeed_zero2",
]
CUDA_ONLY = ["qlora", "adamw_8bit", "paged_adamw", "estimate_refused", "deepspeed_zero2"]
ON_CPU = ["env", "full_bf16", "lora", "muon", "train_throughput", "eval_throughput"]
SEGMENTS = ["full_bf16", "lora", "muon"]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _run(out: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    # this interpreter, without the GPU machine's wheels (which would change what the dry run can run)
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "GPU_CHECK_NO_WHEELS": "1"}
    env.pop("OUT", None)
    return subprocess.run(
        [str(WRAPPER), *args, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _records(out: Path) -> dict[str, dict]:
    return {name: json.loads((out / f"{name}.json").read_text()) for name in ITEMS}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One dry run of the whole sequence, shared by the assertions below."""
    out = tmp_path_factory.mktemp("gpu_check")
    return out, _run(out, "--dry-run")


def test_dry_run_writes_every_item_and_exits_0(dry_run) -> None:
    out, done = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ITEMS:
        assert (out / f"{name}.json").is_file(), name
        assert (out / f"{name}.log").is_file(), name
    records = _records(out)
    assert all(r["item"] == name and r["seconds"] >= 0 for name, r in records.items())


def test_dry_run_skips_cuda_items_with_a_reason(dry_run) -> None:
    records = _records(dry_run[0])
    for name in CUDA_ONLY:
        assert records[name]["status"] == "skipped", name
        assert "CUDA" in records[name]["reason"], records[name]["reason"]
    galore_here = importlib.util.find_spec("galore_torch") is not None
    galore = records["galore"]
    assert galore["status"] == ("passed" if galore_here else "skipped")
    if not galore_here:
        assert "galore_torch not installed" in galore["reason"]
    # the refused run is still worked out: the estimate and check_fits' refusal, for the GPU run to try
    refused = records["estimate_refused"]
    assert refused["estimate_bytes"] > refused["available_bytes"]
    assert "exceeds" in refused["refusal"]
    # the deepspeed launcher command is built from realm's launch_command and a filled-in ZeRO-2 config
    ds = records["deepspeed_zero2"]
    assert "--deepspeed_config" in ds["command"] and "realm_pipeline.training.segment" in ds["command"]
    assert ds["deepspeed_config"]["zero_optimization"]["stage"] == 2


def test_dry_run_passes_what_cpu_can_run(dry_run) -> None:
    records = _records(dry_run[0])
    for name in ON_CPU:
        assert records[name]["status"] == "passed", records[name]
    assert records["env"]["dagster_imported"] is False
    for name in SEGMENTS:
        r = records[name]
        assert r["reload_ok"] and r["reload_delta"] <= 1e-3, r
        assert r["estimate_bytes"] > 0 and r["peak_allocated_bytes"] > 0
        assert r["spec"]["steps"] == 2
    assert records["lora"]["spec"]["method"] == "lora" and records["muon"]["spec"]["optimizer"] == "muon"
    assert records["train_throughput"]["realm"]["tokens_per_s"] > 0
    assert records["eval_throughput"]["items"] == 4


def test_dry_run_summary(dry_run) -> None:
    out, done = dry_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True
    assert [r["item"] for r in summary["items"]] == ITEMS
    statuses = {r["item"]: r["status"] for r in summary["items"]}
    assert summary["counts"]["failed"] == summary["counts"]["timeout"] == 0
    assert summary["counts"]["skipped"] == sum(s == "skipped" for s in statuses.values()) >= len(CUDA_ONLY)
    table = (out / "summary.txt").read_text().splitlines()
    assert table[0].split()[:3] == ["item", "status", "s"]
    assert [line.split()[:2] for line in table[1:]] == [[n, statuses[n]] for n in ITEMS]
    assert "\n".join(table) in done.stdout


def _boom(plan) -> dict:
    raise ValueError("planted failure")


def _die(plan) -> dict:
    os._exit(3)


def _hang(plan) -> dict:
    time.sleep(60)
    return {"status": "passed", "summary": "never"}


def _fine(plan) -> dict:
    return {"status": "passed", "summary": "ran after the others"}


def test_a_failing_dying_or_hanging_item_never_stops_the_next(tmp_path: Path) -> None:
    gc = _gpu_check()
    plan = gc.Plan(
        dry=True,
        out=tmp_path,
        work=tmp_path,
        shape={},
        steps=1,
        batch_size=1,
        mix=(("bin", 1, 1.0),),
        heldout_count=1,
        max_length=8,
        lr=1e-4,
        refuse_margin=1.0,
        deepspeed_on_cpu=False,
    )
    items = [
        gc.Item(n, f, 1.5, 1.5) for n, f in (("boom", _boom), ("die", _die), ("hang", _hang), ("ok", _fine))
    ]
    records = [gc.run_item(item, plan, item.dry_limit_s) for item in items]
    assert [r["status"] for r in records] == ["failed", "failed", "timeout", "passed"]
    assert "ValueError: planted failure" in records[0]["reason"]
    assert "exit status 3" in records[1]["reason"]
    assert "1 s limit" in records[2]["reason"] or "2 s limit" in records[2]["reason"]
    for r in records:  # each JSON on disk is the record returned, with its seconds
        assert json.loads((tmp_path / f"{r['item']}.json").read_text()) == r
    assert "planted failure" in (tmp_path / "boom.log").read_text()  # the traceback went to the item's log


@pytest.mark.slow
def test_deepspeed_launcher_dry_run_on_cpu(tmp_path: Path) -> None:
    """The ZeRO-2 item through the real deepspeed launcher on CPU (minutes: compiles DeepSpeed's shm op)."""
    pytest.importorskip("deepspeed")
    done = _run(tmp_path, "--dry-run", "--deepspeed-on-cpu", "--items", "deepspeed_zero2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((tmp_path / "deepspeed_zero2.json").read_text())
    assert record["status"] == "passed" and record["reload_ok"], record


@pytest.mark.gpu
@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or not __import__("torch").cuda.is_available(),
    reason="needs CUDA",
)
def test_gpu_check_on_cuda(tmp_path: Path) -> None:
    """On a GPU: the environment and a full bf16 segment (the 0.6B shape cut to 2 layers) pass."""
    done = _run(tmp_path, "--items", "env,full_bf16", "--layers", "2", "--steps", "2")
    records = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("env", "full_bf16")}
    assert records["full_bf16"]["status"] == "passed", records["full_bf16"]
    assert records["full_bf16"]["peak_allocated_bytes"] > 0 and "estimate_error" in records["full_bf16"]
    assert done.returncode == 0 or records["env"]["missing"], done.stdout[-3000:]
