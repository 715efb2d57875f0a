"""Config validation: the shipped configs load; each kind of bad file names file, line, field, value."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_hero import set_training_key

from realm_pipeline.settings import ConfigError, Settings


def test_shipped_configs_load() -> None:
    settings = Settings()
    settings.validate_all()
    assert settings.realm.progression.level_up_accuracy == 0.80
    assert settings.realm.progression.evals_required == 3
    assert settings.realm.regression.tau == 0.05
    assert settings.realm.leaderboard.vote_minimum == 5
    assert set(settings.heroes) == {"tiny", "demo", "dio", "flo", "ojas", "sim_cap3", "sim_nocap"}
    assert {"bin", "sy", "seq_reverse", "attn_count", "xfm_map"} <= set(settings.skills)
    assert {"24gb_qlora", "24gb_full_small", "24gb_galore", "cpu_tiny"} <= set(settings.memory_profiles)
    tiny = settings.heroes["tiny"]
    assert tiny.base.kind == "config" and tiny.memory_profile == "cpu_tiny"
    assert settings.heroes["ojas"].base.model_id == "Qwen/Qwen3-8B"


def _error(config_dir: Path) -> str:
    with pytest.raises(ConfigError) as info:
        Settings(config_dir).validate_all()
    return str(info.value)


def test_yaml_syntax_error_names_file_and_line(config_dir: Path) -> None:
    path = config_dir / "realm.yaml"
    lines = path.read_text().splitlines()
    lines[3] = "  evals_required: [3"  # unclosed flow sequence
    path.write_text("\n".join(lines) + "\n")
    msg = _error(config_dir)
    assert str(path) in msg and "YAML syntax error" in msg
    assert "line " in msg


def test_missing_field(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    path.write_text(path.read_text().replace("  lr: 0.003\n", ""))
    msg = _error(config_dir)
    assert str(path) in msg and "field 'training.lr'" in msg and "<missing>" in msg and "line 17" in msg


def test_wrong_type(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    path.write_text(path.read_text().replace("batch_size: 8", "batch_size: lots"))
    msg = _error(config_dir)
    assert "field 'training.batch_size'" in msg and "'lots'" in msg and "line 19" in msg


def test_value_out_of_range(config_dir: Path) -> None:
    path = config_dir / "realm.yaml"
    path.write_text(path.read_text().replace("level_up_accuracy: 0.80", "level_up_accuracy: 1.5"))
    msg = _error(config_dir)
    assert str(path) in msg and "field 'progression.level_up_accuracy'" in msg and "1.5" in msg
    assert "line 3" in msg


def test_unknown_key_refused(config_dir: Path) -> None:
    path = config_dir / "memory_profiles" / "cpu_tiny.yaml"
    text = path.read_text()
    path.write_text(text + "turbo: true\n")
    msg = _error(config_dir)
    assert "field 'turbo'" in msg and "True" in msg and f"line {len(text.splitlines()) + 1}" in msg


def test_nested_tiny_config_value(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    path.write_text(path.read_text().replace("num_hidden_layers: 3", "num_hidden_layers: [3]"))
    msg = _error(config_dir)
    assert "field 'base.config.num_hidden_layers'" in msg and "line 9" in msg


def test_unknown_skill_referenced_by_hero(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    path.write_text(path.read_text().replace("skills: [bin]", "skills: [bin, chess]"))
    msg = _error(config_dir)
    line = 1 + path.read_text().splitlines().index("  skills: [bin, chess]")
    assert (
        str(path) in msg and "field 'campaign.skills.1'" in msg and "'chess'" in msg and f"line {line}" in msg
    )


def test_unknown_profile_referenced_by_hero(config_dir: Path) -> None:
    path = config_dir / "heroes" / "dio.yaml"
    path.write_text(path.read_text().replace("memory_profile: 24gb_full_small", "memory_profile: 48gb_dream"))
    msg = _error(config_dir)
    assert "field 'memory_profile'" in msg and "'48gb_dream'" in msg and "line 8" in msg


def test_skill_file_naming_unknown_generator(config_dir: Path) -> None:
    (config_dir / "skills" / "chess.yaml").write_text("name: chess\ndisplay_name: Chess\nlevel_cap: 3\n")
    msg = _error(config_dir)
    assert "chess.yaml" in msg and "no such skill generator" in msg


def test_level_cap_above_generator_max(config_dir: Path) -> None:
    path = config_dir / "skills" / "bin.yaml"
    path.write_text(path.read_text().replace("level_cap: 30", "level_cap: 99"))
    msg = _error(config_dir)
    assert "field 'level_cap'" in msg and "99" in msg and "line 3" in msg


def test_empty_file(config_dir: Path) -> None:
    (config_dir / "realm.yaml").write_text("")
    assert "expected a mapping" in _error(config_dir)


def test_schools_validated(config_dir: Path) -> None:
    from realm_pipeline.settings import Settings

    assert Settings(config_dir).heroes["tiny"].schools[0] == "scribe"
    path = config_dir / "heroes" / "tiny.yaml"
    text = path.read_text()
    line = 1 + text.splitlines().index("schools: [scribe]")
    path.write_text(text.replace("schools: [scribe]", "schools: [scribe, mirorr]"))
    msg = _error(config_dir)
    assert str(path) in msg and f"line {line}" in msg and "field 'schools.1'" in msg and "'mirorr'" in msg
    path.write_text(text.replace("schools: [scribe]", "schools: [mirror, oracle]"))
    msg = _error(config_dir)
    assert "field 'schools'" in msg and "'scribe' is required" in msg
    path.write_text(text.replace("schools: [scribe]", "schools: [scribe, oracle, oracle]"))
    assert "named twice" in _error(config_dir)


def test_surprise_weighted_points_to_the_oracle(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    set_training_key(path, "surprise_weighted", "true")
    msg = _error(config_dir)
    assert "field 'training.surprise_weighted'" in msg and "value True" in msg and "oracle" in msg
