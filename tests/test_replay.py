"""Replay that protects each skill (pure mixes): per-skill review shares, regressed levels weighted up
within their skill, a level lost after maintenance trained as a target again, the skill strategies."""

from __future__ import annotations

import pytest
from tiny_hero import set_training_key

from realm_pipeline.evaluation.progression import (
    BOOST,
    LEVEL_UP_KEEP,
    MAINTENANCE_SHARE,
    EvalPoint,
    apply_progression,
    lost_levels,
    pooled_mix,
    training_mix,
)
from realm_pipeline.training.strain import Hint

RULES = {"threshold": 0.8, "evals_required": 3, "window": 6, "maintenance_max": 2.0}
DROP_STEP = 200  # the checkpoint whose evals hold the regressions


def hero(levels: dict[str, int], caps: dict[str, int], regressed: dict[str, list[int]] | None = None):
    """A state where each skill stands at `levels` (a level == its cap: complete), with every mastered
    level evaluated at the checkpoint of step 200: below the threshold if listed in `regressed`."""
    regressed = regressed or {}
    earned, evals = [], []
    for skill, level in levels.items():
        top = level if level == caps[skill] else level - 1
        earned += [(skill, lv, "tiny.000100", 100, 0.9) for lv in range(1, top + 1)]
        evals += [
            EvalPoint("tiny.000200", DROP_STEP, skill, lv, 0.5 if lv in regressed.get(skill, ()) else 0.95)
            for lv in range(1, top + 1)
        ]
    return apply_progression(evals, [], level_caps=caps, earned=earned, **RULES)


def weights(mix) -> dict[tuple[str, int], float]:
    return {(s, lv): w for s, lv, w in mix}


def review_of(mix, skill: str, mastered: tuple[int, ...]) -> float:
    """The weight a mix (a list, or its `weights` dict) gives to these levels of a skill."""
    table = mix if isinstance(mix, dict) else weights(mix)
    return sum(w for (s, lv), w in table.items() if s == skill and lv in mastered)


def test_a_regressed_skill_keeps_its_own_review_share_however_many_levels_another_skill_holds():
    # Issue 18's campaign near segment 30: bin learning L4 with L2 and L3 regressed, seq_reverse at its
    # cap with every level held. Pooled, bin's L2 got 0.5 * 3 / (1 + 3 + 3 + 7) = 0.107 (7.5 % with the
    # other skills' levels in the pool) while seq_reverse's seven levels took 0.5 * 7 / 14.
    caps = {"bin": 10, "seq_reverse": 7}
    state = hero({"bin": 4, "seq_reverse": 7}, caps, regressed={"bin": [2, 3]})
    mix = training_mix(state, ["bin", "seq_reverse"], mastered_share=0.2)
    w = weights(mix)
    assert sum(w.values()) == pytest.approx(1.0)
    bin_review = MAINTENANCE_SHARE * BOOST / (BOOST + 1)  # a skill needing maintenance: BOOST x the share
    assert review_of(mix, "bin", (1, 2, 3)) == pytest.approx(bin_review)
    assert w[("bin", 2)] == w[("bin", 3)] == pytest.approx(bin_review * BOOST / (1 + 2 * BOOST))
    assert w[("bin", 2)] > 0.5 * 3 / 14  # more than the pooled mix gave it
    assert review_of(mix, "seq_reverse", tuple(range(1, 8))) == pytest.approx(MAINTENANCE_SHARE / (BOOST + 1))
    assert w[("bin", 4)] == pytest.approx(1 - MAINTENANCE_SHARE)  # seq_reverse has nothing to learn

    # seq_reverse holding two levels or seven: bin's weights are the same (its share is its own).
    fewer = hero({"bin": 4, "seq_reverse": 3}, {"bin": 10, "seq_reverse": 3}, regressed={"bin": [2, 3]})
    fewer_w = weights(training_mix(fewer, ["bin", "seq_reverse"], mastered_share=0.2))
    assert {k: v for k, v in fewer_w.items() if k[0] == "bin"} == pytest.approx(
        {k: v for k, v in w.items() if k[0] == "bin"}
    )


