"""`eval_scores`: one checkpoint evaluated on one skill, on the `gpu` pool."""

import contextlib
import json
import time
from datetime import UTC, datetime

import dagster as dg

from realm_pipeline import ledger
from realm_pipeline.campaign import curriculum_state, levels_to_evaluate, unloadable_checkpoint
from realm_pipeline.defs.automation import EVAL_PROTOCOLS, eval_scores_condition
from realm_pipeline.defs.evaluation.eval_sets import skills_code_version
from realm_pipeline.defs.owners import REALM_OWNERS
from realm_pipeline.defs.partitions import skill_partitions
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.defs.training.assets import checkpoint_partitions
from realm_pipeline.evaluation.regressions import CONFIRM_TAG, split_bench
from realm_pipeline.evaluation.scores import EVAL_SAMPLE, declare_protocols

eval_partitions = dg.MultiPartitionsDefinition(
    {"checkpoint": checkpoint_partitions, "skill": skill_partitions}
)
EVAL_SET_CHECK = "eval_set_matches_stored_hash"


@dg.asset(
    partitions_def=eval_partitions,
    pool="gpu",
    group_name="evaluation",
    owners=REALM_OWNERS,
    kinds={"pytorch", "duckdb"},
    # Dagster maps each dimension to the upstream asset with the same partitions (checkpoint, skill);
    # eval_protocols (unpartitioned) is the protocol in force every partition is scored under.
    deps=["checkpoints", "eval_sets", EVAL_PROTOCOLS],
    # the scorer's version is part of it: a bumped scorer shows every score as stale (code version changed)
    code_version=skills_code_version(),
    automation_condition=eval_scores_condition(),
    check_specs=[
        dg.AssetCheckSpec(
            EVAL_SET_CHECK,
            asset="eval_scores",
            blocking=True,
            description="Before scoring: the items the generator makes now hash to the eval set stored "
            "by eval_sets (else nothing is scored; materialize eval_sets of the skill).",
        )
    ],
)
def eval_scores(context: dg.AssetExecutionContext, realm: RealmResource, ledger_db: LedgerResource):
    """Evaluates the checkpoint on the skill's mastered, current and next levels, on the fixed eval items."""
    from realm_pipeline.evaluation.backends import BackendError, build_backend
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import eval_items, eval_set_hash, reserve_items

    keys = context.partition_key.keys_by_dimension  # type: ignore[union-attr]
    checkpoint_id, skill_name = keys["checkpoint"], keys["skill"]
    settings = realm.settings
    with ledger_db.read() as con:
        ckpt = con.execute(
            "SELECT hero, step, sha256, path, deleted_at FROM checkpoints WHERE checkpoint_id = ?",
            [checkpoint_id],
        ).fetchone()
        if ckpt is None:
            raise dg.Failure(
                f"eval {checkpoint_id} x {skill_name}: checkpoint not in the ledger; train it first",
                allow_retries=False,
            )
        hero, step, sha256, stored_path, deleted_at = ckpt
        # deleted, missing or truncated: one line before any model is loaded, and never retried
        directory, problem = unloadable_checkpoint(checkpoint_id, stored_path, deleted_at, realm.home_path)
        if problem is not None:
            raise dg.Failure(f"eval {checkpoint_id} x {skill_name}: {problem}", allow_retries=False)
        path = str(directory)
        state = curriculum_state(con, settings, hero, before_step=step)
        stored = dict(
            con.execute("SELECT level, eval_set_hash FROM eval_sets WHERE skill = ?", [skill_name]).fetchall()
        )
        stored_reserve = dict(
            con.execute("SELECT level, reserve_hash FROM eval_sets WHERE skill = ?", [skill_name]).fetchall()
        )
    skill = get_skill(skill_name)
    cap = settings.skills[skill_name].level_cap
    hero_cfg = settings.heroes[hero]
    uniform = hero_cfg.campaign.uniform_levels or 0  # a uniform mix trains (and so scores) levels 1..it
    training = hero_cfg.training
    ahead = training.preview_levels if training.preview_share > 0 else 1  # the levels a preview trains
    levels = levels_to_evaluate(state, skill_name, cap, trained_up_to=uniform, ahead=ahead)
    eval_cfg = settings.realm.eval
    profile = settings.memory_profiles[hero_cfg.memory_profile]
    count = settings.skills[skill_name].eval_items_per_level
    bench = context.run.tags.get(CONFIRM_TAG)
    if bench is None:
        items_by_level = {level: eval_items(skill, level, count) for level in sorted(set(levels))}
        stored_by_level = stored
    else:  # a confirming re-run scores the bench level's reserve sample, never the eval set again
        confirm_level = split_bench(bench)[1]
        items_by_level = {confirm_level: reserve_items(skill, confirm_level, count)}
        stored_by_level = stored_reserve
    hashes = {level: eval_set_hash(items) for level, items in items_by_level.items()}
    # Checked before any scoring: a score against items other than the stored set would compare unlike things.
    mismatched = {
        f"L{lv}": {"stored": stored_by_level.get(lv), "generator": h}
        for lv, h in hashes.items()
        if stored_by_level.get(lv) != h
    }
    check_metadata = {
        "levels": dg.MetadataValue.json(sorted(hashes)),
        "skill_version": skill.version,
        "sample": "reserve" if bench else "eval",
    }
    if mismatched:
        yield dg.AssetCheckResult(
            check_name=EVAL_SET_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={**check_metadata, "mismatched": dg.MetadataValue.json(mismatched)},
        )
        raise dg.Failure(
            f"eval set of {skill_name} at {', '.join(mismatched)} in the ledger differs from the generator's "
            f"({json.dumps(mismatched)}): materialize eval_sets[{skill_name}] first",
            allow_retries=False,
        )
    check_result = dg.AssetCheckResult(check_name=EVAL_SET_CHECK, passed=True, metadata=check_metadata)
    try:  # local transformers, the OpenAI-compatible server the hero's YAML names, or the simulator
        backend = build_backend(
            hero_cfg.eval,
            path,
            batch_size=eval_cfg.batch_size,
            max_new_tokens=eval_cfg.max_new_tokens,
            device=profile.device,
            checkpoint_id=checkpoint_id,
            # a simulated hero answers these items itself (no model: its state decides each answer)
            simulated=hero_cfg.base.params() if hero_cfg.base.kind == "simulated" else None,
            skill=skill_name,
            items=items_by_level,
        )
    except BackendError as exc:
        raise dg.Failure(f"eval {checkpoint_id} x {skill_name}: {exc}", allow_retries=False) from exc
    scored = _Scorer(
        settings,
        checkpoint_id,
        hero,
        step,
        sha256,
        skill,
        backend,
        eval_cfg,
        profile.device,
        ceiling_name=f"{settings.config_dir / 'realm.yaml'} eval.max_new_tokens",
    )
    # A served eval first puts this checkpoint into the server and proves /v1/models lists its name.
    with _serving(hero_cfg.eval, backend, checkpoint_id, path):
        if bench is not None:
            confirmed = _confirm(
                context, scored, ledger_db, bench, items_by_level, settings.realm.regression.tau, check_result
            )
        else:
            scores, generations, metadata = [], [], {}
            for level, items in items_by_level.items():
                row, gens, result = scored.level(level, items, EVAL_SAMPLE)
                scores.append(row)
                generations.extend(gens)
                metadata[f"L{level}_accuracy"] = result.accuracy
                metadata[f"L{level}_max_new_tokens"] = scored.budgets[level]
    if bench is not None:
        yield confirmed
        return
    with ledger_db.get_connection() as con:
        # Keyed by (checkpoint, skill, level, fingerprint): a re-run with the same fingerprint replaces.
        con.execute("BEGIN TRANSACTION")
        declare_protocols(con, settings)  # what "current" means is the running configuration's protocol
        ledger.upsert(con, "eval_scores", scores)
        ledger.upsert(con, "eval_generations", generations)
        con.execute("COMMIT")
    current = state.skills[skill_name].level if skill_name in state.skills else 1
    current_acc = next((s["accuracy"] for s in scores if s["level"] == current), None)
    yield dg.MaterializeResult(
        metadata={
            "checkpoint_id": checkpoint_id,
            "skill": skill_name,
            "current_level": current,
            "accuracy_at_current_level": current_acc,
            "levels": dg.MetadataValue.json(sorted(set(levels))),
            "backend": backend.kind,
            **metadata,
        },
        check_results=[check_result],
    )


