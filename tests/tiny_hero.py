"""The tests' tiny hero: one Qwen3 config (~80k parameters) for a few dozen CPU steps of BIN L1."""

TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 192,
}


def row_length(*levels: tuple[str, int], eval_count: int = 50) -> int:
    """The row length (`max_length`) a segment training these (skill, level)s needs, in the tiny hero's
    character tokens: what the campaign plans (`segment_max_length`), so a test never hard-codes a
    generator's lengths (BIN v4 L1 has 485-token [trace] chains)."""
    from realm_pipeline.lm.budgets import segment_max_length
    from realm_pipeline.skills import get_skill

    return segment_max_length(
        "char", [(get_skill(skill), level, eval_count) for skill, level in levels], ceiling=4096
    )


def set_launch(config_dir, launch: str) -> None:
    """Make the tiny hero's memory profile in `config_dir` train its segments with `launch`."""
    profile = config_dir / "memory_profiles" / "cpu_tiny.yaml"
    kept = [line for line in profile.read_text().splitlines() if not line.startswith("launch:")]
    profile.write_text("\n".join([*kept, f"launch: {launch}", ""]))


def set_training_key(hero_yaml, key: str, value: object) -> None:
    """Set `training.<key>` in a shipped hero YAML: its line rewritten where the key is set already, else a
    line added after `mastered_share` (a YAML key twice is refused)."""
    lines = hero_yaml.read_text().splitlines()
    where = next((i for i, line in enumerate(lines) if line.startswith(f"  {key}:")), None)
    if where is None:
        where = 1 + next(i for i, line in enumerate(lines) if line.startswith("  mastered_share:"))
        lines.insert(where, "")
    lines[where] = f"  {key}: {value}"
    hero_yaml.write_text("\n".join([*lines, ""]))
