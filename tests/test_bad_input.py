"""Bad input is refused early with a clear message, and nothing is lost or half-written.

A table of malformed configs (through `realm init`), quest files (through the inbox sensor) and CLI
arguments. Each case names the message it must give; each checks afterwards that every ledger row and
every file under REALM_HOME is exactly as before, and that a refused quest file is kept whole beside its
report.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from realm_pipeline import ledger
from realm_pipeline import quests as q
from realm_pipeline.cli import main
from realm_pipeline.defs.quests.assets import quests, quests_job
from realm_pipeline.defs.quests.sensors import quest_inbox_sensor
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.settings import Settings
from realm_pipeline.skills import get_skill
from realm_pipeline.skills.heldout import eval_items

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


# ---------------------------------------------------------------- what "nothing lost" means


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A REALM_HOME with an inbox; its Dagster instance, when a case needs one, is a temporary one."""
    path = tmp_path / "realm_home"
    (path / "inbox" / "rejected").mkdir(parents=True)
    monkeypatch.setenv("REALM_HOME", str(path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return path


def _seed(home: Path) -> LedgerResource:
    """A ledger with a checkpoint and a registered quest, and a checkpoint directory on disk."""
    db = LedgerResource(database=str(home / "realm.duckdb"))
    ckpt = home / "checkpoints" / "tiny" / "tiny.000150"
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / "model.safetensors").write_bytes(b"weights")
    good = home / "seed.jsonl"
    good.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    )
    with db.get_connection() as con:
        ledger.upsert(
            con,
            "checkpoints",
            [
                {
                    "checkpoint_id": "tiny.000150",
                    "hero": "tiny",
                    "step": 150,
                    "path": str(ckpt),
                    "created_at": datetime(2026, 1, 1),
                }
            ],
        )
        q.register_quest(
            con, q.validate_quest_file(good, registered_sha256s=set()), str(good), datetime(2026, 1, 1)
        )
    good.unlink()
    return db


def _ledger_rows(db: LedgerResource) -> dict[str, list]:
    with db.read(wait=False) as con:
        return {
            name: sorted(map(repr, con.execute(f"SELECT * FROM {name}").fetchall()))
            for name in ledger.TABLES
            if name != "schema_version"
        }


