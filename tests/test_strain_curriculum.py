"""Strain steers the curriculum: measured per-level floors, effort, plastic gain, the trend hint and the mix."""

from __future__ import annotations

import pytest

from realm_pipeline.evaluation.progression import (
    BACK_OFF_SHIFT,
    LEVEL_UP_KEEP,
    NEXT_LEVEL_SHARE,
    EvalPoint,
    apply_progression,
    training_mix,
)
from realm_pipeline.training.strain import (
    DEFAULT_FLOOR,
    MIN_TREND_SAMPLES,
    Hint,
    LevelLoss,
    floor_for,
    strain_report,
)

RULES = {"threshold": 0.8, "evals_required": 3, "window": 6, "maintenance_max": 2.0}


def _report(losses: dict[tuple[int, int], float], ups: list[tuple[int, int]], cap: int = 10):
    """strain_report for one skill 'bin': losses[(step, level)], ups = [(mastered level, step)]."""
    return strain_report(
        [LevelLoss(step, "bin", lv, loss) for (step, lv), loss in losses.items()],
        [("bin", lv, step) for lv, step in ups],
        {"bin": cap},
    )


def test_floor_is_measured_at_mastery_not_zero() -> None:
    # L1 learned over steps 100-400 (mastered at 400); L2 measured as the next level from step 100.
    losses = {(100, 1): 0.9, (200, 1): 0.5, (300, 1): 0.2, (400, 1): 0.08}
    losses |= {(100, 2): 1.5, (200, 2): 1.4, (300, 2): 1.2, (400, 2): 1.0, (500, 2): 0.7, (600, 2): 0.6}
    r = _report(losses, [(1, 400)])
    assert r.mastery_losses == {("bin", 1): 0.08}
    assert floor_for(r, "bin", 1) == 0.08  # its own mastery loss
    assert floor_for(r, "bin", 2) == 0.08  # the skill's latest comfort zone until L2 is mastered
    assert floor_for(r, "bin", 5) == 0.08 and floor_for(r, "sy", 1) == DEFAULT_FLOOR
    by_level = {e.level: e for e in r.levels}
    one, two = by_level[1], by_level[2]
    # L1 was learned before any mastery: its strain was against DEFAULT_FLOOR (causal, never rewritten).
    assert one.segments == 4 and one.floor_measured
    assert one.effort == pytest.approx(sum(x - DEFAULT_FLOOR for x in (0.9, 0.5, 0.2, 0.08)))
    assert one.plastic_gain == pytest.approx(0.9 - 0.08)
    assert one.efficiency == pytest.approx(one.plastic_gain / one.effort)
    # L2 is learned from step 500 on, against L1's measured floor; its loss before is from step 100.
    assert two.segments == 2 and two.effort == pytest.approx((0.7 - 0.08) + (0.6 - 0.08))
    assert two.loss_before == 1.5 and two.plastic_gain is None and two.efficiency is None
    assert r.skill_strains["bin"] == pytest.approx([0.62, 0.52])


def test_no_hint_with_too_few_segments_then_the_trend_decides() -> None:
    assert MIN_TREND_SAMPLES == 3
    few = _report({(100, 1): 0.9, (200, 1): 0.9}, [])
    assert few.hint is None and few.skill_hints == {"bin": None} and "2/3" in few.hint_reason
    overloaded = _report({(s, 1): 0.9 for s in (100, 200, 300)}, [])
    assert overloaded.hint is Hint.BACK_OFF
    easing = _report({(100, 1): 0.9, (200, 1): 0.6, (300, 1): 0.3}, [])  # overloaded but falling fast
    assert easing.hint is Hint.CONTINUE
    comfortable = _report({(s, 1): DEFAULT_FLOOR + 0.02 for s in (100, 200, 300)}, [])
    assert comfortable.hint is Hint.LEVEL_UP
    # A level-up starts the count again: the new level has no trend yet.
    moved_on = _report({(100, 1): 0.9, (200, 1): 0.9, (300, 1): 0.9, (400, 2): 0.9}, [(1, 300)])
    assert moved_on.hint is None and moved_on.skill_strains["bin"] == pytest.approx([0.9 - 0.9])


def test_two_skills_back_off_wins_and_undecided_skills_are_named() -> None:
    losses = [LevelLoss(s, "bin", 1, 0.9) for s in (100, 200, 300)] + [LevelLoss(300, "sy", 1, 0.01)]
    r = strain_report(losses, [], {"bin": 5, "sy": 5})
    assert r.hint is Hint.BACK_OFF and r.skill_hints["sy"] is None and "sy 1/3" in r.hint_reason


def _state_with_mastered_levels():
    evals = [EvalPoint(f"tiny.{i * 100:06d}", i * 100, "bin", 1, 0.9) for i in (1, 2, 3)]
    evals += [EvalPoint(f"tiny.{i * 100:06d}", i * 100, "bin", 2, 0.9) for i in (4, 5, 6)]
    return apply_progression(evals, [], level_caps={"bin": 10}, **RULES)


