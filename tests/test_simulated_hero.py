"""The simulated hero (`base.kind: simulated`): validated like every hero, trained on the segment's real
stream, evaluated through the real eval path and scorer, and a whole `realm campaign` through Dagster
with no torch imported."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from realm_pipeline.settings import ConfigError, Settings
from realm_pipeline.simulation.hero import STATE_FILE, SimParams, SimState, load_state, save_state

REPO = Path(__file__).resolve().parent.parent


def _edit_hero(config_dir: Path, name: str, edit) -> Path:
    path = config_dir / "heroes" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------- config


def test_the_shipped_simulated_heroes_load_and_stay_out_of_the_default_campaign() -> None:
    settings = Settings(REPO / "configs")
    for name in ("sim_cap3", "sim_nocap"):
        hero = settings.heroes[name]
        assert hero.base.kind == "simulated"
        assert isinstance(hero.base.params(), SimParams)
    assert settings.heroes["sim_cap3"].base.params().capacity == 5.7
    assert settings.heroes["sim_nocap"].base.params().capacity is None
    assert not {"sim_cap3", "sim_nocap"} & set(settings.realm.campaign.active_heroes)


def test_a_value_the_simulator_refuses_is_named_with_file_line_and_value(config_dir: Path) -> None:
    path = _edit_hero(config_dir, "sim_cap3", lambda d: d["base"].update(growth=0.5))
    with pytest.raises(ConfigError) as err:
        _ = Settings(config_dir).heroes
    msg = str(err.value)
    assert str(path) in msg and "field 'base.growth'" in msg and "value 0.5" in msg and ">= 1" in msg
    assert "line " in msg


def test_a_bad_per_skill_capacity_names_its_skill(config_dir: Path) -> None:
    _edit_hero(config_dir, "sim_cap3", lambda d: d["base"].update(capacities={"bin": -1}))
    with pytest.raises(ConfigError, match=r"field 'base\.capacities\.bin': value -1"):
        _ = Settings(config_dir).heroes


def test_an_unknown_simulator_key_is_refused(config_dir: Path) -> None:
    path = _edit_hero(config_dir, "sim_cap3", lambda d: d["base"].update(capacityy=4))
    with pytest.raises(ConfigError) as err:
        _ = Settings(config_dir).heroes
    msg = str(err.value)
    assert str(path) in msg and "field 'base.capacityy'" in msg and "xtra" in msg  # extra: forbidden


def test_a_school_that_needs_a_model_is_refused(config_dir: Path) -> None:
    _edit_hero(config_dir, "sim_cap3", lambda d: d.update(schools=["scribe", "mirror"]))
    with pytest.raises(ConfigError, match=r"field 'schools'.*Scribe only"):
        _ = Settings(config_dir).heroes


# ---------------------------------------------------------------- a segment


def _spec(tmp_path: Path, mix, parent_dir=None):
    from realm_pipeline.training.plan import CheckpointKey, segment_spec

    settings = Settings(REPO / "configs")
    hero = settings.heroes["sim_cap3"]
    return segment_spec(
        hero,
        settings.memory_profiles[hero.memory_profile],
        CheckpointKey("sim_cap3", 10),
        output_dir=tmp_path / "sim_cap3.000010",
        parent_dir=parent_dir,
        mix=mix,
        quests=[],
        eval_items_per_level={"bin": 50},
    )


def test_a_segment_counts_the_tokens_of_the_real_training_stream(tmp_path: Path) -> None:
    from realm_pipeline.simulation.segment import stream_tokens
    from realm_pipeline.training.data import ExampleEncoder, MixStream
    from realm_pipeline.training.tokenizer import build_char_tokenizer
    from realm_pipeline.training.trainer import mix_sources

    spec = _spec(tmp_path, [("bin", 1, 0.5), ("bin", 2, 0.2), ("bin", 3, 0.3)])
    counted = stream_tokens(spec)
    # the trainer's own stream, encoded by the tiny hero's character tokenizer, for as many examples
    real = MixStream(mix_sources(spec), spec.seed, ExampleEncoder(build_char_tokenizer("")))
    for _ in range(spec.steps * spec.batch_size):
        real.consume()
    assert counted == real.trained_tokens()
    assert set(counted) == {"bin@1", "bin@2", "bin@3"} and counted["bin@1"] > counted["bin@2"]


def test_a_segment_moves_the_parents_state_and_writes_it_whole(tmp_path: Path) -> None:
    from realm_pipeline.simulation.segment import file_sha256, level_tokens, simulate_segment

    first = _spec(tmp_path / "a", [("bin", 1, 1.0)])
    result = simulate_segment(first)
    out = Path(first.output_dir)
    assert [p.name for p in out.iterdir()] == [STATE_FILE]  # nothing staged is left beside it
    assert result["sha256"] == file_sha256(out / STATE_FILE)
    state = load_state(out)
    assert state.segments == 1 and state.tokens == result["tokens"] == sum(result["trained_tokens"].values())
    assert state.experience[("bin", 1)] == pytest.approx(level_tokens(result["trained_tokens"])[("bin", 1)])
    # the next segment starts from that state, not a fresh one
    second = _spec(tmp_path / "b", [("bin", 1, 1.0)], parent_dir=out)
    simulate_segment(second)
    assert load_state(Path(second.output_dir)).segments == 2
    # the same spec gives the same checkpoint (re-materializing replaces it with the same result)
    assert simulate_segment(first)["sha256"] == result["sha256"]


def test_a_failed_write_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = SimParams()
    save_state(tmp_path, params, SimState(segments=1))
    before = (tmp_path / STATE_FILE).read_bytes()

    def refuse(self, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OSError):
        save_state(tmp_path, params, SimState(segments=2))
    assert (tmp_path / STATE_FILE).read_bytes() == before and load_state(tmp_path).segments == 1


# ---------------------------------------------------------------- evaluation


def _backend(tmp_path: Path, hold: float, checkpoint: str = "sim.000010", count: int = 200):
    """A simulated checkpoint whose true accuracy at BIN L1 is `hold`, over `count` real BIN L1 items."""
    from realm_pipeline.evaluation.backends import build_backend
    from realm_pipeline.settings import HeroEval
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import reserve_items

    params = SimParams(seed=3)  # no capacity: p = known x hold, and L1 is known fully
    state = SimState(experience={("bin", 1): 1e9}, hold={("bin", 1): hold}, segments=1)
    directory = tmp_path / checkpoint
    save_state(directory, params, state)
    skill = get_skill("bin")
    items = reserve_items(skill, 1, count)
    backend = build_backend(
        HeroEval(),
        directory,
        batch_size=8,
        max_new_tokens=64,
        checkpoint_id=checkpoint,
        simulated=params,
        skill="bin",
        items={1: items},
    )
    return backend, skill, items


def test_the_eval_of_a_known_accuracy_is_a_binomial_sample_of_it(tmp_path: Path) -> None:
    from realm_pipeline.evaluation.runner import evaluate_items

    backend, skill, items = _backend(tmp_path, hold=0.5)
    assert len(items) >= 150
    result = evaluate_items(backend, skill, items)  # the real scorer (exact)
    # sd of a 0.5 binomial over >= 150 items is <= 0.041: +-0.15 is > 3.6 sd, and excludes 0 and 1
    assert 0.35 <= result.accuracy <= 0.65, result.accuracy
    outputs = {out for _, out, _, _ in result.rows}
    assert outputs <= {item.answer for item in items} | {"?"}
    # certain right and certain wrong are scored so by the same scorer
    assert evaluate_items(_backend(tmp_path / "one", hold=1.0)[0], skill, items).accuracy == 1.0
    assert evaluate_items(_backend(tmp_path / "zero", hold=0.0)[0], skill, items).accuracy == 0.0


def test_the_same_checkpoint_answers_the_same_way_and_another_differently(tmp_path: Path) -> None:
    from realm_pipeline.evaluation.runner import evaluate_items

    backend, skill, items = _backend(tmp_path, hold=0.5)
    first = evaluate_items(backend, skill, items).rows
    again = evaluate_items(_backend(tmp_path / "again", hold=0.5)[0], skill, items).rows
    other = evaluate_items(_backend(tmp_path, hold=0.5, checkpoint="sim.000020")[0], skill, items).rows
    assert first == again
    assert [r[2] for r in first] != [r[2] for r in other]  # independent draws per checkpoint


def test_the_backend_identity_names_the_simulator_and_its_constants(tmp_path: Path) -> None:
    from realm_pipeline.evaluation.scores import protocol_spec

    backend, _, _ = _backend(tmp_path, hold=0.5)
    described = backend.describe()
    assert described["kind"] == "simulated" and described["params"]["seed"] == 3
    settings = Settings(REPO / "configs")
    spec = protocol_spec(settings, "sim_cap3", "bin", "v", "hash")
    assert spec["backend"]["kind"] == "simulated" and spec["backend"]["params"]["capacity"] == 5.7
    # never the protocol of a model's scores
    assert protocol_spec(settings, "tiny", "bin", "v", "hash")["backend"]["kind"] == "local"


# ---------------------------------------------------------------- a campaign


CAMPAIGN = """
import sys
from realm_pipeline.cli import main
try:
    main(["campaign", "--hero", "sim_cap3", "--segments", "3"], standalone_mode=False)
