"""A cap call you can revisit (issue 37 item 4): the first call is a fact in the ledger (`cap_calls`),
`campaign.past_cap` (or `realm campaign --past-cap N`) trains N segments past it instead of stopping,
and the hero sheet and the mirror say whether it held (no level of the skill earned after it)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from realm_pipeline.campaign import (
    TRAIN_JOB,
    HeroFacts,
    decide_next,
    review_cap_calls,
)
from tests.test_verdicts import HELD, Story, _ledger_from, bin_l2_drops, ck


def _call(skill: str = "bin", step: int = 1500, cap_level: int = 2) -> dict:
    """A `cap_calls` row as the curriculum asset writes it."""
    return {
        "hero": "tiny",
        "skill": skill,
        "checkpoint_id": ck(step // 100),
        "step": step,
        "segment": step // 100,
        "cap_level": cap_level,
        "reason": "learning L3 cost what it mastered",
        "forgotten_json": json.dumps([{"level": 2}]),
        "called_at": None,
    }


# ---------------------------------------------------------------- judging a call (pure)


def test_a_call_holds_until_a_level_of_its_skill_is_earned_after_it() -> None:
    steps = range(100, 2100, 100)
    ups = [("bin", 1, ck(3), 300), ("bin", 2, ck(6), 600), ("sy", 1, ck(17), 1700)]
    (held,) = review_cap_calls([_call()], ups, steps)
    # levels earned before the call and another skill's level after it do not refute it
    assert held.held and held.refuted_by is None
    assert (held.checkpoint_id, held.segment, held.cap_level) == (ck(15), 15, 2)
    assert held.segments_since == 5  # segments 16..20
    assert held.forgotten == ({"level": 2},)
    assert held.summary() == (
        "bin capped at L2 by tiny.001500 (segment 15): held, 5 segment(s) trained since"
    )
    assert held.to_json()["status"] == "held" and held.to_json()["refuted_by"] is None

    (refuted,) = review_cap_calls(
        [_call()], [*ups, ("bin", 3, ck(19), 1900), ("bin", 4, ck(20), 2000)], steps
    )
    assert not refuted.held
    assert refuted.refuted_by == (3, ck(19), 1900)  # the first level earned after the call
    assert refuted.to_json()["refuted_by"] == {"level": 3, "checkpoint_id": ck(19), "step": 1900}
    assert "refuted, L3 earned after it at tiny.001900" in refuted.summary()

    # a level earned at the call's own checkpoint came before the call (the call saw it)
    (same,) = review_cap_calls([_call()], [("bin", 3, ck(15), 1500)], steps)
    assert same.held


# ---------------------------------------------------------------- the decision (pure)

CALLED = HeroFacts(
    hero="tiny",
    skills=("bin",),
    checkpoints=(ck(15),),
    next_checkpoint=ck(16),
    paused=False,
    segment_budget=40,
    maxed_out_reason="every skill with levels left is capped",
    eval_sets_done=frozenset({"bin"}),
    evaluated=frozenset({(ck(15), "bin")}),
    last_eval_at=100.0,
    last_rollup_at=200.0,
    segments_past_call=0,
)


@pytest.mark.parametrize(
    ("past_cap", "since", "trains", "stop"),
    [
        (0, 0, False, "maxed out: every skill with levels left is capped"),  # as before: stops at the call
        (2, 0, True, None),
        (2, 1, True, None),
        (
            2,
            2,
            False,
            "maxed out: every skill with levels left is capped; 2 segment(s) trained past the call",
        ),
        (2, None, False, "maxed out: every skill"),  # no call to revisit (every skill complete)
    ],
)
def test_past_cap_trains_that_many_segments_after_the_call(past_cap, since, trains, stop) -> None:
    decision = decide_next(replace(CALLED, past_cap=past_cap, segments_past_call=since))
    assert any(s.job == TRAIN_JOB for s in decision.steps) is trains, decision.status
    assert (decision.stop or "").startswith(stop or "") and (decision.stop is None) is (stop is None)


def test_the_segment_budget_still_ends_a_campaign_past_its_call() -> None:
    facts = replace(CALLED, past_cap=5, segments_past_call=1, segment_budget=1)
    assert decide_next(facts).stop == "at its segment budget (1 segments)"


# ---------------------------------------------------------------- the ledger, the rollup, the mirror


def _rollup() -> dict:
    """Run the rollup in the real Dagster instance; the curriculum asset's newest metadata."""
    import dagster as dg

    from realm_pipeline.definitions import build_defs

    with dg.DagsterInstance.get() as instance:
        result = build_defs().resolve_job_def("rollup_job").execute_in_process(instance=instance)
        assert result.success
        record = instance.fetch_materializations(dg.AssetKey("curriculum"), limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _decision(db: Path, settings, story: Story):
    """decide_next on the ledger's facts, every step before training done (eval sets, evals, rollup)."""
    from realm_pipeline import ledger
    from realm_pipeline.campaign import hero_facts

    with ledger.connect(db, read_only=True) as con:
        facts = hero_facts(
            con,
            settings,
            "tiny",
            eval_sets_done=["bin"],
            evaluated=[(ck(i), "bin") for i in range(1, story.n + 1)],
            last_eval_at=1.0,
            last_rollup_at=2.0,
        )
    return decide_next(facts)


def test_the_first_call_is_recorded_and_judged_by_what_came_after(
    realm_env: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-written history on a real ledger and Dagster instance: the rollup records the call once; a
    hero with `campaign.past_cap: 2` trains two segments past it and stops; the sheet and the mirror say
    held, then refuted once a level is earned after it."""
    from realm_pipeline import ledger
    from realm_pipeline.mirror.export import _heroes, schema
    from realm_pipeline.settings import Settings

    for other in config_dir.glob("heroes/*.yaml"):  # only the subject: the others' checks take minutes
        if other.stem != "tiny":
            other.unlink()
    hero_yaml = config_dir / "heroes" / "tiny.yaml"
    data = yaml.safe_load(hero_yaml.read_text())
    data["campaign"]["past_cap"] = 2
    hero_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    settings = Settings(config_dir)
    shipped = Settings(config_dir)  # past_cap 0, the default: the campaign stops at the call
    cfg = shipped.heroes["tiny"]
    shipped.heroes["tiny"] = cfg.model_copy(
        update={"campaign": cfg.campaign.model_copy(update={"past_cap": 0})}
    )
    db = realm_env / "realm.duckdb"

    story = bin_l2_drops([0.6] * 12)  # L2 lost while learning L3: capped at L2 at its newest segment
    called = story.n
    with ledger.connect(db) as con:
        ledger.migrate(con)
        _ledger_from(story, con)
    meta = _rollup()
    assert meta["tiny/bin/verdict"] == "capped" and meta["tiny/maxed_out"] is True
    assert meta["tiny/bin/cap_call"] == "held" and meta["tiny/bin/segments_past_call"] == 0
    with ledger.connect(db, read_only=True) as con:
        rows = con.execute("SELECT skill, checkpoint_id, step, segment, cap_level FROM cap_calls").fetchall()
        forgotten = json.loads(con.execute("SELECT forgotten_json FROM cap_calls").fetchone()[0])
    assert rows == [("bin", ck(called), called * 100, called, 2)]
    assert [f["level"] for f in forgotten] == [2] and all(f["counts"] for f in forgotten)

    assert _decision(db, shipped, story).stop.startswith("maxed out:")
    decision = _decision(db, settings, story)
    assert decision.stop is None and [s.job for s in decision.steps] == [TRAIN_JOB]

    # two segments past the call, nothing earned: the call stands as recorded, held
    story.seg({"bin@3": 1000, "bin@2": 3000}, {"bin@1": HELD, "bin@2": 0.6, "bin@3": 0.3}, n=2)
    with ledger.connect(db) as con:
        _ledger_from(story, con)
    meta = _rollup()
    assert meta["tiny/bin/cap_call"] == "held" and meta["tiny/bin/segments_past_call"] == 2
    decision = _decision(db, settings, story)
    assert decision.stop == (
        f"maxed out: {meta['tiny/maxed_out_reason']}; 2 segment(s) trained past the call"
    )

    # then L3 is earned after all: the call is refuted, and no second call is recorded while it learns
    story.seg({"bin@3": 3000, "bin@2": 1000}, {"bin@1": HELD, "bin@2": HELD, "bin@3": 0.9}, n=3)
    with ledger.connect(db) as con:
        _ledger_from(story, con)
    meta = _rollup()
    assert meta["tiny/bin/cap_call"] == "refuted" and meta["tiny/bin/segments_past_call"] == 5
    assert meta["tiny/bin/verdict"] != "capped"
    with ledger.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM cap_calls").fetchone()[0] == 1
        stored = json.loads(con.execute("SELECT cap_calls_json FROM hero_state").fetchone()[0])
        heroes = _heroes(con, "2026-01-01T00:00:00+00:00")
    assert stored == meta["tiny/cap_calls"]
    (mirrored,) = next(h for h in heroes["heroes"] if h["hero"] == "tiny")["cap_calls"]
    assert mirrored["status"] == "refuted" and mirrored["segment"] == called
    assert mirrored["refuted_by"] == {"level": 3, "checkpoint_id": ck(called + 5), "step": (called + 5) * 100}
    import jsonschema

    jsonschema.Draft202012Validator(schema("heroes")).validate(heroes)


# ---------------------------------------------------------------- `realm campaign --past-cap` end to end


@pytest.mark.slow  # about 16 simulated segments through Dagster: minutes on a loaded 2-core box
@pytest.mark.timeout(2700)
def test_realm_campaign_stops_at_the_call_and_past_cap_trains_on_past_it(
    realm_env: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A simulated hero that caps within ~15 segments: `realm campaign` stops at the call as before; then
    `--past-cap 2` trains exactly two more segments and the sheet, hero_state and heroes.json say held."""
    from click.testing import CliRunner

    from realm_pipeline import ledger
    from realm_pipeline.cli import main

    for other in config_dir.glob("heroes/*.yaml"):  # realm.yaml's active hero stays (it never trains here)
        if other.stem not in ("sim_cap3", "tiny"):
            other.unlink()
    data = yaml.safe_load((config_dir / "heroes" / "sim_cap3.yaml").read_text())
    # learns fast and holds two levels at most (simulation.oracle): a call comes early and stands
    data["base"].update(base_tokens=2000, capacity=4.5)
    data["campaign"]["segment_budget"] = 60
    (config_dir / "heroes" / "sim_cap3.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    db = realm_env / "realm.duckdb"

    def segments_and_calls() -> tuple[int, list[tuple]]:
        with ledger.connect(db, read_only=True) as con:
            n = con.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
            calls = con.execute("SELECT skill, segment, cap_level FROM cap_calls").fetchall()
        return n, calls

    runner = CliRunner()
    first = runner.invoke(main, ["campaign", "--hero", "sim_cap3", "--segments", "40"])
    assert first.exit_code == 0, first.output
    n, calls = segments_and_calls()
    assert "stopped: maxed out:" in first.output and "trained past the call" not in first.output
    assert len(calls) == 1 and calls[0][1] == n < 40  # stopped at the checkpoint that called it
    called = n

    again = runner.invoke(main, ["campaign", "--hero", "sim_cap3", "--segments", "40", "--past-cap", "2"])
    assert again.exit_code == 0, again.output
    n, calls = segments_and_calls()
    assert n == called + 2 and len(calls) == 1, again.output
    assert "2 segment(s) trained past the call" in again.output
    assert f"(segment {called}): held, 2 segment(s) trained since" in again.output
    heroes = json.loads((realm_env / "mirror" / "heroes.json").read_text())
    (mirrored,) = next(h for h in heroes["heroes"] if h["hero"] == "sim_cap3")["cap_calls"]
    assert (mirrored["segment"], mirrored["segments_since"], mirrored["status"]) == (called, 2, "held")