def _files(home: Path) -> dict[str, str]:
    """sha256 of every file under REALM_HOME except the DuckDB file itself and Dagster's own storage."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
        and not p.name.startswith("realm.duckdb")
        and "dagster" not in p.relative_to(home).parts
    }


# ---------------------------------------------------------------- configs, through `realm init`


def _replace(rel: str, old: str, new: str) -> Callable[[Path], Path]:
    def edit(configs: Path) -> Path:
        path = configs / rel
        text = path.read_text()
        assert old in text, f"{rel} has no {old!r}"
        path.write_text(text.replace(old, new, 1))
        return path

    return edit


def _write(rel: str, text: str) -> Callable[[Path], Path]:
    def edit(configs: Path) -> Path:
        (configs / rel).write_text(text)
        return configs / rel

    return edit


TINY = "heroes/tiny.yaml"
CONFIG_CASES = {
    "base.config wrong type": (
        _replace(TINY, "hidden_size: 96", "hidden_size: lots"),
        ["line 7: field 'base.config.hidden_size': value 'lots'", "Qwen3Config.hidden_size expects int"],
    ),
    "base.config unknown key": (
        _replace(TINY, "hidden_size: 96", "hiden_size: 96"),
        [
            "field 'base.config.hiden_size': value 96",
            "not a field of transformers' Qwen3Config",
            "'hidden_size'",
        ],
    ),
    "base.config key realm sets": (
        _replace(TINY, "head_dim: 24", "head_dim: 24\n    use_cache: true"),
        ["field 'base.config.use_cache': value True", "set by realm"],
    ),
    "base.config seed beside the hero's": (
        _replace(TINY, "head_dim: 24", "head_dim: 24\n    seed: 7"),
        ["field 'base.config.seed': value 7", "the hero's top-level `seed`"],
    ),
    "base.config int for a float": (
        _replace(TINY, "head_dim: 24", "head_dim: 24\n    rms_norm_eps: 1"),
        ["line 13: field 'base.config.rms_norm_eps': value 1", "expects float"],
    ),
    "base.config heads not divisible": (
        _replace(TINY, "num_key_value_heads: 2", "num_key_value_heads: 3"),
        ["field 'base.config.num_key_value_heads': value 3", "must divide num_attention_heads (4)"],
    ),
    "base.config zero layers": (
        _replace(TINY, "num_hidden_layers: 3", "num_hidden_layers: 0"),
        ["line 9: field 'base.config.num_hidden_layers': value 0", "must be > 0"],
    ),
    "training field wrong type": (
        _replace(TINY, "batch_size: 8", "batch_size: lots"),
        ["line 19: field 'training.batch_size': value 'lots'"],
    ),
    "unknown top-level key": (
        _replace(TINY, "seed: 1234", "seed: 1234\nsed: 1"),
        ["field 'sed': value 1", "Extra inputs are not permitted"],
    ),
    "hero names a missing memory profile": (
        _replace(TINY, "memory_profile: cpu_tiny", "memory_profile: nope"),
        ["line 15: field 'memory_profile': value 'nope'", "no such memory profile"],
    ),
    "hero names a missing skill": (
        _replace(TINY, "skills: [bin]", "skills: [bin, nope]"),
        ["field 'campaign.skills.1': value 'nope'", "no such skill"],
    ),
    "hero name differs from file": (
        _replace(TINY, "name: tiny", "name: tiny2"),
        ["field 'name': value 'tiny2'", "must equal the file name"],
    ),
    "realm.yaml out of range": (
        _replace("realm.yaml", "level_up_accuracy: 0.80", "level_up_accuracy: 1.5"),
        ["line 3: field 'progression.level_up_accuracy': value 1.5"],
    ),
    "realm.yaml YAML syntax": (
        _replace("realm.yaml", "  evals_required: 3", "  evals_required: [3"),
        ["realm.yaml", "YAML syntax error"],
    ),
    "realm.yaml not a mapping": (_write("realm.yaml", "- a\n- b\n"), ["line 1: expected a mapping", "list"]),
    "skill level cap above the generator's": (
        _replace("skills/bin.yaml", "level_cap: 30", "level_cap: 99"),
        ["line 3: field 'level_cap': value 99", "above the skill's max level"],
    ),
    "memory profile bad dtype": (
        _replace("memory_profiles/cpu_tiny.yaml", "dtype: float32", "dtype: float8"),
        ["line 6: field 'dtype': value 'float8'"],
    ),
    "eval count not a number": (
        _replace("skills/bin.yaml", "eval_items_per_level: 50", "eval_items_per_level: many"),
        ["field 'eval_items_per_level': value 'many'"],
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_is_refused_by_realm_init(case: str, home: Path, tmp_path: Path) -> None:
    edit, expected = CONFIG_CASES[case]
    db = _seed(home)
    configs = tmp_path / "my_configs"
    shutil.copytree(CONFIGS, configs)
    path = edit(configs)
    written = path.read_bytes()
    before_rows, before_files = _ledger_rows(db), _files(home)
    result = CliRunner().invoke(main, ["init"], env={"REALM_CONFIG_DIR": str(configs)})
    assert result.exit_code == 1, result.output
    assert str(path) in result.output
    for part in expected:
        assert part in result.output, f"{case}: {part!r} not in {result.output!r}"
    assert path.read_bytes() == written  # the user's file is never touched
    assert _ledger_rows(db) == before_rows and _files(home) == before_files


def test_missing_config_dir_is_named(home: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["doctor"], env={"REALM_CONFIG_DIR": str(tmp_path / "nowhere")})
    assert (
        result.exit_code == 1 and f"REALM_CONFIG_DIR={tmp_path / 'nowhere'}: no realm.yaml" in result.output
    )


def test_shipped_tiny_config_builds_with_the_real_class() -> None:
    """What the check lets through, transformers' Qwen3Config accepts; what it refuses for type, so does the class."""
    pytest.importorskip("torch")
    from huggingface_hub.errors import StrictDataclassError  # transformers 5 configs are strict dataclasses
    from transformers import Qwen3Config

    from realm_pipeline.model_config import base_config_problems

    tiny = Settings(CONFIGS).heroes["tiny"].base.config
    assert base_config_problems(tiny) == []
    Qwen3Config(**tiny)
    for key, value in [
        ("hidden_size", "lots"),
        ("rms_norm_eps", 1),
        ("tie_word_embeddings", 1),
        ("hidden_act", 3),
    ]:
        assert [k for k, _ in base_config_problems({key: value})] == [key]
        with pytest.raises((TypeError, ValueError, StrictDataclassError)):
            Qwen3Config(**{key: value})


# ---------------------------------------------------------------- quest files, through the inbox sensor


def _msgs(*turns: tuple[str, str]) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


GOOD = _msgs(("user", "what is 2+2?"), ("assistant", "4"))
GOOD_TOO = _msgs(("user", "what is 3+3?"), ("assistant", "6"))  # a second example: a repeat is refused


