"""`realm campaign` in a terminal: one line per run, a progress bar per segment, a hero sheet; Dagster's
event log goes to the instance unless --verbose. A real short campaign of the tiny hero."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from sim_hero import SIM, ckpt, use_sim_hero

from realm_pipeline.cli import main

# job, partition, status, seconds, run id (the line's shape, not its timings)
RUN_LINE = re.compile(r"^(\w+_job)\s+(\S+)\s+(ok|FAILED)\s+\d+\.\ds  run ([0-9a-f]{8})$")
REPO = Path(__file__).resolve().parent.parent
EVENT_LOG = re.compile(r" - dagster - (DEBUG|INFO) - ")


def _runs(output: str) -> list[tuple[str, str, str, str]]:
    lines = [part for line in output.splitlines() for part in line.split("\r")]
    return [m.groups() for line in lines if (m := RUN_LINE.match(line))]


@pytest.mark.slow  # minutes of real training on 2 cores: CI runs it (make test-slow)
def test_realm_campaign_prints_runs_progress_and_a_hero_sheet(realm_env: Path) -> None:
    runner = CliRunner()
    # --verbose: the event log comes back to the terminal (here: the eval sets, and no segment asked for)
    verbose = runner.invoke(main, ["campaign", "--hero", "tiny", "--segments", "0", "--verbose"])
    assert verbose.exit_code == 0, verbose.output
    assert EVENT_LOG.search(verbose.output) and "RUN_SUCCESS" in verbose.output
    assert [r[:3] for r in _runs(verbose.output)] == [("eval_sets_job", "bin", "ok")]
    assert "status     0 segment(s) trained as asked; next tiny.000150" in verbose.output

    out = runner.invoke(main, ["campaign", "--hero", "tiny", "--segments", "1"])
    assert out.exit_code == 0, out.output
    assert not EVENT_LOG.search(out.output), out.output  # the event log went to the instance only
    runs = _runs(out.output)
    assert [r[:3] for r in runs] == [
        ("train_job", "tiny.000150", "ok"),
        ("eval_job", "tiny.000150|bin", "ok"),
        ("rollup_job", "-", "ok"),
    ], out.output
    # every line names a run the instance recorded, with its events (the UI shows them)
    with dg.DagsterInstance.get() as instance:
        for job, _, _, short_id in runs:
            (record,) = [
                r
                for r in instance.get_run_records(dg.RunsFilter(job_name=job))
                if r.dagster_run.run_id.startswith(short_id)
            ]
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            assert instance.all_logs(record.dagster_run.run_id)
    # the segment's progress bar reached its last step, with loss and tokens/s
    bar = [
        p
        for line in out.output.splitlines()
        for p in line.split("\r")
        if p.strip().startswith("tiny.000150 ")
    ]
    assert bar and re.search(r"150/150 steps .*loss \d+\.\d{4}\s+\d+ tok/s", bar[-1]), bar
    # the hero sheet, and why the campaign stopped
    sheet = out.output[out.output.index("hero tiny") :]
    for field in (
        "segments   1 (latest tiny.000150)",
        "levels     bin: learning L1, none earned yet",
        "level-ups  none yet (a level is earned by 3 evals in a row at >= 0.80 accuracy)",
        "champion   tiny.000150",
        "zone",
    ):
        assert field in sheet, sheet
    assert "status     1 segment(s) trained as asked; next tiny.000300" in sheet
    # the closing hint opens this very instance, and says that its sensors go on with the campaign
    (hint,) = [line for line in out.output.splitlines() if line.startswith("Dagster UI: ")]
    home = realm_env.resolve()
    assert f"make dev REALM_HOME={home} DAGSTER_HOME={home / 'dagster'}" in hint, hint
    assert "resume the campaign: tiny trains on up to its budget of 40 segments" in hint, hint
    # short enough to read at a glance; progress-bar lines are left out: how many a slow step prints
    # depends on the machine's speed
    text = [line for line in out.output.splitlines() if not any(p in bar for p in line.split("\r"))]
    assert len(text) < 20, text

    # `realm status` shows the same sheet with what the campaign sensor would do next
    status = runner.invoke(main, ["status"])
    assert status.exit_code == 0 and "champion   tiny.000150" in status.output
    assert "status     next train_job tiny.000300" in status.output


@pytest.mark.slow  # eleven runs of the simulated hero (no training): ~40 s of CPU, minutes on a busy box
def test_realm_campaign_rolls_up_again_after_confirmations_that_land_last(
    realm_env: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The campaign loop's order of runs, not training: the simulated hero."""
    from realm_pipeline import ledger
    from realm_pipeline.settings import ledger_path

    use_sim_hero(config_dir)
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    second = ckpt(2)
    runner = CliRunner()
    first = runner.invoke(main, ["campaign", "--hero", SIM, "--segments", "1"])
    assert first.exit_code == 0, first.output
    # The board the next segment is compared with: every standing perfect, so the next build drops on
    # each bench the second segment does not ace, and the rollup's check raises confirming evals.
    with ledger.connect(ledger_path()) as con:
        con.execute(
            "UPDATE hero_standings SET accuracy = 1.0 WHERE version = (SELECT max(version) FROM hero_standings)"
        )
    out = runner.invoke(main, ["campaign", "--hero", SIM, "--segments", "1"])
    assert out.exit_code == 0, out.output  # was: "Error: tiny: rollup_job  changed nothing"
    jobs = [r[:2] for r in _runs(out.output)]
    assert jobs[:3] == [("train_job", second), ("eval_job", f"{second}|bin"), ("rollup_job", "-")]
    confirming = jobs[3:-1]
    assert confirming and set(confirming) == {("eval_job", f"{second}|bin")}, out.output
    assert jobs[-1] == ("rollup_job", "-"), out.output  # the verdicts rolled up, under a new run key
    with ledger.connect(ledger_path()) as con:
        verdicts = con.execute("SELECT count(*) FROM regression_checks WHERE checkpoint_id = ?", [second])
        assert verdicts.fetchone()[0] == len(confirming)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_make_dev_opens_the_instance_the_campaign_hint_names(tmp_path: Path) -> None:
    """`make dev`'s dg runs with the homes on make's command line, else the exported DAGSTER_HOME."""

    def homes(*args: str, env: dict[str, str] | None = None) -> str:
        shown = 'homes: ; @echo "$$REALM_HOME $$DAGSTER_HOME"'
        cmd = ["make", "-s", "-C", str(REPO), "--eval", shown, "homes", *args]
        # make's defaults are the point: homes exported by the shell running the tests would override them
        env = env or {k: v for k, v in os.environ.items() if k not in ("REALM_HOME", "DAGSTER_HOME")}
        return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.strip()

    assert homes(f"REALM_HOME={tmp_path}", f"DAGSTER_HOME={tmp_path / 'x'}") == f"{tmp_path} {tmp_path / 'x'}"
    assert homes(f"REALM_HOME={tmp_path}") == f"{tmp_path} {tmp_path / 'dagster'}"
    exported = {"PATH": os.environ["PATH"], "DAGSTER_HOME": str(tmp_path / "mine")}
    assert homes(env=exported) == f"{REPO / '.realm'} {tmp_path / 'mine'}"
    # ... and the dev recipe itself sets no other instance (it once overrode DAGSTER_HOME)
    recipe = subprocess.run(["make", "-n", "-C", str(REPO), "dev"], capture_output=True, text=True).stdout
    (dg_dev,) = [line for line in recipe.splitlines() if line.rstrip().endswith("dg dev")]
    assert "DAGSTER_HOME" not in dg_dev, dg_dev
