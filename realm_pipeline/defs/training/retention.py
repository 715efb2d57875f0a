"""`retention_job`: keep the newest k and best k checkpoints of each hero, and everything referenced."""

import dagster as dg

from realm_pipeline.defs.resources import LedgerResource, RealmResource


class RetentionConfig(dg.Config):
    """How many checkpoints to keep per hero; dry_run (the default) deletes nothing."""

    keep_newest: int = 3
    keep_best: int = 3
    dry_run: bool = True


@dg.op
def apply_checkpoint_retention(
    context: dg.OpExecutionContext, config: RetentionConfig, realm: RealmResource, ledger_db: LedgerResource
) -> dg.Output:
    """Deletes (or, in a dry run, lists) checkpoint directories nothing needs; never a champion."""
    from realm_pipeline.training.retention import CheckpointInfo, apply_retention, plan_retention

    with ledger_db.read() as con:
        rows = con.execute(
            """
            SELECT c.checkpoint_id, c.hero, c.step, avg(l.accuracy) AS score
            FROM checkpoints c LEFT JOIN leaderboard_rows l ON l.lane = c.checkpoint_id
            GROUP BY ALL ORDER BY c.hero, c.step
            """
        ).fetchall()
        # what the leaderboard (and so the mirror) points at: every bench leader and hero champion
        referenced = {
            r[0]
            for r in con.execute("SELECT lane FROM leaderboard_rows WHERE rank = 1 OR champion").fetchall()
        }
        champions = dict(
            con.execute("SELECT hero, champion FROM hero_state WHERE champion IS NOT NULL").fetchall()
        )
    deleted: list[str] = []
    for hero in sorted({r[1] for r in rows}):
        plan = plan_retention(
            [CheckpointInfo(cid, h, step, score) for cid, h, step, score in rows if h == hero],
            keep_newest=config.keep_newest,
            keep_best=config.keep_best,
            referenced=referenced | set(champions.values()),
            champion=champions.get(hero),
        )
        paths = apply_retention(plan, realm.home_path / "checkpoints", dry_run=config.dry_run)
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


@dg.job
def retention_job() -> None:
    """Checkpoint retention (dry run unless configured otherwise)."""
    apply_checkpoint_retention()
