"""Quest files: validation, rejection reports, the inbox sensor and the `quests` asset's registration."""

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from realm_pipeline import quests as q
from realm_pipeline.defs.quests.assets import quests, quests_job
from realm_pipeline.defs.quests.sensors import quest_inbox_sensor
from realm_pipeline.defs.resources import LedgerResource, RealmResource

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def example(i: int) -> dict:
    """One good chat example."""
    return {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": f"q{i}"},
            {"role": "assistant", "content": f"a{i}"},
        ]
    }


def write(path: Path, lines: list) -> Path:
    """A JSONL file of objects (or raw strings, written as is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture
def env(tmp_path: Path):
    """(home, resources, instance) on a fresh ledger file and a temp Dagster instance."""
    home = tmp_path / "home"
    resources = {
        "realm": RealmResource(home=str(home), config_dir=str(CONFIGS)),
        "ledger_db": LedgerResource(database=str(tmp_path / "realm.duckdb")),
    }
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield home, resources, instance


def tick(instance, resources, cursor=None):
    """One Dagster-validated tick of the inbox sensor."""
    defs = dg.Definitions(
        assets=[quests], jobs=[quests_job], sensors=[quest_inbox_sensor], resources=resources
    )
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources, definitions=defs
    ) as ctx:
        return quest_inbox_sensor.evaluate_tick(ctx)


def test_validate_good_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [example(0), example(1)])
    quest = q.validate_quest_file(path, registered_sha256s=set())
    assert (
        quest.n == 2 and quest.sha256 == q.file_sha256(path) and quest.examples[1] == example(1)["messages"]
    )


@pytest.mark.parametrize(
    ("lines", "line", "problem"),
    [
        ([example(0), "{not json"], 2, "not JSON"),
        ([example(0), {"msgs": []}], 2, "unknown field"),
        ([{"messages": [{"role": "user", "content": "hi"}]}], 1, "must be 'assistant'"),
        ([{"messages": [{"role": "bot", "content": "hi"}]}], 1, "messages[0].role"),
        ([{"messages": [{"role": "assistant", "content": 3}]}], 1, "messages[0].content"),
        ([["a list"]], 1, "expected an object"),
        ([], None, "empty"),
    ],
)
def test_bad_files_rejected(tmp_path: Path, lines: list, line: int | None, problem: str) -> None:
    path = write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(q.QuestRejected) as err:
        q.validate_quest_file(path, registered_sha256s=set())
    assert err.value.line == line and problem in err.value.reason


def test_duplicate_and_oversized(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [example(i) for i in range(5)])
    with pytest.raises(q.QuestRejected, match="duplicate"):
        q.validate_quest_file(path, registered_sha256s={q.file_sha256(path)})
    with pytest.raises(q.QuestRejected, match="oversized"):
        q.validate_quest_file(path, registered_sha256s=set(), max_bytes=100)
    with pytest.raises(q.QuestRejected, match="oversized") as err:
        q.validate_quest_file(path, registered_sha256s=set(), max_examples=3)
    assert err.value.line == 4


def test_add_to_inbox_never_overwrites(tmp_path: Path) -> None:
    src = write(tmp_path / "mine.txt", [example(0)])
    first, second = q.add_to_inbox(src, tmp_path / "home"), q.add_to_inbox(src, tmp_path / "home")
    assert first.name == "mine.jsonl" and second.name == "mine.1.jsonl"
    assert first.read_bytes() == second.read_bytes() == src.read_bytes()
    assert not list((tmp_path / "home" / "inbox").glob(".*"))  # no partial copies left behind


def test_asset_rejects_each_bad_kind_with_a_report(env) -> None:
    home, resources, instance = env
    inbox = home / "inbox"
    good = write(inbox / "registered.jsonl", [example(0)])
    with resources["ledger_db"].get_connection() as con:
        q.register_quest(
            con, q.validate_quest_file(good, registered_sha256s=set()), str(good), datetime.now()
        )
    write(inbox / "notjson.jsonl", [example(0), "oops"])
    write(inbox / "shape.jsonl", [{"messages": [{"role": "user", "content": "no answer"}]}])
    write(inbox / "empty.jsonl", [])
    write(inbox / "big.jsonl", [{"messages": [{"role": "assistant", "content": "x" * (11 * 1024 * 1024)}]}])
    files = sorted(inbox.glob("*.jsonl"))
    # the sensor only reads and requests: a run per file (up to its cap), nothing moved
    cap = resources["realm"].settings.realm.sensors.max_runs_per_tick
    result = tick(instance, resources)
    assert [r.run_config["ops"]["quests"]["config"]["files"] for r in result.run_requests] == [
        [str(p)] for p in files[:cap]
    ]
    assert sorted(inbox.glob("*.jsonl")) == files and not (inbox / "rejected").exists()
    # the asset validates and files every one of them under rejected/, with its report
    config = {"ops": {"quests": {"config": {"files": [str(p) for p in files]}}}}
    assert dg.materialize([quests], instance=instance, resources=resources, run_config=config).success
    rejected = home / "inbox" / "rejected"
    reports = {
        p.name.removesuffix(".error.json"): json.loads(p.read_text()) for p in rejected.glob("*.error.json")
    }
    assert set(reports) == {"registered.jsonl", "notjson.jsonl", "shape.jsonl", "empty.jsonl", "big.jsonl"}
    assert reports["notjson.jsonl"]["line"] == 2 and "not JSON" in reports["notjson.jsonl"]["problem"]
    assert reports["shape.jsonl"]["line"] == 1 and "assistant" in reports["shape.jsonl"]["problem"]
    assert "empty" in reports["empty.jsonl"]["problem"]
    assert "duplicate" in reports["registered.jsonl"]["problem"]
    assert "oversized" in reports["big.jsonl"]["problem"]
    for name, report in reports.items():
        assert (rejected / name).exists()  # moved, never deleted
        assert set(report) == {"file", "sha256", "line", "rule", "problem", "problems", "time"}
    assert not list(inbox.glob("*.jsonl"))


def test_good_file_registers_through_the_asset(env) -> None:
    home, resources, instance = env
    path = write(home / "inbox" / "good.jsonl", [example(i) for i in range(3)])
    sha = q.file_sha256(path)
    result = tick(instance, resources)
    (req,) = result.run_requests
    assert req.run_key == f"{sha}:good.jsonl:{path.stat().st_mtime_ns}" and req.job_name == "quests_job"
    assert req.run_config == {"ops": {"quests": {"config": {"files": [str(path)]}}}}
    assert tick(instance, resources, result.cursor).run_requests == []  # in flight: not re-requested
    out = dg.materialize([quests], instance=instance, resources=resources, run_config=req.run_config)
    assert out.success
    with resources["ledger_db"].read() as con:
        assert con.execute("SELECT quest_id, sha256, n_examples FROM quests").fetchall() == [
            (sha[:16], sha, 3)
        ]
        rows = con.execute("SELECT example_index, messages_json FROM quest_examples ORDER BY 1").fetchall()
    assert [(i, json.loads(m)) for i, m in rows] == [(i, example(i)["messages"]) for i in range(3)]
    assert not path.exists() and (home / "inbox" / "accepted" / "good.jsonl").exists()
    # the same content again: its sha256 is spent, so the copy gets a run of its own, which rejects it
    again = write(home / "inbox" / "again.jsonl", [example(i) for i in range(3)])
    (dup,) = tick(instance, resources, result.cursor).run_requests
    assert dup.run_key.startswith(f"{sha}:again.jsonl:") and again.exists()
    assert dg.materialize([quests], instance=instance, resources=resources, run_config=dup.run_config).success
    assert not again.exists() and (home / "inbox" / "rejected" / "again.jsonl").exists()
    with resources["ledger_db"].read() as con:
        assert con.execute("SELECT count(*) FROM quests").fetchone()[0] == 1


def test_failed_registration_writes_nothing(env, monkeypatch: pytest.MonkeyPatch) -> None:
    home, resources, instance = env
    path = write(home / "inbox" / "good.jsonl", [example(i) for i in range(3)])

    def boom(con, quest):
        raise RuntimeError("disk full")

    monkeypatch.setattr(q, "insert_examples", boom)  # fails after the quests row is written
    out = dg.materialize(
        [quests],
        instance=instance,
        resources=resources,
        run_config={"ops": {"quests": {"config": {"files": [str(path)]}}}},
        raise_on_error=False,
    )
    assert not out.success
    with resources["ledger_db"].read() as con:
        assert con.execute("SELECT count(*) FROM quests").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM quest_examples").fetchone()[0] == 0
    assert path.exists()  # stays in the inbox for a retry


HOLD = (
    "import sys, time, duckdb; con = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(30)"
)


def test_the_sensor_ticks_while_the_ledger_is_busy(env) -> None:
    home, resources, instance = env
    path = write(home / "inbox" / "good.jsonl", [example(0)])
    with resources["ledger_db"].get_connection():
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, resources["ledger_db"].database], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        # the sensor reads only the inbox: a held ledger delays the run's write, never the request
        (req,) = tick(instance, resources).run_requests
        assert req.run_config["ops"]["quests"]["config"]["files"] == [str(path)]
    finally:
        holder.kill()
        holder.wait()


def test_a_reserve_prompt_quest_line_is_refused_through_quest_add_and_the_asset(
    env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reserve sample that confirms regressions is held out from quests as the eval set is."""
    from click.testing import CliRunner

    from realm_pipeline.cli import main
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import eval_prompts, heldout_index, reserve_items, training_items

    home, resources, instance = env
    count = resources["realm"].settings.skills["bin"].eval_items_per_level
    skill = get_skill("bin")
    reserve = next(
        i
        for i in reserve_items(skill, 2, count)
        if all(i.prompt not in eval_prompts(skill, lv, count) for lv in (1, 2, 3))
    )
    # the one index: the training stream skips what the quest check refuses
    assert heldout_index(skill, count)[reserve.prompt] == "reserve prompt of bin L2"
    stream = training_items(skill, 2, seed=1, eval_count=count)
    assert all(next(stream).prompt != reserve.prompt for _ in range(2000))
    src = write(home.parent / "mine.jsonl", [example(0), {"messages": reserve.messages}])
    monkeypatch.setenv("REALM_HOME", str(home))
    out = CliRunner().invoke(main, ["quest", "add", str(src)])
    assert out.exit_code == 0, out.output
    (queued,) = (home / "inbox").glob("*.jsonl")
    config = {"ops": {"quests": {"config": {"files": [str(queued)]}}}}
    assert dg.materialize([quests], instance=instance, resources=resources, run_config=config).success
    report = json.loads((home / "inbox" / "rejected" / "mine.jsonl.error.json").read_text())
    assert (report["line"], report["rule"]) == (2, "eval_prompt")
    assert "held-out reserve prompt of bin L2" in report["problem"]
    with resources["ledger_db"].read() as con:
        assert con.execute("SELECT count(*) FROM quests").fetchone()[0] == 0  # nothing of it trains
