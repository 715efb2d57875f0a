"""A partition that does not exist, given to Dagster's own CLI, is one line naming the valid keys.

Before: `dagster asset materialize --partition nosuch` and `dg launch` printed about 50 lines of traceback
ending in DagsterInvalidSubsetError / DagsterUnknownPartitionError, without the valid keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from realm_pipeline.defs import partition_errors

BIN = Path(sys.executable).parent


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "REALM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "VIRTUAL_ENV": str(BIN.parent),
    }
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def registered(realm_env: Path) -> Path:
    """A home whose instance holds one checkpoint partition, tiny.000150."""
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", ["tiny.000150"])
    return realm_env


MATERIALIZE = (str(BIN / "dagster"), "asset", "materialize", "-m", "realm_pipeline.definitions")
CASES = {
    "not a key": (
        "checkpoints",
        "nosuch",
        "no partition 'nosuch': a checkpoint is <hero>.<step, 6 digits> (heroes: ",
    ),
    "unregistered checkpoint": (
        "checkpoints",
        "tiny.000750",
        "no checkpoint partition 'tiny.000750' (registered for tiny: tiny.000150); "
        "`realm train tiny` trains and registers tiny's next one",
    ),
    "eval key without its skill": (
        "eval_scores",
        "tiny.000150",
        "'tiny.000150' is a checkpoint; eval_scores partitions are <checkpoint>|<skill> (e.g. tiny.000150|",
    ),
    "eval key with an unknown skill": (
        "eval_scores",
        "tiny.000150|nosuch",
        "no skill 'nosuch' in partition 'tiny.000150|nosuch' (skills: ",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_dagster_asset_materialize_prints_one_line(registered: Path, case: str) -> None:
    asset, key, message = CASES[case]
    done = _cli(registered, *MATERIALIZE, "--select", asset, "--partition", key)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]


def test_dg_launch_prints_one_line_for_assets_and_jobs(registered: Path) -> None:
    for target in (("--assets", "checkpoints"), ("--job", "eval_job")):
        done = _cli(registered, str(BIN / "dg"), "launch", *target, "--partition", "tiny.000900")
        assert done.returncode == 1, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert (
            "Error: no checkpoint partition 'tiny.000900' (registered for tiny: tiny.000150)" in done.stderr
        )


def test_the_hook_passes_every_other_error() -> None:
    seen: list[BaseException] = []
    hook = partition_errors._hook(lambda kind, exc, tb: seen.append(exc))
    other = [
        ValueError("partition key `nosuch`"),  # a partition-looking message from something else
        dg.DagsterInvalidSubsetError("All selected assets must share the same PartitionsDefinition"),
    ]
    for exc in other:
        hook(type(exc), exc, None)
    assert seen == other
