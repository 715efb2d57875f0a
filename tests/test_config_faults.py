"""Config files a user gets wrong: each is refused in one line naming file, line and field; none is changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_hero import set_training_key

from realm_pipeline.cli import main
from realm_pipeline.settings import MAX_EVAL_ITEMS_PER_LEVEL, ConfigError, Settings
from realm_pipeline.skills import SKILLS
from realm_pipeline.skills.heldout import eval_size, largest_eval_count, training_items

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _refused(config_dir: Path, path: Path) -> str:
    """Validate the directory; the error's message, with the refused file checked to be untouched."""
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(ConfigError) as info:
        Settings(config_dir).validate_all()
    if before is not None:
        assert path.read_bytes() == before  # refused input is kept as it was, for inspection
    return str(info.value)


def test_a_key_given_twice_is_refused_with_both_lines(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    path.write_text(path.read_text() + "seed: 7\n")  # tiny.yaml already sets seed
    msg = _refused(config_dir, path)
    assert str(path) in msg and "duplicate key 'seed'" in msg
    first = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("seed:"))
    assert f"first on line {first}" in msg and f"line {len(path.read_text().splitlines())}," in msg


@pytest.mark.timeout(60)  # without the bound, validating the expanded document never finishes
def test_an_alias_bomb_is_refused_not_expanded(config_dir: Path) -> None:
    path = config_dir / "realm.yaml"
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path.write_text(path.read_text() + "junk:\n" + "".join(f"  {line}\n" for line in bomb))
    msg = _refused(config_dir, path)
    assert str(path) in msg and "anchors and aliases expand to more than" in msg


def test_a_file_that_is_not_utf8_is_named_with_its_line(config_dir: Path) -> None:
    path = config_dir / "skills" / "bin.yaml"
    path.write_bytes(path.read_bytes() + b"# caf\xe9 latin-1\n")
    msg = _refused(config_dir, path)
    lines = path.read_bytes().count(b"\n")
    assert str(path) in msg and "not UTF-8" in msg and f"line {lines}:" in msg and "0xe9" in msg


@pytest.mark.parametrize(
    ("relative", "old", "new", "field"),
    [
        ("realm.yaml", "maintenance_multiplier_max: 2.0", "maintenance_multiplier_max: .inf", "maintenance"),
        ("memory_profiles/24gb_qlora.yaml", "vram_gb: 24", "vram_gb: .inf", "vram_gb"),
        ("memory_profiles/24gb_qlora.yaml", "vram_gb: 24", "vram_gb: .nan", "vram_gb"),
    ],
)
def test_infinities_and_nan_are_refused(
    config_dir: Path, relative: str, old: str, new: str, field: str
) -> None:
    path = config_dir / relative
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    msg = _refused(config_dir, path)
    assert str(path) in msg and "field '" in msg and field in msg and "finite" in msg


