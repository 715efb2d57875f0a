"""Public mirror: no private value leaves the ledger, the blocking leak check, crash-safe atomic publish."""

import dataclasses
import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from test_verdicts import issue_bin_stuck_at_l4

from realm_pipeline import ledger
from realm_pipeline.evaluation.leaderboard import rebuild_leaderboard
from realm_pipeline.ledger import TABLES
from realm_pipeline.mirror.export import EmptyMirror, build_mirror, read_public, schema, write_mirror
from realm_pipeline.mirror.leakcheck import private_values, scan

T0 = datetime(2026, 3, 1, 9, 0, 0)
# a real replay's verdicts (bin capped at L4 while attn_count climbs), as the curriculum asset stores them
DIO_VERDICTS = issue_bin_stuck_at_l4().run().verdicts.to_json()
SKILLS = ("binary_add", "sort_words", "parity_check")
HEROES = {"tiny": 1200, "dio": 800}  # hero -> last step

# Every private column, reviewed: changing a column's visibility (or adding a private one) must be done
# here too, so a flip from private to public never slips through unnoticed.
REVIEWED_PRIVATE = {
    "eval_items": {"seed", "prompt", "answer", "system_prompt"},
    "checkpoints": {"path", "host", "spec_json"},
    "hero_state": {"status"},  # what a hero does next or why it stopped: a failure's message may name paths
    "eval_scores": {"fingerprint_json"},
    "eval_generations": {
        "checkpoint_id",
        "skill",
        "level",
        "item_index",
        "fingerprint",
        "output",
        "correct",
        "partial",
    },
    "compare_runs": {"results_json"},
    "human_prefs": {"note", "voter"},
    "quests": {"source_path"},
    "quest_examples": {"quest_id", "example_index", "messages_json"},
    "schema_version": {"version", "applied_at"},
    "protocols_in_force": {"spec_json"},  # a serve command may name paths and hosts
}