finally:
    print("TORCH_IMPORTED", "torch" in sys.modules)
"""


def test_a_simulated_campaign_runs_through_dagster_without_torch(realm_env: Path) -> None:
    import dagster as dg

    from realm_pipeline import ledger

    env = {**os.environ, "REALM_CONFIG_DIR": str(REPO / "configs"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CAMPAIGN], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "TORCH_IMPORTED False" in out, out
    assert "truth      bin cap L3 (held 0.93, with L4 0.64)" in out, out  # the ground truth, shown
    with ledger.connect(realm_env / "realm.duckdb") as con:
        ckpts = con.execute(
            "SELECT checkpoint_id, sha256, path, tokens, train_loss FROM checkpoints WHERE hero = 'sim_cap3' "
            "ORDER BY step"
        ).fetchall()
        assert [c[0] for c in ckpts] == ["sim_cap3.000010", "sim_cap3.000020", "sim_cap3.000030"]
        for cid, sha, path, tokens, train_loss in ckpts:
            state_file = realm_env / path / STATE_FILE
            assert sha == hashlib.sha256(state_file.read_bytes()).hexdigest()
            assert train_loss is None and tokens > 0
            trained = con.execute(
                "SELECT sum(tokens) FROM segment_tokens WHERE checkpoint_id = ?", [cid]
            ).fetchone()[0]
            assert trained == tokens  # every token of the stream was a BIN level's
        evals = con.execute(
            "SELECT checkpoint_id, level, n, backend, fingerprint_json FROM eval_scores "
            "WHERE hero = 'sim_cap3' ORDER BY checkpoint_id, level"
        ).fetchall()
    assert {e[0] for e in evals} == {c[0] for c in ckpts}
    assert all(e[2] == 50 and e[3] == "simulated" for e in evals)
    assert all(json.loads(e[4])["backend"]["params"]["capacity"] == 5.7 for e in evals)
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("curriculum"))
    assert event.asset_materialization.metadata["sim_cap3/bin/true_cap"].value == 3


def test_a_bad_shock_is_named_by_its_index(config_dir: Path) -> None:
    path = _edit_hero(config_dir, "sim_cap3", lambda d: d["base"].update(shocks=[[5, 0.5], [9, 1.75]]))
    with pytest.raises(ConfigError) as err:
        _ = Settings(config_dir).heroes
    msg = str(err.value)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.strip() == "- - 9")
    assert f"line {line}: field 'base.shocks.1': value [9, 1.75]" in msg, msg
