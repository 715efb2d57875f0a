"""`checkpoints`: one training segment per dynamic partition `<hero>.<step>`, on the `gpu` pool (in the
run's process or a Pipes subprocess, as the memory profile's `launch` says)."""

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg

from realm_pipeline import ledger
from realm_pipeline.campaign import (
    DISK_REMEDY,
    curriculum_state,
    hero_checkpoints,
    hint_reason,
    learning_floors,
    next_mix,
    quest_examples,
    strain_state,
    unloadable_checkpoint,
)
from realm_pipeline.defs.owners import REALM_OWNERS
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.defs.training.workers import WORKER_TAG, worker_id
from realm_pipeline.disk import DiskFull, free_bytes, require_free
from realm_pipeline.training.plan import CheckpointKey, segment_command, segment_disk_bytes, segment_spec
from realm_pipeline.training.segment import (
    DISK_FULL_EXIT,
    HELDOUT_CHECK,
    PARENT_PID_ENV,
    heldout_check,
    result_values,
    run_segment,
)
from realm_pipeline.training.strain import effort

checkpoint_partitions = dg.DynamicPartitionsDefinition(name="checkpoints")

# What the Dagster UI plots over time for every checkpoint (the campaign at a glance).
PLOTTED = (
    "step",
    "tokens",
    "train_loss",
    "heldout_loss",
    "strain",
    "tokens_per_s",
    "wall_s",
    "peak_memory_bytes",
    "mirror_probes",  # the Mirror school: probes after the segment, misses, reflections made ...
    "mirror_misses",
    "mirror_examples",
    "reflections_trained",  # ... and the parent's reflections drawn into this segment
)


class CheckpointsConfig(dg.Config):
    """Run config of `checkpoints`: set `retrain` to train again a checkpoint the ledger already holds."""

    retrain: bool = False


@dg.asset(
    partitions_def=checkpoint_partitions,
    pool="gpu",
    group_name="training",
    owners=REALM_OWNERS,
    kinds={"pytorch"},
    # What a segment reads: every eval set (the training stream skips their prompts) and the quests. It
    # also reads the eval history of its hero's earlier checkpoints (the curriculum mix), which cannot be
    # a dependency: eval_scores depends on checkpoints, and Dagster's asset graph has no cycles.
    deps=[dg.AssetDep("eval_sets", partition_mapping=dg.AllPartitionMapping()), "quests"],
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
    check_specs=[
        dg.AssetCheckSpec(
            HELDOUT_CHECK,
            asset="checkpoints",
            description="The segment measured a finite loss on its held-out items (reported by the "
            "segment, through Pipes when it trains in a subprocess); NaN, inf or none is a red light.",
        )
    ],
)
def checkpoints(
    context: dg.AssetExecutionContext,
    config: CheckpointsConfig,
    realm: RealmResource,
    ledger_db: LedgerResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    """Trains one segment from the parent checkpoint (or the base model) and saves it with save_pretrained."""
    try:
        return _checkpoint(context, config, realm, ledger_db, pipes_subprocess_client)
    except BaseException as exc:
        # Left alone, the retry policy turns an interrupt into a retry: the segment would train on
        # against the stop (Ctrl-C once went 600 s unheard that way).
        if not _stop_requested(exc):
            raise
        raise _stopped(context, realm) from exc


def _stop_requested(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) is a stop: Ctrl-C, SIGTERM, Dagster's run termination."""
    from realm_pipeline.training.trainer import SegmentInterrupted

    stops = (dg.DagsterExecutionInterruptedError, KeyboardInterrupt, SegmentInterrupted)
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, stops):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _stopped(context: dg.AssetExecutionContext, realm: RealmResource) -> dg.Failure:
    """The end of a segment stopped on request: the run is canceled (as the UI's termination cancels it),
    the step not retried, and the resume save it left is where the next attempt goes on."""
    from realm_pipeline.training.trainer import resume_step

    key = CheckpointKey.parse(context.partition_key)
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.status not in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED):
        context.instance.report_run_canceling(run, message=f"checkpoint {key}: stopped on request")
    step = resume_step(realm.checkpoint_dir(key.hero, str(key)))
    kept = f"its resume save at step {step} is kept" if step else "it stopped before its first resume save"
    return dg.Failure(
        f"checkpoint {key}: stopped on request; {kept}, and its next attempt resumes from there",
        allow_retries=False,
    )