def test_a_skill_named_twice_is_refused(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    text = path.read_text()
    skills_line = next(line for line in text.splitlines() if line.strip().startswith("skills:"))
    path.write_text(text.replace(skills_line, "  skills: [bin, bin]"))
    msg = _refused(config_dir, path)
    assert str(path) in msg and "field 'campaign.skills'" in msg and "more than once: bin" in msg


def test_an_eval_set_a_level_cannot_hold_is_refused_with_the_limit(config_dir: Path) -> None:
    # the smallest level of any shipped skill, computed from the generator: valid whatever its version
    name, level, room = min(
        (
            (n, lvl, eval_size(SKILLS[n], lvl, MAX_EVAL_ITEMS_PER_LEVEL))
            for n in SKILLS
            for lvl in range(1, 11)
        ),
        key=lambda t: t[2],
    )
    assert room < MAX_EVAL_ITEMS_PER_LEVEL, "no shipped level is small enough to test the refusal"
    path = config_dir / "skills" / f"{name}.yaml"
    text = path.read_text()
    assert "eval_items_per_level" in text
    path.write_text(
        "\n".join(
            f"eval_items_per_level: {room + 1}" if line.startswith("eval_items_per_level") else line
            for line in text.splitlines()
        )
        + "\n"
    )
    msg = _refused(config_dir, path)
    assert str(path) in msg and f"value {room + 1}" in msg
    first_short = next(lvl for lvl in range(1, 11) if eval_size(SKILLS[name], lvl, room + 1) < room + 1)
    assert f"level {first_short} has room for" in msg and "use at most" in msg


def _largest_eval_set(name: str, level_cap: int) -> int | None:
    rooms = [largest_eval_count(SKILLS[name], lvl) for lvl in range(1, level_cap + 1)]
    return min((r for r in rooms if r is not None), default=None)


# the shipped skills whose finite prompt space an allowed eval_items_per_level can exceed
FINITE = [
    name
    for name in sorted(SKILLS)
    if (room := _largest_eval_set(name, Settings(CONFIGS).skills[name].level_cap)) is not None
    and room < MAX_EVAL_ITEMS_PER_LEVEL
]


@pytest.mark.parametrize("name", FINITE)
def test_an_eval_set_larger_than_a_finite_prompt_space_is_refused_with_the_largest_that_fits(
    config_dir: Path, name: str
) -> None:
    """Before: BIN (whose distinct_prompts is None) took 900, and eval_sets then failed at run time: 900
    eval + 737 reserve prompts left BIN L1's training stream none of its 1,637."""
    path = config_dir / "skills" / f"{name}.yaml"
    largest = _largest_eval_set(name, Settings(config_dir).skills[name].level_cap)
    text = path.read_text()
    path.write_text(text.replace("eval_items_per_level: 50", f"eval_items_per_level: {largest + 1}"))
    msg = _refused(config_dir, path)
    assert str(path) in msg and f"value {largest + 1}" in msg and f"use at most {largest}" in msg
    path.write_text(text.replace("eval_items_per_level: 50", f"eval_items_per_level: {largest}"))
    Settings(config_dir).validate_all()  # the largest that fits loads


def test_bins_largest_eval_set_leaves_its_first_level_a_training_stream() -> None:
    """The limit the config check says is real: at 491 BIN L1 still trains on hundreds of prompts."""
    largest = largest_eval_count(SKILLS["bin"], 1)
    stream = training_items(SKILLS["bin"], 1, seed=1, eval_count=largest)
    assert len({next(stream).prompt for _ in range(2000)}) > 300


def test_an_eval_set_too_costly_to_build_is_refused(config_dir: Path) -> None:
    path = config_dir / "skills" / "bin.yaml"
    path.write_text(
        "\n".join(
            "eval_items_per_level: 10000" if line.startswith("eval_items_per_level") else line
            for line in path.read_text().splitlines()
        )
        + "\n"
    )
    msg = _refused(config_dir, path)
    assert "field 'eval_items_per_level'" in msg and "10000" in msg and str(MAX_EVAL_ITEMS_PER_LEVEL) in msg


def test_a_nul_byte_is_named_with_its_line(config_dir: Path) -> None:
    """Before: PyYAML's reader refused the character while the loader was built, outside the handler,
    and `realm doctor` printed a ReaderError traceback."""
    path = config_dir / "skills" / "bin.yaml"
    path.write_bytes(path.read_bytes() + b"# a NUL \x00 pasted in\n")
    msg = _refused(config_dir, path)
    lines = path.read_bytes().count(b"\n")
    assert msg == (
        f"{path}: line {lines}: character U+0000 is not allowed in YAML (a NUL or other control "
        "character); remove it"
    )
    out = CliRunner().invoke(main, ["doctor"], env={"REALM_CONFIG_DIR": str(config_dir)})
    assert out.exit_code == 1 and out.output == f"Error: {msg}\n", out.output


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["campaign", "--hero", "tiny", "--segments", "1"],
        ["train", "tiny"],
        ["retry", "tiny"],
        ["pause", "tiny"],
        ["resume", "tiny"],
    ],
    ids=lambda args: args[0],
)
def test_a_config_error_is_one_line_in_every_command(
    config_dir: Path, tmp_path: Path, args: list[str]
) -> None:
    """Before: only init and doctor caught it; every other command ended in a ConfigError traceback."""
    path = config_dir / "heroes" / "big.yml"
    path.write_text((config_dir / "heroes" / "tiny.yaml").read_text().replace("name: tiny", "name: big"))
    env = {
        "REALM_CONFIG_DIR": str(config_dir),
        "REALM_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "home" / "dagster"),
    }
    out = CliRunner().invoke(main, args, env=env)
    assert out.exit_code == 1 and (out.exception is None or isinstance(out.exception, SystemExit)), out
    assert out.output == f"Error: {path}: realm reads only *.yaml files; rename it to big.yaml\n", out.output


