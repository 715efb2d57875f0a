"""Asset jobs: what the CLI, the launchpad and the sensors launch."""

import dagster as dg

from realm_pipeline.assets.checkpoints import checkpoint_partitions, checkpoints
from realm_pipeline.assets.curriculum import curriculum
from realm_pipeline.assets.eval_scores import eval_partitions, eval_scores
from realm_pipeline.assets.eval_sets import eval_sets
from realm_pipeline.assets.knowledge_index import knowledge_index
from realm_pipeline.assets.leaderboard import leaderboard
from realm_pipeline.assets.public_mirror import public_mirror
from realm_pipeline.assets.quests import quests, quests_job
from realm_pipeline.ops.retention import retention_job
from realm_pipeline.partitions import skill_partitions

eval_sets_job = dg.define_asset_job("eval_sets_job", selection=[eval_sets], partitions_def=skill_partitions)
train_job = dg.define_asset_job("train_job", selection=[checkpoints], partitions_def=checkpoint_partitions)
eval_job = dg.define_asset_job("eval_job", selection=[eval_scores], partitions_def=eval_partitions)
rollup_job = dg.define_asset_job("rollup_job", selection=[curriculum, leaderboard, public_mirror])
mirror_job = dg.define_asset_job("mirror_job", selection=[public_mirror])
knowledge_job = dg.define_asset_job("knowledge_job", selection=[knowledge_index])

ASSETS = [
    eval_sets,
    quests,
    checkpoints,
    eval_scores,
    curriculum,
    leaderboard,
    public_mirror,
    knowledge_index,
]
JOBS = [eval_sets_job, train_job, eval_job, rollup_job, mirror_job, knowledge_job, quests_job, retention_job]