@contextlib.contextmanager
def _serving(hero_eval, backend, checkpoint_id: str, path: str):
    """The served checkpoint for an `openai` backend (refused unless proven), nothing for a local one."""
    from realm_pipeline.evaluation.backends import BackendError, OpenAICompatibleBackend, served_checkpoint

    if not isinstance(backend, OpenAICompatibleBackend):
        yield backend
        return
    try:
        with served_checkpoint(hero_eval, backend, checkpoint_id, path) as served:
            yield served
    except BackendError as exc:
        raise dg.Failure(f"eval {checkpoint_id}: {exc}", allow_retries=False) from exc


class _Scorer:
    """Scores one checkpoint on one skill, level by level, into eval_scores / eval_generations rows."""

    def __init__(
        self, settings, checkpoint_id, hero, step, sha256, skill, backend, eval_cfg, device, *, ceiling_name
    ):
        self.settings = settings
        self.checkpoint_id, self.hero, self.step, self.sha256 = checkpoint_id, hero, step, sha256
        self.skill, self.backend, self.eval_cfg, self.device = skill, backend, eval_cfg, device
        self.ceiling_name = ceiling_name
        self.budgets: dict[int, int] = {}  # max_new_tokens each level was decoded with

    def level(self, level: int, items: list, sample: str) -> tuple[dict, list[dict], object]:
        """Evaluate `items` of `level`: the score row (with fingerprint and protocol), generations, result.

        The level generates its longest reference answer in the checkpoint's own tokens + the margin;
        a level needing more than realm.yaml's ceiling fails here rather than score truncated answers."""
        from realm_pipeline.evaluation.backends import TruncatedAnswerError
        from realm_pipeline.evaluation.fingerprint import fingerprint
        from realm_pipeline.evaluation.runner import evaluate_items
        from realm_pipeline.evaluation.scores import protocol_key, protocol_spec, skill_scoring
        from realm_pipeline.lm.budgets import BudgetError, eval_max_new_tokens
        from realm_pipeline.skills.heldout import eval_set_hash

        set_hash = eval_set_hash(items)
        try:
            budget = eval_max_new_tokens(
                self.backend.tokenizer,
                items,
                margin=self.eval_cfg.answer_margin_tokens,
                ceiling=self.eval_cfg.max_new_tokens,
                ceiling_name=self.ceiling_name,
            )
        except BudgetError as exc:
            raise dg.Failure(f"eval {self.checkpoint_id}: {exc}", allow_retries=False) from exc
        self.backend.max_new_tokens = budget  # both backends read it per call; describe() reports it
        self.budgets[level] = budget
        started = time.perf_counter()
        scoring = skill_scoring(self.settings, self.skill.name)
        try:
            result = evaluate_items(self.backend, self.skill, items, scoring)
        except TruncatedAnswerError as exc:  # refused with the reason, never counted as wrong answers
            raise dg.Failure(
                f"eval {self.checkpoint_id} x {self.skill.name} L{level} refused: {exc}", allow_retries=False
            ) from exc
        seconds = time.perf_counter() - started
        fp, fp_dict = fingerprint(
            eval_set_hash=set_hash,
            skill_name=self.skill.name,
            skill_version=self.skill.version,
            decoding={"greedy": True, "max_new_tokens": budget},
            dtype=self.backend.describe().get("dtype", "auto"),
            checkpoint_sha256=self.sha256,
            # The weights are identified once, by checkpoint_sha256 (which the protocol leaves out); the
            # backend's own copy of that hash would make every checkpoint a protocol of its own.
            backend={k: v for k, v in self.backend.describe().items() if k != "model_sha256"},
            scoring=scoring,
        )
        row = {
            "checkpoint_id": self.checkpoint_id,
            "hero": self.hero,
            "step": self.step,
            "skill": self.skill.name,
            "level": level,
            "fingerprint": fp,
            "n": result.n,
            "correct": result.correct,
            "accuracy": result.accuracy,
            "partial": result.partial,
            "eval_set_hash": set_hash,
            "skill_version": self.skill.version,
            "backend": self.backend.describe().get("kind", "local"),
            "gpu_seconds": seconds if self.device == "cuda" else 0.0,
            "fingerprint_json": json.dumps(fp_dict, sort_keys=True),
            "created_at": datetime.now(UTC).replace(tzinfo=None),
            # how it was measured, from the configuration: the key `protocols_in_force` declares
            "protocol": protocol_key(
                protocol_spec(self.settings, self.hero, self.skill.name, self.skill.version, set_hash)
            ),
            "sample": sample,
        }
        generations = [
            {
                "checkpoint_id": self.checkpoint_id,
                "skill": self.skill.name,
                "level": level,
                "item_index": idx,
                "fingerprint": fp,
                "output": output,
                "correct": correct,
                "partial": partial,
            }
            for idx, output, correct, partial in result.rows
        ]
        return row, generations, result


