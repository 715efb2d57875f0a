"""`retention_job`: keep the newest k and best k checkpoints of each hero, and everything still needed
(the champion, each level-up's checkpoint, what queued or running work needs)."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from realm_pipeline.defs.resources import LedgerResource, RealmResource

# Runs whose checkpoints must survive: not finished yet (queued, starting or running).
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class RetentionConfig(dg.Config):
    """How many checkpoints to keep per hero; dry_run (the default) deletes nothing."""

    # at least 1: a hero's newest checkpoint is the parent of its next segment
    keep_newest: int = Field(3, ge=1)
    keep_best: int = Field(3, ge=0)
    dry_run: bool = True


def unfinished_partitions(instance: dg.DagsterInstance) -> tuple[set[str], set[str]]:
    """(checkpoint keys being trained, checkpoint ids being evaluated) by queued or running runs."""
    training, evaluating = set(), set()
    for run in instance.get_runs(filters=dg.RunsFilter(job_name="train_job", statuses=UNFINISHED)):
        if run.tags.get("dagster/partition"):
            training.add(run.tags["dagster/partition"])
    for run in instance.get_runs(filters=dg.RunsFilter(job_name="eval_job", statuses=UNFINISHED)):
        if run.tags.get("dagster/partition/checkpoint"):
            evaluating.add(run.tags["dagster/partition/checkpoint"])
    return training, evaluating


@dg.op
def apply_checkpoint_retention(
    context: dg.OpExecutionContext, config: RetentionConfig, realm: RealmResource, ledger_db: LedgerResource
) -> dg.Output:
    """Deletes (or, in a dry run, lists) checkpoint directories nothing needs; the ledger marks them deleted."""
    from realm_pipeline.training.retention import CheckpointInfo, apply_retention, plan_retention

    training, evaluating = unfinished_partitions(context.instance)
    with ledger_db.read() as con:
        rows = con.execute(
            "SELECT checkpoint_id, hero, step FROM checkpoints WHERE deleted_at IS NULL ORDER BY hero, step"
        ).fetchall()
        scores: dict[str, dict[str, float | None]] = {}
        for bench, lane, accuracy in con.execute(
            "SELECT bench, lane, accuracy FROM leaderboard_rows"
        ).fetchall():
            scores.setdefault(lane, {})[bench] = accuracy
        # what the leaderboard (and so the mirror) points at: every bench leader and hero champion
        referenced = {
            r[0]
            for r in con.execute("SELECT lane FROM leaderboard_rows WHERE rank = 1 OR champion").fetchall()
        }
        champions = dict(
            con.execute("SELECT hero, champion FROM hero_state WHERE champion IS NOT NULL").fetchall()
        )
        # each level-up's checkpoint: a protocol change re-scores it, so its files must stay
        level_ups: dict[str, str] = {}
        for cid, earned in con.execute(
            "SELECT checkpoint_id, string_agg(skill || ' L' || level, ', ' ORDER BY skill, level) "
            "FROM level_ups GROUP BY checkpoint_id"
        ).fetchall():
            level_ups[cid] = earned
    deleted: list[str] = []
    for hero in sorted({r[1] for r in rows}):
        plan = plan_retention(
            [CheckpointInfo(cid, h, step, scores=scores.get(cid, {})) for cid, h, step in rows if h == hero],
            keep_newest=config.keep_newest,
            keep_best=config.keep_best,
            referenced=referenced | set(champions.values()),
            champion=champions.get(hero),
            training={k for k in training if k.startswith(f"{hero}.")},
            evaluating=evaluating,
            level_ups=level_ups,
        )
        root = realm.home_path / "checkpoints"
        paths = apply_retention(plan, root, dry_run=True)  # checks every path before anything changes
        if not config.dry_run and plan.delete:
            # The ledger first: if a deletion below fails, the ledger names no path that is gone.
            with ledger_db.get_connection() as con:
                now = datetime.now(UTC).replace(tzinfo=None)
                con.executemany(
                    "UPDATE checkpoints SET path = NULL, deleted_at = ? WHERE checkpoint_id = ?",
                    [[now, cid] for cid in plan.delete],
                )
            paths = apply_retention(plan, root, dry_run=False)
        deleted += [str(p) for p in paths]
        for cid in plan.delete:
            context.log.info(f"{'would delete' if config.dry_run else 'deleted'} {cid}: {plan.reasons[cid]}")
    return dg.Output(
        len(deleted),
        metadata={
            "dry_run": config.dry_run,
            "checkpoints": len(deleted),
            "paths": dg.MetadataValue.json(deleted),
        },
    )


@dg.job(
    description="Delete checkpoints outside the keep-newest/keep-best sets (a dry run unless configured)."
)
def retention_job() -> None:
    """Checkpoint retention (dry run unless configured otherwise)."""
    apply_checkpoint_retention()
