"""A poisoned inbox: whatever is dropped there gets a report and moves aside; the sensor never raises."""
# ruff: noqa: F811  (env is the quest tests' fixture, imported to be shared)

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from realm_pipeline import quests as q
from realm_pipeline.defs.quests.assets import quests
from tests.test_quests import env, example, tick, write  # noqa: F401  (env is a fixture)


def _reports(home: Path) -> dict[str, dict]:
    rejected = home / "inbox" / "rejected"
    return {
        p.name.removesuffix(".error.json"): json.loads(p.read_text()) for p in rejected.glob("*.error.json")
    }


def _poison(inbox: Path, outside: Path) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    surrogate = (
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "\\ud800"}]}'
    )
    (inbox / "surrogate.jsonl").write_text(surrogate + "\n")
    (inbox / "deep.jsonl").write_text("[" * 200_000 + "]" * 200_000 + "\n")
    (inbox / "folder.jsonl").mkdir()
    (inbox / "folder.jsonl" / "inner.jsonl").write_text(json.dumps(example(0)) + "\n")
    write(outside, [example(1)])
    (inbox / "link.jsonl").symlink_to(outside)


def test_every_poisoned_entry_is_reported_and_moved_aside(env) -> None:
    home, resources, instance = env
    inbox = home / "inbox"
    _poison(inbox, home.parent / "outside.jsonl")
    good = write(inbox / "good.jsonl", [example(7)])
    entries = sorted(inbox.glob("*.jsonl"))
    # the sensor neither raises nor reads what it cannot: one request per entry (within the tick's cap)
    result = tick(instance, resources)
    assert result.run_requests, result.skip_message
    requested = [r.run_config["ops"]["quests"]["config"]["files"][0] for r in result.run_requests]
    assert requested == [str(p) for p in entries][: len(requested)]
    # materialized by hand with no run config, `quests` processes every entry of the inbox
    assert dg.materialize([quests], instance=instance, resources=resources).success
    reports = _reports(home)
    assert set(reports) == {"surrogate.jsonl", "deep.jsonl", "folder.jsonl", "link.jsonl"}
    assert reports["surrogate.jsonl"]["rule"] == "invalid_unicode" and reports["surrogate.jsonl"]["line"] == 1
    assert reports["deep.jsonl"]["rule"] == "too_deep"
    assert reports["folder.jsonl"]["rule"] == "directory" and reports["folder.jsonl"]["sha256"] is None
    assert reports["link.jsonl"]["rule"] == "symlink" and reports["link.jsonl"]["sha256"] is None
    rejected = inbox / "rejected"
    assert (rejected / "folder.jsonl" / "inner.jsonl").exists()  # moved whole, nothing deleted
    assert (rejected / "link.jsonl").is_symlink() and (home.parent / "outside.jsonl").exists()
    assert not list(inbox.glob("*.jsonl"))
    assert not good.exists() and (inbox / "accepted" / "good.jsonl").exists()
    with resources["ledger_db"].read() as con:
        assert con.execute("SELECT count(*) FROM quests").fetchone()[0] == 1  # only the good file
        assert con.execute("SELECT count(*) FROM quest_examples").fetchone()[0] == 1


def test_the_same_bytes_as_a_rejected_file_get_a_run_and_a_report(env) -> None:
    home, resources, instance = env
    bad = write(home / "inbox" / "bad.jsonl", ["oops"])
    dropped_at = bad.stat().st_mtime_ns
    (first,) = tick(instance, resources).run_requests
    assert dg.materialize(
        [quests], instance=instance, resources=resources, run_config=first.run_config
    ).success
    again = write(home / "inbox" / "bad.jsonl", ["oops"])  # the same bytes, dropped again later
    os.utime(again, ns=(dropped_at + 10**9, dropped_at + 10**9))
    (second,) = tick(instance, resources, None).run_requests
    assert second.run_key != first.run_key  # a spent key never swallows a new drop
    assert dg.materialize(
        [quests], instance=instance, resources=resources, run_config=second.run_config
    ).success
    assert {"bad.jsonl", "bad.1.jsonl"} <= {p.name for p in (home / "inbox" / "rejected").iterdir()}
    assert len(_reports(home)) == 2


def test_an_unreadable_file_is_rejected_with_a_report_not_failed_for_ever(env) -> None:
    home, resources, instance = env
    path = write(home / "inbox" / "locked.jsonl", [example(0)])
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make the read fail the way a user's would
        os.unlink(path)
        os.mkfifo(path)  # reading a FIFO with no writer would block: it is refused by kind, unread
    assert dg.materialize([quests], instance=instance, resources=resources).success
    (report,) = _reports(home).values()
    assert report["file"] == "locked.jsonl" and report["rule"] in {"unreadable", "special file"}
    assert not os.path.lexists(path)


def test_entry_run_keys_name_content_and_arrival(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [example(0)])
    key = q.entry_run_key(path)
    assert key == f"{q.file_sha256(path)}:a.jsonl:{path.stat().st_mtime_ns}"
    (tmp_path / "d.jsonl").mkdir()
    assert q.entry_run_key(tmp_path / "d.jsonl").startswith("directory:d.jsonl:")
