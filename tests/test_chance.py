"""Chance accuracy: stored with each eval set, shown beside accuracy on the leaderboard and the mirror."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from test_mirror_page import CHROMIUM, chromium

from realm_pipeline import ledger
from realm_pipeline.evaluation.eval_sets import build_eval_sets
from realm_pipeline.evaluation.leaderboard import rebuild_leaderboard
from realm_pipeline.mirror.export import build_mirror, write_mirror
from realm_pipeline.skills import get_skill
from realm_pipeline.skills.heldout import eval_items

T0 = datetime(2026, 1, 1, 12)


@pytest.mark.parametrize(("skill_name", "level"), [("attn_count", 1), ("bin", 1), ("bin", 2)])
def test_chance_is_what_the_commonest_constant_answer_scores(skill_name: str, level: int) -> None:
    skill = get_skill(skill_name)
    row = next(r for r in build_eval_sets(skill_name, level, 50).sets if r["level"] == level)
    items = eval_items(skill, level, 50)
    best = max(sum(skill.score(i, a).correct for i in items) / len(items) for a in {i.answer for i in items})
    assert row["chance_accuracy"] == pytest.approx(best)
    assert 0 < row["chance_accuracy"] < 1


def test_chance_is_shown_beside_accuracy_on_the_leaderboard_and_mirror(tmp_path: Path) -> None:
    sets = build_eval_sets("attn_count", 1, 50).sets
    chance = sets[0]["chance_accuracy"]
    with ledger.connect(tmp_path / "realm.duckdb") as con:
        ledger.migrate(con)
        ledger.upsert(con, "eval_sets", sets)
        ledger.upsert(con, "checkpoints", [{"checkpoint_id": "tiny.000150", "hero": "tiny", "step": 150}])
        score = {
            "checkpoint_id": "tiny.000150",
            "hero": "tiny",
            "step": 150,
            "skill": "attn_count",
            "level": 1,
        }
        ledger.upsert(
            con,
            "eval_scores",
            [
                {
                    **score,
                    "fingerprint": "f",
                    "n": 50,
                    "correct": 20,
                    "accuracy": 0.4,
                    "protocol": "p",
                    "sample": "eval",
                    "created_at": T0,
                }
            ],
        )
        rebuild_leaderboard(con, vote_minimum=5, price_per_gpu_hour=None, built_at=T0)
        (row,) = con.execute("SELECT accuracy, chance_accuracy FROM leaderboard_rows").fetchall()
        assert row == (0.4, pytest.approx(chance))
        files = build_mirror(con, generated_at=T0)
    board = json.loads(files["leaderboard.json"])
    assert board["rows"][0]["chance_accuracy"] == pytest.approx(chance)
    heroes = json.loads(files["heroes.json"])
    assert json.dumps(heroes).count('"chance_accuracy"') >= 1
    # and on the page people read: a Chance cell beside the accuracy, in both tables
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium not installed: the page's cells are not checked")
    write_mirror(files, tmp_path / "mirror")
    dom = chromium(
        (tmp_path / "mirror" / "index.html").resolve().as_uri(), tmp_path / "profile", "--dump-dom"
    )
    cells = re.findall(r'<td class="num chance">([^<]+)</td>', dom)
    assert len(cells) == 2 and set(cells) == {f"{chance * 100:.1f}%"}, cells