def _eval_prompt_line() -> dict:
    level = 3
    count = Settings(CONFIGS).skills["bin"].eval_items_per_level
    item = eval_items(get_skill("bin"), level, count)[0]
    return _msgs(("user", item.prompt), ("assistant", "anything"))


QUEST_CASES = {  # lines of the file -> [(line, rule, words of the problem)]
    "not JSON": ([GOOD, "{nope"], [(2, "not_json", "not JSON")]),
    "not an object": ([["a", "list"]], [(1, "not_object", "expected an object")]),
    "unknown field": ([{**GOOD, "extra": 1}], [(1, "unknown_field", "'extra'")]),
    "no messages": ([{"messages": []}], [(1, "messages_shape", "non-empty list")]),
    "unknown role": ([_msgs(("user", "x"), ("bot", "y"))], [(1, "role", "messages[1].role")]),
    "content not a string": (
        [{"messages": [{"role": "user", "content": 3}]}],
        [(1, "content_type", "messages[0]")],
    ),
    "last turn not the assistant's": (
        [_msgs(("user", "x"))],
        [(1, "last_not_assistant", "must be 'assistant'")],
    ),
    "assistant only": (
        [_msgs(("assistant", "an answer to nothing"))],
        [(1, "assistant_only", "no user turn")],
    ),
    "same role twice": (
        [GOOD, _msgs(("user", "a"), ("user", "b"), ("assistant", "c"))],
        [(2, "same_role_twice", "both 'user'")],
    ),
    "system not first": (
        [_msgs(("user", "a"), ("system", "be terse"), ("assistant", "c"))],
        [(1, "system_not_first", "messages[1] is a system message")],
    ),
    "empty assistant turn": (
        [_msgs(("user", "a"), ("assistant", "  \n"))],
        [(1, "empty_assistant", "empty")],
    ),
    "answer copied from the prompt": (
        [_msgs(("user", "repeat after me"), ("assistant", " repeat after me "))],
        [(1, "answer_copies_prompt", "repeats the prompt")],
    ),
    "an eval prompt": ([GOOD, "EVAL"], [(2, "eval_prompt", "held-out eval prompt of bin L3")]),
    "every bad line reported": (
        [GOOD, _msgs(("assistant", "x")), GOOD_TOO, "{", _msgs(("user", "a"), ("assistant", ""))],
        [(2, "assistant_only", "no user turn"), (4, "not_json", "not JSON"), (5, "empty_assistant", "empty")],
    ),
    "empty file": ([], [(None, "empty", "no examples")]),
    # issue 38: each was registered before
    "10,000 identical lines": (
        [GOOD] * 10_000,
        [
            (
                2,
                "repeated_example",
                "the example of line 1 again (10000 copies in all, the last on line 10000)",
            )
        ],
    ),
    "a NUL character": (
        [GOOD, _msgs(("user", "what is a\x00b?"), ("assistant", "c"))],
        [(2, "control_character", "messages[0].content holds U+0000 (a control character) at character 9")],
    ),
    "messages given twice in one object": (
        [
            '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], '
            '"messages": [{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}'
        ],
        [(1, "duplicate_key", "key 'messages' given twice in one object")],
    ),
    "an answer of a zero-width space": (
        [_msgs(("user", "say something"), ("assistant", "\u200b"))],
        [(1, "empty_assistant", "messages[1].content is empty (only invisible U+200B)")],
    ),
    "already registered": ("SEED", [(None, "duplicate", "already registered")]),
}


def _tick(instance, resources) -> dg.SensorResult:
    defs = dg.Definitions(
        assets=[quests], jobs=[quests_job], sensors=[quest_inbox_sensor], resources=resources
    )
    with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as ctx:
        return quest_inbox_sensor.evaluate_tick(ctx)


@pytest.fixture(scope="module")
def instance():
    """One temporary Dagster instance for the sensor ticks (each case has its own REALM_HOME and ledger)."""
    with dg.instance_for_test() as inst:
        yield inst


