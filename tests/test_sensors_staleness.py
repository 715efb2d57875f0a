"""staleness_sensor: declarative automation over the real definitions, ticked in a real Dagster instance.

Events are recorded as runless materializations (what a finished run leaves in the event log), so each
test sees exactly what Dagster's automation-condition evaluation requests next, without training.
"""

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from realm_pipeline.settings import Settings

HERO = "tiny"
CKPT = "tiny.000150"
EVAL_SCORES = dg.AssetKey("eval_scores")
EVAL_SETS = dg.AssetKey("eval_sets")
CHECKPOINTS = dg.AssetKey("checkpoints")
ROLLUPS = {dg.AssetKey("curriculum"), dg.AssetKey("leaderboard"), dg.AssetKey("public_mirror")}
KNOWLEDGE_INDEX = dg.AssetKey("knowledge_index")
EVAL_PROTOCOLS = dg.AssetKey("eval_protocols")


class Ticker:
    """Ticks Dagster's automation conditions of a Definitions object, carrying the cursor like the sensor."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None

    def tick(self, defs: dg.Definitions | None = None) -> dg.EvaluateAutomationConditionsResult:
        """One evaluation; `defs` replaces the definitions from now on (a new code version)."""
        self.defs = defs or self.defs
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return result


def requested(result: dg.EvaluateAutomationConditionsResult) -> dict[dg.AssetKey, set[str | None]]:
    """Requested assets, each with its requested partition keys (None: unpartitioned)."""
    out: dict[dg.AssetKey, set[str | None]] = {}
    for r in result.results:
        if isinstance(r.key, dg.AssetKey) and r.true_subset.size:
            keys = (
                r.true_subset.expensively_compute_partition_keys() if r.true_subset.is_partitioned else {None}
            )
            out[r.key] = set(keys)
    return out


def report(
    instance: dg.DagsterInstance,
    key: dg.AssetKey | str,
    partition: str | None = None,
    data_version: str | None = None,
) -> None:
    """A runless materialization: what a finished run of `key` records (with its data version, if any)."""
    tags = {DATA_VERSION_TAG: data_version} if data_version else None
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition, tags=tags))


def observe_protocols(instance: dg.DagsterInstance) -> None:
    """A runless observation of `eval_protocols` with the configured protocol (what its observation records)."""
    from realm_pipeline.evaluation.scores import configured_protocols_version

    version = configured_protocols_version(Settings())
    instance.report_runless_asset_event(dg.AssetObservation(EVAL_PROTOCOLS, tags={DATA_VERSION_TAG: version}))


def eval_key(checkpoint: str, skill: str) -> str:
    """The eval_scores partition key of (checkpoint, skill)."""
    return str(dg.MultiPartitionKey({"checkpoint": checkpoint, "skill": skill}))


@pytest.fixture
def realm(realm_env: Path):
    """(defs, instance, ticker) of the real definitions on a fresh REALM_HOME and Dagster instance."""
    from realm_pipeline.definitions import build_defs

    defs = build_defs()
    with dg.DagsterInstance.get() as instance:
        ticker = Ticker(defs, instance)
        # the first evaluation records where things stand, and asks for the protocol's first observation
        assert requested(ticker.tick()) == {EVAL_PROTOCOLS: {None}}
        observe_protocols(instance)
        ticker.tick()
        yield defs, instance, ticker


def campaign_skills() -> list[str]:
    """The skills the test hero campaigns on, from its config."""
    return list(Settings().heroes[HERO].campaign.skills)


def with_eval_sets(instance: dg.DagsterInstance) -> None:
    """Every skill's eval set built."""
    for skill in sorted(Settings().skills):
        report(instance, EVAL_SETS, skill, data_version=f"{skill}-v1")


def stale_score_in_ledger(checkpoint: str, skill: str) -> None:
    """The ledger a rebuilt eval set leaves: the checkpoint scored on `skill` under a protocol no longer in force."""
    from realm_pipeline import ledger
    from realm_pipeline.evaluation.scores import declare_protocols, stale_scores
    from realm_pipeline.settings import ledger_path
    from tests.test_sensors_regression import score

    with ledger.connect(ledger_path()) as con:
        ledger.migrate(con)
        ledger.upsert(con, "eval_sets", [{"skill": skill, "level": 1, "n_items": 50, "eval_set_hash": "new"}])
        ledger.upsert(
            con,
            "checkpoints",
            [{"checkpoint_id": checkpoint, "hero": HERO, "step": 150, "path": "/x", "tokens": 1}],
        )
        declare_protocols(con, Settings())
        ledger.upsert(
            con, "eval_scores", [{**score(checkpoint, 1, 0.9, t=0, protocol="old"), "skill": skill}]
        )
        assert stale_scores(con) == [(checkpoint, skill)]


