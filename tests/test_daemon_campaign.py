"""The campaign under the real daemon, as `make dev` runs it: `dagster-daemon run` in a subprocess against a
temporary instance drives a hero from its sensors alone (nothing else launches a run), through a wrecked
segment, and the instance's event log is judged. The subject is the campaign's mechanics, not training:
the hero is the simulated one (tests/sim_hero.py), whose second segment is wrecked by a shock that makes
it forget what it held (its checkpoint file says so, and the real eval items score it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from sim_hero import SIM, SKILL, ckpt, use_sim_hero

from realm_pipeline import ledger
from realm_pipeline.evaluation.regressions import CONFIRM_TAG

BIN = Path(sys.executable).parent
WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.yaml"
# the wreck: the second segment keeps 5 % of every level's hold (simulation.hero's shocks), so the standings
# the first segment set (BIN L1-L3 at ~0.1-0.4) drop by more than tau on its evals
WRECKED = [[2, 0.05]]
HERO_SENSORS = ("campaign_sensor", "staleness_sensor", "leaderboard_regression_sensor")
POLL_S = 3.0
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
CHECKPOINTS, EVAL_SCORES, LEADERBOARD = (
    dg.AssetKey("checkpoints"),
    dg.AssetKey("eval_scores"),
    dg.AssetKey("leaderboard"),
)
CURRICULUM = dg.AssetKey("curriculum")
# each rollup and the upstreams its automation condition waits for (defs: rollup_condition(...)); the
# mirror follows the board and the sheets, so one eval can rebuild it twice when they land in two runs
ROLLUP_TRIGGERS = {
    CURRICULUM: (EVAL_SCORES,),
    LEADERBOARD: (EVAL_SCORES, CURRICULUM),
    dg.AssetKey("public_mirror"): (LEADERBOARD, CURRICULUM),
}
REGRESSION_CHECK = dg.AssetCheckKey(LEADERBOARD, "leaderboard_regression")


def _realm(env: dict, *args: str) -> None:
    out = subprocess.run([str(BIN / "realm"), *args], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr


def _runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in instance.get_run_records()]


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> list[dg.EventLogRecord]:
    """Every materialization of `key`, oldest first."""
    return list(reversed(instance.fetch_materializations(key, limit=10_000).records))


def _sensor_ticks(instance: dg.DagsterInstance) -> dict[str, list]:
    """Each hero sensor's newest ticks, newest first."""
    states = {s.instigator_name: s for s in instance.all_instigator_state()}
    return {
        name: instance.get_ticks(states[name].instigator_origin_id, states[name].selector_id, limit=3)
        for name in HERO_SENSORS
        if name in states
    }


def _settled(instance: dg.DagsterInstance) -> bool:
    """No run unfinished, and every hero sensor has since ticked and asked for nothing."""
    runs = _runs(instance)
    if any(r.status not in FINISHED for r in runs):
        return False
    last_end = max((r.end_time or 0.0 for r in instance.get_run_records()), default=0.0)
    ticks = _sensor_ticks(instance)
    return len(ticks) == len(HERO_SENSORS) and all(
        t and t[0].status.value == "SKIPPED" and t[0].timestamp > last_end for t in ticks.values()
    )


def _wait_for(what: str, done, daemon: subprocess.Popen, log: Path, deadline: float) -> None:
    while not done():
        assert daemon.poll() is None, f"the daemon exited ({daemon.returncode}): {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"hang guard: still waiting for {what}; {log.read_text()[-3000:]}"
        time.sleep(POLL_S)


@pytest.mark.proof
@pytest.mark.slow  # the daemon, its code server and run workers: minutes on a loaded 2-core box
# a hang guard only: every wait below is for an event, not a duration
@pytest.mark.timeout(1800)
def test_the_daemon_alone_runs_a_campaign_through_a_confirmed_drop(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "realm_home"
    env = {
        **os.environ,
        "REALM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "REALM_CONFIG_DIR": str(config_dir),
    }
    for name in ("REALM_HOME", "DAGSTER_HOME", "REALM_CONFIG_DIR"):
        monkeypatch.setenv(name, env[name])
    use_sim_hero(config_dir, shocks=WRECKED)
    _realm(env, "init")
    log = tmp_path / "daemon.log"
    deadline = time.monotonic() + 1700
    with log.open("w") as out:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)],  # the location `make dev` loads
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server and run workers share its group: teardown ends them all
        )
    try:
        with dg.DagsterInstance.get() as instance:
            # 1. the sensors build the eval set, train, evaluate and roll up segments; the second is wrecked
            def confirmed_past_the_wreck() -> bool:
                confirming = [r for r in _runs(instance) if CONFIRM_TAG in r.tags]
                return (
                    bool(confirming)
                    and all(r.status in FINISHED for r in confirming)
                    and ckpt(2) in instance.get_materialized_partitions(CHECKPOINTS)
                )

            _wait_for(
                "a confirming eval and the wrecked segment", confirmed_past_the_wreck, daemon, log, deadline
            )
            # 2. stop the campaign as a person would, and let everything already asked for finish
            _realm(env, "pause", SIM)
            _wait_for("the daemon to settle", lambda: _settled(instance), daemon, log, deadline)
    finally:
        # a group already gone must not hide the failure that ended it; a run worker left training
        # would starve the tests after this one
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)

    _judge(home)


