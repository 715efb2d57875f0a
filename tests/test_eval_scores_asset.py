"""The real eval_scores asset: per-level budgets from the data, and evals where the hero is served."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml
from openai_server import OpenAIServer, save_test_hero
from tiny_hero import set_training_key

from realm_pipeline import ledger
from realm_pipeline.ledger import connect

CHECKPOINT = "tiny.000150"
PARTITION = dg.MultiPartitionKey({"checkpoint": CHECKPOINT, "skill": "bin"})
KEY_ENV = "REALM_TEST_EVAL_KEY"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _defs(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    from realm_pipeline.definitions import build_defs

    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    return build_defs()


def _run(defs: dg.Definitions, job: str, partition_key, *, ok: bool = True):
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=partition_key, raise_on_error=False
        )
    assert result.success is ok, job
    return result


@pytest.fixture
def evaluable(realm_env: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A REALM_HOME whose ledger holds BIN's eval sets and one (random, untrained) tiny checkpoint."""
    from realm_pipeline.lm.weights import weights_sha256

    ckpt = save_test_hero(realm_env / "checkpoints" / "tiny" / CHECKPOINT)
    _run(_defs(config_dir, monkeypatch), "eval_sets_job", "bin")
    row = {
        "checkpoint_id": CHECKPOINT,
        "hero": "tiny",
        "step": 150,
        "segment": 1,
        "sha256": weights_sha256(ckpt),
        "path": str(ckpt),
        "created_at": datetime.now(UTC).replace(tzinfo=None),
    }
    with connect(realm_env / "realm.duckdb") as con:
        ledger.upsert(con, "checkpoints", [row])
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", [CHECKPOINT])
    return ckpt


def _scores(home: Path, backend: str) -> list[tuple]:
    with connect(home / "realm.duckdb", read_only=True) as con:
        return con.execute(
            "SELECT level, fingerprint, n, correct, accuracy, partial, fingerprint_json FROM eval_scores "
            "WHERE backend = ? ORDER BY level",
            [backend],
        ).fetchall()


def _outputs(home: Path, fingerprint: str) -> list[tuple]:
    with connect(home / "realm.duckdb", read_only=True) as con:
        return con.execute(
            "SELECT item_index, output, correct FROM eval_generations WHERE fingerprint = ? ORDER BY item_index",
            [fingerprint],
        ).fetchall()