def test_a_yml_file_is_named_not_ignored(config_dir: Path) -> None:
    src = config_dir / "heroes" / "tiny.yaml"
    path = config_dir / "heroes" / "big.yml"
    path.write_text(src.read_text().replace("name: tiny", "name: big"))
    msg = _refused(config_dir, path)
    assert str(path) in msg and "rename it to big.yaml" in msg


def test_a_broken_deepspeed_config_is_refused_at_doctor(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config_dir / "deepspeed" / "zero2.json"
    path.write_text(path.read_text().rstrip().rstrip("}") + ",\n")  # truncated: no closing brace
    msg = _refused(config_dir, path)
    assert str(path) in msg and "JSON error" in msg and "line " in msg
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(path) in result.output and "JSON error" in result.output


def test_a_deepspeed_config_without_a_stage_is_refused(config_dir: Path) -> None:
    path = config_dir / "deepspeed" / "zero3_offload.json"
    path.write_text("[1, 2]\n")
    msg = _refused(config_dir, path)
    assert str(path) in msg and "zero_optimization" in msg


def test_a_deepspeed_profile_asked_to_train_in_process_is_refused(config_dir: Path) -> None:
    """DeepSpeed starts its ranks through its own launcher: `launch: in_process` cannot run it."""
    path = config_dir / "memory_profiles" / "multi_gpu_zero3.yaml"
    path.write_text(path.read_text() + "launch: in_process\n")
    msg = _refused(config_dir, path)
    assert (
        str(path) in msg and "field 'launch'" in msg and "'in_process'" in msg and "use 'subprocess'" in msg
    )


SECRET = "sk-proj-Zx81QmT4uVw0RkL2sN9aB7cD3eF5gH6j"


@pytest.mark.parametrize("field", ["api_key", "openai_token"])
def test_a_pasted_api_key_is_never_echoed(config_dir: Path, field: str) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    path.write_text(path.read_text() + f"eval:\n  backend: local\n  {field}: {SECRET}\n")
    msg = _refused(config_dir, path)
    assert f"field 'eval.{field}'" in msg and "<redacted>" in msg
    assert SECRET not in msg and SECRET[:12] not in msg


def test_a_key_shaped_value_under_an_innocent_field_is_redacted(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    path.write_text(path.read_text().replace("memory_profile: cpu_tiny", f"memory_profile: [{SECRET}]"))
    msg = _refused(config_dir, path)
    assert "field 'memory_profile'" in msg and SECRET not in msg


def test_the_shipped_configs_still_load_through_the_strict_loader() -> None:
    settings = Settings()
    settings.validate_all()
    assert set(settings.deepspeed_configs) == {"zero2", "zero3_offload"}


def test_a_key_pasted_into_api_key_env_is_redacted_but_a_variable_name_is_shown(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    original = path.read_text()
    path.write_text(
        original + f"eval:\n  backend: openai\n  base_url: http://127.0.0.1:1/v1\n  api_key_env: {SECRET}\n"
    )
    msg = _refused(config_dir, path)
    assert "field 'eval.api_key_env'" in msg and SECRET not in msg
    path.write_text(
        original + "eval:\n  backend: openai\n  base_url: http://127.0.0.1:1/v1\n  api_key_env: MY-KEY\n"
    )
    assert "value 'MY-KEY'" in _refused(config_dir, path)


def _with_campaign_lines(path: Path, *lines: str) -> None:
    """Add lines to the hero's `campaign:` block (after its segment_budget)."""
    text = path.read_text()
    budget = next(line for line in text.splitlines() if line.strip().startswith("segment_budget:"))
    path.write_text(text.replace(budget, "\n".join([budget, *lines])))


@pytest.mark.parametrize(
    ("lines", "field", "value", "says"),
    [
        (
            ["  skill_schedule:", "    strategy: round_robin"],
            "campaign.skill_schedule.strategy",
            "round_robin",
            "equal",
        ),
        (
            ["  skill_schedule:", "    strategy: weighted", "    weights: {sy: 2.0}"],
            "campaign.skill_schedule.weights.sy",
            "sy",
            "not one of the campaign's skills (bin)",
        ),
        (
            ["  skill_schedule:", "    strategy: weighted", "    weights: {bin: -1}"],
            "campaign.skill_schedule.weights",
            "{'bin': -1}",
            "must be in (0, 1000]",
        ),
        (
            ["  skill_schedule:", "    weights: {bin: 2}"],
            "campaign.skill_schedule",
            "{'weights': {'bin': 2}}",
            "used by strategy 'weighted' only (strategy is 'equal')",
        ),
        (
            ["  skill_schedule:", "    strategy: focus", "    priority: [bin, xfm_map]"],
            "campaign.skill_schedule.priority.1",
            "xfm_map",
            "not one of the campaign's skills",
        ),
    ],
)
def test_a_bad_skill_schedule_is_refused_naming_field_and_value(
    config_dir: Path, lines: list[str], field: str, value: str, says: str
) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    _with_campaign_lines(path, *lines)
    msg = _refused(config_dir, path)
    assert len(msg.splitlines()) == 1, msg
    assert str(path) in msg and f"field '{field}'" in msg and value in msg and says in msg, msg


@pytest.mark.parametrize(
    ("schedule", "method", "says"),
    [
        ("warm_restart", None, "'restart'"),  # not a schedule: the literal's choices are named
        ("carry", "lora", "method 'lora' trains new adapters every segment"),
        ("continuous", "qlora", "method 'qlora' trains new adapters every segment"),
    ],
)
def test_a_schedule_that_cannot_run_is_refused(
    config_dir: Path, schedule: str, method: str | None, says: str
) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    set_training_key(path, "schedule", schedule)
    if method:
        path.write_text(path.read_text().replace("method: full", f"method: {method}"))
    msg = _refused(config_dir, path)
    assert len(msg.splitlines()) == 1, msg
    assert (
        str(path) in msg and "field 'training.schedule'" in msg and repr(schedule) in msg and says in msg
    ), msg


def test_every_schedule_and_strategy_loads(config_dir: Path) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    original = path.read_text()
    for schedule in ("restart", "carry", "continuous", "constant"):
        for lines in (
            ["  skill_schedule:", "    strategy: weighted", "    weights: {bin: 2}"],
            ["  skill_schedule:", "    strategy: focus", "    priority: [bin]"],
            ["  skill_schedule:", "    strategy: catch_up", "    catch_up_gap: 2"],
        ):
            path.write_text(original)
            set_training_key(path, "schedule", schedule)
            _with_campaign_lines(path, *lines)
            hero = Settings(config_dir).heroes["tiny"]
            assert hero.training.schedule == schedule
            assert hero.campaign.skill_schedule.strategy == lines[1].split(": ")[1]


@pytest.mark.parametrize(("field", "value"), [("preview_share", "1.0"), ("preview_levels", "0")])
def test_a_preview_out_of_range_is_refused_naming_field_and_value(
    config_dir: Path, field: str, value: str
) -> None:
    path = config_dir / "heroes" / "tiny.yaml"
    set_training_key(path, field, value)
    msg = _refused(config_dir, path)
    assert len(msg.splitlines()) == 1, msg
    assert str(path) in msg and f"field 'training.{field}'" in msg and value in msg, msg
