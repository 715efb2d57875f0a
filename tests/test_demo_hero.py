"""`make run`'s hero (configs/heroes/demo.yaml): the tiny hero's model and recipe on a quick drill instead
of BIN, so the README's main job shows a real level-up (issue 38) while `tiny`, which the benchmarks train,
keeps its campaign; and the hero sheet's words for levels earned and being learned."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from realm_pipeline.evaluation.progression import EvalPoint, apply_progression
from realm_pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent
RULES = {"threshold": 0.8, "evals_required": 3, "window": 6, "maintenance_max": 2.0}


def _make_run_commands() -> list[str]:
    """The recipe lines of the Makefile's `run` target."""
    text = (REPO / "Makefile").read_text()
    body = re.search(r"^run:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert body, "no run target in the Makefile"
    return [line.strip() for line in body.group(1).splitlines()]


def test_make_run_trains_the_demo_hero_and_the_readme_says_so() -> None:
    commands = _make_run_commands()
    (campaign,) = [c for c in commands if " campaign " in c]
    assert re.fullmatch(r"\$\(BIN\)/realm campaign --hero demo --segments \d+", campaign), campaign
    segments = int(campaign.rsplit(" ", 1)[1])
    readme = (REPO / "README.md").read_text()
    assert f"`realm campaign --hero demo --segments {segments}`" in readme


def test_the_demo_hero_is_tiny_on_a_drill_instead_of_bin() -> None:
    settings = Settings(REPO / "configs")  # validated as every hero is
    demo, tiny = settings.heroes["demo"], settings.heroes["tiny"]
    # the tiny hero's model and training recipe, field for field: only the campaign's skills differ
    for field in ("base", "method", "memory_profile", "training", "schools", "mirror", "seed", "eval"):
        assert getattr(demo, field) == getattr(tiny, field), field
    assert demo.campaign.skills == ["seq_reverse"]
    assert demo.campaign.model_dump(exclude={"skills"}) == tiny.campaign.model_dump(exclude={"skills"})
    # what the benchmarks train is untouched: `tiny` stays on BIN, and bench/campaign.py copies it
    assert tiny.campaign.skills == ["bin"]
    assert 'HERO = "tiny_bench"' in (REPO / "bench" / "campaign.py").read_text()


def _state(accuracies: list[float], cap: int = 10):
    evals, level = [], 1
    for i, acc in enumerate(accuracies, start=1):
        evals.append(EvalPoint(f"demo.{i * 150:06d}", i * 150, "seq_reverse", level, acc))
        state = apply_progression(evals, [], level_caps={"seq_reverse": cap}, **RULES)
        level = state.skills["seq_reverse"].level
    return apply_progression(evals, [], level_caps={"seq_reverse": cap}, **RULES)


def test_the_sheet_never_calls_the_level_being_learned_earned() -> None:
    assert _state([]).skills["seq_reverse"].describe() == "seq_reverse: learning L1, none earned yet"
    # two passes are not a level-up
    assert _state([0.9, 0.9]).skills["seq_reverse"].describe() == "seq_reverse: learning L1, none earned yet"
    assert _state([0.9] * 3).skills["seq_reverse"].describe() == "seq_reverse: L1 earned, learning L2"
    assert _state([0.9] * 6).skills["seq_reverse"].describe() == "seq_reverse: L1-L2 earned, learning L3"
    assert _state([0.9] * 6, cap=2).skills["seq_reverse"].describe() == (
        "seq_reverse: L1-L2 earned, complete (its cap)"
    )


def test_the_sheet_names_a_regressed_earned_level() -> None:
    evals = [EvalPoint(f"demo.{i * 150:06d}", i * 150, "seq_reverse", 1, 0.9) for i in (1, 2, 3)]
    evals.append(EvalPoint("demo.000600", 600, "seq_reverse", 1, 0.5))
    state = apply_progression(evals, [], level_caps={"seq_reverse": 10}, **RULES)
    assert state.skills["seq_reverse"].describe() == "seq_reverse: L1 earned, learning L2 (regressed: L1)"


def test_the_sheet_lists_level_ups_or_the_rule_that_earns_one() -> None:
    from realm_pipeline.cli import _level_ups_line

    settings = Settings(REPO / "configs")
    assert _level_ups_line((), settings) == (
        "none yet (a level is earned by 3 evals in a row at >= 0.80 accuracy)"
    )
    assert _level_ups_line(_state([0.9] * 3).level_ups, settings) == "1 (seq_reverse L1 at demo.000450)"
    many = _state([0.9] * 12).level_ups
    assert _level_ups_line(many, settings) == (
        "4 (latest: seq_reverse L2 at demo.000900, seq_reverse L3 at demo.001350, "
        "seq_reverse L4 at demo.001800)"
    )


def test_the_closing_hint_does_not_promise_sensors_for_a_hero_they_do_not_train(realm_env: Path) -> None:
    from realm_pipeline.campaign import Decision
    from realm_pipeline.cli import ui_hint

    settings = Settings(REPO / "configs")
    assert "demo" not in settings.realm.campaign.active_heroes  # `make dev` trains tiny, as before
    hint = ui_hint("demo", settings, Decision("demo"))
    assert hint.endswith("(its sensors train tiny, not demo: `realm campaign --hero demo` goes on with it)")
    assert "resume the campaign: tiny trains on" in ui_hint("tiny", settings, Decision("tiny"))
    stopped = ui_hint("demo", settings, Decision("demo", stop="at its segment budget (40 segments)"))
    assert stopped.endswith("(its sensors train demo no further: at its segment budget (40 segments))")


def test_a_level_up_is_announced_with_the_rule_that_earned_it() -> None:
    from realm_pipeline.cli import _level_up_line

    settings = Settings(REPO / "configs")
    (up,) = _state([1.0, 1.0, 0.98]).level_ups
    assert _level_up_line("demo", up, settings) == (
        "LEVEL UP  demo seq_reverse L1 earned at demo.000450: 3 evals in a row at >= 0.80 (the last 0.98); "
        "learning L2 next"
    )
    last = _state([0.9] * 6, cap=2).level_ups[-1]
    assert _level_up_line("demo", last, settings).endswith(
        "L2 earned at demo.000900: 3 evals in a row at >= 0.80 (the last 0.90); its cap: complete"
    )


# three real segments: minutes on two free cores (40 min measured on a box shared at load 17, README); the
# limit only guards against hangs
@pytest.mark.slow  # minutes of real training on 2 cores: CI runs it (make test-slow)
@pytest.mark.timeout(3600)
def test_make_runs_campaign_earns_seq_reverse_l1_at_its_third_segment(realm_env: Path) -> None:
    from click.testing import CliRunner

    from realm_pipeline.cli import main

    assert _make_run_commands()[-1].endswith("--hero demo --segments 3")  # what `make run` trains
    out = CliRunner().invoke(main, ["campaign", "--hero", "demo", "--segments", "3"])
    assert out.exit_code == 0, out.output
    # earned by the real streak rule on the real eval set, as the README's "What `make run` does" shows
    assert re.search(
        r"^LEVEL UP  demo seq_reverse L1 earned at demo\.000450: 3 evals in a row at >= 0\.80 "
        r"\(the last \d\.\d\d\); learning L2 next$",
        out.output,
        re.MULTILINE,
    ), out.output
    sheet = out.output[out.output.index("hero demo") :]
    assert "levels     seq_reverse: L1 earned, learning L2" in sheet, sheet
    assert "level-ups  1 (seq_reverse L1 at demo.000450)" in sheet, sheet
    assert "status     3 segment(s) trained as asked; next demo.000600 (run again to go on)" in sheet