def test_held_skills_share_the_review_equally_and_regressed_levels_are_weighted_up_within_their_skill():
    caps = {"bin": 10, "sy": 10}
    state = hero({"bin": 3, "sy": 6}, caps)  # nothing regressed: bin holds 2 levels, sy 5
    mix = training_mix(state, ["bin", "sy"], mastered_share=0.2)
    assert review_of(mix, "bin", (1, 2)) == pytest.approx(0.1) == review_of(mix, "sy", (1, 2, 3, 4, 5))
    assert weights(mix)[("bin", 3)] == weights(mix)[("sy", 6)] == pytest.approx(0.4)

    regressed = hero({"bin": 3, "sy": 6}, caps, regressed={"sy": [4]})
    w = weights(training_mix(regressed, ["bin", "sy"], mastered_share=0.2))
    assert w[("sy", 4)] == pytest.approx(BOOST * w[("sy", 1)])
    assert w[("bin", 1)] == w[("bin", 2)]  # bin's own levels are not touched by sy's regression
    assert review_of(w, "sy", (1, 2, 3, 4, 5)) == pytest.approx(BOOST * review_of(w, "bin", (1, 2)))


def test_a_single_skill_mix_is_what_it_was():
    state = hero({"bin": 4}, {"bin": 10}, regressed={"bin": [2]})
    w = weights(training_mix(state, ["bin"], mastered_share=0.2))
    assert w == pytest.approx({("bin", 4): 0.5, ("bin", 1): 0.1, ("bin", 2): 0.3, ("bin", 3): 0.1})


def _trained(steps: list[int], level: tuple[str, int], amount: float = 0.3):
    return [(step, {level: amount, ("bin", 4): 0.5}) for step in steps]


def test_a_level_still_regressed_after_maintenance_is_lost_and_trained_as_a_target_again():
    state = hero({"bin": 4}, {"bin": 10}, regressed={"bin": [2]})
    after = 3
    # Segments before the drop, and segments that did not train L2, are not maintenance of it.
    assert (
        lost_levels(state, _trained([100, 200], ("bin", 2)) + _trained([300, 400], ("bin", 2)), after=after)
        == {}
    )
    untrained = _trained([300, 400, 500], ("bin", 2), amount=0.0)
    assert lost_levels(state, untrained, after=after) == {}
    lost = lost_levels(state, _trained([300, 400, 500], ("bin", 2)), after=after)
    assert lost == {"bin": (2,)}
    assert lost_levels(state, _trained([300, 400, 500], ("bin", 3)), after=after) == {}  # L3 is held

    w = weights(training_mix(state, ["bin"], mastered_share=0.2, lost=lost))
    # L2 is trained as a current level: it shares bin's learning weight with L4, not the review group's.
    assert w[("bin", 2)] == w[("bin", 4)] == pytest.approx((1 - 0.2) / 2)
    assert w[("bin", 1)] == w[("bin", 3)] == pytest.approx(0.1)
    assert state.skills["bin"].level == 4 and 2 in state.skills["bin"].mastered  # the earned level stays


def test_a_complete_skill_relearns_its_lost_level_whatever_the_strategy():
    caps = {"bin": 10, "sy": 3}
    state = hero({"bin": 2, "sy": 3}, caps, regressed={"sy": [2]})
    for strategy in ("equal", "focus", "lowest_first"):
        w = weights(
            training_mix(state, ["bin", "sy"], mastered_share=0.2, strategy=strategy, lost={"sy": (2,)})
        )
        assert w[("sy", 2)] == w[("bin", 2)] == pytest.approx(0.4), strategy
        assert ("sy", 3) not in w or w[("sy", 3)] < w[("sy", 2)]


@pytest.mark.parametrize(
    ("strategy", "options", "learning"),
    [
        ("equal", {}, {("bin", 4): 0.4, ("sy", 1): 0.4}),
        ("weighted", {"weights": {"bin": 3.0}}, {("bin", 4): 0.6, ("sy", 1): 0.2}),
        ("focus", {}, {("bin", 4): 0.8}),  # the campaign's order
        ("focus", {"priority": ["sy"]}, {("sy", 1): 0.8}),
        ("lowest_first", {}, {("sy", 1): 0.8}),
        ("catch_up", {"catch_up_gap": 3}, {("sy", 1): 0.8}),  # 3 levels behind: it catches up
        ("catch_up", {"catch_up_gap": 4}, {("bin", 4): 0.4, ("sy", 1): 0.4}),  # not far enough: equal
    ],
)
def test_each_skill_strategy_shares_the_learning_weight_and_never_the_review(strategy, options, learning):
    state = hero({"bin": 4, "sy": 1}, {"bin": 10, "sy": 10})
    mix = training_mix(state, ["bin", "sy"], mastered_share=0.2, strategy=strategy, **options)
    w = weights(mix)
    assert {k: v for k, v in w.items() if k in {("bin", 4), ("sy", 1)}} == pytest.approx(learning)
    assert review_of(mix, "bin", (1, 2, 3)) == pytest.approx(0.2)  # bin's review share under every strategy
    assert sum(w.values()) == pytest.approx(1.0)