def _judge(home: Path) -> None:
    """What the instance's event log and the ledger say about the campaign the daemon ran."""
    with dg.DagsterInstance.get() as instance:
        runs = _runs(instance)
        # no failed run, and every run was launched by a sensor (nothing else was asked)
        assert [r for r in runs if r.status != dg.DagsterRunStatus.SUCCESS] == []
        assert all(r.tags.get("dagster/sensor_name") in HERO_SENSORS for r in runs), [r.tags for r in runs]
        by_sensor = Counter((r.tags["dagster/sensor_name"], r.job_name) for r in runs)
        # one owner per asset: the campaign sensor asked for eval sets and segments only
        assert {job for sensor, job in by_sensor if sensor == "campaign_sensor"} == {
            "eval_sets_job",
            "train_job",
        }, by_sensor
        checkpoints = sorted(instance.get_materialized_partitions(CHECKPOINTS))
        assert len(checkpoints) >= 2

        # no asset partition materialized twice for one cause
        def partitions(key: dg.AssetKey) -> Counter:
            return Counter(m.partition_key for m in _materializations(instance, key))

        assert partitions(dg.AssetKey("eval_sets")) == {SKILL: 1}
        assert partitions(CHECKPOINTS) == dict.fromkeys(checkpoints, 1)
        confirming = {r.run_id: r for r in runs if CONFIRM_TAG in r.tags}
        evals = _materializations(instance, EVAL_SCORES)
        first_evals = Counter(m.partition_key for m in evals if m.run_id not in confirming)
        assert first_evals == {f"{c}|{SKILL}": 1 for c in checkpoints}
        confirming_evals = Counter(
            (m.partition_key, confirming[m.run_id].tags[CONFIRM_TAG]) for m in evals if m.run_id in confirming
        )
        assert set(confirming_evals.values()) == {1}, confirming_evals  # one per drop
        # a rollup's cause is an update of what it waits for since the build before: none without one
        for key, triggers in ROLLUP_TRIGGERS.items():
            causes = [m.storage_id for t in triggers for m in _materializations(instance, t)]
            builds = [m.storage_id for m in _materializations(instance, key)]
            assert builds, key
            for before, after in zip([0, *builds], builds, strict=False):
                assert any(before < c < after for c in causes), (key, before, after)

        # the regression check evaluated with every leaderboard build, in its run
        builds = _materializations(instance, LEADERBOARD)
        checks = instance.event_log_storage.get_asset_check_execution_history(REGRESSION_CHECK, limit=10_000)
        assert sorted(c.run_id for c in checks) == sorted(b.run_id for b in builds)
        drops = [c for c in checks if c.event is not None and not c.event.asset_check_evaluation.passed]
        assert drops, "the wrecked segment raised no drop"
        raised = {
            d["checkpoint_id"] for c in drops for d in c.event.asset_check_evaluation.metadata["drops"].data
        }
        assert ckpt(2) in raised, raised  # the wrecked segment's own evals dropped

        # the confirming eval was requested for the wrecked segment's drop, and judged
        (drop,) = drops[-1:]
        dropped = {d["checkpoint_id"] for d in drop.event.asset_check_evaluation.metadata["drops"].data}
        assert {r.tags.get("dagster/partition/checkpoint") for r in confirming.values()} >= dropped
    with ledger.connect(home / "realm.duckdb", read_only=True) as con:
        verdicts = con.execute(
            "SELECT checkpoint_id, bench, confirmed FROM regression_checks WHERE hero = ?", [SIM]
        ).fetchall()
    assert {c for c, _, _ in verdicts} >= dropped and len(verdicts) == sum(confirming_evals.values())
