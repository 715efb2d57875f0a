"""Where a hero's campaign stands, read from the ledger (pure: takes a DuckDB connection, no Dagster)."""

from __future__ import annotations

import json

import duckdb

from realm_pipeline.evaluation.progression import CurriculumState, EvalPoint, SegmentPoint, apply_progression
from realm_pipeline.evaluation.scores import current_scores
from realm_pipeline.settings import Settings
from realm_pipeline.training.strain import LevelLoss, StrainReport, floor_for, strain_report


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def hero_checkpoints(con: duckdb.DuckDBPyConnection, hero: str) -> list[dict]:
    """The hero's checkpoints in the ledger, oldest first."""
    return _dicts(con.execute("SELECT * FROM checkpoints WHERE hero = ? ORDER BY step", [hero]))


def latest_scores(con: duckdb.DuckDBPyConnection, hero: str, before_step: int | None = None) -> list[dict]:
    """The hero's current score per (checkpoint, skill, level), of checkpoints before a step."""
    return current_scores(con, hero=hero, before_step=before_step)


def curriculum_state(
    con: duckdb.DuckDBPyConnection, settings: Settings, hero: str, *, before_step: int | None = None
) -> CurriculumState:
    """Replay the hero's eval history (checkpoints before `before_step`) through the level-up rule."""
    cfg = settings.heroes[hero]
    prog = settings.realm.progression
    evals = [
        EvalPoint(r["checkpoint_id"], r["step"], r["skill"], r["level"], r["accuracy"])
        for r in latest_scores(con, hero, before_step)
    ]
    segments = [
        SegmentPoint(c["checkpoint_id"], c["step"], c["tokens"], c["strain"])
        for c in hero_checkpoints(con, hero)
        if before_step is None or c["step"] < before_step
    ]
    return apply_progression(
        evals,
        segments,
        level_caps={s: settings.skills[s].level_cap for s in cfg.campaign.skills},
        threshold=prog.level_up_accuracy,
        evals_required=prog.evals_required,
        window=prog.maxed_out_window,
        maintenance_max=prog.maintenance_multiplier_max,
        min_trend=prog.min_trend,
        min_trend_points=prog.min_trend_points,
        maintenance_min=prog.maintenance_min,
        confirmed=confirmed_regressions(con, hero),
    )


def confirmed_regressions(con: duckdb.DuckDBPyConnection, hero: str) -> list[tuple[str, int, str]]:
    """(skill, level, checkpoint_id) of every drop a confirming re-run reproduced on the reserve sample."""
    rows = con.execute(
        "SELECT bench, checkpoint_id FROM regression_checks WHERE hero = ? AND confirmed ORDER BY created_at",
        [hero],
    ).fetchall()
    out = []
    for bench, ckpt in rows:
        skill, _, level = bench.rpartition("@")
        out.append((skill, int(level), ckpt))
    return out


def levels_to_evaluate(state: CurriculumState, skill: str) -> list[int]:
    """Every mastered level, the current one and the next (within the cap)."""
    s = state.skills[skill]
    return sorted({*s.mastered, s.level, min(s.level + 1, s.cap)})


def strain_state(con: duckdb.DuckDBPyConnection, hero: str, state: CurriculumState) -> StrainReport:
    """Per-level floors, effort, plastic gain, efficiency and the strain hint of the hero (strain_report)."""
    rows = con.execute(
        "SELECT step, skill, level, heldout_loss FROM level_losses "
        "WHERE hero = ? AND heldout_loss IS NOT NULL AND step <= ? ORDER BY step, skill, level",
        [hero, state.latest_step],
    ).fetchall()
    caps = {name: s.cap for name, s in state.skills.items()}
    return strain_report(
        [LevelLoss(int(st), sk, int(lv), float(loss)) for st, sk, lv, loss in rows if sk in caps],
        [(u.skill, u.mastered, u.step) for u in state.level_ups],
        caps,
    )


def learning_floors(state: CurriculumState, report: StrainReport) -> list[tuple[str, int, float]]:
    """(skill, level, floor) of every level being learned: the next segment's strain is measured there."""
    return [
        (name, s.level, floor_for(report, name, s.level))
        for name, s in state.skills.items()
        if not s.complete
    ]


def quest_examples(con: duckdb.DuckDBPyConnection) -> list[list[dict[str, str]]]:
    """Every accepted quest example's chat messages, in registration order."""
    rows = con.execute(
        """
        SELECT e.messages_json FROM quest_examples e JOIN quests q USING (quest_id)
        ORDER BY q.registered_at, e.quest_id, e.example_index
        """
    ).fetchall()
    return [json.loads(r[0]) for r in rows]


def hero_paused(con: duckdb.DuckDBPyConnection, hero: str) -> bool:
    """True when `realm pause` stopped the hero's campaign."""
    row = con.execute("SELECT paused FROM hero_state WHERE hero = ?", [hero]).fetchone()
    return bool(row and row[0])


def segment_budget(settings: Settings, hero: str) -> int:
    """Segments a hero's campaign may train: its YAML's budget (validated, never capped elsewhere)."""
    return settings.heroes[hero].campaign.segment_budget


def campaign_blocker(con: duckdb.DuckDBPyConnection, settings: Settings, hero: str) -> str | None:
    """Why the hero's campaign must not train another segment now, or None when it may."""
    if hero_paused(con, hero):
        return "paused"
    checkpoints = hero_checkpoints(con, hero)
    if len(checkpoints) >= segment_budget(settings, hero):
        return f"at its segment budget ({segment_budget(settings, hero)})"
    state = curriculum_state(con, settings, hero)
    if state.maxed_out:
        return f"maxed out: {state.maxed_out_reason}"
    return None