def test_focus_moves_on_when_its_skill_is_complete_and_the_hint_still_previews():
    state = hero({"bin": 3, "sy": 2}, {"bin": 3, "sy": 10})
    w = weights(
        training_mix(state, ["bin", "sy"], mastered_share=0.2, strategy="focus", priority=["bin", "sy"])
    )
    assert w[("sy", 2)] == pytest.approx(0.8)
    up = weights(training_mix(state, ["bin", "sy"], mastered_share=0.2, strategy="focus", hint=Hint.LEVEL_UP))
    assert up[("sy", 3)] == pytest.approx(up[("sy", 2)] / 3)  # NEXT_LEVEL_SHARE of the current level


def test_an_unknown_strategy_is_refused():
    state = hero({"bin": 2}, {"bin": 10})
    with pytest.raises(ValueError, match="skill strategy must be one of"):
        training_mix(state, ["bin"], mastered_share=0.2, strategy="round_robin")


def test_the_next_mix_reads_the_trained_levels_from_the_ledger_and_the_schedule_from_the_hero(
    tmp_path, config_dir
) -> None:
    """Real DuckDB ledger and hero YAML: three recorded segments trained bin L2 after its drop, so the
    next mix trains it as a target; the hero's skill schedule reaches the mix."""
    import json

    from realm_pipeline import ledger
    from realm_pipeline.campaign import next_mix, trained_levels
    from realm_pipeline.settings import Settings

    path = config_dir / "heroes" / "tiny.yaml"
    path.write_text(path.read_text().replace("  skills: [bin]", "  skills: [bin, sy]"))
    budget = next(line for line in path.read_text().splitlines() if "segment_budget:" in line)
    path.write_text(
        path.read_text().replace(budget, f"{budget}\n  skill_schedule: {{strategy: focus, priority: [sy]}}")
    )
    # whatever tiny ships: the lost level's mix first, then a preview of one level
    set_training_key(path, "mastered_share", 0.2)
    set_training_key(path, "preview_share", 0)
    set_training_key(path, "preview_levels", 1)
    settings = Settings(config_dir)
    state = hero({"bin": 4, "sy": 1}, {"bin": 10, "sy": 10}, regressed={"bin": [2]})
    mixes = [
        [["bin", 4, 0.5], ["bin", 2, 0.3]],
        [["bin", 4, 0.5], ["bin", 2, 0.3]],
        [["bin", 2, 0.1], ["bin", 2, 0.2]],
    ]
    rows = [
        {
            "checkpoint_id": f"tiny.{step:06d}",
            "hero": "tiny",
            "step": step,
            "spec_json": json.dumps({"mix": mix}),
        }
        for step, mix in zip((300, 450, 600), mixes, strict=True)
    ]
    with ledger.connect(tmp_path / "realm.duckdb") as con:
        ledger.migrate(con)
        ledger.upsert(con, "checkpoints", rows)
        assert trained_levels(con, "tiny")[2] == (600, {("bin", 2): pytest.approx(0.3)})  # summed per level
        w = weights(next_mix(con, settings, "tiny", state, None))
        # bin L2 lost: a target beside sy L1 (focus on sy leaves bin's L4 out); bin L1/L3 its review.
        assert w[("bin", 2)] == w[("sy", 1)] == pytest.approx(0.4)
        assert ("bin", 4) not in w and review_of(w, "bin", (1, 3)) == pytest.approx(0.2)
        # The hero's preview reaches the mix: half of sy L1's learning weight trains sy L2.
        set_training_key(path, "preview_share", 0.5)
        ahead = weights(next_mix(con, Settings(config_dir), "tiny", state, None))
        assert ahead[("sy", 1)] == ahead[("sy", 2)] == pytest.approx(0.2) and ahead[
            ("bin", 2)
        ] == pytest.approx(0.4)
        # One segment fewer after the drop: still maintenance, not lost.
        two = weights(next_mix(con, settings, "tiny", state, None, before_step=600))
        assert two[("sy", 1)] == pytest.approx(1 - MAINTENANCE_SHARE) and ("bin", 2) in two
        assert two[("bin", 2)] == pytest.approx(MAINTENANCE_SHARE * BOOST / (BOOST + 2))