def test_staleness_sensor_is_dagsters_automation_sensor(realm) -> None:
    defs, _, _ = realm
    sensor = defs.resolve_sensor_def("staleness_sensor")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # every asset it refreshes carries a condition the UI can explain
    graph = defs.resolve_asset_graph()
    for key in [EVAL_SETS, EVAL_SCORES, KNOWLEDGE_INDEX, *ROLLUPS]:
        assert graph.get(key).automation_condition is not None, key


def test_new_checkpoint_gets_its_campaign_evals_once(realm) -> None:
    _, instance, ticker = realm
    with_eval_sets(instance)
    assert requested(ticker.tick()) == {}
    instance.add_dynamic_partitions("checkpoints", [CKPT])
    report(instance, CHECKPOINTS, CKPT)
    first = requested(ticker.tick())
    # the hero's campaign skills only, not every skill the eval set covers
    assert first == {EVAL_SCORES: {eval_key(CKPT, s) for s in campaign_skills()}}
    assert len(Settings().skills) > len(campaign_skills())
    assert requested(ticker.tick()) == {}  # requested once: Dagster's own dedup
    # the evals land: the rollups follow in one go, and nothing asks for the evals again
    for skill in campaign_skills():
        report(instance, EVAL_SCORES, eval_key(CKPT, skill))
    assert requested(ticker.tick()) == {key: {None} for key in ROLLUPS}
    assert requested(ticker.tick()) == {}


def test_checkpoint_without_its_eval_set_waits(realm) -> None:
    _, instance, ticker = realm
    instance.add_dynamic_partitions("checkpoints", [CKPT])
    report(instance, CHECKPOINTS, CKPT)
    assert EVAL_SCORES not in requested(ticker.tick())  # no eval set yet: nothing to score against
    with_eval_sets(instance)
    assert requested(ticker.tick())[EVAL_SCORES] == {eval_key(CKPT, s) for s in campaign_skills()}


def test_changed_scorer_version_rebuilds_eval_sets_then_re_evaluates(realm, monkeypatch) -> None:
    defs, instance, ticker = realm
    from realm_pipeline.defs.evaluation.eval_sets import skills_code_version
    from realm_pipeline.skills import SKILLS

    skill = campaign_skills()[0]
    with_eval_sets(instance)
    instance.add_dynamic_partitions("checkpoints", [CKPT])
    report(instance, CHECKPOINTS, CKPT)
    ticker.tick()
    for s in campaign_skills():
        report(instance, EVAL_SCORES, eval_key(CKPT, s))
    ticker.tick()
    assert requested(ticker.tick()) == {}  # all current

    # a scorer fix bumps the skill's version: the code version of eval_sets and eval_scores follows
    before = skills_code_version()
    monkeypatch.setattr(type(SKILLS[skill]), "version", SKILLS[skill].version + ".1", raising=False)
    after = skills_code_version()
    assert after != before
    graph = defs.resolve_asset_graph()
    assert graph.get(EVAL_SETS).code_version == graph.get(EVAL_SCORES).code_version == before
    bumped = [
        dg.map_asset_specs(lambda spec: spec.replace_attributes(code_version=after), [a])[0]
        if isinstance(a, dg.AssetsDefinition) and a.key in (EVAL_SETS, EVAL_SCORES)
        else a
        for a in {
            id(a): a for a in defs.assets
        }.values()  # the defs folder lists a shared asset once a module
    ]
    new_defs = dg.Definitions(
        assets=bumped,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        sensors=defs.sensors,
        resources=defs.resources,
    )
    rebuilt = requested(ticker.tick(new_defs))
    # every built eval set, regenerated; and the protocol (it names the skill's version) observed again
    assert rebuilt == {EVAL_SETS: set(Settings().skills), EVAL_PROTOCOLS: {None}}
    observe_protocols(instance)  # what the requested observation records
    assert requested(ticker.tick()) == {}  # nothing stale yet: the eval sets are still being rebuilt
    # the rebuilt eval set of the skill lands (its rows name the new version, so its data version moved)
    # and declares the new protocol: the checkpoint's score is stale, and the newest checkpoint matters
    stale_score_in_ledger(CKPT, skill)
    report(instance, EVAL_SETS, skill, data_version=f"{skill}-v2")
    assert requested(ticker.tick()) == {EVAL_SCORES: {eval_key(CKPT, skill)}}


