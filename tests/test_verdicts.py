"""Per-skill verdicts (evaluation/verdicts.py): a table of campaign histories and their expected verdicts.

Each history is written segment by segment: the tokens the segment trained per (skill, level) (the
trainer's record) and how its checkpoint scored. It goes through `apply_progression`, the same replay
the campaign runs, so levels are earned by the real streak rule.
"""

from __future__ import annotations

import pytest

from realm_pipeline.evaluation.progression import EvalPoint, SegmentPoint, apply_progression
from realm_pipeline.evaluation.verdicts import Check

# The table below judges the multiplier rule (the cap rule before issue 37, kept as a baseline);
# tests/test_cap_rule.py judges the forgetting rule, realm's default, on these histories and others.
RULES = {"threshold": 0.8, "evals_required": 3, "window": 6, "maintenance_max": 2.0, "min_trend": 0.005}
HELD = 1.0  # a mastered level evaluated as held


def ck(i: int) -> str:
    """Checkpoint id of segment i (steps of 100)."""
    return f"tiny.{i * 100:06d}"


class Story:
    """A campaign history: segments appended in order, each with what it trained and how it scored."""

    def __init__(self, **caps: int):
        self.caps = caps
        self.rows: list[tuple[dict | None, dict]] = []
        self.checks: list[Check] = []

    def seg(self, trained: dict | None, evals: dict, n: int = 1) -> Story:
        """`n` segments training `trained` ({"bin@2": tokens}; None: no record) and scoring `evals`
        ({"bin@2": accuracy, or a list with one accuracy per segment})."""
        for k in range(n):
            self.rows.append((trained, {b: a[k] if isinstance(a, list) else a for b, a in evals.items()}))
        return self

    def learn(self, skill: str, level: int, held: tuple[str, ...] = (), trained: dict | None = None) -> Story:
        """Three segments that earn `skill` L`level` (1000 tokens each on it), `held` benches at 1.0."""
        record = {f"{skill}@{level}": 1000} if trained is None else trained
        return self.seg(record, {f"{skill}@{level}": 0.9, **dict.fromkeys(held, HELD)}, n=3)

    def check(self, bench: str, confirmed: bool, at: int | None = None) -> Story:
        """The reserve sample's verdict on `bench`'s drop, at segment `at` (default: the newest)."""
        i = len(self.rows) if at is None else at
        skill, level = bench.split("@")
        self.checks.append(Check(skill, int(level), ck(i), i * 100, confirmed))
        return self

    @property
    def n(self) -> int:
        """Segments so far."""
        return len(self.rows)

    def run(self, cap_rule: str = "multiplier"):
        """The curriculum state the replay makes of this history under `cap_rule`."""
        evals, segments, trained = [], [], {}
        for i, (record, scores) in enumerate(self.rows, start=1):
            segments.append(SegmentPoint(ck(i), i * 100, sum((record or {}).values()) or 1000, 0.2))
            if record is not None:
                trained[ck(i)] = {(b.split("@")[0], int(b.split("@")[1])): t for b, t in record.items()}
            for bench, acc in scores.items():
                skill, level = bench.split("@")
                evals.append(EvalPoint(ck(i), i * 100, skill, int(level), acc))
        return apply_progression(
            evals,
            segments,
            level_caps=self.caps,
            trained=trained,
            checks=self.checks,
            cap_rule=cap_rule,
            **RULES,
        )


def bin_l2_drops(
    after: list[float], maintenance: dict | None = None, confirmed: bool | None = True, held_for: int = 3
) -> Story:
    """BIN earns L1 and L2, holds L2 at 1.0 for `held_for` segments of L3, then L2 drops to after[0] and goes
    on as `after` while L3 sits flat at 0.3; segments after the drop train `maintenance`."""
    s = Story(bin=8).learn("bin", 1).learn("bin", 2, held=("bin@1",))
    s.seg({"bin@3": 1000}, {"bin@1": HELD, "bin@2": HELD, "bin@3": 0.3}, n=held_for)
    s.seg({"bin@3": 1000}, {"bin@1": HELD, "bin@2": after[0], "bin@3": 0.3})
    if confirmed is not None:
        s.check("bin@2", confirmed)
    maint = {"bin@3": 1000, "bin@2": 3000} if maintenance is None else maintenance
    s.seg(maint, {"bin@1": HELD, "bin@2": after[1:], "bin@3": 0.3}, n=len(after) - 1)
    return s