@pytest.mark.slow  # minutes of real training on 2 cores: CI runs it (make test-slow)
def test_served_hero_scores_like_the_local_one_under_its_own_fingerprint(
    realm_env: Path, config_dir: Path, evaluable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import eval_items

    # no training ahead: the levels evaluated are exactly L1 (being learned) and L2 (the next)
    set_training_key(config_dir / "heroes" / "tiny.yaml", "preview_share", 0)
    _run(_defs(config_dir, monkeypatch), "eval_job", PARTITION)
    local = _scores(realm_env, "local")
    assert [r[0] for r in local] == [1, 2]
    for level, _fp, *_rest, fp_json in local:
        answers = [i.answer for i in eval_items(get_skill("bin"), level, 50)]
        # the level's own budget: its longest answer in the checkpoint's (character) tokens + the margin
        assert json.loads(fp_json)["decoding"]["max_new_tokens"] == max(map(len, answers)) + 4

    secret = "sk-test-never-stored-0451"
    monkeypatch.setenv(KEY_ENV, secret)
    with OpenAIServer(evaluable, model_name=CHECKPOINT, api_key=secret) as server:
        _edit_yaml(
            config_dir / "heroes" / "tiny.yaml",
            lambda d: d.update(
                eval={
                    "backend": "openai",
                    "base_url": f"{server.url}/v1",
                    "api_key_env": KEY_ENV,
                }
            ),
        )
        _run(_defs(config_dir, monkeypatch), "eval_job", PARTITION)
        assert server.requests == sum(r[2] for r in local)  # one request per item: it really went over HTTP
    served = _scores(realm_env, "openai")
    assert [r[0] for r in served] == [1, 2]
    for loc, srv in zip(local, served, strict=True):
        assert loc[2:6] == srv[2:6]  # n, correct, accuracy, partial
        assert loc[1] != srv[1]  # a different backend is a different fingerprint
        assert _outputs(realm_env, loc[1]) == _outputs(realm_env, srv[1])  # item by item
        backend = json.loads(srv[6])["backend"]
        assert (backend["kind"], backend["base_url"], backend["model"]) == (
            "openai",
            f"{server.url}/v1",
            CHECKPOINT,  # the served name is the checkpoint's, proven on /v1/models
        )
    assert len({o for _, o, _ in _outputs(realm_env, local[0][1])}) > 3, (
        "degenerate outputs make agreement vacuous"
    )
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        for table in ("eval_scores", "eval_generations", "checkpoints"):
            dump = json.dumps(con.execute(f"SELECT * FROM {table}").fetchall(), default=str)
            assert secret not in dump, table


def test_an_unset_api_key_variable_fails_the_eval_naming_it(
    config_dir: Path, evaluable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    _edit_yaml(
        config_dir / "heroes" / "tiny.yaml",
        lambda d: d.update(
            eval={
                "backend": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "m",
                "api_key_env": KEY_ENV,
            }
        ),
    )
    result = _run(_defs(config_dir, monkeypatch), "eval_job", PARTITION, ok=False)
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert KEY_ENV in message and "not set" in message


def test_a_level_needing_more_than_the_eval_ceiling_is_refused(
    realm_env: Path, config_dir: Path, evaluable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import eval_items

    needed = max(len(i.answer) for i in eval_items(get_skill("bin"), 1, 50)) + 4
    _edit_yaml(config_dir / "realm.yaml", lambda d: d["eval"].update(max_new_tokens=needed - 1))
    result = _run(_defs(config_dir, monkeypatch), "eval_job", PARTITION, ok=False)
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "skill bin level 1" in message and f"needs {needed} tokens" in message
    assert f"eval.max_new_tokens is {needed - 1}" in message
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        assert (
            con.execute("SELECT count(*) FROM eval_scores").fetchone()[0] == 0
        )  # nothing truncated was scored


@pytest.mark.parametrize(
    ("eval_cfg", "expected"),
    [
        ({"backend": "openai"}, r"field 'eval': .*needs base_url"),
        ({"backend": "local", "model": "m"}, r"field 'eval': .*backend 'local' takes no model"),
        (
            {"backend": "openai", "base_url": "ftp://host", "model": "m"},
            r"field 'eval.base_url': value 'ftp://host'",
        ),
        (
            {"backend": "openai", "base_url": "http://h/v1", "model": "m", "api_key_env": "MY-KEY"},
            r"field 'eval.api_key_env': value 'MY-KEY'",
        ),
        ({"backend": "vllm"}, r"field 'eval.backend': value 'vllm'"),
    ],
)
def test_a_bad_eval_backend_is_refused_naming_file_field_and_value(
    config_dir: Path, eval_cfg, expected
) -> None:
    from realm_pipeline.settings import ConfigError, Settings

    hero_file = config_dir / "heroes" / "tiny.yaml"
    _edit_yaml(hero_file, lambda d: d.update(eval=eval_cfg))
    with pytest.raises(ConfigError, match=expected) as err:
        _ = Settings(config_dir).heroes
    assert str(hero_file) in str(err.value)


@pytest.mark.parametrize("cut", [False, True])
def test_a_server_not_serving_the_checkpoint_or_cutting_answers_is_refused(
    realm_env: Path, config_dir: Path, evaluable: Path, monkeypatch: pytest.MonkeyPatch, cut: bool
) -> None:
    # cut: it serves the checkpoint but cuts its answers; else it serves another model under another name
    name = CHECKPOINT if cut else "tiny-served"
    with OpenAIServer(evaluable, model_name=name, cut_answers=cut) as server:
        _edit_yaml(
            config_dir / "heroes" / "tiny.yaml",
            lambda d: d.update(eval={"backend": "openai", "base_url": f"{server.url}/v1"}),
        )
        result = _run(_defs(config_dir, monkeypatch), "eval_job", PARTITION, ok=False)
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    expected = "finish_reason 'length'" if cut else f"not checkpoint '{CHECKPOINT}': refusing to score"
    assert expected in message
    with connect(realm_env / "realm.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM eval_scores").fetchone()[0] == 0  # refused, not scored wrong