def test_an_identical_eval_set_rebuild_requests_nothing(realm) -> None:
    defs, instance, ticker = realm
    eval_sets_job = defs.resolve_job_def("eval_sets_job")

    def build_eval_set(skill: str) -> str:
        """A real eval_sets run of the skill; the data version it recorded."""
        result = eval_sets_job.execute_in_process(instance=instance, partition_key=skill)
        assert result.success
        (materialization,) = result.asset_materializations_for_node("eval_sets")
        return materialization.tags[DATA_VERSION_TAG]

    versions = {skill: build_eval_set(skill) for skill in campaign_skills()}
    instance.add_dynamic_partitions("checkpoints", [CKPT])
    report(instance, CHECKPOINTS, CKPT)
    assert requested(ticker.tick())[EVAL_SCORES] == {eval_key(CKPT, s) for s in campaign_skills()}
    for skill in campaign_skills():
        report(instance, EVAL_SCORES, eval_key(CKPT, skill))
    ticker.tick()  # the rollups
    assert requested(ticker.tick()) == {}
    # a second, byte-identical build (a click in the UI): a new materialization, the same data version
    skill = campaign_skills()[0]
    assert build_eval_set(skill) == versions[skill]
    assert requested(ticker.tick()) == {}  # no re-evaluation, no rollup


def test_stale_mirror_is_rebuilt(realm) -> None:
    _, instance, ticker = realm
    report(instance, "leaderboard")
    assert requested(ticker.tick()) == {dg.AssetKey("public_mirror"): {None}}
    report(instance, "public_mirror")
    assert requested(ticker.tick()) == {}


def test_a_vote_re_ranks_the_leaderboard(realm) -> None:
    _, instance, ticker = realm
    report(instance, "human_votes")
    assert requested(ticker.tick()) == {
        dg.AssetKey("leaderboard"): {None},
        dg.AssetKey("public_mirror"): {None},
    }


def test_new_document_triggers_one_reindex_and_a_rollup_none(realm, realm_env: Path) -> None:
    defs, instance, ticker = realm
    sensor = defs.resolve_sensor_def("knowledge_documents_sensor")

    def observe_if_asked(cursor: str | None) -> str | None:
        """One tick of the documents sensor; runs the observation it asks for, as the daemon would."""
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
        ) as ctx:
            result = sensor.evaluate_tick(ctx)
        for req in result.run_requests:
            job = defs.resolve_implicit_global_asset_job_def()
            assert job.execute_in_process(instance=instance, asset_selection=req.asset_selection).success
        return result.cursor or cursor

    cursor = observe_if_asked(None)
    assert instance.fetch_observations(dg.AssetKey("knowledge_documents"), limit=1).records == []
    assert requested(ticker.tick()) == {}

    (realm_env / "knowledge").mkdir(exist_ok=True)
    (realm_env / "knowledge" / "notes.md").write_text("# Notes\nThe tiny hero levels up on BIN first.\n")
    cursor = observe_if_asked(cursor)
    assert requested(ticker.tick()) == {KNOWLEDGE_INDEX: {None}}
    assert requested(ticker.tick()) == {}  # once

    # the same folder observed again is no news; a rollup is none either
    cursor = observe_if_asked(cursor)
    assert len(instance.fetch_observations(dg.AssetKey("knowledge_documents"), limit=10).records) == 1
    report(instance, "curriculum")
    report(instance, "leaderboard")
    assert KNOWLEDGE_INDEX not in requested(ticker.tick())
    instance.add_dynamic_partitions("checkpoints", [CKPT])
    report(instance, CHECKPOINTS, CKPT)
    assert KNOWLEDGE_INDEX not in requested(ticker.tick())

    # an edited document is a new data version: one more re-index
    (realm_env / "knowledge" / "notes.md").write_text("# Notes\nThe tiny hero levels up on SY second.\n")
    observe_if_asked(cursor)
    assert requested(ticker.tick()).get(KNOWLEDGE_INDEX) == {None}
