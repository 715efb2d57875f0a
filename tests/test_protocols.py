"""The protocol in force comes from the configuration, not from the newest score; level-ups are facts."""

from __future__ import annotations

from pathlib import Path

import yaml

from realm_pipeline import ledger
from realm_pipeline.campaign import curriculum_state, level_up_facts
from realm_pipeline.evaluation.scores import (
    checkpoints_to_rescore,
    current_scores,
    declare_protocols,
    stale_scores,
)
from realm_pipeline.settings import Settings
from tests.test_sensors_regression import T0, score  # one score-row builder for both

CKPTS = ["tiny.000150", "tiny.000300", "tiny.000450", "tiny.000600"]


def _in_force(con, level: int = 1) -> str:
    return con.execute(
        "SELECT protocol FROM protocols_in_force WHERE hero = 'tiny' AND skill = 'bin' AND level = ?", [level]
    ).fetchone()[0]


def _ledger_with_history(tmp_path: Path, settings: Settings):
    """A ledger where tiny earned bin L1 over three checkpoints (scored under the protocol in force)."""
    con = ledger.duckdb.connect(str(tmp_path / "realm.duckdb"))
    ledger.migrate(con)
    ledger.upsert(
        con,
        "eval_sets",
        [{"skill": "bin", "level": lv, "n_items": 50, "eval_set_hash": f"h{lv}"} for lv in (1, 2)],
    )
    ledger.upsert(
        con,
        "checkpoints",
        [
            {
                "checkpoint_id": c,
                "hero": "tiny",
                "step": int(c.split(".")[1]),
                "path": f"/x/{c}",
                "tokens": 100,
            }
            for c in CKPTS
        ],
    )
    declare_protocols(con, settings)
    p = _in_force(con)
    ledger.upsert(con, "eval_scores", [score(c, 1, 0.9, t=i, protocol=p) for i, c in enumerate(CKPTS[:3])])
    return con, p


def test_rescoring_one_checkpoint_another_way_changes_no_other_score(
    tmp_path: Path, config_dir: Path
) -> None:
    settings = Settings(config_dir)
    con, p = _ledger_with_history(tmp_path, settings)
    before = current_scores(con, hero="tiny")
    assert {r["protocol"] for r in before} == {p} and len(before) == 3
    # One checkpoint re-scored later under another protocol (another backend, dtype or library version):
    ledger.upsert(con, "eval_scores", [score(CKPTS[1], 1, 0.1, t=60, protocol="another")])
    after = current_scores(con, hero="tiny")
    assert after == before  # not current because newer: every score, that checkpoint's included, stands
    assert stale_scores(con) == []  # each checkpoint still has its score under the protocol in force
    assert curriculum_state(con, settings, "tiny").levels()["bin"] == 2


def test_a_configuration_change_makes_old_scores_stale_but_keeps_levels(
    tmp_path: Path, config_dir: Path
) -> None:
    settings = Settings(config_dir)
    con, p = _ledger_with_history(tmp_path, settings)
    state = curriculum_state(con, settings, "tiny")
    assert state.levels()["bin"] == 2
    facts = level_up_facts(con, "tiny", state.level_ups, T0)
    assert [(f["level"], f["checkpoint_id"], f["protocol"]) for f in facts] == [(1, CKPTS[2], p)]
    ledger.insert_new(con, "level_ups", facts)
    con.execute(
        "INSERT INTO hero_state (hero, champion) VALUES ('tiny', ?)", [CKPTS[0]]
    )  # the champion matters too

    realm_yaml = config_dir / "realm.yaml"
    data = yaml.safe_load(realm_yaml.read_text())
    data["eval"]["answer_margin_tokens"] = data["eval"].get("answer_margin_tokens", 4) + 1
    realm_yaml.write_text(yaml.safe_dump(data))
    changed = Settings(config_dir)
    declare_protocols(con, changed)
    assert _in_force(con) != p
    assert current_scores(con, hero="tiny") == []  # old scores are stale, never "current" by default
    assert stale_scores(con) == [(c, "bin") for c in CKPTS[:3]]
    # automation re-scores the level-up's checkpoint and the champion (the newest has no score yet)
    assert checkpoints_to_rescore(con, "tiny") == [(CKPTS[0], "bin"), (CKPTS[2], "bin")]
    # the level earned under the old protocol stays earned in the replay
    assert curriculum_state(con, changed, "tiny").levels()["bin"] == 2
    # and retention deleting the level-up's checkpoint takes it out of re-scoring, not out of the levels
    con.execute("UPDATE checkpoints SET path = NULL WHERE checkpoint_id = ?", [CKPTS[2]])
    assert checkpoints_to_rescore(con, "tiny") == [(CKPTS[0], "bin")]
    assert curriculum_state(con, changed, "tiny").levels()["bin"] == 2


def test_bin_v4_makes_the_scores_under_v3_stale(tmp_path: Path, config_dir: Path, monkeypatch) -> None:
    """The version bump is what re-evaluates BIN: scores recorded under v3's protocol are not current."""
    from realm_pipeline.skills import get_skill

    bin_skill = get_skill("bin")
    assert bin_skill.version == "4"
    settings = Settings(config_dir)
    with monkeypatch.context() as before_the_bump:
        before_the_bump.setattr(type(bin_skill), "version", "3")
        con, v3 = _ledger_with_history(tmp_path, settings)  # scored and declared under v3
        assert len(current_scores(con, hero="tiny")) == 3
        state = curriculum_state(con, settings, "tiny")
        ledger.insert_new(con, "level_ups", level_up_facts(con, "tiny", state.level_ups, T0))
    declare_protocols(con, settings)  # the running code: v4
    assert _in_force(con) != v3
    assert current_scores(con, hero="tiny") == []
    assert stale_scores(con) == [(c, "bin") for c in CKPTS[:3]]
    # automation re-scores the checkpoint that earned bin L1; the level stays earned meanwhile
    assert checkpoints_to_rescore(con, "tiny") == [(CKPTS[2], "bin")]
    assert curriculum_state(con, settings, "tiny").levels()["bin"] == 2


def test_a_level_no_declaration_covers_has_no_current_score_and_a_removed_hero_keeps_its_own(
    tmp_path: Path, config_dir: Path
) -> None:
    settings = Settings(config_dir)
    con, p = _ledger_with_history(tmp_path, settings)  # eval sets of bin L1 and L2 only
    # tiny scored at L3 (an eval set since removed: a level cap lowered), under what was in force then
    ledger.upsert(con, "eval_scores", [score(CKPTS[2], 3, 0.7, t=10, protocol="then")])
    # and a hero whose YAML is gone: nothing declares its protocol, nothing could re-score it
    gone = {**score(CKPTS[0], 1, 0.5, t=11, protocol="old"), "checkpoint_id": "gone.000150", "hero": "gone"}
    ledger.upsert(con, "eval_scores", [gone])
    assert "gone" not in settings.heroes
    # a configured hero is scored under a declared protocol or not at all: refused, not the newest written
    assert {r["level"] for r in current_scores(con, hero="tiny")} == {1}
    assert stale_scores(con, hero="tiny") == [(CKPTS[2], "bin")]
    # a hero no configuration declares keeps its history as written (its newest protocol)
    assert [(r["checkpoint_id"], r["protocol"]) for r in current_scores(con, hero="gone")] == [
        ("gone.000150", "old")
    ]
