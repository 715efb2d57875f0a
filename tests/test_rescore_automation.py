"""A change of the protocol in force re-scores, by automation alone, exactly the old checkpoints that matter:
each level-up's, the champion and the newest. Real definitions, Dagster instance and ledger; the
configuration edited on disk as a person would, observations executed for real."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from realm_pipeline import ledger
from realm_pipeline.settings import Settings, ledger_path
from tests.test_sensors_regression import T0, score
from tests.test_sensors_staleness import (
    CHECKPOINTS,
    EVAL_PROTOCOLS,
    EVAL_SCORES,
    Ticker,
    eval_key,
    report,
    requested,
)

TINY = [f"tiny.{s:06d}" for s in (150, 300, 450, 600, 750)]
LEVEL_UP, CHAMPION, NEWEST = TINY[1], TINY[2], TINY[4]
DIO = "dio.000500"  # another hero, whose configuration does not change


@pytest.fixture
def realm(realm_env: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """(defs, instance, ticker, config_dir): tiny and dio scored on bin under the protocol in force."""
    from realm_pipeline.definitions import build_defs

    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    defs = build_defs()
    with dg.DagsterInstance.get() as instance:
        ticker = Ticker(defs, instance)
        # the first evaluation asks for the protocol's first observation
        assert requested(ticker.tick()) == {EVAL_PROTOCOLS: {None}}
        observe(defs, instance)
        eval_sets = defs.resolve_job_def("eval_sets_job").execute_in_process(
            instance=instance, partition_key="bin"
        )
        assert eval_sets.success  # it declares the protocols of the new eval set's levels too
        with ledger.connect(ledger_path()) as con:
            rows = [(c, "tiny", int(c.split(".")[1])) for c in TINY] + [(DIO, "dio", 500)]
            ledger.upsert(
                con,
                "checkpoints",
                [
                    {"checkpoint_id": c, "hero": h, "step": s, "path": f"/x/{c}", "tokens": 1}
                    for c, h, s in rows
                ],
            )
            in_force = dict(
                con.execute(
                    "SELECT hero, protocol FROM protocols_in_force WHERE skill = 'bin' AND level = 1"
                ).fetchall()
            )
            ledger.upsert(
                con,
                "eval_scores",
                [
                    {**score(c, 1, 0.9, t=i, protocol=in_force[h]), "hero": h, "step": s}
                    for i, (c, h, s) in enumerate(rows)
                ],
            )
            ledger.upsert(
                con,
                "level_ups",
                [
                    {
                        "hero": "tiny",
                        "skill": "bin",
                        "level": 1,
                        "checkpoint_id": LEVEL_UP,
                        "step": 300,
                        "accuracy": 0.9,
                        "protocol": in_force["tiny"],
                        "earned_at": T0,
                    }
                ],
            )
            con.execute("INSERT INTO hero_state (hero, champion) VALUES ('tiny', ?)", [CHAMPION])
        # every checkpoint trained and evaluated (what finished runs leave in the event log)
        instance.add_dynamic_partitions("checkpoints", [c for c, _, _ in rows])
        for c, _, _ in rows:
            report(instance, CHECKPOINTS, c)
            report(instance, EVAL_SCORES, eval_key(c, "bin"))
        ticker.tick()  # the rollups
        assert EVAL_SCORES not in requested(ticker.tick())
        yield defs, instance, ticker, config_dir


def observe(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """Execute the observation of eval_protocols the staleness sensor asked for."""
    job = defs.resolve_implicit_job_def_def_for_assets([EVAL_PROTOCOLS])
    assert job.execute_in_process(instance=instance, asset_selection=[EVAL_PROTOCOLS]).success


def edit_hero(config_dir: Path, hero: str, **fields) -> None:
    """Rewrite a hero's YAML with `fields` replaced, as a person editing it would."""
    path = config_dir / "heroes" / f"{hero}.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(fields)
    path.write_text(yaml.safe_dump(data))


def test_a_protocol_change_rescores_exactly_the_level_up_champion_and_newest(realm) -> None:
    from realm_pipeline.evaluation.scores import stale_scores

    defs, instance, ticker, config_dir = realm
    assert requested(ticker.tick()) == {}  # the configuration unchanged: nothing to observe or re-score
    # tiny is to be scored by a served backend from now on: another protocol for tiny, not for dio
    edit_hero(
        config_dir,
        "tiny",
        eval={
            "backend": "openai",
            "base_url": "http://127.0.0.1:8000/v1",
            "load_endpoint": "/v1/load_lora_adapter",
        },
    )
    assert requested(ticker.tick()) == {EVAL_PROTOCOLS: {None}}  # noticed at the next tick, observed once
    observe(defs, instance)
    with ledger.connect(ledger_path(), read_only=True) as con:
        assert stale_scores(con) == [(c, "bin") for c in TINY]  # every old tiny score is stale ...
    # ... and automation re-scores only the ones that matter; the rest wait for a request
    assert requested(ticker.tick()) == {
        EVAL_SCORES: {eval_key(c, "bin") for c in (LEVEL_UP, CHAMPION, NEWEST)}
    }
    assert requested(ticker.tick()) == {}  # requested once


def test_an_unchanged_configuration_is_observed_once_and_rescores_nothing(realm) -> None:
    defs, instance, ticker, config_dir = realm
    # a YAML rewritten with the same values (formatting aside) names the same protocol
    edit_hero(config_dir, "tiny")
    assert requested(ticker.tick()) == {}
    # an observation asked for by a person records the same data version: nothing downstream moves
    observe(defs, instance)
    assert requested(ticker.tick()) == {}
    assert Settings(config_dir).heroes["tiny"].eval.backend == "local"