def level_at(skill_index: int, step: int) -> int:
    """Synthetic progression: each skill levels up every (300 + 100 * index) steps, capped at 4."""
    return min(4, step // (300 + 100 * skill_index))


def populate(con) -> None:
    """Realistic public history for two heroes: checkpoints, evals, level-ups, hero state, leaderboard."""
    ckpts, scores, events, states = [], [], [], []
    for hero, last in HEROES.items():
        for step in range(100, last + 1, 100):
            cid = f"{hero}.{step:06d}"
            ckpts.append(
                {
                    "checkpoint_id": cid,
                    "hero": hero,
                    "step": step,
                    "segment": step // 100,
                    "tokens": step * 4096,
                    "train_loss": 3.0 / (1 + step / 300),
                    "created_at": T0 + timedelta(minutes=step),
                }
            )
            for k, skill in enumerate(SKILLS):
                learning = level_at(k, step) + 1
                for level in range(max(1, learning - 1), learning + 1):
                    progress = (step % (300 + 100 * k)) / (300 + 100 * k)
                    acc = 0.95 if level < learning else 0.35 + 0.55 * progress
                    n = 64
                    scores.append(
                        {
                            "checkpoint_id": cid,
                            "hero": hero,
                            "step": step,
                            "skill": skill,
                            "level": level,
                            "fingerprint": "fp1",
                            "n": n,
                            "correct": round(acc * n),
                            "accuracy": round(acc * n) / n,
                            "gpu_seconds": 12.5,
                            "created_at": T0 + timedelta(minutes=step, seconds=k),
                            "protocol": "p1",
                            "sample": "eval",
                        }
                    )
                if level_at(k, step) > level_at(k, step - 100):
                    events.append(
                        {
                            "hero": hero,
                            "skill": skill,
                            "level": level_at(k, step) + 1,
                            "event": "level_up",
                            "checkpoint_id": cid,
                            "step": step,
                            "accuracy": 0.92,
                            "created_at": T0,
                        }
                    )
        levels = {s: level_at(k, last) + 1 for k, s in enumerate(SKILLS)}  # the level being learned
        states.append(
            {
                "hero": hero,
                "paused": False,
                # as its verdicts say: dio's bin is capped while attn_count climbs, so not maxed out
                "maxed_out": DIO_VERDICTS["maxed_out"] if hero == "dio" else False,
                "champion": f"{hero}.{last:06d}",
                "levels_json": json.dumps(levels, sort_keys=True),
                "updated_at": T0,
                # dio: the verdicts of the issue-18 campaign (bin capped while attn_count climbs)
                "verdicts_json": json.dumps(DIO_VERDICTS if hero == "dio" else {}),
            }
        )
    ledger.upsert(con, "checkpoints", ckpts)
    ledger.upsert(con, "eval_scores", scores)
    ledger.upsert(con, "curriculum_events", events)
    ledger.upsert(con, "hero_state", states)
    rebuild_leaderboard(con, vote_minimum=5, price_per_gpu_hour=2.5, built_at=T0)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A migrated ledger file with realistic public data."""
    path = tmp_path / "realm.duckdb"
    with ledger.connect(path) as con:
        ledger.migrate(con)
        populate(con)
    return path


def _sentinel_value(column: ledger.Column, table: str, sentinels: list[str]):
    """A unique, recognisable value for a private column: a UUID in text, a random 12-digit number."""
    tag = uuid.uuid4().hex
    if column.type == "VARCHAR":
        value = f"/home/{tag}/realm/ckpt" if "path" in column.name else f"secret-{table}-{column.name}-{tag}"
        if column.name in ("host", "voter"):
            value = f"user-{tag}"
        sentinels.append(value)
        return value
    if column.type in ("INTEGER", "BIGINT"):
        value = (
            int(tag[:8], 16) % 900_000_000 + 100_000_000 if column.type == "INTEGER" else int(tag[:11], 16)
        )
        sentinels.append(str(value))
        return value
    return {"DOUBLE": 0.123456789123, "BOOLEAN": True, "TIMESTAMP": datetime(2091, 7, 3, 4, 5, 6)}[
        column.type
    ]


def _public_value(column: ledger.Column, table: str, i: int):
    """An ordinary value for a public column (unique, so primary keys never collide)."""
    return {
        "VARCHAR": f"{column.name}-{i}",
        "INTEGER": 1000 + i,
        "BIGINT": 100_000 + i,
        "DOUBLE": 0.5,
        "BOOLEAN": False,
        "TIMESTAMP": T0,
    }[column.type]


def fill_generically(con, rows_per_table: int = 3) -> list[str]:
    """Rows in every table built from TABLES: private columns hold sentinels; returns the sentinels."""
    sentinels: list[str] = []
    for table in TABLES.values():
        if table.name == "schema_version":
            continue  # migrate() owns it; its values are small ints and a timestamp
        rows = [
            {
                c.name: _public_value(c, table.name, i)
                if c.public
                else _sentinel_value(c, table.name, sentinels)
                for c in table.columns
            }
            for i in range(rows_per_table)
        ]
        ledger.upsert(con, table.name, rows)
    return sentinels


def output_bytes(directory: Path) -> dict[str, bytes]:
    """Every published file, by name."""
    return {p.name: p.read_bytes() for p in Path(directory).iterdir() if p.is_file()}


def test_private_columns_are_reviewed():
    """Every column's visibility matches the reviewed list: a flip or a new private column fails here."""
    actual = {t.name: set(t.private_columns) for t in TABLES.values() if t.private_columns}
    assert actual == REVIEWED_PRIVATE


def test_no_private_value_leaks(db: Path, tmp_path: Path):
    """THE leak test: sentinels in every private column (and an undeclared column) never reach the mirror."""
    with ledger.connect(db) as con:
        sentinels = fill_generically(con)
        # Someone adds a column to the database without declaring it: the export must not see it.
        con.execute("ALTER TABLE leaderboard_rows ADD COLUMN operator_email VARCHAR")
        undeclared = f"ops-{uuid.uuid4().hex}@example.org"
        con.execute("UPDATE leaderboard_rows SET operator_email = ?", [undeclared])
        files = build_mirror(con)
        secrets = private_values(con)
    string_sentinels = [s for s in sentinels if not s.isdigit()]
    assert (
        len(string_sentinels)
        >= sum(
            c.type == "VARCHAR" and not c.public
            for t in TABLES.values()
            if t.name != "schema_version"
            for c in t.columns
        )
        * 3
    )
    # The leak check knows every private string value: none is lost to the join-key or length rules.
    assert set(string_sentinels) <= secrets
    assert set(ledger.PRIVATE_TABLES) - {"schema_version"} <= secrets

    target = tmp_path / "mirror"
    write_mirror(files, target, check=lambda staged: _assert_clean(staged, secrets))
    published = output_bytes(target)
    assert set(published) == {
        "leaderboard.json",
        "heroes.json",
        "leaderboard.schema.json",
        "heroes.schema.json",
        "index.html",
    }
    blob = b"\n".join(published.values())
    for needle in [*sentinels, undeclared, *ledger.PRIVATE_TABLES]:
        if needle == "schema_version":
            continue  # the documents' own version key, not the ledger table
        assert needle.encode() not in blob, f"private value {needle!r} leaked"
    # The public side of the same rows did make it out (the test exercised real reads).
    assert b"lane-0" in published["leaderboard.json"]
    assert b"tiny.001200" in published["heroes.json"]
    assert b"operator_email" not in blob


def _assert_clean(staged: Path, secrets: set[str]) -> None:
    findings = scan(staged, secrets)
    assert not findings, findings


def test_reads_are_gated_by_declarations(db: Path, monkeypatch: pytest.MonkeyPatch):
    """Declaring a column private stops the export reading it; read_public never widens to SELECT *."""
    with ledger.connect(db, read_only=True) as con:
        rows = read_public(con, "checkpoints")
        assert set(rows[0]) == set(TABLES["checkpoints"].public_columns)
        assert "path" not in rows[0]
        with pytest.raises(PermissionError):
            read_public(con, "checkpoints", ["checkpoint_id", "path"])
        with pytest.raises(PermissionError):
            read_public(con, "eval_items", ["prompt"])
        assert read_public(con, "quest_examples") == []  # a private table has nothing to read

        # Re-declare eval_scores.accuracy private: the heroes export must refuse rather than read it.
        table = TABLES["eval_scores"]
        cols = tuple(
            dataclasses.replace(c, public=False) if c.name == "accuracy" else c for c in table.columns
        )
        monkeypatch.setitem(TABLES, "eval_scores", dataclasses.replace(table, columns=cols))
        with pytest.raises(PermissionError, match="accuracy"):
            build_mirror(con)


def test_leak_check_finds_planted_values(db: Path, tmp_path: Path):
    """A prompt copied into a public column, a path inside a string, JSON-escaped text: all found."""
    prompt = 'Add the binary numbers 1011 and "0110"; answer in binary.'
    path = f"/home/{uuid.uuid4().hex}/ckpt"
    with ledger.connect(db) as con:
        ledger.upsert(
            con, "eval_items", [{"skill": "binary_add", "level": 1, "item_index": 0, "prompt": prompt}]
        )
        con.execute("UPDATE checkpoints SET path = ? WHERE checkpoint_id = 'tiny.000100'", [path])
        con.execute(
            "UPDATE leaderboard_rows SET lane = ? WHERE rank = 1 AND bench = 'binary_add@1'", [prompt]
        )
        con.execute("UPDATE hero_state SET champion = ? WHERE hero = 'dio'", [f"copied from {path}!"])
        files = build_mirror(con)
        secrets = private_values(con)
    staged = tmp_path / "staged"
    staged.mkdir()
    for name, data in files.items():
        (staged / name).write_bytes(data)
    found = {(f.file, f.value) for f in scan(staged, secrets)}
    assert ("leaderboard.json", prompt) in found  # JSON-escaped quotes
    assert ("index.html", prompt) in found
    assert ("heroes.json", path) in found
    # Join keys shared with public columns are not flagged; short and numeric values are skipped.
    assert "tiny.000100" not in secrets


def test_refuses_empty_unless_allowed(tmp_path: Path):
    """An empty leaderboard is never published by accident."""
    with ledger.connect(tmp_path / "empty.duckdb") as con:
        ledger.migrate(con)
        files = build_mirror(con)
    with pytest.raises(EmptyMirror, match="allow_empty"):
        write_mirror(files, tmp_path / "mirror")
    assert not (tmp_path / "mirror").exists()
    write_mirror(files, tmp_path / "mirror", allow_empty=True)
    assert json.loads((tmp_path / "mirror" / "leaderboard.json").read_bytes())["rows"] == []


def _validate(instance: dict, name: str) -> None:
    """Validate against the packaged JSON Schema (jsonschema if installed, else a structural check)."""
    sch = schema(name)
    assert sch["$schema"] == "https://json-schema.org/draft/2020-12/schema" and "/v1/" in sch["$id"]
    try:
        import jsonschema
    except ImportError:
        assert set(instance) == set(sch["required"]) and instance["schema_version"] == 1
        return
    jsonschema.Draft202012Validator.check_schema(sch)
    jsonschema.Draft202012Validator(sch).validate(instance)


def test_documents_match_schemas(db: Path):
    """leaderboard.json and heroes.json validate; the row schema lists exactly the public columns."""
    with ledger.connect(db, read_only=True) as con:
        files = build_mirror(con)
        n_rows = con.execute("SELECT count(*) FROM leaderboard_rows").fetchone()[0]
    lb, heroes = json.loads(files["leaderboard.json"]), json.loads(files["heroes.json"])
    _validate(lb, "leaderboard")
    _validate(heroes, "heroes")
    row_props = schema("leaderboard")["properties"]["rows"]["items"]["properties"]
    assert tuple(row_props) == TABLES["leaderboard_rows"].public_columns
    assert lb["schema_version"] == 1 and len(lb["rows"]) == n_rows > 0
    tiny = next(h for h in heroes["heroes"] if h["hero"] == "tiny")
    dio = next(h for h in heroes["heroes"] if h["hero"] == "dio")
    assert tiny["champion"] == "tiny.001200" and dio["maxed_out"] is False and tiny["maxed_out"] is False
    binary = next(s for s in tiny["skills"] if s["skill"] == "binary_add")
    assert [p["level"] for p in binary["levels"]][:4] == [1, 1, 2, 2]  # level-up to L2 earned at step 300
    assert [p["learning"] for p in binary["levels"]][:4] == [1, 1, 1, 2]
    assert binary["level"] == 5 and len(binary["accuracy"]) > 12  # 4 mastered (the cap), learning 5
    assert any(e["event"] == "level_up" and e["step"] == 300 for e in tiny["events"])
    # each skill's verdict and evidence, as the curriculum wrote it (tests/test_verdicts.py's history)
    assert dio["verdicts"]["bin"]["verdict"] == "capped" and dio["verdicts"]["bin"]["multiplier"] == 6.0
    assert dio["verdicts"]["attn_count"]["multiplier"] is None  # undefined, not a count
    assert {r["status"] for r in dio["regressions"]} == {"confirmed"}
    assert tiny["verdicts"] == {} and tiny["regressions"] == []


CRASH_SCRIPT = """
import os, signal, sys
from realm_pipeline import ledger
from realm_pipeline.mirror.export import build_mirror, write_mirror
with ledger.connect(sys.argv[1], read_only=True) as con:
    files = build_mirror(con)
# SIGKILL: no finally, no atexit, exactly like a power cut after the staged files are fsynced.
write_mirror(files, sys.argv[2], _after_staging=lambda staged: os.kill(os.getpid(), signal.SIGKILL))
"""


def test_crash_between_staging_and_swap_keeps_old_mirror(db: Path, tmp_path: Path):
    """SIGKILL after staging: the previous mirror stays intact; the next export cleans up and publishes."""
    target = tmp_path / "mirror"
    with ledger.connect(db, read_only=True) as con:
        write_mirror(build_mirror(con), target)
    before = output_bytes(target)
    first_version = target.resolve()

    with ledger.connect(db) as con:
        con.execute("UPDATE leaderboard_rows SET lane = 'renamed-' || lane")
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(db), str(target)], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert output_bytes(target) == before and target.resolve() == first_version
    litter = [p.name for p in tmp_path.iterdir() if p.name.startswith("mirror.staging-")]
    assert len(litter) == 1 and (tmp_path / litter[0] / "leaderboard.json").exists()

    with ledger.connect(db, read_only=True) as con:
        version = write_mirror(build_mirror(con), target)
    assert target.resolve() == version and b"renamed-" in (target / "leaderboard.json").read_bytes()
    siblings = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("mirror"))
    assert siblings == ["mirror", version.name]  # stale staging and the old version pruned


