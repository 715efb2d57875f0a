"""Tests for realm_pipeline.training.strain and realm_pipeline.training.retention."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from realm_pipeline.training.retention import (
    CheckpointInfo,
    RetentionError,
    RetentionPlan,
    apply_retention,
    plan_retention,
)
from realm_pipeline.training.strain import Hint, Zone, curriculum_hint, effort, strain, zone


def test_imports_are_light():
    code = (
        "import sys, realm_pipeline.training.strain, realm_pipeline.training.retention; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- strain -----------------------------------------------------------------------------------------------


def test_strain_is_excess_over_floor():
    assert strain(2.0, 2.0) == 0.0
    assert strain(3.0, 2.0) == pytest.approx(1.0)
    assert strain(1.8, 2.0) == pytest.approx(-0.2)
    assert strain(0.25, 0.0) == pytest.approx(0.25)
    for bad in [(1.0, -1.0), (-0.1, 1.0), (math.nan, 1.0), (1.0, math.inf)]:
        with pytest.raises(ValueError):
            strain(*bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-0.5, Zone.RECOVERY),
        (0.0, Zone.RECOVERY),
        (0.0999, Zone.RECOVERY),
        (0.1, Zone.PRODUCTIVE),
        (0.2999, Zone.PRODUCTIVE),
        (0.3, Zone.STRETCH),
        (0.4999, Zone.STRETCH),
        (0.5, Zone.OVERLOAD),
        (10.0, Zone.OVERLOAD),
    ],
)
def test_zone_boundaries(value, expected):
    assert zone(value) is expected


def test_zone_rejects_nan():
    with pytest.raises(ValueError):
        zone(math.nan)


def test_hint_level_up_when_low_and_stable():
    assert curriculum_hint([0.05, 0.05, 0.05, 0.05, 0.05]) is Hint.LEVEL_UP
    assert curriculum_hint([0.05]) is Hint.LEVEL_UP
    # Older, high strains outside the window do not matter.
    assert curriculum_hint([0.9, 0.9, 0.05, 0.05, 0.05, 0.05, 0.05]) is Hint.LEVEL_UP


def test_hint_low_but_still_falling_continues():
    # Mean 0.06 (recovery) but dropping 0.04/step: it is still learning, re-check later.
    assert curriculum_hint([0.14, 0.10, 0.06, 0.02, -0.02]) is Hint.CONTINUE


def test_hint_boundary_between_recovery_and_productive():
    assert curriculum_hint([0.0999] * 5) is Hint.LEVEL_UP
    assert curriculum_hint([0.1] * 5) is Hint.CONTINUE


def test_hint_continue_when_moderate_and_improving():
    assert curriculum_hint([0.35, 0.3, 0.25, 0.2, 0.15]) is Hint.CONTINUE
    assert curriculum_hint([0.2] * 5) is Hint.CONTINUE


def test_hint_back_off_when_high_and_not_improving():
    assert curriculum_hint([0.6, 0.6, 0.6, 0.6, 0.6]) is Hint.BACK_OFF
    assert curriculum_hint([0.5, 0.55, 0.6, 0.65, 0.7]) is Hint.BACK_OFF
    assert curriculum_hint([0.5] * 5) is Hint.BACK_OFF  # 0.5 is Overload (lower bound inclusive)
    assert curriculum_hint([0.4999] * 5) is Hint.CONTINUE
    # Overloaded but falling fast: give it time.
    assert curriculum_hint([0.9, 0.8, 0.7, 0.6, 0.5]) is Hint.CONTINUE


def test_hint_tolerance_boundary():
    # slope exactly at tolerance still counts as "not improving".
    assert curriculum_hint([0.64, 0.63, 0.62, 0.61, 0.60], tolerance=0.01 + 1e-12) is Hint.BACK_OFF
    assert curriculum_hint([0.64, 0.63, 0.62, 0.61, 0.60], tolerance=0.005) is Hint.CONTINUE


def test_hint_errors():
    with pytest.raises(ValueError):
        curriculum_hint([])
    with pytest.raises(ValueError):
        curriculum_hint([0.1], window=0)


def test_effort_sums_positive_strain():
    assert effort([]) == 0.0
    assert effort([0.2, -0.5, 0.3, 0.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        effort([0.1, math.nan])


# --- retention --------------------------------------------------------------------------------------------


def _ckpts():
    return [
        CheckpointInfo("a1", "alpha", 100, 0.50),
        CheckpointInfo("a2", "alpha", 200, 0.90),
        CheckpointInfo("a3", "alpha", 300, 0.60),
        CheckpointInfo("a4", "alpha", 400, None),
        CheckpointInfo("a5", "alpha", 500, 0.55),
        CheckpointInfo("b1", "beta", 100, 0.10),
        CheckpointInfo("b2", "beta", 200, None),
    ]


def test_plan_keeps_newest_best_referenced_champion():
    plan = plan_retention(_ckpts(), keep_newest=2, keep_best=1, referenced={"a1"}, champion="a3")
    # alpha: newest a5, a4; best a2; referenced a1; champion a3 -> nothing deleted in alpha.
    # beta: newest b2, b1.
    assert set(plan.keep) == {"a1", "a2", "a3", "a4", "a5", "b1", "b2"}
    assert plan.delete == []
    plan = plan_retention(_ckpts(), keep_newest=1, keep_best=1, referenced=set(), champion=None)
    assert set(plan.keep) == {"a5", "a2", "b2", "b1"}  # b1 is beta's only scored one, so its best
    assert set(plan.delete) == {"a1", "a3", "a4"}
    assert "newest" in plan.reasons["a5"] and "best" in plan.reasons["a2"]
    assert plan.reasons["a1"].startswith("delete")
    assert set(plan.reasons) == {c.checkpoint_id for c in _ckpts()}


def test_plan_never_deletes_champion_or_referenced():
    plan = plan_retention(_ckpts(), keep_newest=0, keep_best=0, referenced={"b1", "unknown"}, champion="a1")
    assert set(plan.keep) == {"a1", "b1"}
    assert "champion" in plan.reasons["a1"] and "referenced" in plan.reasons["b1"]
    assert "a1" not in plan.delete


def test_plan_none_scores_never_count_as_best():
    plan = plan_retention(
        [CheckpointInfo("x", "h", 1, None), CheckpointInfo("y", "h", 2, float("nan"))],
        keep_newest=0,
        keep_best=5,
        referenced=set(),
        champion=None,
    )
    assert plan.keep == [] and plan.delete == ["x", "y"]


def test_plan_rejects_duplicates_and_negative_counts():
    dup = [CheckpointInfo("x", "h", 1, None), CheckpointInfo("x", "g", 2, None)]
    with pytest.raises(ValueError, match="duplicate"):
        plan_retention(dup, keep_newest=1, keep_best=1, referenced=set(), champion=None)
    with pytest.raises(ValueError):
        plan_retention([], keep_newest=-1, keep_best=1, referenced=set(), champion=None)


def _make_dirs(root, ckpts):
    for c in ckpts:
        d = root / c.hero / c.checkpoint_id
        d.mkdir(parents=True)
        (d / "model.safetensors").write_text("w")


def test_apply_dry_run_then_real(tmp_path):
    ckpts = _ckpts()
    _make_dirs(tmp_path, ckpts)
    plan = plan_retention(ckpts, keep_newest=1, keep_best=1, referenced=set(), champion="a4")
    expected = sorted(tmp_path / "alpha" / cid for cid in ("a1", "a3"))
    would = apply_retention(plan, tmp_path, dry_run=True)
    assert sorted(would) == expected
    assert all(p.exists() for p in expected)  # dry run touched nothing
    deleted = apply_retention(plan, tmp_path, dry_run=False)
    assert sorted(deleted) == expected
    assert not any(p.exists() for p in expected)
    for cid in plan.keep:
        assert (tmp_path / plan.hero_of[cid] / cid).is_dir()
    # Re-applying is a no-op: already-deleted dirs are skipped.
    assert apply_retention(plan, tmp_path, dry_run=False) == []


def test_apply_refuses_paths_outside_root(tmp_path):
    root = tmp_path / "ckpts"
    outside = tmp_path / "precious"
    outside.mkdir()
    (root / "alpha").mkdir(parents=True)
    for cid, hero in [("..", "alpha"), ("../../precious", "alpha"), ("x", ".."), ("x", "../precious")]:
        plan = RetentionPlan(keep=[], delete=[cid], reasons={}, hero_of={cid: hero})
        with pytest.raises(RetentionError, match="refusing"):
            apply_retention(plan, root, dry_run=False)
    # A checkpoint dir that is a symlink out of root is refused, and nothing else in the plan goes first.
    (root / "alpha" / "keepme").mkdir()
    os.symlink(outside, root / "alpha" / "evil")
    plan = RetentionPlan(
        keep=[], delete=["keepme", "evil"], reasons={}, hero_of={"keepme": "alpha", "evil": "alpha"}
    )
    with pytest.raises(RetentionError, match="symlink"):
        apply_retention(plan, root, dry_run=False)
    assert outside.is_dir() and (root / "alpha" / "keepme").is_dir()


def test_apply_refuses_a_plan_deleting_the_champion(tmp_path):
    plan = RetentionPlan(keep=[], delete=["c"], reasons={}, hero_of={"c": "h"}, champion="c")
    (tmp_path / "h" / "c").mkdir(parents=True)
    with pytest.raises(RetentionError, match="champion"):
        apply_retention(plan, tmp_path, dry_run=False)
    assert (tmp_path / "h" / "c").is_dir()