def test_a_hero_can_turn_the_strain_hint_off(tmp_path, config_dir) -> None:
    """`training.strain_hint: false` (hero YAML): the level_up hint no longer halves the replay, so the
    mix is the configured one; left on, the same hint does halve it."""
    from realm_pipeline import ledger
    from realm_pipeline.campaign import next_mix
    from realm_pipeline.settings import Settings

    path = config_dir / "heroes" / "tiny.yaml"
    set_training_key(path, "preview_share", 0)
    set_training_key(path, "mastered_share", 0.4)
    set_training_key(path, "strain_hint", "true")
    state = hero({"bin": 3}, {"bin": 10})
    with ledger.connect(tmp_path / "realm.duckdb") as con:
        ledger.migrate(con)
        followed = weights(next_mix(con, Settings(config_dir), "tiny", state, "level_up"))
        set_training_key(path, "strain_hint", "false")
        ignored = weights(next_mix(con, Settings(config_dir), "tiny", state, "level_up"))
        plain = weights(next_mix(con, Settings(config_dir), "tiny", state, None))
    assert review_of(followed, "bin", (1, 2)) == pytest.approx(0.4 * LEVEL_UP_KEEP)
    assert ignored == plain and review_of(ignored, "bin", (1, 2)) == pytest.approx(0.4)
    assert ignored[("bin", 3)] == pytest.approx(0.6) and ("bin", 4) not in ignored


def test_a_uniform_curriculum_trains_the_same_mix_every_segment_and_evaluates_every_level_it_trains(
    tmp_path, config_dir
) -> None:
    """The no-curriculum baseline (`curriculum: uniform`): whatever the evals say, every segment trains
    levels 1..uniform_levels of every skill (within its cap) equally, and each is evaluated; a hero YAML
    asking for it without the top level, or the top level without it, is refused naming the field."""
    from realm_pipeline import ledger
    from realm_pipeline.campaign import levels_to_evaluate, next_mix
    from realm_pipeline.settings import ConfigError, Settings

    path = config_dir / "heroes" / "tiny.yaml"
    original = path.read_text()
    budget = next(line for line in original.splitlines() if "segment_budget:" in line)
    path.write_text(
        original.replace("  skills: [bin]", "  skills: [bin, attn_count]").replace(
            budget, f"{budget}\n  curriculum: uniform\n  uniform_levels: 3"
        )
    )
    settings = Settings(config_dir)
    for state in (
        hero({"bin": 1, "attn_count": 1}, {"bin": 30, "attn_count": 10}),
        hero({"bin": 4, "attn_count": 2}, {"bin": 30, "attn_count": 10}, regressed={"bin": [2]}),
    ):
        with ledger.connect(tmp_path / "realm.duckdb") as con:
            ledger.migrate(con)
            w = weights(next_mix(con, settings, "tiny", state, "level_up"))
        assert w == {(s, lv): pytest.approx(1 / 6) for s in ("bin", "attn_count") for lv in (1, 2, 3)}
        assert levels_to_evaluate(state, "bin", 30, trained_up_to=3)[:3] == [1, 2, 3]
    # within a skill's cap, and the curriculum's own levels still evaluated beside them
    state = hero({"bin": 6}, {"bin": 30})
    assert levels_to_evaluate(state, "bin", 30, trained_up_to=3) == [1, 2, 3, 4, 5, 6, 7]
    assert levels_to_evaluate(hero({"bin": 2}, {"bin": 2}), "bin", 2, trained_up_to=5) == [1, 2]
    # a skill the state does not hold yet (its first checkpoint): level 1 and the next, and the uniform set
    assert levels_to_evaluate(state, "attn_count", 10) == [1, 2]
    assert levels_to_evaluate(state, "attn_count", 10, trained_up_to=4) == [1, 2, 3, 4]
    assert levels_to_evaluate(state, "attn_count", 1, trained_up_to=4) == [1]
    for extra, field in (
        ("  curriculum: uniform", "uniform_levels"),
        ("  uniform_levels: 3", "uniform_levels"),
    ):
        path.write_text(original.replace(budget, f"{budget}\n{extra}"))
        with pytest.raises(ConfigError, match=field) as err:
            Settings(config_dir).heroes  # noqa: B018
        assert "tiny.yaml" in str(err.value)
    # and the pooled baseline reaches next_mix from the hero YAML, with the hero's review share
    path.write_text(
        original.replace("  skills: [bin]", "  skills: [bin, attn_count]").replace(
            budget, f"{budget}\n  curriculum: pooled"
        )
    )
    set_training_key(path, "mastered_share", 0.3)
    state = hero({"bin": 4, "attn_count": 2}, {"bin": 30, "attn_count": 10}, regressed={"bin": [2]})
    with ledger.connect(tmp_path / "realm.duckdb") as con:
        got = next_mix(con, Settings(config_dir), "tiny", state, None)
    assert got == pooled_mix(state, ["bin", "attn_count"], mastered_share=0.3)


