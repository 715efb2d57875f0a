"""The hold-out cannot leak: training streams never yield a held-out prompt of any level, at the real size."""

from __future__ import annotations

import itertools

import pytest

from realm_pipeline.skills import get_skill
from realm_pipeline.skills.heldout import (
    eval_items,
    eval_size,
    reserve_items,
    shared_facts_share,
    training_items,
)

EVAL_ITEMS_PER_LEVEL = 300
SAMPLE = 50_000


def _all_heldout(skill, count: int) -> set[str]:
    # Rebuilt here from the item lists, not through heldout_prompts, so the test checks the stream's filter.
    prompts: set[str] = set()
    for level in range(1, skill.max_level + 1):
        prompts |= {i.prompt for i in eval_items(skill, level, count)}
        prompts |= {i.prompt for i in reserve_items(skill, level, count)}
    return prompts


@pytest.mark.parametrize("name", ["bin", "seq_reverse", "attn_count", "xfm_map"])
def test_training_sample_across_all_levels_holds_no_heldout_prompt(name: str) -> None:
    skill = get_skill(name)
    heldout = _all_heldout(skill, EVAL_ITEMS_PER_LEVEL)
    per_level = SAMPLE // skill.max_level + 1
    leaked, raw_hits = [], 0
    for level in range(1, skill.max_level + 1):
        stream = training_items(skill, level, seed=7, eval_count=EVAL_ITEMS_PER_LEVEL)
        for item in itertools.islice(stream, per_level):
            if item.prompt in heldout:
                leaked.append((level, item.prompt))
        # Without the filter the same seed does draw held-out prompts (small spaces): the filter is load-bearing.
        raw_hits += sum(skill.generate(level, 7, i).prompt in heldout for i in range(200))
    assert leaked == []
    if name == "bin":
        assert raw_hits > 0


def test_sy_v3_training_across_all_levels_holds_no_heldout_prompt() -> None:
    """The same leak check on SY v3 at its configured eval size (50), every level; and the stream's
    filter is load-bearing: fed the eval seed itself, it yields none of the held-out prompts."""
    from realm_pipeline.skills.heldout import EVAL_SEED, _stream, heldout_prompts

    skill, count = get_skill("sy"), 50
    heldout = _all_heldout(skill, count)
    assert heldout == heldout_prompts(skill, count)
    for level in range(1, skill.max_level + 1):
        stream = training_items(skill, level, seed=7, eval_count=count)
        assert not any(item.prompt in heldout for item in itertools.islice(stream, 40)), level
    level_3_eval = {i.prompt for i in eval_items(skill, 3, count)}
    from_eval_seed = list(itertools.islice(_stream(skill, 3, EVAL_SEED, 0, frozenset(heldout)), 20))
    assert not any(i.prompt in heldout for i in from_eval_seed)
    assert {skill.generate(3, EVAL_SEED, i).prompt for i in range(20)} <= level_3_eval  # what it skipped


def test_every_level_is_excluded_not_only_the_trained_one() -> None:
    # A conversion prompt carries no width: a level's eval prompt can recur at another level.
    skill = get_skill("bin")
    count = EVAL_ITEMS_PER_LEVEL
    other_levels = {
        p
        for level in range(1, skill.max_level + 1)
        if level != 9
        for p in (i.prompt for i in eval_items(skill, level, count))
    }
    stream = training_items(skill, 9, seed=3, eval_count=count)
    assert not any(item.prompt in other_levels for item in itertools.islice(stream, 3000))


def test_stream_excludes_the_real_eval_size_not_a_default() -> None:
    skill = get_skill("bin")
    big = {i.prompt for i in eval_items(skill, 2, EVAL_ITEMS_PER_LEVEL)}
    small = {i.prompt for i in eval_items(skill, 2, 20)}
    assert len(big) > len(small)  # the level's space holds more than 20 eval prompts
    stream = training_items(skill, 2, seed=5, eval_count=EVAL_ITEMS_PER_LEVEL)
    assert not any(item.prompt in big for item in itertools.islice(stream, 5000))


def test_eval_and_reserve_are_disjoint_and_within_the_space() -> None:
    for name in ("bin", "sy", "seq_reverse", "attn_count", "xfm_map"):
        skill = get_skill(name)
        for level in (1, 2, 3):
            ev = eval_items(skill, level, EVAL_ITEMS_PER_LEVEL)
            res = reserve_items(skill, level, EVAL_ITEMS_PER_LEVEL)
            assert len(ev) == eval_size(skill, level, EVAL_ITEMS_PER_LEVEL)
            assert not {i.prompt for i in ev} & {i.prompt for i in res}
            distinct = skill.distinct_prompts(level)
            if distinct is not None:
                assert len(ev) + len(res) <= distinct // 2


def test_shared_facts_share_is_measured_not_assumed() -> None:
    skill = get_skill("bin")
    items = eval_items(skill, 1, 50)
    share = shared_facts_share(skill, 1, items, 50)
    assert 0.0 <= share <= 1.0
    # Items drawn from the training stream itself share all their facts with training: the measure sees it.
    trained = list(itertools.islice(training_items(skill, 1, seed=1, eval_count=50), 30))
    assert shared_facts_share(skill, 1, trained, 50) == 1.0
