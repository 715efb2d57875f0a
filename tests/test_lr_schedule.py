"""The schedule across segments: restart, carry (the parent's optimizer state, really its own after load),
continuous (segment k goes on where segment k-1 stopped) and constant; the checkpoint's spec records it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

import torch  # noqa: E402
from tiny_hero import TINY, row_length, set_training_key  # noqa: E402

from realm_pipeline.settings import Settings  # noqa: E402
from realm_pipeline.training.plan import CheckpointKey, segment_spec  # noqa: E402
from realm_pipeline.training.trainer import (  # noqa: E402
    OPTIMIZER_DIR,
    OPTIMIZER_FILE,
    SegmentSpec,
    _load_carried,
    _load_start,
    _lr_lambda,
    _prepare,
    spec_from_json,
    spec_to_json,
    train_segment,
)

STEPS = 8  # per segment


def _spec(
    tmp_path: Path, name: str, schedule: str, *, k: int = 1, parent: Path | None = None, **kw
) -> SegmentSpec:
    """Segment k (1-based) of a tiny campaign of 3 segments of STEPS steps."""
    return SegmentSpec(
        output_dir=str(tmp_path / name),
        base={"tiny": TINY},
        parent_dir=str(parent) if parent else None,
        lr=3e-3,
        warmup_steps=3,
        batch_size=4,
        max_length=row_length(("bin", 1)),
        steps=STEPS,
        save_every=0,
        log_every=1,
        seed=k,
        mix=[("bin", 1, 1.0)],
        schedule=schedule,
        schedule_offset_steps=(k - 1) * STEPS,
        schedule_total_steps=3 * STEPS,
        **kw,
    )


def test_continuous_segment_k_goes_on_where_segment_k_minus_1_stopped(tmp_path: Path) -> None:
    whole = _lr_lambda(dataclasses.replace(_spec(tmp_path, "w", "continuous"), steps=3 * STEPS))
    curve = [whole(i) for i in range(3 * STEPS)]
    pieces = [_lr_lambda(_spec(tmp_path, f"s{k}", "continuous", k=k)) for k in (1, 2, 3)]
    joined = [f(i) for f in pieces for i in range(STEPS)]
    assert joined == pytest.approx(curve)  # three segments trace one campaign-long curve
    for k in (1, 2):
        # segment k+1's first LR is the next point after segment k's last: no new warm-up, no jump back up
        assert pieces[k - 1](STEPS - 1) == pytest.approx(whole(k * STEPS - 1))
        assert pieces[k](0) == pytest.approx(whole(k * STEPS))
        assert pieces[k](0) < pieces[k - 1](STEPS - 1)
    assert curve[-1] == pytest.approx(0.1, abs=0.02)  # min_lr_ratio reached at the end of the budget
    restart = [_lr_lambda(_spec(tmp_path, f"r{k}", "restart", k=k)) for k in (1, 2)]
    assert restart[1](0) == restart[0](0) == pytest.approx(1 / 3)  # every segment warms up again
    constant = _lr_lambda(_spec(tmp_path, "c", "constant", k=2))
    assert [constant(i) for i in range(STEPS)] == [1.0] * STEPS  # warmed up in segment 1
    with pytest.raises(ValueError, match="schedule must be one of"):
        _lr_lambda(_spec(tmp_path, "x", "cyclic"))


def _lrs(spec: SegmentSpec) -> tuple[list[float], object]:
    seen: list[float] = []
    result = train_segment(spec, on_progress=lambda p: seen.append(p["lr"]))
    return seen, result


def test_two_real_continuous_segments_report_one_lr_curve(tmp_path: Path) -> None:
    first, r1 = _lrs(_spec(tmp_path, "a", "continuous", k=1))
    second, r2 = _lrs(_spec(tmp_path, "b", "continuous", k=2, parent=tmp_path / "a"))
    whole = _lr_lambda(dataclasses.replace(_spec(tmp_path, "w", "continuous"), steps=3 * STEPS))
    # After step i the scheduler holds the LR of step i + 1: segment 2 goes on from segment 1's last.
    assert first + second == pytest.approx([3e-3 * whole(i) for i in range(1, 2 * STEPS + 1)])
    assert (r1.optimizer_carried, r2.optimizer_carried) == (False, True)


def test_carry_starts_from_the_parents_optimizer_state(tmp_path: Path) -> None:
    _, parent = _lrs(_spec(tmp_path, "p", "carry"))
    saved_path = tmp_path / "p" / OPTIMIZER_DIR / OPTIMIZER_FILE
    saved = torch.load(saved_path, weights_only=True)
    assert saved["state"] and all(int(s["step"]) == STEPS for s in saved["state"].values())

    # Loaded into the next segment's optimizer: the parent's moments, this segment's own hyperparameters.
    child = _spec(tmp_path, "c", "carry", k=2, parent=tmp_path / "p", weight_decay=0.01)
    model, _ = _load_start(child)
    _, opt = _prepare(model, child)
    assert _load_carried(child, opt)
    state = opt.state_dict()["state"]
    assert state.keys() == saved["state"].keys()
    for i, s in saved["state"].items():
        assert torch.equal(state[i]["exp_avg"], s["exp_avg"]) and torch.equal(
            state[i]["exp_avg_sq"], s["exp_avg_sq"]
        )
    _, own = _prepare(_load_start(child)[0], child)  # what this segment would have without the parent

    def hyper(o):
        return [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups]

    assert hyper(opt) == hyper(own) and any(g["weight_decay"] == 0.01 for g in opt.param_groups)

    # Trained end to end: the child's saved state counts the parent's steps and its own.
    _, result = _lrs(child)
    assert result.optimizer_carried
    after = torch.load(tmp_path / "c" / OPTIMIZER_DIR / OPTIMIZER_FILE, weights_only=True)
    assert all(int(s["step"]) == 2 * STEPS for s in after["state"].values())

    # restart saves no optimizer state and starts fresh even when the parent left one.
    _, fresh = _lrs(_spec(tmp_path, "r", "restart", k=2, parent=tmp_path / "p"))
    assert not fresh.optimizer_carried and not (tmp_path / "r" / OPTIMIZER_DIR).exists()


def test_carry_from_a_parent_without_state_starts_fresh_and_a_lora_carry_is_refused(tmp_path: Path) -> None:
    _lrs(_spec(tmp_path, "p", "restart"))
    _, child = _lrs(_spec(tmp_path, "c", "carry", k=2, parent=tmp_path / "p"))
    assert not child.optimizer_carried and (tmp_path / "c" / OPTIMIZER_DIR / OPTIMIZER_FILE).exists()
    with pytest.raises(ValueError, match="carries the optimizer state across segments"):
        train_segment(_spec(tmp_path, "l", "carry", method="lora"))


def test_the_checkpoints_spec_records_its_schedule(config_dir: Path, tmp_path: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    set_training_key(path, "schedule", "continuous")
    settings = Settings(config_dir)
    hero = settings.heroes["tiny"]
    steps = hero.campaign.segment_steps
    key = CheckpointKey("tiny", 3 * steps)  # the third segment
    spec = segment_spec(
        hero,
        settings.memory_profiles[hero.memory_profile],
        key,
        output_dir=tmp_path / "out",
        parent_dir=tmp_path / "parent",
        mix=[("bin", 1, 1.0)],
        quests=[],
        eval_items_per_level={"bin": 50},
    )
    recorded = json.loads(spec_to_json(spec))
    assert recorded["schedule"] == "continuous"
    assert recorded["schedule_offset_steps"] == 2 * steps
    assert recorded["schedule_total_steps"] == hero.campaign.segment_budget * steps
    assert spec_from_json(recorded) == spec
