"""Backends (local and OpenAI-compatible over a loopback server), the runner, and eval fingerprints."""

from __future__ import annotations

import socket

import pytest
from openai_server import OpenAIServer, save_test_hero

from realm_pipeline.evaluation.backends import (
    Backend,
    BackendError,
    LocalBackend,
    OpenAICompatibleBackend,
    weights_sha256,
)
from realm_pipeline.evaluation.fingerprint import fingerprint
from realm_pipeline.evaluation.runner import evaluate_items
from realm_pipeline.skills import get_skill
from realm_pipeline.skills.heldout import eval_items, eval_set_hash

MAX_NEW = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_test_hero(tmp_path_factory.mktemp("hero"))


@pytest.fixture(scope="module")
def local(model_dir):
    return LocalBackend(model_dir, batch_size=16, max_new_tokens=MAX_NEW)


@pytest.fixture(scope="module")
def server(model_dir):
    with OpenAIServer(model_dir) as srv:
        yield srv


def _remote(server, model_dir, **kw) -> OpenAICompatibleBackend:
    kw = {"max_new_tokens": MAX_NEW, "timeout": 30.0, "tokenizer": str(model_dir), **kw}
    return OpenAICompatibleBackend(server.url, "hero", **kw)


def test_local_and_openai_backends_agree(local, server, model_dir):
    remote = _remote(server, model_dir, concurrency=4)
    assert isinstance(local, Backend) and isinstance(remote, Backend)
    for name, level in [("bin", 2), ("seq_reverse", 3)]:
        skill = get_skill(name)
        items = eval_items(skill, level, 12)
        a, b = evaluate_items(local, skill, items), evaluate_items(remote, skill, items)
        assert a.rows == b.rows  # outputs, correctness and partial credit, item by item
        assert (a.n, a.correct, a.accuracy, a.partial) == (b.n, b.correct, b.accuracy, b.partial)
        assert len({r[1] for r in a.rows}) > 3, "degenerate outputs would make agreement vacuous"


def test_stop_strings_pass_through_the_server(local, server, model_dir):
    skill = get_skill("seq_reverse")
    prompts = [local.render(i.messages[:-1]) for i in eval_items(skill, 4, 6)]
    plain = local.complete(prompts)
    stop = next(t[1] for t in plain if len(t) > 2)
    remote = _remote(server, model_dir, stop_strings=[stop], concurrency=2)
    assert remote.complete(prompts) == [t.split(stop)[0] for t in plain]


def test_transient_errors_are_retried(local, server, model_dir):
    prompt = local.render([{"role": "user", "content": "rev: abc"}])
    server.fail_next(2, 503)
    before = server.requests
    out = _remote(server, model_dir, retries=3, backoff_s=0.01).complete([prompt])
    assert out == local.complete([prompt]) and server.requests - before == 3


def test_http_500_error_names_url_and_status(server, model_dir):
    server.fail_next(2, 500)
    remote = _remote(server, model_dir, retries=1, backoff_s=0.01)
    with pytest.raises(BackendError) as err:
        remote.complete(["<|user|>x<|end|><|assistant|>"])
    assert f"{server.url}/v1/completions" in str(err.value) and "500" in str(err.value)


def test_client_error_is_not_retried(server, model_dir):
    server.fail_next(1, 400)
    before = server.requests
    with pytest.raises(BackendError, match="HTTP 400"):
        _remote(server, model_dir, retries=3, backoff_s=0.01).complete(["x"])
    assert server.requests - before == 1


def test_dead_port_error_names_url():
    with socket.socket() as s:  # grab a free port, then close it so nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = OpenAICompatibleBackend(f"http://127.0.0.1:{port}", "hero", retries=1, backoff_s=0.01, timeout=2)
    with pytest.raises(BackendError, match=rf"http://127\.0\.0\.1:{port}/v1/completions"):
        remote.complete(["x"])


def test_models_endpoint(server):
    import httpx

    assert httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"] == "hero"


def test_local_describe(local, model_dir):
    d = local.describe()
    assert d["model_sha256"] == weights_sha256(model_dir) and len(d["model_sha256"]) == 64
    assert d["dtype"] == "float32" and d["tie_margin"] > 0 and d["decoding"]["max_new_tokens"] == MAX_NEW
    assert "batch_size" not in d  # tie-guarded decoding on CPU is batch-invariant: batch size is not identity


class _Oracle:
    """Answers every other item correctly: a known accuracy for checking the runner's arithmetic."""

    def __init__(self, items):
        self.answers = {i.prompt: (i.answer if k % 2 == 0 else "") for k, i in enumerate(items)}

    def render(self, messages):
        return messages[-1]["content"]

    def complete(self, prompts):
        return [self.answers[p] for p in prompts]

    def describe(self):
        return {"kind": "oracle"}


def test_runner_scores_and_orders_rows():
    skill = get_skill("seq_reverse")
    items = eval_items(skill, 2, 10)
    res = evaluate_items(_Oracle(items), skill, items)
    assert (res.n, res.correct, res.accuracy) == (10, 5, 0.5)
    assert [r[0] for r in res.rows] == list(range(10))
    assert all(r[2] == (k % 2 == 0) for k, r in enumerate(res.rows))
    assert res.rows[0][1] == items[0].answer and 0.5 <= res.partial < 1.0


def _fp_inputs() -> dict:
    skill = get_skill("bin")
    return {
        "eval_set_hash": eval_set_hash(eval_items(skill, 1, 4)),
        "skill_name": "bin",
        "skill_version": skill.version,
        "decoding": {"greedy": True, "max_new_tokens": 16, "stop": []},
        "dtype": "float64",
        "checkpoint_sha256": "ab" * 32,
        "backend": {"kind": "local", "device": "cpu"},
    }


def test_fingerprint_is_stable_and_sensitive_to_every_input():
    base = _fp_inputs()
    fp, payload = fingerprint(**base)
    assert len(fp) == 16 and fingerprint(**base) == (fp, payload)
    assert fingerprint(**dict(reversed(list(base.items())))) == (fp, payload)  # keyword order is irrelevant
    assert payload["versions"]["torch"] and payload["versions"]["transformers"]
    assert "realm_pipeline" in payload["versions"]
    changes = {
        "eval_set_hash": "0" * 64,
        "skill_name": "sy",
        "skill_version": base["skill_version"] + "x",
        "decoding": {**base["decoding"], "max_new_tokens": 17},
        "dtype": "float32",
        "checkpoint_sha256": "cd" * 32,
        "backend": {"kind": "openai", "device": "cpu"},
    }
    seen = {fp}
    for key, value in changes.items():
        other, _ = fingerprint(**{**base, key: value})
        assert other not in seen, f"changing {key} did not change the fingerprint"
        seen.add(other)
