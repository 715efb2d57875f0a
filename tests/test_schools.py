"""The training schools: the Oracle's surprise-weighted loss and the Mirror's reflections on probe misses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tiny_hero import TINY, row_length  # noqa: E402

from realm_pipeline.lm.budgets import chat_tokens  # noqa: E402
from realm_pipeline.skills import get_skill  # noqa: E402
from realm_pipeline.skills.heldout import eval_items, eval_prompts, training_items  # noqa: E402
from realm_pipeline.training import sparring  # noqa: E402
from realm_pipeline.training.losses import IGNORE, answer_loss, surprise_weights  # noqa: E402
from realm_pipeline.training.trainer import SegmentSpec, train_segment  # noqa: E402

# --- Oracle -----------------------------------------------------------------------------------------------


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 7, 11, generator=gen) * 3
    labels = torch.randint(0, 11, (3, 7), generator=gen)
    labels[0, :2] = IGNORE  # prompt positions are not supervised
    labels[2, 5:] = IGNORE
    return logits, labels


def test_oracle_off_is_plain_cross_entropy_exactly() -> None:
    logits, labels = _batch()
    loss, plain, count = answer_loss(logits, labels, oracle=False)
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 11), labels.reshape(-1), ignore_index=IGNORE
    )
    assert torch.equal(loss, expected)
    assert torch.equal(plain, expected)
    assert int(count) == int((labels != IGNORE).sum())


def test_oracle_weights_confident_tokens_less_than_uncertain_ones() -> None:
    logits, labels = _batch(1)
    flat_logits, flat_labels = logits.reshape(-1, 11), labels.reshape(-1)
    nll = torch.nn.functional.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE, reduction="none")
    mask = flat_labels != IGNORE
    w = surprise_weights(nll, mask)
    assert torch.all(w[~mask] == 0)
    sup = mask.nonzero().flatten().tolist()
    confident = min(sup, key=lambda i: float(nll[i]))
    uncertain = max(sup, key=lambda i: float(nll[i]))
    assert w[confident] < 1 < w[uncertain]
    # Weights never reverse the order of surprise.
    order = sorted(sup, key=lambda i: float(nll[i]))
    assert all(w[a] <= w[b] for a, b in zip(order, order[1:], strict=False))

    # In the gradient: relative to plain CE, the confident token's logits get a smaller share than the
    # uncertain token's (the gradient of a token's CE only flows through its own row of logits).
    def grad_rows(oracle: bool) -> torch.Tensor:
        x = flat_logits.clone().requires_grad_(True)
        answer_loss(x, flat_labels, oracle=oracle)[0].backward()
        return x.grad.norm(dim=-1)

    weighted, plain = grad_rows(True), grad_rows(False)
    assert weighted[confident] / plain[confident] < weighted[uncertain] / plain[uncertain]
    assert weighted[confident] < plain[confident] and weighted[uncertain] > plain[uncertain]


def test_oracle_changes_the_trained_weights(tmp_path: Path) -> None:
    common = dict(
        base={"tiny": TINY},
        batch_size=4,
        max_length=row_length(("bin", 1)),
        steps=3,
        save_every=0,
        seed=3,
        mix=[("bin", 1, 1.0)],
    )
    plain = train_segment(SegmentSpec(output_dir=str(tmp_path / "p"), **common))
    oracle = train_segment(SegmentSpec(output_dir=str(tmp_path / "o"), surprise_weighted=True, **common))
    assert plain.sha256 != oracle.sha256
    assert plain.tokens == oracle.tokens  # same data, only the weighting differs


# --- Mirror -----------------------------------------------------------------------------------------------


def test_probe_seeds_are_distinct_from_the_training_seed() -> None:
    for seed in (1, 2, 17, 123456):
        assert len({seed, sparring.probe_seed(seed), sparring.confirm_seed(seed)}) == 3
        assert sparring.probe_seed(seed) == sparring.probe_seed(seed)


def test_probe_plan_spreads_probes_over_levels() -> None:
    assert sparring.probe_plan([("bin", 1), ("bin", 2), ("sy", 1)], 7) == [
        ("bin", 1, 3),
        ("bin", 2, 2),
        ("sy", 1, 2),
    ]
    assert sparring.probe_plan([("bin", 1), ("bin", 1)], 2) == [("bin", 1, 2)]
    assert sparring.probe_plan([], 5) == []


def test_probes_come_from_training_not_eval() -> None:
    counts = {"bin": 50}
    items = sparring.probe_items([("bin", 1, 40), ("bin", 3, 20)], sparring.probe_seed(5), counts)
    assert len(items) == 60
    skill = get_skill("bin")
    every_eval = set().union(*(eval_prompts(skill, lv, 50) for lv in range(1, skill.max_level + 1)))
    assert not {i.prompt for i in items} & every_eval
    # An eval item offered as a probe trips the assertion.
    leaked = next(iter(training_items(skill, 2, 9, eval_count=50)))
    with pytest.raises(AssertionError, match="eval prompts"):
        sparring.assert_not_eval([leaked, eval_items(skill, 2, 50)[0]], counts)


def test_three_reflections_per_miss() -> None:
    items = sparring.probe_items([("bin", 2, 4)], sparring.probe_seed(1))
    outputs = [items[0].answer, "wrong", items[2].answer, "also wrong"]
    examples, misses = sparring.reflections(items, outputs, confirm_seed=sparring.confirm_seed(1))
    assert misses == 2 and len(examples) == 6
    identify, correction, confirm = examples[:3]
    assert "wrong" in identify[-2]["content"] and items[1].prompt in identify[-2]["content"]
    assert identify[-1] == {"role": "assistant", "content": sparring.VERDICT_INCORRECT}
    assert correction == items[1].messages
    assert confirm[-1] == {"role": "assistant", "content": sparring.VERDICT_CORRECT}
    fresh_prompt = confirm[-2]["content"].split("\n\nProposed answer:")[0]
    assert fresh_prompt != items[1].prompt  # a fresh item, not the missed one
    assert fresh_prompt not in eval_prompts(get_skill("bin"), 2)
    assert examples[3:6][1] == items[3].messages


def test_mirror_segment_writes_reflections_and_counts(tmp_path: Path, one_torch_thread) -> None:
    spec = SegmentSpec(
        output_dir=str(tmp_path / "m"),
        base={"tiny": TINY},
        batch_size=4,
        max_length=row_length(("bin", 1), ("bin", 2)),
        steps=4,
        save_every=0,
        seed=7,
        mix=[("bin", 1, 0.5), ("bin", 2, 0.5)],
        mirror_probes=12,
    )
    result = train_segment(spec)
    assert result.mirror_probes == 12
    assert result.mirror_examples == 3 * result.mirror_misses
    saved = json.loads((tmp_path / "m" / sparring.REFLECTIONS_FILE).read_text())
    assert saved["report"]["misses"] == result.mirror_misses
    examples = sparring.load_reflections(tmp_path / "m")
    assert len(examples) == result.mirror_examples and result.mirror_misses > 0  # 4 steps: still bad
    # Deterministic: the same spec elsewhere gives the same reflections.
    again = train_segment(SegmentSpec(**{**spec.__dict__, "output_dir": str(tmp_path / "n")}))
    assert again.sha256 == result.sha256
    assert sparring.load_reflections(tmp_path / "n") == examples
    # The next segment trains on them.
    child = train_segment(
        SegmentSpec(
            output_dir=str(tmp_path / "c"),
            parent_dir=str(tmp_path / "m"),
            batch_size=4,
            # a reflection is the prompt, the hero's answer and the question: longer than a BIN item
            max_length=max(row_length(("bin", 1)), *(chat_tokens("char", e) for e in examples)),
            steps=2,
            save_every=0,
            seed=8,
            mix=[("bin", 1, 1.0)],
            reflections=examples,
            reflection_weight=0.5,
        )
    )
    assert child.reflections_trained > 0


def test_load_reflections_refuses_a_bad_file(tmp_path: Path) -> None:
    assert sparring.load_reflections(tmp_path) == []
    (tmp_path / sparring.REFLECTIONS_FILE).write_text(json.dumps({"examples": [[{"role": "user"}]]}))
    with pytest.raises(ValueError, match=r"examples\.0"):
        sparring.load_reflections(tmp_path)
