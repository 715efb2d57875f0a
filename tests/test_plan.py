"""From hero config to segment spec and subprocess command (pure)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from realm_pipeline.settings import Settings
from realm_pipeline.training.plan import (
    SEGMENT_MODULE,
    CheckpointKey,
    next_key,
    segment_command,
    segment_spec,
)


def test_checkpoint_keys_parse_sort_and_seed() -> None:
    key = CheckpointKey.parse("tiny.000150")
    assert (key.hero, key.step, str(key)) == ("tiny", 150, "tiny.000150")
    seed = key.stream_seed(1234)
    assert seed >= 1 and seed == CheckpointKey("tiny", 150).stream_seed(1234)
    assert seed != CheckpointKey("tiny", 300).stream_seed(1234) and seed != key.stream_seed(99)
    assert sorted(["tiny.001050", "tiny.000300"]) == ["tiny.000300", "tiny.001050"]
    with pytest.raises(ValueError, match="not '<hero>.<step>'"):
        CheckpointKey.parse("tiny-150")
    hero = Settings().heroes["tiny"]
    assert str(next_key(hero, None)) == "tiny.000150" and str(next_key(hero, 150)) == "tiny.000300"


def _spec(tmp_path: Path, hero_name: str, profile_name: str, seed: int | None = None):
    settings = Settings()
    hero, profile = settings.heroes[hero_name], settings.memory_profiles[profile_name]
    if seed is not None:
        hero = hero.model_copy(update={"seed": seed})
    key = CheckpointKey(hero_name, hero.campaign.segment_steps)
    spec = segment_spec(
        hero,
        profile,
        key,
        output_dir=tmp_path / "out",
        parent_dir=None,
        mix=[("bin", 1, 1.0)],
        quests=[],
        eval_items_per_level={"bin": 50},
    )
    return settings, profile, spec


def test_spec_follows_hero_then_profile(tmp_path: Path) -> None:
    _, _, spec = _spec(tmp_path, "tiny", "cpu_tiny")
    tiny = Settings().heroes["tiny"]
    assert spec.base == {"tiny": {**tiny.base.config, "seed": tiny.seed}}
    assert (spec.method, spec.optimizer, spec.device, spec.batch_size) == ("full", "adamw", "cpu", 8)
    assert spec.heldout == [("bin", 1, 24)] and spec.seed == CheckpointKey("tiny", 150).stream_seed(tiny.seed)
    _, _, dio = _spec(tmp_path, "dio", "24gb_full_small")
    assert dio.base == "Qwen/Qwen3-0.6B" and dio.device == "cuda" and dio.gradient_checkpointing


def test_single_device_command_is_plain_python(tmp_path: Path) -> None:
    settings, profile, spec = _spec(tmp_path, "tiny", "cpu_tiny")
    cmd = segment_command(spec, profile, config_dir=settings.config_dir, work_dir=tmp_path / "w")
    assert cmd == [sys.executable, "-m", SEGMENT_MODULE]


def test_deepspeed_profile_launches_through_the_deepspeed_launcher(tmp_path: Path) -> None:
    settings, profile, spec = _spec(tmp_path, "dio", "multi_gpu_zero3")
    cmd = segment_command(spec, profile, config_dir=settings.config_dir, work_dir=tmp_path / "w")
    assert Path(cmd[0]).name == "deepspeed" and cmd[1:3] == ["--num_gpus", "2"]
    assert cmd[cmd.index("--module") + 1] == SEGMENT_MODULE
    ds = json.loads(Path(cmd[cmd.index("--deepspeed_config") + 1]).read_text())
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["train_micro_batch_size_per_gpu"] == spec.batch_size and ds["bf16"]["enabled"] is True
    written = json.loads(Path(cmd[cmd.index("--spec") + 1]).read_text())
    assert written["base"] == "Qwen/Qwen3-0.6B" and written["steps"] == spec.steps


def test_deepspeed_json_comes_from_the_users_config_dir(config_dir: Path, tmp_path: Path) -> None:
    stage_file = config_dir / "deepspeed" / "zero3_offload.json"
    stage = json.loads(stage_file.read_text())
    stage["steps_per_print"] = 4321  # a value the shipped file does not hold
    stage_file.write_text(json.dumps(stage))
    settings = Settings(config_dir)
    hero, profile = settings.heroes["dio"], settings.memory_profiles["multi_gpu_zero3"]
    spec = segment_spec(
        hero,
        profile,
        CheckpointKey("dio", hero.campaign.segment_steps),
        output_dir=tmp_path / "out",
        parent_dir=None,
        mix=[("bin", 1, 1.0)],
        quests=[],
        eval_items_per_level={"bin": 50},
    )
    cmd = segment_command(spec, profile, config_dir=settings.config_dir, work_dir=tmp_path / "w")
    assert json.loads(Path(cmd[cmd.index("--deepspeed_config") + 1]).read_text())["steps_per_print"] == 4321


def test_the_heros_seed_draws_both_its_initial_weights_and_its_streams(tmp_path: Path) -> None:
    """Two heroes that differ only in `seed` are two samples: their weights and data both differ."""
    specs = [_spec(tmp_path, "tiny", "cpu_tiny", seed=seed)[2] for seed in (1234, 99)]
    assert [s.base["tiny"]["seed"] for s in specs] == [1234, 99]
    assert specs[0].seed != specs[1].seed
