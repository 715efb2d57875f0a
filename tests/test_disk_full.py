"""A full disk, on a real size-limited file system (a tmpfs mounted for the test; skipped where the test
may not mount one): refused before the write with the numbers, ENOSPC named when a write fails anyway,
nothing half-written left, and the campaign goes on by itself once space is freed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from sim_hero import SIM, ckpt, use_sim_hero
from tiny_hero import set_launch

from realm_pipeline.disk import DiskFull, disk_full_line, free_bytes

REPO = Path(__file__).resolve().parent.parent
CAMPAIGN = "from realm_pipeline.cli import main; main()"
MIB = 1 << 20


def _fill(directory: Path, leave: int = 0) -> Path:
    """Write a filler file until the file system has `leave` bytes (or fewer) free."""
    filler = directory / "filler.bin"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb") as f:
        while free_bytes(directory) > leave + len(chunk):
            try:
                f.write(chunk)
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


# ---------------------------------------------------------------- each storage engine's full disk, named


def test_every_storage_engines_full_disk_is_named(small_fs) -> None:
    fs = small_fs(1 * MIB)
    with pytest.raises(OSError) as plain:
        (fs / "big.bin").write_bytes(b"x" * (2 * MIB))
    assert disk_full_line(plain.value).startswith("disk full (ENOSPC)")
    (fs / "big.bin").unlink()

    with pytest.raises(duckdb.Error) as duck, duckdb.connect(str(fs / "l.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT repeat('x', 200) AS v FROM range(100000)")
    assert "disk full (ENOSPC)" in disk_full_line(duck.value), duck.value
    for p in fs.iterdir():
        p.unlink()

    import sqlite3

    con = sqlite3.connect(fs / "i.db")
    con.execute("CREATE TABLE t (v)")
    with pytest.raises(sqlite3.OperationalError) as lite:
        for _ in range(1000):
            con.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)
            con.commit()
    con.close()
    assert "disk full (ENOSPC)" in disk_full_line(lite.value)
    # SQLite's bare "disk I/O error" is a full disk only where the file system has no space left
    io_error = sqlite3.OperationalError("disk I/O error")
    _fill(fs)
    assert "disk full (ENOSPC) on" in disk_full_line(io_error, (fs,))
    assert disk_full_line(io_error, (REPO,)) is None
    assert disk_full_line(ValueError("bad value")) is None


def test_a_resume_save_that_hits_enospc_leaves_the_last_save_whole(small_fs) -> None:
    torch = pytest.importorskip("torch")
    from realm_pipeline.training.trainer import RESUME_DIR, _save_resume

    fs = small_fs(4 * MIB)
    out = fs / "tiny.000150"
    model = torch.nn.Linear(64, 64)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 64)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    _save_resume(out, model, opt, sched, {"step": 50})
    big = torch.nn.Linear(1024, 1024)  # 4 MiB of weights: the next save cannot fit
    with pytest.raises(DiskFull) as info:
        _save_resume(out, big, torch.optim.AdamW(big.parameters()), sched, {"step": 100})
    assert "disk full (ENOSPC)" in str(info.value) and ".resume.tmp" in str(info.value)
    assert not (out / f".{RESUME_DIR}.tmp").exists()  # nothing half-written
    assert json.loads((out / RESUME_DIR / "state.json").read_text()) == {"step": 50}


def test_a_mirror_the_disk_cannot_hold_is_refused_and_the_old_one_kept(small_fs) -> None:
    from realm_pipeline.mirror.export import write_mirror

    fs = small_fs(1 * MIB)
    target = fs / "mirror"
    write_mirror({"a.json": b"{}"}, target, allow_empty=True)
    with pytest.raises(DiskFull) as info:
        write_mirror({"a.json": b"x" * (2 * MIB)}, target, allow_empty=True)
    needed, free = map(int, re.search(r"needs (\d+) bytes .*, (\d+) bytes free", str(info.value)).groups())
    assert needed > 2 * MIB > free and f"mirror export to {target}" in str(info.value)
    assert (target / "a.json").read_bytes() == b"{}"
    assert sorted(p.name for p in fs.iterdir() if "staging" in p.name) == []


# ---------------------------------------------------------------- a campaign on a small disk


def _env(home: Path, dagster_home: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "REALM_HOME": str(home), "DAGSTER_HOME": str(dagster_home or home / "dagster")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # a shared 2-core box
    return env


def _campaign(env: dict, segments: int, hero: str = "tiny", **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", CAMPAIGN, "campaign", "--hero", hero, "--segments", str(segments)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, **kw)


def _ledger(home: Path) -> dict[str, list]:
    from realm_pipeline.ledger import TABLES

    with duckdb.connect(str(home / "realm.duckdb"), read_only=True) as con:
        return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in TABLES}


def _checkpoints(home: Path) -> list[tuple]:
    with duckdb.connect(str(home / "realm.duckdb"), read_only=True) as con:
        return con.execute("SELECT checkpoint_id, step FROM checkpoints ORDER BY step").fetchall()


@pytest.mark.slow  # three `realm campaign` processes (no training): about a minute of CPU
@pytest.mark.timeout(900)  # a hang guard only
def test_a_segment_the_disk_cannot_hold_waits_with_the_numbers_then_trains_once_space_is_freed(
    small_fs, config_dir: Path
) -> None:
    """The campaign loop's refusal and its wait are its mechanics, not training: the simulated hero, whose
    segment needs its state file and the margin (training.plan.segment_disk_bytes)."""
    from realm_pipeline.training.plan import DISK_MARGIN_BYTES

    use_sim_hero(config_dir)
    fs = small_fs(64 * MIB)
    home = fs / "home"
    env = {**_env(home), "REALM_CONFIG_DIR": str(config_dir)}
    built = _campaign(env, 0, SIM)  # the eval sets only
    assert built.returncode == 0, built.stdout + built.stderr
    used = 64 * MIB - free_bytes(fs)
    # room for the ledger and the instance, not for a checkpoint: less than the segment's margin free
    fs = small_fs(used + DISK_MARGIN_BYTES * 3 // 4)
    before = _ledger(home)

    first = ckpt(1)
    refused = _campaign(env, 1, SIM)
    out = refused.stdout + refused.stderr
    assert refused.returncode == 1, out
    match = re.search(
        rf"checkpoint {re.escape(first)}: not enough free space to write (\S+): needs (\d+) bytes \([^)]*\), "
        r"(\d+) bytes free",
        out,
    )
    assert match, out
    assert match[1] == str(home / "checkpoints" / SIM / first) and int(match[2]) > int(match[3])
    assert abs(int(match[3]) - free_bytes(fs)) < DISK_MARGIN_BYTES  # the real free space, not a made-up one
    assert "waiting for free space" in out and "resumes by itself" in out
    assert "Traceback" not in out
    assert _ledger(home) == before  # no ledger row changed
    assert not (home / "checkpoints" / SIM / first).exists()

    small_fs(64 * MIB)  # space freed
    again = _campaign(env, 1, SIM)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(rf"train_job\s+{re.escape(first)}\s+ok", again.stdout), again.stdout
    assert _checkpoints(home) == [(first, 10)]


@pytest.mark.slow  # minutes of real training on 2 cores: CI runs it (make test-slow)
@pytest.mark.timeout(900)
@pytest.mark.parametrize("launch", ["in_process", "subprocess"])
def test_a_disk_that_fills_mid_segment_names_enospc_keeps_the_save_and_resumes_by_itself(
    small_fs, tmp_path: Path, config_dir: Path, launch: str
) -> None:
    """Only the checkpoints fill the disk here (the Dagster instance lives elsewhere): the segment's own
    write is what fails, deterministically, whether it trains inside the run or in its subprocess."""
    pytest.importorskip("torch")
    fs = small_fs(64 * MIB)
    home = fs / "home"
    env = _env(home, tmp_path / "dagster")
    set_launch(config_dir, launch)
    env["REALM_CONFIG_DIR"] = str(config_dir)
    assert _campaign(env, 0).returncode == 0
    before = _ledger(home)
    cmd = [sys.executable, "-c", CAMPAIGN, "campaign", "--hero", "tiny", "--segments", "1"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out_dir = home / "checkpoints" / "tiny" / "tiny.000150"
    state = out_dir / "resume" / "state.json"
    deadline = time.monotonic() + 600
    while not state.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no resume save appeared"
        time.sleep(0.05)
    filler = _fill(fs)  # another writer takes the rest of the disk
    out = proc.communicate(timeout=600)[0]
    print(out)
    assert proc.returncode == 1, out
    assert re.search(r"train_job\s+tiny\.000150\s+FAILED", out), out
    enospc = [line for line in out.splitlines() if "disk full (ENOSPC)" in line]
    assert enospc and "tiny.000150" in enospc[0], out
    assert "waiting for free space" in out and "Traceback" not in out
    saved_at = json.loads(state.read_text())["step"]
    assert saved_at >= 50
    leftovers = [p.name for p in out_dir.parent.rglob("*") if p.name.endswith((".tmp", ".staging"))]
    assert leftovers == []  # nothing half-written
    assert not (out_dir / "model.safetensors").exists()
    assert _ledger(home) == before

    filler.unlink()  # space freed: the next campaign retries the segment by itself (no `realm retry`)
    again = _campaign(env, 1)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"train_job\s+tiny\.000150\s+ok", again.stdout), again.stdout
    assert _checkpoints(home) == [("tiny.000150", 150)]
    result = json.loads((out_dir / "segment_result.json").read_text())
    assert result["resumed_from_step"] >= saved_at


@pytest.mark.slow  # minutes of real training on 2 cores: CI runs it (make test-slow)
@pytest.mark.timeout(900)
def test_a_full_disk_under_the_dagster_instance_is_one_line_and_the_campaign_finishes_after(
    small_fs,
) -> None:
    """Everything on one small disk, as the issue found it: whichever write fails first (the instance's
    SQLite event log, the ledger, the segment's save), the campaign ends in one line naming the full
    disk, and once space is freed the next campaign finishes the segment from its save."""
    pytest.importorskip("torch")
    fs = small_fs(64 * MIB)
    home = fs / "home"
    env = _env(home)
    assert _campaign(env, 0).returncode == 0
    cmd = [sys.executable, "-c", CAMPAIGN, "campaign", "--hero", "tiny", "--segments", "1"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    state = home / "checkpoints" / "tiny" / "tiny.000150" / "resume" / "state.json"
    deadline = time.monotonic() + 600
    while not state.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no resume save appeared"
        time.sleep(0.05)
    filler = _fill(fs)
    out = proc.communicate(timeout=600)[0]
    print(out)
    assert proc.returncode != 0, out
    assert re.search(r"disk full \((ENOSPC)\)|not enough free space", out), out
    assert "Traceback" not in out, out
    assert _checkpoints(home) == []

    filler.unlink()
    again = _campaign(env, 1)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"train_job\s+tiny\.000150\s+ok", again.stdout), again.stdout
    assert _checkpoints(home) == [("tiny.000150", 150)]
    result = json.loads((state.parent.parent / "segment_result.json").read_text())
    assert result["resumed_from_step"] >= 50


def test_partial_saves_a_killed_attempt_left_are_removed_at_the_next_start(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tiny_hero import TINY

    from realm_pipeline.training.trainer import SegmentSpec, staging_dirs, train_segment

    out = tmp_path / "tiny.000150"
    resume_tmp, staging = staging_dirs(out)
    for partial in (resume_tmp, staging):  # as a kill -9 or a full disk mid-write may leave them
        partial.mkdir(parents=True)
        (partial / "model.pt").write_bytes(b"half")
    spec = SegmentSpec(
        output_dir=str(out),
        base={"tiny": TINY},
        steps=2,
        save_every=0,
        log_every=1,
        batch_size=2,
        max_length=256,  # BIN L1's longest item is ~100 tokens (v4's prefix notation and tables)
        mix=[("bin", 1, 1.0)],
    )
    seen = []  # at the first step, before anything new is written, the space is reclaimed already
    result = train_segment(spec, on_progress=lambda p: seen.append((resume_tmp.exists(), staging.exists())))
    assert seen[0] == (False, False)
    assert result.step == 2 and (out / "model.safetensors").exists()
    assert not resume_tmp.exists() and not staging.exists()