def issue_bin_stuck_at_l4() -> Story:
    """The issue's campaign: BIN stuck at L4 for 16 segments with L2 and L3 regressed (confirmed) and
    maintenance on them, while attn_count still climbs at its L1."""
    s = Story(bin=8, attn_count=8).learn("bin", 1).learn("bin", 2, held=("bin@1",))
    s.learn("bin", 3, held=("bin@1", "bin@2"))
    stuck = {"bin@1": HELD, "bin@4": 0.3}
    s.seg({"bin@4": 1000, "attn_count@1": 1000}, {**stuck, "bin@2": 0.5, "bin@3": 0.5, "attn_count@1": 0.3})
    s.check("bin@2", True).check("bin@3", True)
    climb = [round(0.3 + 0.03 * k, 3) for k in range(1, 16)]
    maint = {"bin@4": 1000, "attn_count@1": 1000, "bin@2": 1200, "bin@3": 1200}
    return s.seg(maint, {**stuck, "bin@2": 0.5, "bin@3": 0.5, "attn_count@1": climb}, n=15)


def bin_capped_while_sy_levels() -> Story:
    """BIN L2 drops (confirmed) and stays down under maintenance while sy earns L1, L2 and L3."""
    s = Story(bin=8, sy=8).learn("bin", 1).learn("bin", 2, held=("bin@1",))
    s.seg({"bin@3": 1000, "sy@1": 1000}, {"bin@1": HELD, "bin@2": 0.5, "bin@3": 0.3, "sy@1": 0.5})
    s.check("bin@2", True)
    s.seg(
        {"bin@3": 500, "sy@1": 500, "bin@2": 3000},
        {"bin@1": HELD, "bin@2": 0.5, "bin@3": 0.3, "sy@1": 0.9},
        n=3,
    )
    for lv in (2, 3):
        held = {f"sy@{m}": HELD for m in range(1, lv)}
        s.seg(
            {"bin@3": 500, f"sy@{lv}": 500, "bin@2": 3000},
            {"bin@1": HELD, "bin@2": 0.5, "bin@3": 0.3, f"sy@{lv}": 0.9, **held},
            n=3,
        )
    return s


def sy_knocks_down_complete_bin() -> Story:
    """BIN completes its cap (2); sy earns L1, then learning sy L2 knocks BIN L2 down (confirmed) and
    maintenance on it fails to restore it: the forgetting is sy's."""
    s = Story(bin=2, sy=8).learn("bin", 1).learn("bin", 2, held=("bin@1",))
    s.learn("sy", 1, held=("bin@1", "bin@2"))
    s.seg({"sy@2": 1000}, {"bin@1": HELD, "bin@2": 0.5, "sy@1": HELD, "sy@2": 0.3})
    s.check("bin@2", True)
    return s.seg({"sy@2": 1000, "bin@2": 2000}, {"bin@1": HELD, "bin@2": 0.5, "sy@1": HELD, "sy@2": 0.3}, n=6)


def no_record_before_the_level_up() -> Story:
    """bin_l2_drops with a stall, but the segments that earned L1 and L2 have no token record."""
    s = bin_l2_drops([0.6] * 8)
    s.rows[:6] = [(None, scores) for _, scores in s.rows[:6]]
    return s


def plateau_without_forgetting() -> Story:
    """BIN earns L1 and then sits at 0.5 on L2 for nine segments, L1 held."""
    return Story(bin=8).learn("bin", 1).seg({"bin@2": 1000}, {"bin@1": HELD, "bin@2": 0.5}, n=9)


def every_skill_complete() -> Story:
    """BIN (cap 2) and sy (cap 1) both mastered their caps."""
    s = Story(bin=2, sy=1).learn("bin", 1).learn("bin", 2, held=("bin@1",))
    return s.learn("sy", 1, held=("bin@1", "bin@2")).seg(
        {"bin@1": 100}, {"bin@1": HELD, "bin@2": HELD, "sy@1": HELD}
    )


