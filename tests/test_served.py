"""A served eval proves its model: the checkpoint is put into the server, /v1/models must list its name,
an answer the server cut below realm's budget is refused, never scored wrong, and one that used all of the
budget is scored as the local backend scores it (real HTTP servers on loopback)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from openai_server import OpenAIServer, save_test_hero

from realm_pipeline.evaluation.backends import (
    LocalBackend,
    OpenAICompatibleBackend,
    ServedModelError,
    TruncatedAnswerError,
    served_checkpoint,
)
from realm_pipeline.evaluation.runner import evaluate_items
from realm_pipeline.settings import HeroEval
from realm_pipeline.skills import get_skill
from realm_pipeline.skills.heldout import eval_items

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def heroes(tmp_path_factory) -> dict[str, Path]:
    """Two checkpoints with different (random) weights."""
    root = tmp_path_factory.mktemp("served")
    return {
        name: save_test_hero(root / name, seed=seed)
        for seed, name in enumerate(["tiny.000150", "tiny.000300"])
    }


def _items():
    return eval_items(get_skill("bin"), 1, 12)


def _outputs(backend, items) -> list[str]:
    return [row[1] for row in evaluate_items(backend, get_skill("bin"), items).rows]


def _backend(url: str, name: str, tokenizer_dir: Path) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(f"{url}/v1", name, max_new_tokens=12, tokenizer=str(tokenizer_dir))


def test_two_checkpoints_loaded_into_one_server_get_their_own_answers(heroes) -> None:
    first, second = heroes
    items = _items()
    with OpenAIServer(heroes[first], model_name=first) as server:
        cfg = HeroEval(backend="openai", base_url=f"{server.url}/v1", load_endpoint="/v1/load_lora_adapter")
        answers = {}
        for name, path in heroes.items():
            with served_checkpoint(cfg, _backend(server.url, name, path), name, path) as backend:
                answers[name] = _outputs(backend, items)
    for name, path in heroes.items():
        assert answers[name] == _outputs(LocalBackend(path, max_new_tokens=12), items), name
    assert answers[first] != answers[second]  # one server, two models: the answers are each checkpoint's


def test_a_server_serving_another_model_is_refused(heroes) -> None:
    first, second = heroes
    with OpenAIServer(heroes[first], model_name=first) as server:
        cfg = HeroEval(backend="openai", base_url=f"{server.url}/v1")  # nothing puts `second` in
        backend = _backend(server.url, second, heroes[second])
        pattern = rf"serves \['{first}'\], not checkpoint '{second}'"
        with (
            pytest.raises(ServedModelError, match=pattern),
            served_checkpoint(cfg, backend, second, heroes[second]),
        ):
            pytest.fail("scored a checkpoint the server does not serve")
        assert server.requests == 0  # not one completion was asked for


def test_answers_the_server_cut_are_refused_not_scored_wrong(heroes) -> None:
    first = next(iter(heroes))
    with OpenAIServer(heroes[first], model_name=first, cut_answers=True) as server:
        backend = _backend(server.url, first, heroes[first])
        backend.prove_served()
        with pytest.raises(
            TruncatedAnswerError,
            match="finish_reason 'length' after 11 tokens, below the max_tokens 12 .*score refused",
        ):
            evaluate_items(backend, get_skill("bin"), _items())


def test_a_hero_that_rambles_to_realms_budget_is_scored_as_the_local_backend_scores_it(heroes) -> None:
    # A server says finish_reason 'length' for an answer that used all the max_tokens realm asked for: that
    # is the hero's answer at realm's own budget (wrong, here), not a cut that refuses the level.
    name, path = next(iter(heroes.items()))
    items = _items()
    with OpenAIServer(path, model_name=name, report_length=True) as server:
        served = evaluate_items(_backend(server.url, name, path), get_skill("bin"), items)
        assert server.length_answers > 0  # the random hero does ramble to the budget
    local = evaluate_items(LocalBackend(path, max_new_tokens=12), get_skill("bin"), items)
    assert served.rows == local.rows
    assert (served.n, served.correct, served.accuracy, served.partial) == (
        local.n,
        local.correct,
        local.accuracy,
        local.partial,
    )


def test_a_serve_command_is_started_for_the_checkpoint_and_stopped_after(heroes) -> None:
    name, path = next(iter(heroes.items()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = f"{sys.executable} {TESTS / 'openai_server.py'}"
    command = f"{serve} --model-dir {{checkpoint_dir}} --name {{checkpoint}} --port {port}"
    url = f"http://127.0.0.1:{port}"
    cfg = HeroEval(backend="openai", base_url=f"{url}/v1", serve_command=command, startup_timeout_s=120)
    with served_checkpoint(cfg, _backend(url, name, path), name, path) as backend:
        assert backend.served_models() == [name]
        assert _outputs(backend, _items()[:3]) == _outputs(
            LocalBackend(path, max_new_tokens=12), _items()[:3]
        )
    with pytest.raises(ServedModelError):  # stopped with the eval
        _backend(url, name, path).served_models()