def _confirm(
    context: dg.AssetExecutionContext,
    scorer: _Scorer,
    ledger_db: LedgerResource,
    bench: str,
    items_by_level: dict[int, list],
    tau: float,
    check_result: dg.AssetCheckResult,
) -> dg.MaterializeResult:
    """A confirming re-run: score the bench's level on its (hash-checked) reserve sample, judge the drop."""
    from realm_pipeline.evaluation.regressions import record_check
    from realm_pipeline.evaluation.scores import RESERVE_SAMPLE

    tags = context.run.tags
    skill_name, level = split_bench(bench)
    if skill_name != scorer.skill.name:
        raise dg.Failure(
            f"confirming run for {bench} launched on skill {scorer.skill.name}", allow_retries=False
        )
    items = items_by_level[level]
    baseline = float(tags["realm/baseline"])
    row, gens, result = scorer.level(level, items, RESERVE_SAMPLE)
    with ledger_db.get_connection() as con:
        con.execute("BEGIN TRANSACTION")
        ledger.upsert(con, "eval_scores", [row])
        ledger.upsert(con, "eval_generations", gens)
        confirmed = record_check(
            con,
            hero=scorer.hero,
            bench=bench,
            baseline_version=int(tags["realm/baseline_version"]),
            checkpoint_id=scorer.checkpoint_id,
            step=scorer.step,
            baseline=baseline,
            eval_accuracy=float(tags["realm/accuracy"]) if "realm/accuracy" in tags else None,
            reserve_accuracy=result.accuracy,
            tau=tau,
            now=row["created_at"],
        )
        con.execute("COMMIT")
    verdict = "confirmed" if confirmed else "refuted"
    context.log.info(
        f"{scorer.hero} {bench}: drop from {baseline:.3f} {verdict} by the reserve sample "
        f"({result.accuracy:.3f} on {result.n} items)"
    )
    return dg.MaterializeResult(
        metadata={
            "checkpoint_id": scorer.checkpoint_id,
            "confirming": bench,
            "baseline": baseline,
            "reserve_accuracy": result.accuracy,
            "verdict": verdict,
        },
        check_results=[check_result],
    )
