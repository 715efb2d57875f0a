"""Asset jobs: what the CLI, the launchpad and the sensors launch."""

import dagster as dg

from realm_pipeline.defs.campaign.assets import curriculum
from realm_pipeline.defs.evaluation.eval_scores import eval_partitions, eval_scores
from realm_pipeline.defs.evaluation.eval_sets import eval_sets
from realm_pipeline.defs.evaluation.leaderboard import leaderboard
from realm_pipeline.defs.knowledge.assets import knowledge_index
from realm_pipeline.defs.mirror.assets import public_mirror
from realm_pipeline.defs.partitions import skill_partitions
from realm_pipeline.defs.training.assets import checkpoint_partitions, checkpoints

eval_sets_job = dg.define_asset_job(
    "eval_sets_job",
    selection=[eval_sets],
    partitions_def=skill_partitions,
    description="Build one skill's held-out eval sets (partition = skill).",
)
train_job = dg.define_asset_job(
    "train_job",
    selection=[checkpoints],
    partitions_def=checkpoint_partitions,
    description="Train one segment into a new checkpoint (partition = checkpoint key, e.g. tiny.000300).",
)
eval_job = dg.define_asset_job(
    "eval_job",
    selection=[eval_scores],
    partitions_def=eval_partitions,
    description="Evaluate one checkpoint on one skill (partition = checkpoint|skill); a confirming re-run "
    "of a drop scores the reserve sample.",
)
rollup_job = dg.define_asset_job(
    "rollup_job",
    selection=[curriculum, leaderboard, public_mirror],
    description="Level-ups and hero sheets, the leaderboard (with its regression check) and the public mirror.",
)
mirror_job = dg.define_asset_job(
    "mirror_job", selection=[public_mirror], description="Re-publish the leak-proof public mirror only."
)
knowledge_job = dg.define_asset_job(
    "knowledge_job",
    selection=[knowledge_index],
    description="Re-index the knowledge documents (kept only if it retrieves no worse than the live index).",
)

# The assets each job materializes: a run of another job (staleness_sensor's runs are of Dagster's
# implicit asset job) that materializes one of them is the same work, whatever its job's name.
JOB_ASSETS: dict[str, frozenset[dg.AssetKey]] = {
    "eval_sets_job": frozenset({eval_sets.key}),
    "train_job": frozenset({checkpoints.key}),
    "eval_job": frozenset({eval_scores.key}),
    "rollup_job": frozenset({curriculum.key, leaderboard.key, public_mirror.key}),
    "mirror_job": frozenset({public_mirror.key}),
    "knowledge_job": frozenset({knowledge_index.key}),
    "quests_job": frozenset({dg.AssetKey("quests")}),
}
