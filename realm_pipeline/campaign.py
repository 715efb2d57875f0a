"""Where a hero's campaign stands, read from the ledger (pure: takes a DuckDB connection, no Dagster)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from realm_pipeline.evaluation.progression import (
    CurriculumState,
    EvalPoint,
    SegmentPoint,
    apply_progression,
    lost_levels,
    pooled_mix,
    uniform_mix,
)
from realm_pipeline.evaluation.regressions import split_bench
from realm_pipeline.evaluation.scores import current_scores
from realm_pipeline.evaluation.verdicts import Check
from realm_pipeline.settings import Settings
from realm_pipeline.training.plan import next_key
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
        EvalPoint(r["checkpoint_id"], r["step"], r["skill"], r["level"], r["accuracy"], r.get("n"))
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
        earned=earned_levels(con, hero),
        trained=trained_tokens(con, hero, before_step),
        checks=regression_checks(con, hero, before_step),
        cap_rule=prog.cap_rule,
    )


def trained_tokens(
    con: duckdb.DuckDBPyConnection, hero: str, before_step: int | None = None
) -> dict[str, dict[tuple[str, int], int]]:
    """checkpoint_id -> (skill, level) -> tokens its segment really trained (the trainer's record)."""
    out: dict[str, dict[tuple[str, int], int]] = {}
    for ckpt, skill, level, tokens in con.execute(
        "SELECT checkpoint_id, skill, level, tokens FROM segment_tokens WHERE hero = ? AND step < ? "
        "ORDER BY step, skill, level",
        [hero, before_step if before_step is not None else 2**62],
    ).fetchall():
        out.setdefault(ckpt, {})[(skill, int(level))] = int(tokens)
    return out


def regression_checks(
    con: duckdb.DuckDBPyConnection, hero: str, before_step: int | None = None
) -> list[Check]:
    """Every confirming re-run's verdict (confirmed or refuted) on the hero's drops, with its step."""
    rows = con.execute(
        "SELECT r.bench, r.checkpoint_id, c.step, r.confirmed FROM regression_checks r "
        "JOIN checkpoints c USING (checkpoint_id) WHERE r.hero = ? AND c.step < ? ORDER BY c.step, r.created_at",
        [hero, before_step if before_step is not None else 2**62],
    ).fetchall()
    return [Check(*split_bench(bench), ckpt, int(step), bool(ok)) for bench, ckpt, step, ok in rows]


def trained_levels(
    con: duckdb.DuckDBPyConnection, hero: str, *, before_step: int | None = None
) -> list[tuple[int, dict[tuple[str, int], float]]]:
    """Per finished segment: (its checkpoint's step, what it trained of each (skill, level)).

    The tokens the trainer recorded (`segment_tokens`) where there are any; else the mix of the spec the
    checkpoint recorded (its weights). This is the interface `progression.lost_levels` takes.
    """
    recorded = trained_tokens(con, hero, before_step)
    trained = []
    for c in hero_checkpoints(con, hero):
        if before_step is not None and c["step"] >= before_step:
            continue
        if c["checkpoint_id"] in recorded:
            trained.append((int(c["step"]), {k: float(v) for k, v in recorded[c["checkpoint_id"]].items()}))
            continue
        mix = json.loads(c["spec_json"] or "{}").get("mix") or []
        amounts: dict[tuple[str, int], float] = {}
        for skill, level, weight in mix:
            amounts[(skill, int(level))] = amounts.get((skill, int(level)), 0.0) + float(weight)
        trained.append((int(c["step"]), amounts))
    return trained


def next_mix(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    hero: str,
    state: CurriculumState,
    hint,
    *,
    before_step: int | None = None,
) -> list[tuple[str, int, float]]:
    """The next segment's (skill, level, weight) mix: the hero's mastered share and skill schedule, its
    levels lost after maintenance (`maintenance_min` segments that trained them) back as targets, the strain
    hint unless `training.strain_hint` is off; or the baselines: `curriculum: pooled` (the replay before
    per-skill shares), `uniform` (the same mix always)."""
    cfg = settings.heroes[hero]
    if not cfg.training.strain_hint:
        hint = None
    if cfg.campaign.curriculum == "uniform":
        caps = {name: settings.skills[name].level_cap for name in cfg.campaign.skills}
        return uniform_mix(caps, cfg.campaign.uniform_levels or 1)
    if cfg.campaign.curriculum == "pooled":
        return pooled_mix(
            state, list(cfg.campaign.skills), mastered_share=cfg.training.mastered_share, hint=hint
        )
    lost = lost_levels(
        state,
        trained_levels(con, hero, before_step=before_step),
        after=settings.realm.progression.maintenance_min,
    )
    return state.training_mix(
        cfg.training.mastered_share,
        list(cfg.campaign.skills),
        hint=hint,
        lost=lost,
        preview_share=cfg.training.preview_share,
        preview_levels=cfg.training.preview_levels,
        **cfg.campaign.skill_schedule.mix_options(),
    )


def earned_levels(con: duckdb.DuckDBPyConnection, hero: str) -> list[tuple[str, int, str, int, float]]:
    """(skill, mastered level, checkpoint_id, step, accuracy) of every level-up the ledger recorded."""
    return [
        (skill, int(level), ckpt, int(step), float(acc))
        for skill, level, ckpt, step, acc in con.execute(
            "SELECT skill, level, checkpoint_id, step, accuracy FROM level_ups WHERE hero = ? ORDER BY step",
            [hero],
        ).fetchall()
    ]


def level_up_facts(con: duckdb.DuckDBPyConnection, hero: str, level_ups: Iterable, now) -> list[dict]:
    """`level_ups` rows for the replay's level-ups, each with the protocol of the score that earned it."""
    protocols = {
        (c, s, lv): p
        for c, s, lv, p in con.execute(
            "SELECT checkpoint_id, skill, level, protocol FROM current_scores WHERE hero = ?", [hero]
        ).fetchall()
    }
    return [
        {
            "hero": hero,
            "skill": u.skill,
            "level": u.mastered,
            "checkpoint_id": u.checkpoint_id,
            "step": u.step,
            "accuracy": u.accuracy,
            "protocol": protocols.get((u.checkpoint_id, u.skill, u.mastered)),
            "earned_at": now,
        }
        for u in level_ups
    ]


# ---------------------------------------------------------------------------------------------------
# Cap calls you can revisit (issue 37): the first time the verdicts call a skill capped is a fact in the
# ledger (`cap_calls`, like `level_ups`), and the level-ups after it say whether it held.


@dataclass(frozen=True)
class CapCall:
    """A recorded cap call and how it stands: held while no level of its skill is earned after it."""

    skill: str
    checkpoint_id: str  # the newest checkpoint when the curriculum first saw the skill capped
    step: int
    segment: int
    cap_level: int | None  # the level the call says the hero holds at most
    reason: str
    forgotten: tuple[dict, ...]  # the lost levels it cited (cap_rule.Forgetting.to_json)
    segments_since: int  # segments trained after the call's checkpoint
    refuted_by: tuple[int, str, int] | None = None  # (level, checkpoint, step) first earned after it

    @property
    def held(self) -> bool:
        """True while no level of the skill was earned after the call."""
        return self.refuted_by is None

    def to_json(self) -> dict:
        """JSON-ready dict (the hero sheet's and the mirror's `cap_calls`)."""
        level, ckpt, step = self.refuted_by or (None, None, None)
        return {
            "skill": self.skill,
            "checkpoint_id": self.checkpoint_id,
            "step": self.step,
            "segment": self.segment,
            "cap_level": self.cap_level,
            "reason": self.reason,
            "forgotten": list(self.forgotten),
            "segments_since": self.segments_since,
            "status": "held" if self.held else "refuted",
            "refuted_by": None if level is None else {"level": level, "checkpoint_id": ckpt, "step": step},
        }

    def summary(self) -> str:
        """One line: `bin capped at L3 by sim_cap3.000120 (segment 12): held, 36 segments trained since`."""
        claim = f"L{self.cap_level}" if self.cap_level is not None else "its level"
        head = f"{self.skill} capped at {claim} by {self.checkpoint_id} (segment {self.segment})"
        since = f"{self.segments_since} segment(s) trained since"
        if self.refuted_by is None:
            return f"{head}: held, {since}"
        level, ckpt, _ = self.refuted_by
        return f"{head}: refuted, L{level} earned after it at {ckpt}; {since}"


def recorded_cap_calls(con: duckdb.DuckDBPyConnection, hero: str) -> list[dict]:
    """The hero's `cap_calls` rows, oldest first."""
    return _dicts(con.execute("SELECT * FROM cap_calls WHERE hero = ? ORDER BY step, skill", [hero]))


def review_cap_calls(
    calls: Iterable[dict], level_ups: Iterable[tuple[str, int, str, int]], checkpoint_steps: Iterable[int]
) -> list[CapCall]:
    """Each recorded call (a `cap_calls` row) judged by the level-ups after it: (skill, level mastered,
    checkpoint_id, step); `checkpoint_steps`: the step of every checkpoint the hero trained."""
    ups = sorted(level_ups, key=lambda u: (int(u[3]), int(u[1])))
    steps = [int(s) for s in checkpoint_steps]
    out = []
    for c in sorted(calls, key=lambda c: (int(c["step"]), c["skill"])):
        after = [u for u in ups if u[0] == c["skill"] and int(u[3]) > int(c["step"])]
        out.append(
            CapCall(
                skill=c["skill"],
                checkpoint_id=c["checkpoint_id"],
                step=int(c["step"]),
                segment=int(c["segment"]),
                cap_level=c["cap_level"],
                reason=c["reason"] or "",
                forgotten=tuple(json.loads(c["forgotten_json"] or "[]")),
                segments_since=sum(1 for s in steps if s > int(c["step"])),
                refuted_by=(int(after[0][1]), after[0][2], int(after[0][3])) if after else None,
            )
        )
    return out


def cap_calls_of(
    con: duckdb.DuckDBPyConnection, hero: str, state: CurriculumState, new: Iterable[dict] = ()
) -> list[CapCall]:
    """The hero's cap calls (the recorded ones and `new` rows not written yet), judged against `state`."""
    ups = [(u.skill, u.mastered, u.checkpoint_id, u.step) for u in state.level_ups]
    steps = [c["step"] for c in hero_checkpoints(con, hero)]
    return review_cap_calls([*recorded_cap_calls(con, hero), *new], ups, steps)


def cap_call_facts(con: duckdb.DuckDBPyConnection, hero: str, state: CurriculumState, now) -> list[dict]:
    """`cap_calls` rows for the skills the verdicts call capped now with no call standing (none recorded,
    or the last one refuted), at the hero's newest checkpoint: the first time the curriculum sees it."""
    verdicts = state.verdicts.skills if state.verdicts is not None else {}
    capped = {name: v for name, v in verdicts.items() if v.verdict == "capped"}
    ckpts = [c for c in hero_checkpoints(con, hero) if c["step"] <= state.latest_step]
    if not capped or not ckpts:
        return []
    standing = {c.skill for c in cap_calls_of(con, hero, state) if c.held}
    newest = ckpts[-1]
    return [
        {
            "hero": hero,
            "skill": name,
            "checkpoint_id": newest["checkpoint_id"],
            "step": int(newest["step"]),
            "segment": len(ckpts),
            "cap_level": v.cap_level,
            "reason": v.reason,
            "forgotten_json": json.dumps([f.to_json() for f in v.forgotten if f.counts], sort_keys=True),
            "called_at": now,
        }
        for name, v in sorted(capped.items())
        if name not in standing
    ]


def segments_past_call(state: CurriculumState, calls: Iterable[CapCall]) -> int | None:
    """Segments a maxed-out hero trained since the call that stopped it (the newest standing call of its
    capped skills; 0 where one is not recorded yet); None when no skill is capped (every skill complete)."""
    verdicts = state.verdicts.skills if state.verdicts is not None else {}
    capped = [name for name, v in verdicts.items() if v.verdict == "capped"]
    if not capped:
        return None
    standing = {c.skill: c.segments_since for c in calls if c.held}
    return min(standing.get(name, 0) for name in capped)


def confirmed_regressions(con: duckdb.DuckDBPyConnection, hero: str) -> list[tuple[str, int, str]]:
    """(skill, level, checkpoint_id) of every drop a confirming re-run reproduced on the reserve sample."""
    rows = con.execute(
        "SELECT bench, checkpoint_id FROM regression_checks WHERE hero = ? AND confirmed ORDER BY created_at",
        [hero],
    ).fetchall()
    return [(*split_bench(bench), ckpt) for bench, ckpt in rows]


def primitive_accuracy(
    con: duckdb.DuckDBPyConnection, settings: Settings, hero: str
) -> dict[str, dict[str, float | int]]:
    """Accuracy per primitive (the items' `primitive` tag) of the hero's newest evaluated checkpoint per
    skill, over every level scored there under the current protocol: {primitive: {correct, n, accuracy}}."""
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import eval_items

    rows = con.execute(
        """
        WITH newest AS (
            SELECT skill, max(step) AS step FROM current_scores WHERE hero = ? GROUP BY skill
        )
        SELECT c.skill, c.level, g.item_index, g.correct
        FROM current_scores c JOIN newest USING (skill, step)
        JOIN eval_generations g
          ON g.checkpoint_id = c.checkpoint_id AND g.skill = c.skill AND g.level = c.level
         AND g.fingerprint = c.fingerprint
        WHERE c.hero = ?
        ORDER BY c.skill, c.level, g.item_index
        """,
        [hero, hero],
    ).fetchall()
    tags: dict[tuple[str, int], list] = {}
    totals: dict[str, list[int]] = {}
    for skill, level, index, correct in rows:
        if (skill, level) not in tags:
            count = settings.skills[skill].eval_items_per_level
            tags[(skill, level)] = [i.tags for i in eval_items(get_skill(skill), level, count)]
        items = tags[(skill, level)]
        primitive = items[index].get("primitive", skill) if index < len(items) else skill
        total = totals.setdefault(primitive, [0, 0])
        total[0] += bool(correct)
        total[1] += 1
    return {
        p: {"correct": c, "n": n, "accuracy": round(c / n, 4)} for p, (c, n) in sorted(totals.items()) if n
    }


def weakest_primitive(accuracy: dict[str, dict[str, float | int]]) -> str | None:
    """The primitive with the lowest accuracy (ties: fewer items scored, then name), None when none."""
    if not accuracy:
        return None
    return min(accuracy, key=lambda p: (accuracy[p]["accuracy"], accuracy[p]["n"], p))


def levels_to_evaluate(
    state: CurriculumState, skill: str, cap: int, trained_up_to: int = 0, ahead: int = 1
) -> list[int]:
    """Every mastered level, the current one and the `ahead` above it (a preview trains them; within
    `cap`), and every level up to `trained_up_to` (a uniform mix trains them all); a skill the state does
    not hold yet starts at 1."""
    s = state.skills.get(skill)
    mastered, level = (s.mastered, s.level) if s is not None else ((), 1)
    above = range(level, min(level + max(ahead, 1), cap) + 1)
    return sorted({*mastered, level, *above, *range(1, min(trained_up_to, cap) + 1)})


def hint_reason(report: StrainReport, follows_hint: bool) -> str:
    """The strain hint's reason as shown (sheet, log), saying so when the hero's mix does not follow it."""
    return report.hint_reason + ("" if follows_hint else "; the mix ignores it (training.strain_hint: false)")


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


# ---------------------------------------------------------------------------------------------------
# What a hero needs next: the one decision the campaign sensor, `realm campaign` and `realm train` share.

EVAL_SETS_JOB, TRAIN_JOB, EVAL_JOB, ROLLUP_JOB = "eval_sets_job", "train_job", "eval_job", "rollup_job"
IN_FLIGHT, SUCCEEDED, FAILED, CANCELED = "in flight", "succeeded", "failed", "canceled"


@dataclass(frozen=True)
class RunOutcome:
    """The newest run of one job and partition, reduced to what the decision needs."""

    job: str
    partition: str | None
    run_id: str
    status: str  # IN_FLIGHT | SUCCEEDED | FAILED | CANCELED
    acknowledged: bool = False  # a person asked for a retry (`realm retry`): the failure blocks no more
    attempts: int = 1  # step attempts the run made under its retry policy
    error: str | None = None  # the failure's first line
    ended_at: float | None = None  # unix time it ended; None while in flight

    @property
    def disk_full(self) -> bool:
        """It failed for want of disk space: waited out and retried by itself, not a person's to retry."""
        from realm_pipeline.disk import DISK_FULL_TEXT

        return self.status == FAILED and bool(self.error and DISK_FULL_TEXT.search(self.error))

    def describe(self) -> str:
        """E.g. 'train_job tiny.000300 failed in run 1a2b3c4d after 3 attempts: OSError: ...'."""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        why = f": {self.error}" if self.error else ""
        return f"{_job_and_partition(self.job, self.partition)} {self.status} in run {self.run_id[:8]}{tries}{why}"


@dataclass(frozen=True)
class HeroFacts:
    """Everything the decision reads about one hero, as plain values (the Dagster layer gathers them)."""

    hero: str
    skills: tuple[str, ...]  # the skills its campaign trains and evaluates
    checkpoints: tuple[str, ...]  # its checkpoints in the ledger, oldest first
    next_checkpoint: str  # the key its next segment trains
    paused: bool
    segment_budget: int
    maxed_out_reason: str | None  # None while it still gains levels
    eval_sets_done: frozenset[str]  # skills whose eval_sets partition is materialized
    evaluated: frozenset[tuple[str, str]]  # (checkpoint, skill) pairs with an eval_scores materialization
    last_eval_at: float | None  # newest eval_scores materialization of its newest checkpoint (unix time)
    last_rollup_at: float | None  # newest curriculum materialization (unix time)
    runs: tuple[RunOutcome, ...] = ()  # the newest run of each step it may need now
    # confirming verdicts recorded on its newest checkpoint (`bin@1:v3`, oldest first): a rollup after
    # them is new work, so its run key names them
    confirmations: tuple[str, ...] = ()
    # why its next segment would not fit on the disk (free space below the segment's estimate), if so
    disk_short: str | None = None
    # why its newest checkpoint cannot be loaded (truncated, missing), if so: nothing can go on from it
    unloadable: str | None = None
    past_cap: int = 0  # segments to train on after the cap call that maxed it out (campaign.past_cap)
    # segments trained since that call (`segments_past_call`); None: no call to revisit (all complete)
    segments_past_call: int | None = None


@dataclass(frozen=True)
class Step:
    """One run a hero needs: a job, its partition (None: unpartitioned) and the run key that dedups it."""

    job: str
    partition: str | None
    run_key: str
    checkpoint: str | None = None  # the checkpoint it trains or evaluates
    skill: str | None = None  # the skill it builds or evaluates
    assets: tuple[str, ...] | None = None  # a subset of the job's assets to run (None: all of them)
    # Requested under the daemon by the assets' automation conditions alone (evals of a new checkpoint,
    # the rollup), so the campaign sensor leaves it to them; `realm campaign` runs every step itself.
    automated: bool = False


@dataclass(frozen=True)
class Decision:
    """What a hero needs next: runs to request now, runs to wait for, and why it trains no further."""

    hero: str
    steps: tuple[Step, ...] = ()
    waiting_on: tuple[RunOutcome, ...] = ()
    stop: str | None = None  # paused / at its segment budget / maxed out / a run failed
    failed: tuple[RunOutcome, ...] = ()  # failed runs that stop it until a person retries them
    short_of_space: str | None = None  # it waits for free space (then goes on by itself)
    unloadable: str | None = None  # its newest checkpoint cannot be loaded: a person restores or retrains it

    @property
    def status(self) -> str:
        """One line for a person: why the hero stopped, or what it does next."""
        if self.stop:
            return f"stopped: {self.stop}"
        parts = []
        if self.steps:
            parts.append(
                "next "
                + ", ".join(
                    _job_and_partition(s.job, s.partition) + (" (automation)" if s.automated else "")
                    for s in self.steps
                )
            )
        if self.waiting_on:
            parts.append(
                "waiting on "
                + ", ".join(
                    f"{_job_and_partition(r.job, r.partition)} (run {r.run_id[:8]})" for r in self.waiting_on
                )
            )
        return "; ".join(parts) or "nothing to do"


def _job_and_partition(job: str, partition: str | None) -> str:
    return f"{job} {partition}" if partition else job


def eval_partition(checkpoint: str, skill: str) -> str:
    """The eval_scores partition key as Dagster writes it (dimensions in name order: checkpoint|skill)."""
    return f"{checkpoint}|{skill}"


def retry_hint(hero: str) -> str:
    """How a person retries a failed step."""
    return f"after fixing the cause, `realm retry {hero}` (or re-execute the run in the Dagster UI)"


def unloadable_checkpoint(
    checkpoint_id: str, stored_path: str | None, deleted_at, home: Path
) -> tuple[Path | None, str | None]:
    """(its directory under `home`, why it cannot be loaded or None) for a checkpoint's ledger row."""
    from realm_pipeline.ledger import resolve_home_path
    from realm_pipeline.lm.weights import checkpoint_problem

    hint = (
        "evaluate another checkpoint, or retrain it with "
        f"`dg launch --assets checkpoints --partition {checkpoint_id}`"
    )
    if stored_path is None:
        when = f" at {deleted_at:%Y-%m-%d %H:%M}" if deleted_at is not None else ""
        return None, f"{checkpoint_id}: checkpoint directory missing (deleted by retention{when}); {hint}"
    directory = resolve_home_path(stored_path, home)
    problem = checkpoint_problem(directory)
    return directory, (f"{checkpoint_id}: {problem}; {hint}" if problem else None)


def decide_next(facts: HeroFacts) -> Decision:
    """What the hero needs next: eval sets, evals of its newest checkpoint, a rollup, its next segment,
    or why it stops (paused, at its budget, maxed out, a failed run).

    A step whose newest run is in flight is waited on, not requested again. A failed (or canceled) run
    stops the hero until a person acknowledges it (`realm retry`): then the step gets a new run key, so
    a sensor asks again instead of spending the old key forever.
    """
    newest = {(r.job, r.partition): r for r in facts.runs}
    steps: list[Step] = []
    waiting: list[RunOutcome] = []
    failed: list[RunOutcome] = []

    short: list[str] = []

    def want(step: Step) -> None:
        run = newest.get((step.job, step.partition))
        if run is None or run.status == SUCCEEDED:
            steps.append(step)
        elif run.status == IN_FLIGHT:
            waiting.append(run)
        elif run.disk_full and not run.acknowledged:
            # the disk filled: wait until the next segment fits again, then retry under a new key
            if facts.disk_short:
                short.append(facts.disk_short)
            else:
                steps.append(
                    replace(step, run_key=f"{step.run_key}#after-disk-full-{run.run_id[:8]}", automated=False)
                )
        elif run.acknowledged:  # a person asked: no automation condition re-asks for a failed run
            steps.append(
                replace(step, run_key=f"{step.run_key}#retry-after-{run.run_id[:8]}", automated=False)
            )
        else:
            failed.append(run)

    def decision(stop: str | None = None) -> Decision:
        if short and not failed:
            stop = f"waiting for free space: {short[0]}"
        if failed:
            stop = f"{failed[0].describe()}; {retry_hint(facts.hero)}"
            # The hero's status in the ledger names the failure: one `curriculum` run after it (not the
            # whole rollup: a hero that failed its first segment has nothing to rank or publish).
            due = max(r.ended_at or 0.0 for r in failed)
            if (facts.last_rollup_at or 0.0) < due and not any(s.job == ROLLUP_JOB for s in steps):
                want(Step(ROLLUP_JOB, None, f"rollup:failed:{failed[0].run_id}", assets=("curriculum",)))
        return Decision(
            facts.hero,
            tuple(steps),
            tuple(waiting),
            stop,
            tuple(failed),
            short[0] if short else None,
            facts.unloadable if stop == facts.unloadable else None,
        )

    if facts.unloadable:  # neither evaluated nor trained from: said before any run fails on it
        return decision(facts.unloadable)
    no_eval_set = [s for s in facts.skills if s not in facts.eval_sets_done]
    if no_eval_set:  # evals need the held-out items first: build them, train nothing yet
        for skill in no_eval_set:
            want(Step(EVAL_SETS_JOB, skill, f"eval_sets:{skill}", skill=skill))
        return decision()
    latest = facts.checkpoints[-1] if facts.checkpoints else None
    if latest is not None:
        unevaluated = [s for s in facts.skills if (latest, s) not in facts.evaluated]
        if unevaluated:
            for skill in unevaluated:
                partition = eval_partition(latest, skill)
                want(
                    Step(
                        EVAL_JOB,
                        partition,
                        f"eval:{partition}",
                        checkpoint=latest,
                        skill=skill,
                        automated=True,
                    )
                )
            return decision()
        if facts.last_rollup_at is None or (facts.last_eval_at or 0.0) > facts.last_rollup_at:
            # fully evaluated (or re-scored by a confirming eval since): refresh the hero sheet and the
            # ranks, under a key naming what changed since the checkpoint's first rollup
            key = "".join([f"rollup:{latest}", *(f"+confirm:{c}" for c in facts.confirmations)])
            want(Step(ROLLUP_JOB, None, key, checkpoint=latest, automated=True))
    if facts.paused:
        return decision("paused (`realm resume` lets it train again)")
    if len(facts.checkpoints) >= facts.segment_budget:
        return decision(f"at its segment budget ({facts.segment_budget} segments)")
    if facts.maxed_out_reason:
        past = facts.segments_past_call
        if past is None or past >= facts.past_cap:
            trained_on = f"; {past} segment(s) trained past the call" if facts.past_cap and past else ""
            return decision(f"maxed out: {facts.maxed_out_reason}{trained_on}")
        # past_cap: trains on so the call can be judged (it held if no level is earned after it)
    key = facts.next_checkpoint
    if facts.disk_short and not newest.get((TRAIN_JOB, key)):
        short.append(facts.disk_short)  # refused before it writes anything; the sensor asks again later
        return decision()
    want(Step(TRAIN_JOB, key, key, checkpoint=key))
    return decision()


def hero_facts(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    hero: str,
    *,
    eval_sets_done: Iterable[str],
    evaluated: Iterable[tuple[str, str]],
    last_eval_at: float | None,
    last_rollup_at: float | None,
    runs: Iterable[RunOutcome] = (),
    home: Path | None = None,
) -> HeroFacts:
    """The hero's facts: the ledger's part read from `con`, the Dagster instance's part passed in.

    With `home` (REALM_HOME), it also checks that its newest checkpoint can be loaded (its weights'
    headers) and that the next segment fits on the disk.
    """
    cfg = settings.heroes[hero]
    ckpts = hero_checkpoints(con, hero)
    state = curriculum_state(con, settings, hero)
    next_checkpoint = str(next_key(cfg, ckpts[-1]["step"] if ckpts else None))
    unloadable = None
    if home is not None and ckpts:
        unloadable = newest_checkpoint_problem(ckpts[-1], home)
    past_call = segments_past_call(state, cap_calls_of(con, hero, state)) if state.maxed_out else None
    return HeroFacts(
        hero=hero,
        skills=tuple(cfg.campaign.skills),
        checkpoints=tuple(c["checkpoint_id"] for c in ckpts),
        next_checkpoint=next_checkpoint,
        paused=hero_paused(con, hero),
        segment_budget=segment_budget(settings, hero),
        maxed_out_reason=state.maxed_out_reason if state.maxed_out else None,
        eval_sets_done=frozenset(eval_sets_done),
        evaluated=frozenset(evaluated),
        last_eval_at=last_eval_at,
        last_rollup_at=last_rollup_at,
        runs=tuple(runs),
        confirmations=confirmations_of(con, hero, ckpts[-1]["checkpoint_id"]) if ckpts else (),
        # the estimate reads the newest checkpoint's headers: not of one that cannot be loaded
        disk_short=None
        if home is None or unloadable
        else disk_shortfall(
            settings, hero, home, ckpts[-1]["checkpoint_id"] if ckpts else None, next_checkpoint
        ),
        unloadable=unloadable,
        past_cap=cfg.campaign.past_cap,
        segments_past_call=past_call,
    )


def newest_checkpoint_problem(row: dict, home: Path) -> str | None:
    """Why a hero's newest checkpoint (its ledger row) cannot be loaded, as the line that stops the
    campaign; None when its weights' headers agree with their files."""
    from realm_pipeline.ledger import resolve_home_path
    from realm_pipeline.lm.weights import checkpoint_problem

    cid = row["checkpoint_id"]
    if row["path"] is None:  # deleted by retention: its eval run says so, with the way out
        return None
    problem = checkpoint_problem(resolve_home_path(row["path"], home))
    if problem is None:
        return None
    return (
        f"its newest checkpoint {cid} cannot be loaded: {problem}; restore it, or retrain {cid} "
        "(the checkpoints asset with config retrain: true)"
    )


def disk_shortfall(
    settings: Settings, hero: str, home: Path, latest: str | None, next_checkpoint: str
) -> str | None:
    """Why the hero's next segment will not fit on the disk (free space below its estimate), or None."""
    from realm_pipeline.disk import DiskFull, require_free
    from realm_pipeline.training.plan import segment_disk_bytes

    cfg = settings.heroes[hero]
    root = home / "checkpoints" / hero
    out = root / next_checkpoint
    needed = segment_disk_bytes(
        cfg,
        settings.memory_profiles[cfg.memory_profile],
        parent_dir=root / latest if latest else None,
        output_dir=out,
    )
    if needed is None:
        return None
    try:
        require_free(out, needed, f"checkpoint {next_checkpoint}", remedy=DISK_REMEDY)
    except DiskFull as exc:
        return str(exc)
    return None


# What a person does about a full disk; the campaign (the sensor or `realm campaign`) then goes on.
DISK_REMEDY = (
    "free space (e.g. `realm retain --apply`, or move REALM_HOME to a larger disk) and the campaign "
    "resumes by itself"
)


def confirmations_of(con: duckdb.DuckDBPyConnection, hero: str, checkpoint_id: str) -> tuple[str, ...]:
    """The confirming verdicts recorded on `checkpoint_id` (`bench:v<baseline version>`), oldest first."""
    rows = con.execute(
        "SELECT bench, baseline_version FROM regression_checks WHERE hero = ? AND checkpoint_id = ? "
        "ORDER BY created_at, bench, baseline_version",
        [hero, checkpoint_id],
    ).fetchall()
    return tuple(f"{bench}:v{version}" for bench, version in rows)


def ground_truth(con: duckdb.DuckDBPyConnection, settings: Settings, hero: str) -> dict[str, dict] | None:
    """A simulated hero's ground truth per skill (simulation.oracle.skill_truth: the highest level it can
    hold, and the tokens that takes at its mean segment so far); None for a hero with a real model."""
    cfg = settings.heroes[hero]
    if cfg.base.kind != "simulated":
        return None
    from realm_pipeline.simulation.oracle import skill_truth

    (mean_tokens,) = con.execute("SELECT avg(tokens) FROM checkpoints WHERE hero = ?", [hero]).fetchone()
    params = cfg.base.params()
    threshold = settings.realm.progression.level_up_accuracy
    return {
        skill: skill_truth(
            params, skill, settings.skills[skill].level_cap, threshold, segment_tokens=mean_tokens
        ).to_json()
        for skill in cfg.campaign.skills
    }


def truth_summary(truth: dict[str, dict]) -> str:
    """One line of a simulated hero's ground truth (`ground_truth`), to hold realm's verdicts against."""
    parts = []
    for skill, t in sorted(truth.items()):
        if t["capped"]:
            above = f"with L{t['cap'] + 1} {t['above_accuracy']:.2f}"
            held = f"cap L{t['cap']} (held {t['held_accuracy']:.2f}, {above})"
        else:
            held = f"no cap (every level to L{t['level_cap']} holdable, {t['held_accuracy']:.2f})"
        tokens = "" if t["tokens"] is None else f", oracle holds it after {t['tokens']:,} tokens"
        parts.append(f"{skill} {held}{tokens}")
    return "; ".join(parts)