def _mastered_weight(mix, learning: int) -> float:
    return sum(w for _, lv, w in mix if lv < learning)


def test_the_mix_follows_the_hint() -> None:
    state = _state_with_mastered_levels()
    assert state.skills["bin"].level == 3 and state.skills["bin"].mastered == (1, 2)
    plain = training_mix(state, ["bin"], mastered_share=0.2)
    assert training_mix(state, ["bin"], mastered_share=0.2, hint=None) == plain
    assert training_mix(state, ["bin"], mastered_share=0.2, hint=Hint.CONTINUE) == plain
    assert _mastered_weight(plain, 3) == pytest.approx(0.2)

    # Overload: weight moves toward the mastered levels; regressed-level weighting inside is unchanged.
    back = training_mix(state, ["bin"], mastered_share=0.2, hint="back_off")
    assert _mastered_weight(back, 3) == pytest.approx(0.2 + BACK_OFF_SHIFT * 0.8)
    assert _mastered_weight(back, 3) > _mastered_weight(plain, 3)
    assert {lv for _, lv, _ in back} == {1, 2, 3}

    # Recovery: less to the mastered levels, and the next level gets a share of the learning weight.
    up = dict(
        ((s, lv), w) for s, lv, w in training_mix(state, ["bin"], mastered_share=0.2, hint=Hint.LEVEL_UP)
    )
    assert _mastered_weight([(s, lv, w) for (s, lv), w in up.items()], 3) == pytest.approx(
        0.2 * LEVEL_UP_KEEP
    )
    learning_weight = 1 - 0.2 * LEVEL_UP_KEEP
    assert up[("bin", 4)] == pytest.approx(learning_weight * NEXT_LEVEL_SHARE)
    assert up[("bin", 3)] == pytest.approx(learning_weight * (1 - NEXT_LEVEL_SHARE))
    assert sum(up.values()) == pytest.approx(1.0)
    assert up[("bin", 3)] + up[("bin", 4)] > dict(((s, lv), w) for s, lv, w in plain)[("bin", 3)]


def test_level_up_hint_never_previews_past_the_cap() -> None:
    evals = [EvalPoint(f"tiny.{i * 100:06d}", i * 100, "bin", 1, 0.9) for i in (1, 2, 3)]
    state = apply_progression(evals, [], level_caps={"bin": 2}, **RULES)
    mix = training_mix(state, ["bin"], mastered_share=0.2, hint=Hint.LEVEL_UP)
    assert max(lv for _, lv, _ in mix) == 2


def test_mirror_shows_effort_and_efficiency_per_level(tmp_path) -> None:
    import json

    jsonschema = pytest.importorskip("jsonschema")
    from realm_pipeline import ledger
    from realm_pipeline.mirror.export import build_mirror, schema

    losses = {(100, 1): 0.9, (200, 1): 0.4, (300, 1): 0.1, (100, 2): 1.6, (200, 2): 1.5, (300, 2): 1.4}
    losses |= {(400, 2): 0.8, (500, 2): 0.5}
    with ledger.connect(tmp_path / "realm.duckdb") as con:
        ledger.migrate(con)
        ledger.upsert(
            con,
            "level_losses",
            [
                {
                    "checkpoint_id": f"tiny.{st:06d}",
                    "hero": "tiny",
                    "step": st,
                    "skill": "bin",
                    "level": lv,
                    "heldout_loss": loss,
                }
                for (st, lv), loss in losses.items()
            ],
        )
        ledger.upsert(
            con,
            "curriculum_events",
            [
                {
                    "hero": "tiny",
                    "skill": "bin",
                    "level": 2,
                    "event": "level_up",
                    "checkpoint_id": "tiny.000300",
                    "step": 300,
                    "accuracy": 0.9,
                }
            ],
        )
        heroes = json.loads(build_mirror(con)["heroes.json"])
    jsonschema.Draft202012Validator(schema("heroes")).validate(heroes)
    (skill,) = heroes["heroes"][0]["skills"]
    by_level = {e["level"]: e for e in skill["effort"]}
    expected_effort = sum(x - DEFAULT_FLOOR for x in (0.9, 0.4, 0.1))
    assert by_level[1]["effort"] == pytest.approx(expected_effort, abs=1e-4)
    assert by_level[1]["plastic_gain"] == pytest.approx(0.8)
    assert by_level[1]["efficiency"] == pytest.approx(0.8 / expected_effort, abs=1e-3)
    assert by_level[1]["floor"] == pytest.approx(0.1)  # L1's own measured floor, not 0
    assert by_level[2]["segments"] == 2 and by_level[2]["efficiency"] is None  # still being learned
    assert by_level[2]["effort"] == pytest.approx((0.8 - 0.1) + (0.5 - 0.1), abs=1e-4)
