"""The fault table of issue 21: a home that moves, `realm compare`'s mistakes, a deleted or truncated
checkpoint, a read-only home, and the index of every case with the test that covers it.

Each case asserts the one line a person reads, that no ledger row (and no file) changed, and where it
should that the campaign goes on afterwards.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner
from openai_server import save_test_hero

from realm_pipeline import ledger
from realm_pipeline.cli import main
from realm_pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
CAMPAIGN = "from realm_pipeline.cli import main; main()"
MIB = 1 << 20


# ---------------------------------------------------------------- what "nothing changed" means


def _ledger_rows(home: Path) -> dict[str, list]:
    with duckdb.connect(str(home / "realm.duckdb"), read_only=True) as con:
        return {
            t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall()))
            for t in ledger.TABLES
            if t != "schema_version"
        }


def _files(home: Path) -> dict[str, str]:
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
        and not p.name.startswith("realm.duckdb")
        and "dagster" not in p.relative_to(home).parts
    }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A REALM_HOME whose ledger holds two loadable tiny checkpoints (paths relative to the home)."""
    path = tmp_path / "realm_home"
    monkeypatch.setenv("REALM_HOME", str(path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("REALM_CONFIG_DIR", str(CONFIGS))
    rows = []
    for seed, cid in enumerate(("tiny.000150", "tiny.000300")):
        ckpt = save_test_hero(path / "checkpoints" / "tiny" / cid, seed=seed)
        rows.append(
            {
                "checkpoint_id": cid,
                "hero": "tiny",
                "step": int(cid.split(".")[1]),
                "path": ledger.home_relative(ckpt, path),
                "created_at": datetime(2026, 1, 1),
            }
        )
    with ledger.connect(path / "realm.duckdb") as con:
        ledger.migrate(con)
        ledger.upsert(con, "checkpoints", rows)
    return path


def _refused(home: Path, args: list[str], code: int = 1) -> str:
    """Run `realm ARGS`; its output, checked to be refused with `code` and to have changed nothing."""
    before_rows, before_files = _ledger_rows(home), _files(home)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    assert _ledger_rows(home) == before_rows and _files(home) == before_files
    return result.output


# ---------------------------------------------------------------- realm compare: the arguments


def test_compare_with_an_unknown_skill_names_the_valid_ones(home: Path) -> None:
    out = _refused(home, ["compare", "tiny.000150", "tiny.000300", "--skill", "nope"], code=2)
    assert f"--skill 'nope': no such skill; valid: {', '.join(sorted(Settings(CONFIGS).skills))}" in out


@pytest.mark.parametrize("level", ["0", "99"])
def test_compare_with_a_level_the_skill_has_not_names_its_levels(home: Path, level: str) -> None:
    cap = Settings(CONFIGS).skills["bin"].level_cap
    out = _refused(home, ["compare", "tiny.000150", "tiny.000300", "--level", level], code=2)
    assert f"--level {level}: bin has levels 1 to {cap}" in out


@pytest.mark.parametrize("items", ["0", "100000"])
def test_compare_with_items_the_level_cannot_give_names_the_range(home: Path, items: str) -> None:
    out = _refused(home, ["compare", "tiny.000150", "tiny.000300", "--items", items], code=2)
    assert re.search(rf"--items {items}: bin L1 holds 1 to \d+ held-out prompts", out), out


def test_compare_of_a_checkpoint_with_itself_is_refused_and_writes_no_row(home: Path) -> None:
    """Before: both lanes ran the same weights and a compare_runs row (a tie by construction) was written."""
    out = _refused(home, ["compare", "tiny.000300", "tiny.000300", "--items", "4"], code=2)
    assert "tiny.000300 compared with itself: name two different checkpoints" in out


# ---------------------------------------------------------------- a checkpoint deleted or cut short


HINT = (
    "evaluate another checkpoint, or retrain it with `dg launch --assets checkpoints --partition tiny.000300`"
)


def test_compare_of_a_deleted_checkpoint_directory_says_so_and_how_to_go_on(home: Path) -> None:
    gone = home / "checkpoints" / "tiny" / "tiny.000300"
    shutil.rmtree(gone)
    out = _refused(home, ["compare", "tiny.000150", "tiny.000300", "--items", "4"])
    assert f"tiny.000300: checkpoint directory missing ({gone}); {HINT}" in out
    assert "HFValidationError" not in out and "Repo id" not in out


def test_compare_of_a_checkpoint_retention_deleted_says_when(home: Path) -> None:
    shutil.rmtree(home / "checkpoints" / "tiny" / "tiny.000300")
    with ledger.connect(home / "realm.duckdb") as con:
        con.execute(
            "UPDATE checkpoints SET path = NULL, deleted_at = TIMESTAMP '2026-02-03 04:05:00' "
            "WHERE checkpoint_id = 'tiny.000300'"
        )
    out = _refused(home, ["compare", "tiny.000150", "tiny.000300", "--items", "4"])
    assert (
        f"tiny.000300: checkpoint directory missing (deleted by retention at 2026-02-03 04:05); {HINT}" in out
    )


def _truncate(ckpt: Path) -> tuple[Path, int]:
    weights = ckpt / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as f:
        f.truncate(size // 2)
    return weights, size // 2


def test_compare_of_a_truncated_weights_file_names_the_file(home: Path) -> None:
    weights, size = _truncate(home / "checkpoints" / "tiny" / "tiny.000300")
    out = _refused(home, ["compare", "tiny.000150", "tiny.000300", "--items", "4"])
    assert f"tiny.000300: {weights}: truncated weights file ({size} bytes; its header describes" in out
    assert "SafetensorError" not in out


def test_a_truncated_checkpoint_loaded_directly_is_a_backend_error_naming_the_file(home: Path) -> None:
    from realm_pipeline.evaluation.backends import BackendError, LocalBackend

    weights, _ = _truncate(home / "checkpoints" / "tiny" / "tiny.000300")
    with pytest.raises(BackendError) as info:
        LocalBackend(weights.parent)
    assert f"cannot load the checkpoint: {weights}: truncated weights file" in str(info.value)


def _step_events(instance: dg.DagsterInstance, run_id: str) -> tuple[int, str]:
    """(step attempts, the step failure's message) of a run."""
    events = instance.all_logs(
        run_id, of_type={dg.DagsterEventType.STEP_UP_FOR_RETRY, dg.DagsterEventType.STEP_FAILURE}
    )
    retries = sum(e.dagster_event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in events)
    failure = next(e for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_FAILURE)
    return 1 + retries, failure.dagster_event.event_specific_data.error.message


def _run_job(job: str, partition) -> tuple[int, str]:
    from realm_pipeline.cli import init_instance
    from realm_pipeline.definitions import build_defs

    init_instance()
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", ["tiny.000150", "tiny.000300", "tiny.000450"])
        result = (
            build_defs()
            .resolve_job_def(job)
            .execute_in_process(instance=instance, partition_key=partition, raise_on_error=False)
        )
        assert not result.success
        return _step_events(instance, result.run_id)


def test_a_segment_whose_parent_is_truncated_fails_once_naming_the_file(home: Path) -> None:
    """Before: the subprocess died on a SafetensorError naming no file, and the step was retried twice."""
    weights, _ = _truncate(home / "checkpoints" / "tiny" / "tiny.000300")
    before = _ledger_rows(home)
    attempts, message = _run_job("train_job", "tiny.000450")
    assert attempts == 1  # a deterministic refusal is not retried
    assert f"checkpoint tiny.000450: its parent tiny.000300: {weights}: truncated weights file" in message
    assert _ledger_rows(home) == before
    assert not (home / "checkpoints" / "tiny" / "tiny.000450").exists()


def _cut_in_header(ckpt: Path) -> Path:
    """`truncate -s 1000 model.safetensors`: the file now ends inside its JSON header."""
    weights = ckpt / "model.safetensors"
    with weights.open("rb") as f:
        assert int.from_bytes(f.read(8), "little") > 1000  # the header itself is cut
    with weights.open("r+b") as f:
        f.truncate(1000)
    return weights


@pytest.mark.parametrize(
    "args",
    [["status", "tiny"], ["train", "tiny"], ["campaign", "--hero", "tiny", "--segments", "1"]],
    ids=["status", "train", "campaign"],
)
def test_a_newest_checkpoint_cut_inside_its_header_is_one_line_naming_the_file(
    home: Path, args: list[str]
) -> None:
    """Before: the free-space estimate read the header unguarded, and each command died on a
    JSONDecodeError traceback."""
    weights = _cut_in_header(home / "checkpoints" / "tiny" / "tiny.000300")
    out = _refused(home, args, code=0 if args[0] == "status" else 1)
    said = f"its newest checkpoint tiny.000300 cannot be loaded: {weights}: truncated weights file"
    assert len([line for line in out.splitlines() if said in line]) >= 1, out
    assert "JSONDecodeError" not in out


def test_the_campaign_sensor_names_a_newest_checkpoint_cut_inside_its_header(home: Path) -> None:
    from realm_pipeline.cli import init_instance
    from realm_pipeline.definitions import build_defs
    from realm_pipeline.defs.campaign.sensors import campaign_sensor

    weights = _cut_in_header(home / "checkpoints" / "tiny" / "tiny.000300")
    init_instance()
    defs = build_defs()
    resources = {k: defs.resources[k] for k in ("realm", "ledger_db")}
    with dg.DagsterInstance.get() as instance:
        result = campaign_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, dg.SkipReason), result  # nothing requested: no run fails on it
    assert (
        f"tiny: stopped: its newest checkpoint tiny.000300 cannot be loaded: {weights}: truncated weights file"
        in result.skip_message
    )


def test_an_eval_of_a_deleted_checkpoint_fails_once_with_the_way_out(home: Path) -> None:
    gone = home / "checkpoints" / "tiny" / "tiny.000300"
    shutil.rmtree(gone)
    before = _ledger_rows(home)
    attempts, message = _run_job(
        "eval_job", dg.MultiPartitionKey({"checkpoint": "tiny.000300", "skill": "bin"})
    )
    assert attempts == 1
    assert f"eval tiny.000300 x bin: tiny.000300: checkpoint directory missing ({gone}); {HINT}" in message
    assert _ledger_rows(home) == before


# ---------------------------------------------------------------- a home realm may not write


def test_a_read_only_home_is_one_line_and_realm_goes_on_once_writable(
    small_fs, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = small_fs(64 * MIB)
    home = fs / "home"
    monkeypatch.setenv("REALM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("REALM_CONFIG_DIR", str(CONFIGS))
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    before = _ledger_rows(home)
    small_fs(64 * MIB, read_only=True)
    # the Dagster instance (status) and the ledger (pause); reading the ledger needs no write
    for args in (["status", "tiny"], ["pause", "tiny"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: cannot write"), (args, result.output)
        assert f"REALM_HOME={home} must be writable" in lines[0], result.output
    small_fs(64 * MIB)  # writable again: realm goes on
    assert _ledger_rows(home) == before
    assert CliRunner().invoke(main, ["pause", "tiny"]).exit_code == 0


@pytest.mark.parametrize("immutable", ["realm.duckdb", "."], ids=["ledger file", "home directory"])
def test_a_home_that_answers_operation_not_permitted_is_one_line_naming_the_path(
    home: Path, immutable: str
) -> None:
    """`chattr +i`: DuckDB's EPERM ("Operation not permitted") is one line, as EACCES and EROFS are.
    Before: an IOException or TransactionException traceback."""
    target = (home / immutable).resolve()
    if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs root and a file system that has the flag")
    try:
        out = _refused(home, ["pause", "tiny"])
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot write"), out
    assert "Operation not permitted" in lines[0] and str(home / "realm.duckdb") in lines[0], out
    assert f"REALM_HOME={home} must be writable" in lines[0], out
    assert CliRunner().invoke(main, ["pause", "tiny"]).exit_code == 0  # writable again: realm goes on


# ---------------------------------------------------------------- a home that moves


def test_an_old_ledger_with_absolute_paths_is_made_relative_on_open(tmp_path: Path) -> None:
    db = tmp_path / "home" / "realm.duckdb"
    db.parent.mkdir()
    with ledger.connect(db) as con:
        ledger.migrate(con)
        ledger.upsert(
            con,
            "checkpoints",
            [
                {
                    "checkpoint_id": "tiny.000150",
                    "hero": "tiny",
                    "path": "/old/home/checkpoints/tiny/tiny.000150",
                },
                {"checkpoint_id": "tiny.000300", "hero": "tiny", "path": "/elsewhere/my-own-dir"},
                {"checkpoint_id": "tiny.000450", "hero": "tiny", "path": None},
            ],
        )
        con.execute("DELETE FROM schema_version WHERE version = 4")  # as a realm before v4 left it
    with ledger.connect(db) as con:
        assert ledger.migrate(con) == ledger.SCHEMA_VERSION
        paths = con.execute("SELECT checkpoint_id, path FROM checkpoints ORDER BY 1").fetchall()
    assert paths == [
        ("tiny.000150", "checkpoints/tiny/tiny.000150"),
        ("tiny.000300", "/elsewhere/my-own-dir"),  # not realm's layout: read as it is
        ("tiny.000450", None),
    ]
    assert ledger.resolve_home_path("checkpoints/tiny/tiny.000150", tmp_path / "new") == (
        tmp_path / "new" / "checkpoints" / "tiny" / "tiny.000150"
    )
    assert ledger.resolve_home_path("/elsewhere/my-own-dir", tmp_path) == Path("/elsewhere/my-own-dir")


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "REALM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("REALM_CONFIG_DIR", None)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # a shared 2-core box
    return env


def _realm(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CAMPAIGN, *args],
        cwd=REPO,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow  # minutes of real training on 2 cores: CI runs it (make test-slow)
@pytest.mark.timeout(1200)
def test_a_copied_home_trains_and_compares_after_the_original_is_deleted(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    original = tmp_path / "original"
    first = _realm(original, "campaign", "--hero", "tiny", "--segments", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    with duckdb.connect(str(original / "realm.duckdb"), read_only=True) as con:
        assert con.execute("SELECT path FROM checkpoints").fetchall() == [("checkpoints/tiny/tiny.000150",)]

    copy = tmp_path / "copy"
    shutil.copytree(original, copy, symlinks=True)
    shutil.rmtree(original)
    second = _realm(copy, "campaign", "--hero", "tiny", "--segments", "1")
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.search(r"train_job\s+tiny\.000300\s+ok", second.stdout), second.stdout
    compared = _realm(copy, "compare", "tiny.000150", "tiny.000300", "--items", "4")
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert re.search(r"compare \w+: tiny\.000150 [0-9.]+ vs tiny\.000300 [0-9.]+ on bin@1:4", compared.stdout)
    assert not original.exists()
    with duckdb.connect(str(copy / "realm.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT checkpoint_id, path FROM checkpoints ORDER BY 1").fetchall()
    assert rows == [
        ("tiny.000150", "checkpoints/tiny/tiny.000150"),
        ("tiny.000300", "checkpoints/tiny/tiny.000300"),
    ]


# ---------------------------------------------------------------- the table: every case and its test

# Issue 21's cases (its "What is wrong today" and "What to build"), each with the test that covers it.
FAULT_CASES = (
    (
        "kill -9 of realm campaign mid-segment",
        "test_faults.py::test_kill_9_mid_segment_then_rerun_resumes_from_the_save",
    ),
    (
        "full disk: SQLite/DuckDB errors named disk full",
        "test_disk_full.py::test_every_storage_engines_full_disk_is_named",
    ),
    (
        "full disk: a resume save hitting ENOSPC leaves no .resume.tmp",
        "test_disk_full.py::test_a_resume_save_that_hits_enospc_leaves_the_last_save_whole",
    ),
    (
        "full disk: a segment refused before with the numbers, trained once freed",
        "test_disk_full.py::test_a_segment_the_disk_cannot_hold_waits_with_the_numbers_then_trains_once_space_is_freed",
    ),
    (
        "full disk mid-segment: ENOSPC named, save kept, resumes by itself",
        "test_disk_full.py::test_a_disk_that_fills_mid_segment_names_enospc_keeps_the_save_and_resumes_by_itself",
    ),
    (
        "full disk under the Dagster instance: one line, finishes after",
        "test_disk_full.py::test_a_full_disk_under_the_dagster_instance_is_one_line_and_the_campaign_finishes_after",
    ),
    (
        "full disk: a mirror export refused, the old mirror kept",
        "test_disk_full.py::test_a_mirror_the_disk_cannot_hold_is_refused_and_the_old_one_kept",
    ),
    (
        "inbox: lone surrogate, 200,000 brackets, a directory, a symlink",
        "test_inbox_faults.py::test_every_poisoned_entry_is_reported_and_moved_aside",
    ),
    (
        "inbox: the same bytes as a rejected file",
        "test_inbox_faults.py::test_the_same_bytes_as_a_rejected_file_get_a_run_and_a_report",
    ),
    (
        "inbox: a file that fails its run is not spent for ever",
        "test_inbox_faults.py::test_an_unreadable_file_is_rejected_with_a_report_not_failed_for_ever",
    ),
    (
        "inbox: 10,000 identical lines, a NUL, `messages` twice in one object, a zero-width answer",
        "test_bad_input.py::test_bad_quest_file_is_kept_with_a_report",
    ),
    (
        "YAML alias bomb",
        "test_config_faults.py::test_an_alias_bomb_is_refused_not_expanded",
    ),
    (
        "eval_items_per_level: 10000",
        "test_config_faults.py::test_an_eval_set_too_costly_to_build_is_refused",
    ),
    (
        "eval_items_per_level: 200 silently 93",
        "test_config_faults.py::test_an_eval_set_a_level_cannot_hold_is_refused_with_the_limit",
    ),
    (
        "eval_items_per_level: 900 (BIN L1 holds 491 beside its reserve and training)",
        "test_config_faults.py::test_an_eval_set_larger_than_a_finite_prompt_space_is_refused_with_the_largest_that_fits",
    ),
    (
        "a NUL byte in a config file",
        "test_config_faults.py::test_a_nul_byte_is_named_with_its_line",
    ),
    (
        "a config error (heroes/big.yml) in status, campaign, train, retry, pause, resume",
        "test_config_faults.py::test_a_config_error_is_one_line_in_every_command",
    ),
    (
        "non-UTF-8 YAML",
        "test_config_faults.py::test_a_file_that_is_not_utf8_is_named_with_its_line",
    ),
    (
        "duplicate YAML keys",
        "test_config_faults.py::test_a_key_given_twice_is_refused_with_both_lines",
    ),
    (
        "skills: [bin, bin]",
        "test_config_faults.py::test_a_skill_named_twice_is_refused",
    ),
    (
        ".inf / .nan for maintenance_multiplier_max and vram_gb",
        "test_config_faults.py::test_infinities_and_nan_are_refused",
    ),
    (
        "a broken configs/deepspeed/*.json",
        "test_config_faults.py::test_a_broken_deepspeed_config_is_refused_at_doctor",
    ),
    (
        "heroes/big.yml",
        "test_config_faults.py::test_a_yml_file_is_named_not_ignored",
    ),
    (
        "an API key pasted into eval:",
        "test_config_faults.py::test_a_pasted_api_key_is_never_echoed",
    ),
    (
        "compare --skill",
        "test_fault_table.py::test_compare_with_an_unknown_skill_names_the_valid_ones",
    ),
    (
        "compare --level",
        "test_fault_table.py::test_compare_with_a_level_the_skill_has_not_names_its_levels",
    ),
    (
        "compare --items",
        "test_fault_table.py::test_compare_with_items_the_level_cannot_give_names_the_range",
    ),
    (
        "compare of a lane with itself",
        "test_fault_table.py::test_compare_of_a_checkpoint_with_itself_is_refused_and_writes_no_row",
    ),
    (
        "campaign --segments -1",
        "test_bad_input.py::test_bad_cli_arguments_change_nothing",
    ),
    (
        "a deleted checkpoint directory",
        "test_fault_table.py::test_compare_of_a_deleted_checkpoint_directory_says_so_and_how_to_go_on",
    ),
    (
        "a checkpoint deleted by retention",
        "test_fault_table.py::test_compare_of_a_checkpoint_retention_deleted_says_when",
    ),
    (
        "an eval of a deleted checkpoint",
        "test_fault_table.py::test_an_eval_of_a_deleted_checkpoint_fails_once_with_the_way_out",
    ),
    (
        "a truncated weights file, named",
        "test_fault_table.py::test_compare_of_a_truncated_weights_file_names_the_file",
    ),
    (
        "a truncated weights file through the backend",
        "test_fault_table.py::test_a_truncated_checkpoint_loaded_directly_is_a_backend_error_naming_the_file",
    ),
    (
        "a truncated parent, not retried three times",
        "test_fault_table.py::test_a_segment_whose_parent_is_truncated_fails_once_naming_the_file",
    ),
    (
        "a newest checkpoint cut inside its header: status, train, campaign",
        "test_fault_table.py::test_a_newest_checkpoint_cut_inside_its_header_is_one_line_naming_the_file",
    ),
    (
        "a newest checkpoint cut inside its header: the campaign sensor",
        "test_fault_table.py::test_the_campaign_sensor_names_a_newest_checkpoint_cut_inside_its_header",
    ),
    (
        "a read-only REALM_HOME or ledger",
        "test_fault_table.py::test_a_read_only_home_is_one_line_and_realm_goes_on_once_writable",
    ),
    (
        "a home that answers EPERM (Operation not permitted)",
        "test_fault_table.py::test_a_home_that_answers_operation_not_permitted_is_one_line_naming_the_path",
    ),
    (
        "a ledger with absolute paths",
        "test_fault_table.py::test_an_old_ledger_with_absolute_paths_is_made_relative_on_open",
    ),
    (
        "a copied home, the original deleted",
        "test_fault_table.py::test_a_copied_home_trains_and_compares_after_the_original_is_deleted",
    ),
    (
        "Ctrl-C (SIGINT) or SIGTERM of realm campaign mid-segment",
        "test_stop_signals.py::test_a_stop_signal_mid_segment_stops_the_campaign_and_a_rerun_resumes_from_its_save",
    ),
    (
        "a run terminated from the Dagster UI mid-segment (in-process and Pipes)",
        "test_stop_signals.py::test_dagster_run_termination_stops_the_segment_in_the_runs_process",
    ),
    (
        "a served eval of a hero that rambles to realm's max_tokens",
        "test_served.py::test_a_hero_that_rambles_to_realms_budget_is_scored_as_the_local_backend_scores_it",
    ),
)


def test_the_fault_table_covers_thirty_cases_each_with_a_test_that_exists() -> None:
    assert len(FAULT_CASES) >= 30
    for case, ref in FAULT_CASES:
        file, name = ref.split("::")
        text = (REPO / "tests" / file).read_text()
        assert re.search(rf"^def {re.escape(name)}\(", text, re.M), f"{case}: no {ref}"