def test_the_pooled_baseline_is_the_replay_before_per_skill_shares():
    """`curriculum: pooled` (arm a of bench/campaign.py): one review share over every skill's mastered
    levels, so seq_reverse's seven held levels outweigh bin's two regressed ones, and a lost level is
    never a target again; the per-skill mix gives bin's regressed levels more."""
    caps = {"bin": 10, "seq_reverse": 7}
    state = hero({"bin": 4, "seq_reverse": 7}, caps, regressed={"bin": [2, 3]})
    pooled = weights(pooled_mix(state, ["bin", "seq_reverse"], mastered_share=0.2))
    assert sum(pooled.values()) == pytest.approx(1.0)
    pool = 1 + 2 * BOOST + 7  # bin L1, bin L2 and L3 boosted, seq_reverse L1-7
    assert pooled[("bin", 2)] == pooled[("bin", 3)] == pytest.approx(MAINTENANCE_SHARE * BOOST / pool)
    assert review_of(pooled, "seq_reverse", tuple(range(1, 8))) == pytest.approx(MAINTENANCE_SHARE * 7 / pool)
    assert pooled[("bin", 4)] == pytest.approx(1 - MAINTENANCE_SHARE)
    per_skill = weights(training_mix(state, ["bin", "seq_reverse"], mastered_share=0.2))
    assert per_skill[("bin", 2)] > pooled[("bin", 2)]
    assert review_of(per_skill, "seq_reverse", tuple(range(1, 8))) < review_of(
        pooled, "seq_reverse", tuple(range(1, 8))
    )


def test_a_preview_trains_the_levels_above_the_current_one_from_its_learning_weight():
    # bin learning L3 with L1-2 held, cap 10: 0.8 learns, of it half stays on L3 and half previews L4-5.
    state = hero({"bin": 3}, {"bin": 10})
    w = weights(training_mix(state, ["bin"], mastered_share=0.2, preview_share=0.5, preview_levels=2))
    assert w == pytest.approx(
        {("bin", 3): 0.4, ("bin", 4): 0.2, ("bin", 5): 0.2, ("bin", 1): 0.1, ("bin", 2): 0.1}
    )
    # one level under the cap: the whole preview goes to the one level left; at the cap, none
    near = weights(
        training_mix(hero({"bin": 9}, {"bin": 10}), ["bin"], mastered_share=0.2, preview_share=0.5)
    )
    assert near[("bin", 9)] == near[("bin", 10)] == pytest.approx(0.4)
    at_cap = weights(
        training_mix(
            hero({"bin": 10, "sy": 1}, {"bin": 10, "sy": 2}),
            ["bin", "sy"],
            mastered_share=0.2,
            preview_share=0.5,
        )
    )
    assert max(lv for s, lv in at_cap if s == "bin") == 10 and at_cap[("sy", 1)] == at_cap[("sy", 2)]
    # the level_up hint's next-level share wins only where it is the larger
    hinted = weights(training_mix(state, ["bin"], mastered_share=0.2, hint=Hint.LEVEL_UP, preview_share=0.1))
    assert set(hinted) == {("bin", 1), ("bin", 2), ("bin", 3), ("bin", 4)}
    assert hinted[("bin", 4)] == pytest.approx(hinted[("bin", 3)] / 3)  # NEXT_LEVEL_SHARE = 0.25
    with pytest.raises(ValueError, match="preview_share"):
        training_mix(state, ["bin"], mastered_share=0.2, preview_share=1.0)


def test_a_lost_level_relearned_previews_nothing_and_the_evals_cover_the_preview():
    from realm_pipeline.campaign import levels_to_evaluate

    state = hero({"bin": 4}, {"bin": 10}, regressed={"bin": [2]})
    w = weights(training_mix(state, ["bin"], mastered_share=0.2, lost={"bin": (2,)}, preview_share=0.5))
    # L2 is a target again at its full share; only the current level L4 gives half of its share to L5
    assert w[("bin", 2)] == pytest.approx(0.4) and ("bin", 3) in w
    assert w[("bin", 4)] == w[("bin", 5)] == pytest.approx(0.2)
    assert levels_to_evaluate(state, "bin", 10) == [1, 2, 3, 4, 5]
    assert levels_to_evaluate(state, "bin", 10, ahead=3) == [1, 2, 3, 4, 5, 6, 7]
    assert levels_to_evaluate(state, "bin", 6, ahead=3) == [1, 2, 3, 4, 5, 6]
