"""Staleness through declarative automation: each asset's condition, and `staleness_sensor` evaluating them.

What goes stale, and the condition that refreshes it (the UI's Automation tab shows, per asset and tick,
which sub-condition held):

* eval_scores     a new (or re-trained) checkpoint, or its skill's eval set with a new data version
                  (an identical rebuild counts for nothing); only the skills of the checkpoint's hero's
                  campaign (`in_hero_campaign`)
* eval_sets       the skills' generator/scorer versions (its code_version) changed
* curriculum, leaderboard, public_mirror   an upstream they roll up updated (eval scores, votes, the
                  rollup before); checkpoints are read, not waited for
* knowledge_index a new data version of the observed knowledge documents; never a rollup

Dedup is Dagster's own: a target already requested or in a run in progress is not requested again, and
the campaign sensor's runs count as in progress.
"""

import dagster as dg

from realm_pipeline.settings import Settings
from realm_pipeline.training.plan import CheckpointKey

AC = dg.AutomationCondition


class InHeroCampaign(dg.AutomationCondition):
    """True for the eval_scores partitions (checkpoint x skill) whose skill is in the hero's campaign.

    Skills outside a hero's campaign are never evaluated for it automatically (a person still can).
    Reads the configs at evaluation time, so an edited hero YAML takes effect at the next tick.
    """

    @property
    def name(self) -> str:
        """The label the UI shows."""
        return "in_hero_campaign"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        """The candidate partitions whose skill is one the checkpoint's hero campaigns on."""
        heroes = Settings().heroes
        partitions_def = context.partitions_def
        if not isinstance(partitions_def, dg.MultiPartitionsDefinition):
            raise TypeError(
                f"in_hero_campaign applies to eval_scores (checkpoint x skill), not {context.key}"
            )
        wanted = set()
        for key in context.candidate_subset.expensively_compute_partition_keys():
            keys = partitions_def.get_partition_key_from_str(key).keys_by_dimension
            try:
                hero = CheckpointKey.parse(keys.get("checkpoint", "")).hero
            except ValueError:
                continue  # not a realm checkpoint key: nothing to evaluate it against
            if hero in heroes and keys.get("skill") in heroes[hero].campaign.skills:
                wanted.add(key)
        true_subset = context.candidate_subset.compute_intersection_with_partition_keys(wanted)
        return dg.AutomationResult(context=context, true_subset=true_subset)


def eval_scores_condition() -> dg.AutomationCondition:
    """Evaluate a new checkpoint, or again when its skill's eval set (so its scorer version) changed.

    eager(), except that an eval set counts only when its data version (the hash of what it stored)
    changed: rebuilding an identical eval set re-evaluates nothing.
    """
    new_checkpoint = AC.any_deps_match(
        (AC.newly_updated() & ~AC.executed_with_root_target()) | AC.will_be_requested()
    ).allow(dg.AssetSelection.assets("checkpoints"))
    changed_eval_set = AC.any_deps_match(AC.data_version_changed()).allow(
        dg.AssetSelection.assets("eval_sets")
    )
    return (
        (
            AC.newly_missing()
            | new_checkpoint.with_label("a new checkpoint")
            | changed_eval_set.with_label("eval set data version changed")
        ).since_last_handled()
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & InHeroCampaign()
    ).with_label("new checkpoint or changed eval set, for the hero's campaign skills")


def eval_sets_condition() -> dg.AutomationCondition:
    """Rebuild the eval sets already built when a skill's generator or scorer version changed."""
    return (AC.code_version_changed().since_last_handled() & ~AC.missing() & ~AC.in_progress()).with_label(
        "skill versions changed"
    )


def rollup_condition(*triggers: str | dg.AssetKey) -> dg.AutomationCondition:
    """After any of `triggers` updated, once none of them is in progress (eager, for the chosen deps only).

    Not eager() itself: a partitioned upstream (eval_scores) always has missing partitions, and deps read
    only for lineage (checkpoints, trained nearly all the time) must neither trigger nor hold a rollup back.
    """
    chosen = dg.AssetSelection.assets(*triggers)
    return (
        AC.any_deps_updated().allow(chosen).since_last_handled()
        & ~AC.any_deps_in_progress().allow(chosen)
        & ~AC.in_progress()
    ).with_label(
        f"after an update of {', '.join(dg.AssetKey.from_coercible(t).to_user_string() for t in triggers)}"
    )


def knowledge_index_condition(documents: dg.AssetKey) -> dg.AutomationCondition:
    """Re-index when the observed documents have a new data version, and for nothing else (never a rollup)."""
    return rollup_condition(documents)


staleness_sensor = dg.AutomationConditionSensorDefinition(
    "staleness_sensor",
    target=dg.AssetSelection.all(include_sources=True),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    # InHeroCampaign is Python of ours: it runs where the sensors run, not in the daemon
    use_user_code_server=True,
    description="Dagster's automation-condition sensor over every asset's automation condition.",
)
