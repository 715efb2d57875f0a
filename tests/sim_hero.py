"""The simulated hero the tests of the campaign's mechanics run (issue 37 item 7): `sim_cap3` (configs/heroes),
no torch, a segment in seconds, real checkpoint files, real eval items and scorer, real ledger rows. Tests
whose subject is training itself keep the tiny hero (tests/tiny_hero.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

SIM = "sim_cap3"
SKILL = "bin"  # its only skill
STEPS = 10  # its segment_steps: checkpoints are sim_cap3.000010, sim_cap3.000020, ...


def ckpt(segment: int) -> str:
    """The checkpoint id of the hero's `segment`-th segment."""
    return f"{SIM}.{segment * STEPS:06d}"


def use_sim_hero(config_dir: Path, **base: object) -> Path:
    """Make the simulated hero the only active hero of the configs in `config_dir` (a private copy), with
    `base` (simulator constants, e.g. `shocks=[[2, 0.05]]`) set in its YAML; return its YAML's path."""
    realm_yaml = config_dir / "realm.yaml"
    text = realm_yaml.read_text()
    assert "active_heroes: [tiny]" in text, "realm.yaml's active_heroes line moved: update tests/sim_hero.py"
    realm_yaml.write_text(text.replace("active_heroes: [tiny]", f"active_heroes: [{SIM}]"))
    hero_yaml = config_dir / "heroes" / f"{SIM}.yaml"
    if base:
        data = yaml.safe_load(hero_yaml.read_text())
        data["base"].update(base)
        hero_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return hero_yaml
