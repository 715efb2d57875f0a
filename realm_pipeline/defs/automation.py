"""Staleness through declarative automation: each asset's condition, and `staleness_sensor` evaluating them.

What goes stale, and the condition that refreshes it (the UI's Automation tab shows, per asset and tick,
which sub-condition held):

* eval_scores     a new (or re-trained) checkpoint; and after the protocol in force changed (a new data
                  version of `eval_protocols` or of the skill's eval set: an identical rebuild counts for
                  nothing) the checkpoints that matter whose score is stale (`stale_and_matters`: each
                  level-up's, the champion, the newest; the rest wait for a request); only the skills of
                  the checkpoint's hero's campaign (`in_hero_campaign`)
* eval_protocols  observed when the protocol the configuration names (decoding, backend, device, skill
                  versions, library versions) differs from the one last observed (`protocol_drifted`)
* eval_sets       the skills' generator/scorer versions (its code_version) changed
* curriculum, leaderboard, public_mirror   an upstream they roll up updated (eval scores, votes, the
                  rollup before); checkpoints are read, not waited for
* knowledge_index a new data version of the observed knowledge documents; never a rollup

Dedup is Dagster's own: a target already requested or in a run in progress is not requested again, and
the campaign sensor's runs count as in progress.
"""

import dagster as dg
import duckdb

from realm_pipeline import ledger
from realm_pipeline.settings import Settings, ledger_path
from realm_pipeline.training.plan import CheckpointKey

AC = dg.AutomationCondition
EVAL_PROTOCOLS = "eval_protocols"  # the observed protocol in force (defs/evaluation/protocols.py)


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


class StaleAndMatters(dg.AutomationCondition):
    """True for the eval_scores partitions (checkpoint x skill) `checkpoints_to_rescore` names: a stale score
    (under a protocol no longer in force) of a checkpoint that matters (a level-up's, the champion, the
    newest) whose files retention kept. Every other stale score waits for a request.

    Reads the ledger at evaluation time without waiting: a busy ledger answers nothing this tick, and the
    trigger (since last handled) keeps the partitions pending for the next one.
    """

    @property
    def name(self) -> str:
        """The label the UI shows."""
        return "stale_and_matters"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        """The candidate partitions whose (checkpoint, skill) is due for a re-score under the protocol in force."""
        from realm_pipeline.evaluation.scores import checkpoints_to_rescore

        partitions_def = context.partitions_def
        if not isinstance(partitions_def, dg.MultiPartitionsDefinition):
            raise TypeError(
                f"stale_and_matters applies to eval_scores (checkpoint x skill), not {context.key}"
            )
        by_hero: dict[str, dict[tuple[str, str], str]] = {}
        for key in context.candidate_subset.expensively_compute_partition_keys():
            keys = partitions_def.get_partition_key_from_str(key).keys_by_dimension
            try:
                hero = CheckpointKey.parse(keys.get("checkpoint", "")).hero
            except ValueError:
                continue
            by_hero.setdefault(hero, {})[(keys.get("checkpoint", ""), keys.get("skill", ""))] = key
        wanted: set[str] = set()
        path = ledger_path()
        if by_hero and path.exists():
            try:
                with ledger.connect(path, read_only=True, timeout_s=0) as con:
                    for hero, pairs in by_hero.items():
                        wanted |= {pairs[p] for p in checkpoints_to_rescore(con, hero) if p in pairs}
            except duckdb.Error as exc:  # busy, or not migrated yet: nothing to re-score this tick
                context.log.info(f"stale_and_matters: ledger not readable this tick ({exc})")
                wanted = set()
        true_subset = context.candidate_subset.compute_intersection_with_partition_keys(wanted)
        return dg.AutomationResult(context=context, true_subset=true_subset)


class ProtocolDrifted(dg.AutomationCondition):
    """True when the protocol the configuration names now (`configured_protocols_version`) is not the data
    version `eval_protocols` was last observed with (or it was never observed).

    Reads the configs at evaluation time (no ledger), so an edited hero or realm YAML, a bumped skill
    version or an upgraded library is noticed at the next tick.
    """

    @property
    def name(self) -> str:
        """The label the UI shows."""
        return "protocol_drifted"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        """The whole (unpartitioned) candidate subset when the protocols differ, else nothing."""
        from realm_pipeline.evaluation.scores import configured_protocols_version

        now = configured_protocols_version(Settings())
        records = context.asset_graph_view.instance.fetch_observations(context.key, limit=1).records
        observed = records[0].asset_observation.data_version if records else None
        true_subset = context.candidate_subset if observed != now else context.get_empty_subset()
        return dg.AutomationResult(context=context, true_subset=true_subset)


def eval_protocols_condition() -> dg.AutomationCondition:
    """Observe the protocol in force when the configuration's differs from the last observed one.

    An observation that failed is not asked for again until one succeeds (observe it in the UI): no loop.
    """
    return (ProtocolDrifted() & ~AC.in_progress() & ~AC.execution_failed()).with_label(
        "configured protocol differs from the observed one"
    )


def eval_scores_condition() -> dg.AutomationCondition:
    """Evaluate a new checkpoint; after a change of the protocol in force, re-score the ones that matter.

    A new checkpoint: eager(), for the hero's campaign skills. A protocol change (a new data version of
    `eval_protocols`, or of the skill's eval set: a byte-identical rebuild re-scores nothing): only the
    stale scores of the checkpoints that matter (`stale_and_matters`); the rest only on request.
    """
    new_checkpoint = AC.any_deps_match(
        (AC.newly_updated() & ~AC.executed_with_root_target()) | AC.will_be_requested()
    ).allow(dg.AssetSelection.assets("checkpoints"))
    changed_protocol = AC.any_deps_match(AC.data_version_changed()).allow(
        dg.AssetSelection.assets(EVAL_PROTOCOLS, "eval_sets")
    )
    return (
        (
            (AC.newly_missing() | new_checkpoint.with_label("a new checkpoint")).since_last_handled()
            | (
                changed_protocol.since_last_handled().with_label("protocol in force changed")
                & StaleAndMatters()
            )
        )
        # the protocol is read from the configuration whether or not it was ever observed
        & ~AC.any_deps_missing().ignore(dg.AssetSelection.assets(EVAL_PROTOCOLS))
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & InHeroCampaign()
    ).with_label("new checkpoint, or a stale score that matters, for the hero's campaign skills")


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