TABLE = [
    # (name, history, expected verdict per skill, hero maxed out)
    (
        "issue: bin stuck at L4 while attn_count climbs",
        issue_bin_stuck_at_l4,
        {"bin": "capped", "attn_count": "learning"},
        False,
    ),
    (
        "recovering since the drop (0.60 -> 0.78 after 1.0s)",
        lambda: bin_l2_drops([0.6, 0.66, 0.72, 0.78]),
        {"bin": "plateau"},
        False,
    ),
    (
        "flat after the drop, maintenance trained: capped",
        lambda: bin_l2_drops([0.6] * 5),
        {"bin": "capped"},
        True,
    ),
    ("slow climber +0.018/eval is learning", lambda: _slow_climber(), {"bin": "learning"}, False),
    (
        "level-up long before the window: multiplier is a ratio",
        lambda: bin_l2_drops([0.6] * 12, {"bin@3": 1000, "bin@2": 2000}),
        {"bin": "capped"},
        True,
    ),
    (
        "no token record of the earning: multiplier undefined",
        no_record_before_the_level_up,
        {"bin": "plateau"},
        False,
    ),
    (
        "maintenance inferred, never trained",
        lambda: bin_l2_drops([0.6] * 8, {"bin@3": 1000}),
        {"bin": "plateau"},
        False,
    ),
    (
        "real cap while another skill levels",
        bin_capped_while_sy_levels,
        {"bin": "capped", "sy": "learning"},
        False,
    ),
    (
        "refuted drop counts for nothing",
        lambda: bin_l2_drops([0.6] * 8, confirmed=False),
        {"bin": "plateau"},
        False,
    ),
    (
        "unchecked drop counts for nothing",
        lambda: bin_l2_drops([0.6] * 8, confirmed=None),
        {"bin": "plateau"},
        False,
    ),
    ("too few evals since the drop", lambda: bin_l2_drops([0.6, 0.6], held_for=6), {"bin": "plateau"}, False),
    (
        "regression recovered: plateau",
        lambda: bin_l2_drops([0.6, 0.6, 0.6, 0.9, 0.9, 0.9, 0.9]),
        {"bin": "plateau"},
        False,
    ),
    ("plateau without forgetting", plateau_without_forgetting, {"bin": "plateau"}, False),
    (
        "too few segments to judge",
        lambda: Story(bin=8).seg({"bin@1": 1000}, {"bin@1": 0.3}, n=4),
        {"bin": "learning"},
        False,
    ),
    (
        "cross-skill: sy's learning knocked complete bin down",
        sy_knocks_down_complete_bin,
        {"bin": "complete", "sy": "capped"},
        True,
    ),
    ("every skill complete", every_skill_complete, {"bin": "complete", "sy": "complete"}, True),
]


def _slow_climber() -> Story:
    """bin_l2_drops flat after the drop, but L3 rises +0.018 per eval the whole time."""
    s = bin_l2_drops([0.6] * 8)
    rising = iter(round(0.2 + 0.018 * k, 4) for k in range(s.n))
    for i, (record, scores) in enumerate(s.rows):
        if "bin@3" in scores:
            s.rows[i] = (record, {**scores, "bin@3": next(rising)})
    return s


@pytest.mark.parametrize(("name", "history", "expected", "maxed"), TABLE, ids=[row[0] for row in TABLE])
def test_verdict_table(name, history, expected, maxed):
    state = history().run()
    got = {skill: v.verdict for skill, v in state.verdicts.skills.items()}
    assert got == expected, [v.summary() for v in state.verdicts.skills.values()]
    assert state.maxed_out is maxed, state.maxed_out_reason
    assert state.hero_sheet()["verdicts"][next(iter(expected))]["verdict"] == expected[next(iter(expected))]


def test_issue_bin_capped_with_multiplier_6_and_hero_not_maxed():
    state = issue_bin_stuck_at_l4().run()
    v = state.verdicts.skills["bin"]
    assert v.level == 4 and v.earned == {1: 3000, 2: 3000, 3: 3000}
    # The drop came in a segment that trained bin L4 and attn_count L1 equally: half the blame each.
    assert {(e.skill, e.level): e.blame for e in v.knocked_down} == {
        ("bin", 2): {"bin": 0.5, "attn_count": 0.5},
        ("bin", 3): {"bin": 0.5, "attn_count": 0.5},
    }
    assert v.maintenance_segments == 15 and v.maintenance_tokens == 15 * 2400 // 2
    assert v.multiplier == pytest.approx(6.0)
    assert state.verdicts.skills["attn_count"].multiplier is None  # it never earned a level
    assert "bin capped, but attn_count" in state.maxed_out_reason
    assert "bin L4 (capped)" in state.cap_claim()