def test_check_failure_aborts_publish(db: Path, tmp_path: Path):
    """A raising check removes the staged copy and leaves the published mirror untouched."""
    target = tmp_path / "mirror"
    with ledger.connect(db, read_only=True) as con:
        files = build_mirror(con)
    write_mirror(files, target)
    before, version = output_bytes(target), target.resolve()

    def reject(staged: Path) -> None:
        raise RuntimeError("leak")

    with pytest.raises(RuntimeError, match="leak"):
        write_mirror({**files, "index.html": b"changed"}, target, check=reject)
    assert output_bytes(target) == before and target.resolve() == version
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


# --- through Dagster ---------------------------------------------------------------------------------


def _materialize(db: Path, home: Path, **config):
    from realm_pipeline.defs.mirror.assets import public_mirror
    from realm_pipeline.defs.resources import LedgerResource, RealmResource

    return dg.materialize(
        [public_mirror],
        resources={"ledger_db": LedgerResource(database=str(db)), "realm": RealmResource(home=str(home))},
        run_config={"ops": {"public_mirror": {"config": config}}} if config else None,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _check_evaluations(result) -> list:
    return [
        e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_dagster_materialize_and_blocking_check(db: Path, tmp_path: Path):
    """public_mirror publishes with a passed check; a planted prompt fails the check and publishes nothing."""
    home = tmp_path / "home"
    ok = _materialize(db, home)
    assert ok.success
    [evaluation] = _check_evaluations(ok)
    assert evaluation.check_name == "no_private_values" and evaluation.passed
    [mat] = ok.asset_materializations_for_node("public_mirror")
    assert mat.metadata["rows"].value > 0 and mat.metadata["heroes"].value == 2
    before = output_bytes(home / "mirror")

    prompt = "Sort these words: pear, apple, fig"
    with ledger.connect(db) as con:
        ledger.upsert(
            con, "eval_items", [{"skill": "sort_words", "level": 1, "item_index": 3, "prompt": prompt}]
        )
        con.execute(
            "UPDATE leaderboard_rows SET lane = ? WHERE rank = 1 AND bench = 'sort_words@1'", [prompt]
        )
    bad = _materialize(db, home)
    assert not bad.success
    [evaluation] = _check_evaluations(bad)
    assert evaluation.check_name == "no_private_values" and not evaluation.passed
    assert evaluation.blocking if hasattr(evaluation, "blocking") else True
    assert prompt not in json.dumps({k: str(v.value) for k, v in evaluation.metadata.items()})
    assert output_bytes(home / "mirror") == before
    assert not bad.asset_materializations_for_node("public_mirror")


def test_dagster_refuses_empty(tmp_path: Path):
    """An empty ledger fails the asset unless allow_empty is set."""
    db = tmp_path / "empty.duckdb"
    assert not _materialize(db, tmp_path / "home").success
    assert _materialize(db, tmp_path / "home", allow_empty=True).success
    assert (tmp_path / "home" / "mirror" / "index.html").exists()