def _checkpoint(
    context: dg.AssetExecutionContext,
    config: CheckpointsConfig,
    realm: RealmResource,
    ledger_db: LedgerResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    key = CheckpointKey.parse(context.partition_key)
    settings = realm.settings
    if key.hero not in settings.heroes:
        raise dg.Failure(
            f"checkpoint {key}: no hero {key.hero!r} in {settings.config_dir / 'heroes'}", allow_retries=False
        )
    hero = settings.heroes[key.hero]
    profile = settings.memory_profiles[hero.memory_profile]

    with ledger_db.read() as con:
        recorded = hero_checkpoints(con, key.hero)
        earlier = [c for c in recorded if c["step"] < key.step]
        # the curriculum as its parent left it, so a retrained checkpoint gets the mix it first had
        state = curriculum_state(con, settings, key.hero, before_step=key.step)
        strain = strain_state(con, key.hero, state)
        mix = next_mix(con, settings, key.hero, state, strain.hint)
        quests = quest_examples(con)
    existing = next((c for c in recorded if c["step"] == key.step), None)
    if existing is not None and not config.retrain:
        raise dg.Failure(already_trained_message(key, existing["sha256"]), allow_retries=False)
    parent = earlier[-1] if earlier else None
    if parent is None and key.step != hero.campaign.segment_steps:
        raise dg.Failure(
            f"checkpoint {key}: no parent checkpoint of {key.hero} before step {key.step} in the ledger; "
            f"materialize {key.hero}.{hero.campaign.segment_steps:06d} first",
            allow_retries=False,
        )
    parent_dir = realm.checkpoint_dir(key.hero, parent["checkpoint_id"]) if parent else None
    if parent is not None:
        # a parent deleted or cut short fails the same way every attempt: said once, never retried
        _, problem = unloadable_checkpoint(
            parent["checkpoint_id"],
            str(parent_dir) if parent["path"] is not None else None,
            parent["deleted_at"],
            realm.home_path,
        )
        if problem is not None:
            raise dg.Failure(f"checkpoint {key}: its parent {problem}", allow_retries=False)
    output_dir = realm.checkpoint_dir(key.hero, str(key))
    from realm_pipeline.lm.budgets import BudgetError

    try:
        spec = segment_spec(
            hero,
            profile,
            key,
            output_dir=output_dir,
            parent_dir=parent_dir,
            mix=mix,
            quests=quests,
            eval_items_per_level={name: s.eval_items_per_level for name, s in settings.skills.items()},
            reflections=_parent_reflections(parent_dir) if "mirror" in hero.schools else None,
            loss_floors=learning_floors(state, strain),
            # each skill's next level too: its held-out loss before it is learned (plastic gain)
            measure_levels=[(n, min(s.level + 1, s.cap)) for n, s in state.skills.items() if not s.complete],
        )
    except BudgetError as exc:  # a level or quest line longer than the hero's ceiling: never truncated
        raise dg.Failure(f"checkpoint {key}: {exc}", allow_retries=False) from exc
    _refuse_if_it_will_not_fit(spec, hero, profile)
    _refuse_if_the_disk_cannot_hold_it(key, hero, profile, parent_dir, output_dir)

    from realm_pipeline.training.trainer import RESULT_FILE, spec_to_json

    if existing is not None:
        # retrain on purpose: without its result file the saved segment is not adopted; its weights stay
        # on disk until the new ones are swapped in whole
        (output_dir / RESULT_FILE).unlink(missing_ok=True)
        context.log.info(f"{key}: retraining on request (was sha256 {(existing['sha256'] or '?')[:12]})")
    spec_dict = json.loads(spec_to_json(spec))
    context.log.info(
        f"{key}: parent {parent['checkpoint_id'] if parent else 'base'}; mix {spec.mix}; "
        f"row length {spec.max_length} (ceiling {hero.training.max_length}); schools {hero.schools}; "
        f"strain hint {strain.hint.value if strain.hint else 'none'} "
        f"({hint_reason(strain, hero.training.strain_hint)})"
    )
    if WORKER_TAG not in context.run.tags:  # a launcher's run: record its worker, as `realm` does its own
        context.instance.add_run_tags(context.run_id, {WORKER_TAG: worker_id()})
    if hero.base.kind == "simulated":  # no model and no torch: the simulator consumes the same stream
        result, check_results = _train_simulated(context, key, spec)
    elif profile.launch == "in_process":
        result, check_results = _train_in_process(context, key, spec_dict, output_dir)
    else:
        command = segment_command(
            spec, profile, config_dir=settings.config_dir, work_dir=output_dir.with_name(f".{key}.launch")
        )
        result, check_results = _train_in_subprocess(
            context, pipes_subprocess_client, key, command, spec_dict, output_dir
        )
    strains = [c["strain"] for c in earlier] + [result["strain"]]
    cumulative_effort = effort([s for s in strains if s is not None])  # a simulated hero has no strain
    row = {
        "checkpoint_id": str(key),
        "hero": key.hero,
        "step": key.step,
        "segment": len(earlier) + 1,
        "parent_id": parent["checkpoint_id"] if parent else None,
        "sha256": result["sha256"],
        "tokens": result["tokens"],
        "train_loss": result["train_loss"],
        "heldout_loss": result.get("heldout_loss"),
        "strain": result["strain"],
        "zone": result["zone"],
        "effort": cumulative_effort,
        "tokens_per_s": result["tokens_per_s"],
        "wall_s": result["wall_s"],
        "gpu_seconds": result["wall_s"] if profile.device == "cuda" else 0.0,
        "peak_memory_bytes": result["peak_memory_bytes"],
        "path": ledger.home_relative(output_dir, realm.home_path),  # a copied home stays whole
        "host": socket.gethostname(),
        "spec_json": json.dumps(spec_dict, sort_keys=True),
        "created_at": datetime.now(UTC).replace(tzinfo=None),
    }
    with ledger_db.get_connection() as con:
        # One transaction: the row, its level losses and the tokens it trained land together or not at all.
        con.execute("BEGIN TRANSACTION")
        try:
            # Keyed by checkpoint_id: re-materializing replaces the row, never adds a second one.
            ledger.upsert(con, "checkpoints", [row])
            ledger.upsert(con, "level_losses", _level_loss_rows(key, result.get("level_losses") or {}))
            # what the segment really trained per skill level (quests, reflections have no level)
            con.execute("DELETE FROM segment_tokens WHERE checkpoint_id = ?", [str(key)])
            ledger.upsert(con, "segment_tokens", _segment_token_rows(key, result.get("trained_tokens") or {}))
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    metadata = {k: result[k] for k in PLOTTED if result.get(k) is not None}
    metadata.update(
        # the campaign's step (the subprocess counts the segment's own steps, the same every segment)
        step=key.step,
        segment_steps=result["step"],
        checkpoint_id=str(key),
        parent=row["parent_id"] or "base",
        path=dg.MetadataValue.path(str(output_dir)),
        sha256=result["sha256"],
        zone=result["zone"],
        effort=cumulative_effort,
        mix=dg.MetadataValue.json([list(m) for m in spec.mix]),
        max_length=spec.max_length,
        schedule=spec.schedule,  # the LR schedule across segments; optimizer_carried: the parent's state
        optimizer_carried=bool(result.get("optimizer_carried")),
        launch=profile.launch,  # where it trained: an in-process peak_memory_bytes includes the run's own
        schools=", ".join(hero.schools),
        strain_hint=strain.hint.value if strain.hint else "none",
    )
    return dg.MaterializeResult(
        metadata=metadata,
        data_version=dg.DataVersion(result["sha256"]),
        check_results=check_results,
    )


def _disk_full(key: CheckpointKey, output_dir: Path) -> dg.Failure:
    """The one-line failure of a segment whose write hit ENOSPC (retrying fails the same way: none)."""
    return dg.Failure(
        f"checkpoint {key}: disk full (ENOSPC) while the segment wrote to {output_dir} "
        f"({free_bytes(output_dir)} bytes free now); nothing half-written is left and its last save is "
        f"kept: {DISK_REMEDY}",
        allow_retries=False,  # the campaign waits for free space instead
    )


def _train_in_process(
    context: dg.AssetExecutionContext, key: CheckpointKey, spec_dict: dict, output_dir: Path
) -> tuple[dict[str, Any], list[dg.AssetCheckResult]]:
    """Train the segment inside this run's process (`launch: in_process`): its result and check."""
    from realm_pipeline.training.stopping import stop_on_signals
    from realm_pipeline.training.trainer import torch_state_kept

    try:
        # Dagster delivers Ctrl-C, SIGTERM and its run termination as SIGINT to this process: the first
        # stops the segment between two steps with a save there, a second one at once.
        with torch_state_kept(), stop_on_signals(_stop_at_once) as stop:
            trained = run_segment(spec_dict, context.log.info, stop)
    except DiskFull as exc:
        raise _disk_full(key, output_dir) from exc
    passed, check_metadata = heldout_check(trained)
    check = dg.AssetCheckResult(
        check_name=HELDOUT_CHECK, passed=passed, severity=dg.AssetCheckSeverity.ERROR, metadata=check_metadata
    )
    return result_values(trained), [check]


def _train_simulated(
    context: dg.AssetExecutionContext, key: CheckpointKey, spec
) -> tuple[dict[str, Any], list[dg.AssetCheckResult]]:
    """Train a simulated hero's segment (simulation.segment): its result, and the held-out check, which
    has no loss to judge (a simulated hero has no model; its accuracy is its state)."""
    from realm_pipeline.simulation.segment import simulate_segment

    try:
        result = simulate_segment(spec)
    except ValueError as exc:  # an unreadable parent state fails the same way every attempt
        raise dg.Failure(f"checkpoint {key}: {exc}", allow_retries=False) from exc
    context.log.info(f"{key}: simulated segment: {result['tokens']} tokens {result['trained_tokens']}")
    check = dg.AssetCheckResult(
        check_name=HELDOUT_CHECK,
        passed=True,
        metadata={"heldout_loss": "none: a simulated hero has no model to measure a loss of"},
    )
    return result, [check]


def _stop_at_once(signum: int) -> NoReturn:
    """A second stop signal during an in-process segment: Dagster's interrupt, raised where the code is."""
    raise dg.DagsterExecutionInterruptedError()


def _train_in_subprocess(
    context: dg.AssetExecutionContext,
    client: dg.PipesSubprocessClient,
    key: CheckpointKey,
    command: list[str],
    spec_dict: dict,
    output_dir: Path,
) -> tuple[dict[str, Any], list[dg.AssetCheckResult]]:
    """Train the segment in a Pipes subprocess (`launch: subprocess`): the result and check it reported."""
    try:
        invocation = client.run(
            command=command,
            context=context,
            extras={"spec": spec_dict},
            # the segment exits when this process dies (kill -9, OOM): no orphan trains on unrecorded
            env={PARENT_PID_ENV: str(os.getpid())},
        )
    except dg.DagsterPipesExecutionError as exc:
        # Dagster's message is "External execution process failed with code N"
        if str(exc).rstrip().endswith(f"code {DISK_FULL_EXIT}"):
            raise _disk_full(key, output_dir) from exc
        raise
    reported = invocation.get_materialize_result()
    result = {k: (v.value if isinstance(v, dg.MetadataValue) else v) for k, v in reported.metadata.items()}
    return result, list(reported.check_results or [])


def already_trained_message(key: CheckpointKey, sha256: str | None) -> str:
    """The one line that refuses to record a checkpoint the ledger already holds, with the way to retrain it."""
    retrain = json.dumps({"ops": {"checkpoints": {"config": {"retrain": True}}}})
    return (
        f"checkpoint {key} is already trained (sha256 {(sha256 or '?')[:12]}); nothing was recorded. To train it again "
        f"on purpose: dagster asset materialize -m realm_pipeline.definitions --select checkpoints "
        f"--partition {key} --config-json '{retrain}'"
    )


def _parent_reflections(parent_dir) -> list:
    """The Mirror reflections the parent checkpoint left; a corrupt file fails the step, naming it."""
    from realm_pipeline.training.sparring import load_reflections

    try:
        return load_reflections(parent_dir)
    except ValueError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc


def _level_loss_rows(key: CheckpointKey, level_losses: dict) -> list[dict]:
    """Ledger rows of the segment's per-level held-out losses ("skill@level" -> loss)."""
    rows = []
    for name, loss in sorted(level_losses.items()):
        skill, level = name.rsplit("@", 1)
        rows.append(
            {
                "checkpoint_id": str(key),
                "hero": key.hero,
                "step": key.step,
                "skill": skill,
                "level": int(level),
                "heldout_loss": float(loss),
            }
        )
    return rows


def _segment_token_rows(key: CheckpointKey, trained_tokens: dict) -> list[dict]:
    """Ledger rows of the tokens the segment trained per skill level ("skill@level" -> tokens)."""
    rows = []
    for name, tokens in sorted(trained_tokens.items()):
        skill, sep, level = name.rpartition("@")
        if not sep or not level.isdigit():
            continue  # quests, Mirror reflections: not a skill level
        rows.append(
            {
                "checkpoint_id": str(key),
                "hero": key.hero,
                "step": key.step,
                "skill": skill,
                "level": int(level),
                "tokens": int(tokens),
            }
        )
    return rows


def _refuse_if_the_disk_cannot_hold_it(key, hero, profile, parent_dir, output_dir) -> None:
    """Refuse, with the numbers, a segment whose checkpoint and resume save will not fit on the disk."""
    needed = segment_disk_bytes(hero, profile, parent_dir=parent_dir, output_dir=output_dir)
    if needed is None:
        return
    try:
        require_free(output_dir, needed, f"checkpoint {key}", remedy=DISK_REMEDY)
    except DiskFull as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc


def _refuse_if_it_will_not_fit(spec, hero, profile) -> None:
    """Refuse, with the numbers, a segment that cannot run or fit on its device, before the subprocess starts."""
    if profile.device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise dg.Failure(
            f"hero {hero.name}: memory profile {profile.name} needs CUDA and this machine has none "
            f"(use a cpu profile such as cpu_tiny, or run on a GPU machine)",
            allow_retries=False,
        )
    from realm_pipeline.training.memory import WillNotFit, check_fits, estimate_memory, model_shape_for

    if hero.base.kind == "config":
        hf_config = {"vocab_size": 256, **hero.base.config}  # the character vocab is a few hundred at most
    else:
        from transformers import AutoConfig

        try:
            hf_config = AutoConfig.from_pretrained(
                hero.base.path or hero.base.model_id, local_files_only=True
            ).to_dict()
        except OSError:
            return  # weights absent: the subprocess fails at once with HeroWeightsMissing and the fix
    shape = model_shape_for(hf_config)
    est = estimate_memory(
        shape["n_params"],
        method=spec.method,
        optimizer=spec.optimizer,
        batch_size=spec.batch_size,
        seq_len=spec.max_length,
        hidden_size=shape["hidden_size"],
        num_layers=shape["num_layers"],
        vocab_size=shape.get("vocab_size") or 512,
        gradient_checkpointing=spec.gradient_checkpointing,
    )
    available = torch.cuda.get_device_properties(0).total_memory
    if profile.vram_gb is not None:
        available = min(available, int(profile.vram_gb * 2**30))
    try:
        check_fits(est, available, f"{torch.cuda.get_device_name(0)} under profile {profile.name}")
    except WillNotFit as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