def test_recovery_is_measured_from_the_drop_on():
    [episode] = bin_l2_drops([0.6, 0.66, 0.72, 0.78]).run().verdicts.episodes
    assert episode.trend == pytest.approx(0.06) and episode.status == "confirmed"
    assert (
        "recovering since the drop"
        in bin_l2_drops([0.6, 0.66, 0.72, 0.78]).run().verdicts.skills["bin"].reason
    )


def test_slow_climber_trend_is_its_own():
    v = _slow_climber().run().verdicts.skills["bin"]
    assert v.trend == pytest.approx(0.018) and "climbing" in v.reason


def test_multiplier_looks_back_to_the_level_up_not_a_count():
    v = bin_l2_drops([0.6] * 12, {"bin@3": 1000, "bin@2": 2000}).run().verdicts.skills["bin"]
    # 11 maintenance segments of 2000 tokens on L2 over the 3000 that earned L2: not 11 (a count).
    assert v.maintenance_segments == 11
    assert v.multiplier == pytest.approx(11 * 2000 / 3000)


def test_undefined_multiplier_is_none_and_says_so():
    state = no_record_before_the_level_up().run()
    v = state.verdicts.skills["bin"]
    assert v.multiplier is None and v.earned == {1: None, 2: None}
    assert "undefined" in v.reason
    assert state.hero_sheet()["verdicts"]["bin"]["multiplier"] is None


def test_maintenance_counts_recorded_tokens_only():
    v = bin_l2_drops([0.6] * 8, {"bin@3": 1000}).run().verdicts.skills["bin"]
    assert v.maintenance_tokens == 0 and "maintenance trained in 0 of the 3" in v.reason


def test_refuted_and_unchecked_drops_are_shown_not_counted():
    refuted = bin_l2_drops([0.6] * 8, confirmed=False).run()
    assert [e.status for e in refuted.verdicts.episodes] == ["refuted"]
    assert refuted.verdicts.skills["bin"].knocked_down == ()
    assert refuted.hero_sheet()["regressions"][0]["status"] == "refuted"
    assert refuted.boosted == {}  # and no maintenance weight in the next mix
    unchecked = bin_l2_drops([0.6] * 8, confirmed=None).run()
    assert [e.status for e in unchecked.verdicts.episodes] == ["unconfirmed"]
    assert unchecked.boosted == {"bin": (2,)}  # until the reserve sample has its say
    # a check older than the drop says nothing about it
    late = bin_l2_drops([0.6] * 8, confirmed=None).check("bin@2", True, at=3).run()
    assert [e.status for e in late.verdicts.episodes] == ["unconfirmed"]


def test_cross_skill_blame_goes_to_the_learning_skill():
    state = sy_knocks_down_complete_bin().run()
    [episode] = state.verdicts.episodes
    assert (episode.skill, episode.level, episode.blame) == ("bin", 2, {"sy": 1.0})
    sy = state.verdicts.skills["sy"]
    assert sy.multiplier == pytest.approx(6 * 2000 / 3000)
    assert "every skill with levels left is capped" in state.maxed_out_reason


def _ledger_from(story: Story, con, *, with_tokens: bool = True) -> None:
    """Write a Story into a real ledger: checkpoint rows, eval scores, segment tokens, checks."""
    from datetime import datetime, timedelta

    from realm_pipeline import ledger

    t0 = datetime(2026, 1, 1)
    for i, (record, scores) in enumerate(story.rows, start=1):
        at = t0 + timedelta(minutes=i)
        ledger.upsert(
            con,
            "checkpoints",
            [{"checkpoint_id": ck(i), "hero": "tiny", "step": i * 100, "tokens": 1000, "created_at": at}],
        )
        ledger.upsert(
            con,
            "eval_scores",
            [
                {
                    "checkpoint_id": ck(i),
                    "hero": "tiny",
                    "step": i * 100,
                    "skill": bench.split("@")[0],
                    "level": int(bench.split("@")[1]),
                    "fingerprint": f"{ck(i)}:{bench}",
                    "n": 50,
                    "correct": round(acc * 50),
                    "accuracy": acc,
                    "created_at": at,
                    "protocol": "p1",
                    "sample": "eval",
                }
                for bench, acc in scores.items()
            ],
        )
        if with_tokens and record:
            ledger.upsert(
                con,
                "segment_tokens",
                [
                    {"checkpoint_id": ck(i), "hero": "tiny", "step": i * 100, "skill": b.split("@")[0]}
                    | {"level": int(b.split("@")[1]), "tokens": n}
                    for b, n in record.items()
                ],
            )
    for v, c in enumerate(story.checks, start=1):
        ledger.upsert(
            con,
            "regression_checks",
            [
                {"hero": "tiny", "bench": f"{c.skill}@{c.level}", "baseline_version": v}
                | {"checkpoint_id": c.checkpoint_id, "baseline": 1.0, "reserve_accuracy": 0.5}
                | {"confirmed": c.confirmed, "created_at": t0}
            ],
        )