@pytest.mark.parametrize("case", sorted(QUEST_CASES))
def test_bad_quest_file_is_kept_with_a_report(case: str, home: Path, instance: dg.DagsterInstance) -> None:
    lines, expected = QUEST_CASES[case]
    db = _seed(home)
    inbox = home / "inbox"
    path = inbox / "mine.jsonl"
    if lines == "SEED":
        seeded = json.dumps(
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
        )
        path.write_text(seeded)
    else:
        text = "".join(
            (json.dumps(_eval_prompt_line()) if x == "EVAL" else x if isinstance(x, str) else json.dumps(x))
            + "\n"
            for x in lines
        )
        path.write_text(text)
    original = path.read_bytes()
    before_rows = _ledger_rows(db)
    resources = {"realm": RealmResource(home=str(home), config_dir=str(CONFIGS)), "ledger_db": db}
    result = _tick(instance, resources)
    (request,) = result.run_requests  # the sensor only requests; the quests asset validates and files
    defs = dg.Definitions(assets=[quests], jobs=[quests_job], resources=resources)
    run = defs.resolve_job_def("quests_job").execute_in_process(
        instance=instance, run_config=request.run_config, raise_on_error=False
    )
    assert run.success  # a refused file is an outcome of the run, not a failure
    assert _ledger_rows(db) == before_rows  # nothing registered, nothing lost
    kept = inbox / "rejected" / "mine.jsonl"
    assert kept.read_bytes() == original and not path.exists()  # moved whole, never deleted
    report = json.loads((inbox / "rejected" / "mine.jsonl.error.json").read_text())
    assert report["file"] == "mine.jsonl" and report["sha256"] == hashlib.sha256(original).hexdigest()
    got = [(p["line"], p["rule"], p["problem"]) for p in report["problems"]]
    assert [(line, rule) for line, rule, _ in got] == [(line, rule) for line, rule, _ in expected], got
    for (_, _, problem), (_, _, words) in zip(got, expected, strict=True):
        assert words in problem, (case, problem)
    assert not [p for p in inbox.rglob("*") if p.name.endswith(".part")]  # no half-written report


def test_a_good_quest_passes_the_same_validator(home: Path) -> None:
    """The table's refusals come from the rules, not from a validator that refuses everything."""
    path = home / "inbox" / "good.jsonl"
    path.write_text(
        json.dumps(
            _msgs(
                ("system", "be brief"), ("user", "q"), ("assistant", "a"), ("user", "q2"), ("assistant", "b")
            )
        )
        + "\n"
    )
    quest = q.validate_quest_file(
        path, registered_sha256s=set(), eval_prompts=q.eval_prompt_index(Settings(CONFIGS))
    )
    assert quest.n == 1


# ---------------------------------------------------------------- CLI arguments

HEROES = ", ".join(Settings(CONFIGS).heroes)  # the shipped heroes, as an error lists them

CLI_CASES = {
    "retain keeps no newest": (
        ["retain", "--keep-newest", "0", "--apply"],
        2,
        "Invalid value for '--keep-newest'",
    ),
    "retain negative best": (["retain", "--keep-best", "-1"], 2, "Invalid value for '--keep-best'"),
    "quest add missing file": (["quest", "add", "/no/such/file.jsonl"], 2, "does not exist"),
    "pause unknown hero": (["pause", "nohero"], 1, f"no hero 'nohero' (known: {HEROES})"),
    "train unknown hero": (["train", "nohero"], 1, "no hero 'nohero'"),
    "campaign segments not a number": (
        ["campaign", "--segments", "lots"],
        2,
        "'lots' is not a valid integer",
    ),
    "campaign segments negative": (
        ["campaign", "--segments", "-1"],
        2,
        "Invalid value for '--segments': -1 is not in the range x>=0",
    ),
    "pref unknown compare run": (["pref", "nosuch", "A"], 1, "no compare run 'nosuch'"),
    "pref bad choice": (["pref", "nosuch", "maybe"], 2, "'maybe' is not one of"),
    "compare unknown lanes": (
        ["compare", "tiny.000999", "tiny.000150"],
        1,
        "(registered: tiny.000150); `realm train tiny` trains tiny's next one",
    ),
    "compare a key that names no hero": (
        ["compare", "nosuch", "tiny.000150"],
        1,
        f"no checkpoint 'nosuch': a key is <hero>.<step, 6 digits> (heroes: {HEROES})",
    ),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_bad_cli_arguments_change_nothing(case: str, home: Path) -> None:
    args, code, message = CLI_CASES[case]
    db = _seed(home)
    before_rows, before_files = _ledger_rows(db), _files(home)
    result = CliRunner().invoke(main, args, env={"REALM_CONFIG_DIR": str(CONFIGS)})
    assert result.exit_code == code, result.output
    assert message in result.output, result.output
    if code == 1:  # realm's own refusal: one line, no traceback
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert _ledger_rows(db) == before_rows and _files(home) == before_files


def test_the_table_has_at_least_thirty_cases() -> None:
    assert len(CONFIG_CASES) + len(QUEST_CASES) + len(CLI_CASES) >= 30
