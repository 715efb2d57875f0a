"""`curriculum`: the level-up rule applied to every hero's eval history."""

import json
from datetime import UTC, datetime

import dagster as dg

from realm_pipeline import ledger
from realm_pipeline.campaign import (
    cap_call_facts,
    cap_calls_of,
    curriculum_state,
    ground_truth,
    hero_paused,
    hint_reason,
    level_up_facts,
    primitive_accuracy,
    strain_state,
    weakest_primitive,
)
from realm_pipeline.defs.automation import rollup_condition
from realm_pipeline.defs.campaign.decision import hero_decision
from realm_pipeline.defs.evaluation.sensors import unconfirmed_regressions
from realm_pipeline.defs.owners import REALM_OWNERS
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.evaluation.scores import declare_protocols


@dg.asset(
    group_name="campaign",
    owners=REALM_OWNERS,
    kinds={"duckdb"},
    deps=["eval_scores", "checkpoints"],
    automation_condition=rollup_condition("eval_scores"),
)
def curriculum(
    context: dg.AssetExecutionContext, realm: RealmResource, ledger_db: LedgerResource
) -> dg.MaterializeResult:
    """Levels, level-up events, regressions, strain zone, maxed-out status and what each hero does next."""
    settings = realm.settings
    now = datetime.now(UTC).replace(tzinfo=None)
    sheets, events, states, statuses, efforts, primitives, facts = {}, [], [], {}, {}, {}, []
    calls: list[dict] = []  # cap calls seen for the first time: facts, like level-ups
    with ledger_db.get_connection() as con:  # replayed under the protocol the running configuration uses
        declare_protocols(con, settings)
    with ledger_db.read() as con:
        trained = [
            r[0] for r in con.execute("SELECT DISTINCT hero FROM checkpoints ORDER BY hero").fetchall()
        ]
        chance = {
            (s, lv): c
            for s, lv, c in con.execute("SELECT skill, level, chance_accuracy FROM eval_sets").fetchall()
        }
        for hero in sorted({*trained, *settings.realm.campaign.active_heroes}):
            if hero not in settings.heroes:
                continue  # a hero whose YAML was removed keeps its history but gets no new state
            # what the campaign sensor will do for it once this rollup is done (a failed run, by name)
            decision = hero_decision(
                context.instance, con, settings, hero, exclude_run_id=context.run_id, rolled_up_now=True
            )
            # drops whose confirming run failed: neither confirmed nor refuted, shown rather than lost
            unconfirmed = unconfirmed_regressions(context.instance, hero)
            if hero not in trained and not decision.failed and not unconfirmed:
                continue  # no checkpoint and nothing to report: no sheet yet
            statuses[hero] = decision.status
            state = curriculum_state(con, settings, hero)
            sheets[hero] = state.hero_sheet()
            sheets[hero]["unconfirmed_regressions"] = unconfirmed
            # beside each skill's level: what a constant answer scores there (its accuracy's floor)
            sheets[hero]["chance"] = {skill: chance.get((skill, lv)) for skill, lv in state.levels().items()}
            strain = strain_state(con, hero, state)
            primitives[hero] = primitive_accuracy(con, settings, hero)
            # The hint is read from the strain trend over segments, not from one value (none: too few yet).
            sheets[hero]["hint"] = strain.hint.value if strain.hint else None
            sheets[hero]["hint_reason"] = hint_reason(strain, settings.heroes[hero].training.strain_hint)
            # a simulated hero's known capacity, beside realm's verdicts on it (None: a real model)
            sheets[hero]["ground_truth"] = ground_truth(con, settings, hero)
            efforts[hero] = [
                {
                    "skill": e.skill,
                    "level": e.level,
                    "floor": round(e.floor, 4),
                    "floor_measured": e.floor_measured,
                    "segments": e.segments,
                    "effort": round(e.effort, 4),
                    "plastic_gain": None if e.plastic_gain is None else round(e.plastic_gain, 4),
                    "efficiency": None if e.efficiency is None else round(e.efficiency, 4),
                }
                for e in strain.levels
            ]
            # Level-ups and regressions share one row shape: (skill, level, checkpoint, step, accuracy).
            events += [
                {
                    "hero": hero,
                    "skill": e.skill,
                    "level": e.level,
                    "event": kind,
                    "checkpoint_id": e.checkpoint_id,
                    "step": e.step,
                    "accuracy": e.accuracy,
                    "created_at": now,
                }
                for kind, happened in (("level_up", state.level_ups), ("regression", state.regressions))
                for e in happened
            ]
            facts += level_up_facts(con, hero, state.level_ups, now)
            # a skill called capped with no call standing is recorded here, at its newest checkpoint; the
            # sheet judges every call by the level-ups after it (held or refuted)
            new_calls = cap_call_facts(con, hero, state, now)
            calls += new_calls
            sheets[hero]["cap_calls"] = [c.to_json() for c in cap_calls_of(con, hero, state, new_calls)]
            states.append(
                {
                    "hero": hero,
                    "paused": hero_paused(con, hero),
                    "maxed_out": state.maxed_out,
                    "champion": state.champion,
                    "levels_json": json.dumps(state.levels(), sort_keys=True),
                    "updated_at": now,
                    "maxed_out_reason": state.maxed_out_reason,
                    "claim": state.cap_claim(),
                    "timeline_json": json.dumps([r.to_json() for r in state.timeline], sort_keys=True),
                    "primitives_json": json.dumps(primitives[hero], sort_keys=True),
                    "status": decision.status,
                    "verdicts_json": json.dumps(
                        state.verdicts.to_json() if state.verdicts else {}, sort_keys=True
                    ),
                    "cap_calls_json": json.dumps(sheets[hero]["cap_calls"], sort_keys=True),
                }
            )
    with ledger_db.get_connection() as con:
        con.execute("BEGIN TRANSACTION")
        ledger.insert_new(con, "level_ups", facts)  # facts: a level once earned stays earned
        ledger.insert_new(con, "cap_calls", calls)  # and a call once made stays made (judged later)
        # Events are re-derived from the whole history: replace them, keeping confirmed regressions
        # (those come from confirming re-runs, not from the replay).
        con.execute("DELETE FROM curriculum_events WHERE event IN ('level_up', 'regression')")
        ledger.upsert(con, "curriculum_events", events)
        ledger.upsert(con, "hero_state", states)
        con.execute("COMMIT")
    metadata: dict = {
        "heroes": dg.MetadataValue.json(sheets),
        "level_ups": sum(e["event"] == "level_up" for e in events),
    }
    for hero, sheet in sheets.items():
        # Numeric per-hero values: the Dagster UI plots them across materializations.
        metadata[f"{hero}/level"] = sheet["level"]
        metadata[f"{hero}/total_skill_levels"] = sum(sheet["skills"].values())
        if sheet["acc"] is not None:
            metadata[f"{hero}/acc"] = sheet["acc"]
        metadata[f"{hero}/zone"] = sheet["zone"] or "n/a"
        metadata[f"{hero}/hint"] = sheet["hint"] or "none"
        metadata[f"{hero}/hint_reason"] = sheet["hint_reason"]
        metadata[f"{hero}/effort_by_level"] = dg.MetadataValue.json(efforts[hero])
        metadata[f"{hero}/effort"] = round(sum(e["effort"] for e in efforts[hero]), 4)
        gains = [e for e in efforts[hero] if e["efficiency"] is not None]
        if gains:  # the latest level transition's learning ROI, plotted across materializations
            metadata[f"{hero}/efficiency"] = gains[-1]["efficiency"]
        metadata[f"{hero}/champion"] = sheet["champion"] or "n/a"
        metadata[f"{hero}/maxed_out"] = sheet["maxed_out"]
        metadata[f"{hero}/maxed_out_reason"] = sheet["maxed_out_reason"]
        metadata[f"{hero}/unconfirmed_regressions"] = len(sheet["unconfirmed_regressions"])
        # per skill: its verdict, and its maintenance multiplier where one is defined (never a count)
        metadata[f"{hero}/verdicts"] = dg.MetadataValue.json(sheet["verdicts"])
        for skill, verdict in sheet["verdicts"].items():
            metadata[f"{hero}/{skill}/verdict"] = verdict["verdict"]
            if verdict["multiplier"] is not None:
                metadata[f"{hero}/{skill}/maintenance_multiplier"] = verdict["multiplier"]
        for skill, slope in sheet["trend"].items():
            if slope is not None:  # accuracy slope per eval at the level being learned
                metadata[f"{hero}/{skill}/trend"] = slope
        metadata[f"{hero}/status"] = statuses[hero]
        # per cap call: held (no level of the skill earned after it) or refuted, and the segments since
        metadata[f"{hero}/cap_calls"] = dg.MetadataValue.json(sheet["cap_calls"])
        for call in sheet["cap_calls"]:
            metadata[f"{hero}/{call['skill']}/cap_call"] = call["status"]
            metadata[f"{hero}/{call['skill']}/segments_past_call"] = call["segments_since"]
        for skill, truth in (sheet["ground_truth"] or {}).items():
            metadata[f"{hero}/{skill}/true_cap"] = truth["cap"]
        metadata[f"{hero}/primitives"] = dg.MetadataValue.json(primitives[hero])
        metadata[f"{hero}/weakest_primitive"] = weakest_primitive(primitives[hero]) or "n/a"
    return dg.MaterializeResult(metadata=metadata)