@pytest.mark.parametrize(
    ("confirmed", "with_tokens", "verdict"),
    # realm's configured rule (forgetting): twelve evals at 0.60 outweigh one refuted reserve sample; with no
    # token record the maintenance the loss is owed is not shown to have been trained
    [(True, True, "capped"), (True, False, "plateau"), (False, True, "capped")],
    ids=["recorded and confirmed", "no token record", "refuted"],
)
def test_the_ledger_feeds_the_verdicts(tmp_path, confirmed, with_tokens, verdict):
    """curriculum_state reads scores (with their items), segment_tokens and regression_checks from a real
    DuckDB ledger, and judges them by realm.yaml's cap rule."""
    from pathlib import Path

    from realm_pipeline import ledger
    from realm_pipeline.campaign import curriculum_state
    from realm_pipeline.settings import Settings

    story = bin_l2_drops([0.6] * 12, confirmed=confirmed)
    with ledger.connect(tmp_path / "realm.duckdb") as con:
        ledger.migrate(con)
        _ledger_from(story, con, with_tokens=with_tokens)
        state = curriculum_state(con, Settings(Path(__file__).parent.parent / "configs"), "tiny")
    v = state.verdicts.skills["bin"]
    assert (v.level, v.verdict) == (3, verdict), v.summary()
    assert v.cap_level == (2 if verdict == "capped" else None)
    assert state.maxed_out is (verdict == "capped")
    assert [e.status for e in state.verdicts.episodes] == ["confirmed" if confirmed else "refuted"]


def test_curriculum_asset_and_realm_status_show_each_skill_verdict(realm_env, capsys):
    """The rollup's curriculum asset (real Dagster instance, real ledger) reports every skill's verdict,
    stores it for the mirror, and the hero sheet `realm status` prints shows its evidence."""
    import json

    import dagster as dg

    from realm_pipeline import ledger
    from realm_pipeline.cli import _print_verdicts
    from realm_pipeline.definitions import build_defs

    with ledger.connect(realm_env / "realm.duckdb") as con:
        ledger.migrate(con)
        _ledger_from(bin_l2_drops([0.6] * 12), con)
    defs = build_defs()
    with dg.DagsterInstance.get() as instance:
        defs.resolve_job_def("rollup_job").execute_in_process(instance=instance, raise_on_error=False)
        meta = instance.fetch_materializations(dg.AssetKey("curriculum"), limit=1).records[0]
    meta = meta.asset_materialization.metadata
    assert meta["tiny/bin/verdict"].value == "capped"
    assert meta["tiny/bin/maintenance_multiplier"].value == pytest.approx(11 * 3000 / 3000)
    assert meta["tiny/maxed_out"].value is True
    assert meta["tiny/verdicts"].value["bin"]["knocked_down"][0]["status"] == "confirmed"
    with ledger.connect(realm_env / "realm.duckdb", read_only=True) as con:
        stored = json.loads(con.execute("SELECT verdicts_json FROM hero_state").fetchone()[0])
    assert stored["skills"]["bin"]["verdict"] == "capped"

    _print_verdicts(bin_l2_drops([0.6] * 6).run().hero_sheet())
    out = capsys.readouterr().out
    assert "bin        L3 capped: multiplier 5.00x; earned (tokens) L1 3000, L2 3000" in out
    assert "knocked down bin L2 at step 1000 (confirmed), regressed, 0.60 now" in out
    assert "maintenance 15000 tokens in 5 segments; no level-up in 6 segments" in out
