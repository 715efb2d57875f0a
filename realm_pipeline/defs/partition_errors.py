"""One line, not a traceback, when `dagster asset materialize` or `dg launch` gets a partition that does not exist.

Dagster's CLI checks `--partition` against the partitions definition and raises before any code of ours
runs (asset.py even re-raises the unknown-key error as DagsterInvalidSubsetError), so the only place a code
location can speak is the process's excepthook. The hook handles those two errors and passes every other.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import dagster as dg
from dagster._core.errors import DagsterInvalidSubsetError, DagsterUnknownPartitionError

from realm_pipeline.settings import Settings
from realm_pipeline.training.plan import CheckpointKey

KEY_IN_MESSAGE = re.compile(r"partition (?:with )?key `([^`]*)`")
CLI_PROGRAMS = frozenset({"dagster", "dg"})
KNOWN_SHOWN = 6  # the newest registered keys a message lists


def _registered_checkpoints() -> list[str]:
    """The checkpoint partitions the instance holds (empty when it cannot be opened)."""
    try:
        with dg.DagsterInstance.get() as instance:
            return sorted(instance.get_dynamic_partitions("checkpoints"))
    except Exception:  # noqa: BLE001 -- a message about a bad key must not fail on a missing instance
        return []


def _checkpoint_line(key: str, settings: Settings, registered: list[str]) -> str:
    """Why `key` is no checkpoint partition, with the hero's registered keys and how to add one."""
    try:
        hero = CheckpointKey.parse(key).hero
    except ValueError:
        hero = None
    if hero not in settings.heroes:
        return (
            f"no partition {key!r}: a checkpoint is <hero>.<step, 6 digits> (heroes: {', '.join(settings.heroes)}), "
            f"an eval <checkpoint>|<skill> (skills: {', '.join(settings.skills)})"
        )
    keys = [k for k in registered if k.startswith(f"{hero}.")]
    known = ", ".join(keys[-KNOWN_SHOWN:]) if keys else "none yet"
    more = f"{len(keys) - KNOWN_SHOWN} older and " if len(keys) > KNOWN_SHOWN else ""
    return (
        f"no checkpoint partition {key!r} (registered for {hero}: {more}{known}); "
        f"`realm train {hero}` trains and registers {hero}'s next one"
    )


def unknown_partition_line(key: str, settings: Settings, registered: list[str]) -> str:
    """One line naming the bad partition key, the valid ones, and how a checkpoint partition is added."""
    if "|" in key:
        checkpoint, _, skill = key.partition("|")
        if skill not in settings.skills:
            return f"no skill {skill!r} in partition {key!r} (skills: {', '.join(settings.skills)})"
        if checkpoint not in registered:
            return _checkpoint_line(checkpoint, settings, registered)
        return f"partition {key!r} exists; the selected assets are not partitioned by <checkpoint>|<skill>"
    if key in registered:
        first = next(iter(settings.skills), "bin")
        return (
            f"{key!r} is a checkpoint; eval_scores partitions are <checkpoint>|<skill> "
            f"(e.g. {key}|{first}; skills: {', '.join(settings.skills)})"
        )
    return _checkpoint_line(key, settings, registered)


def _hook(previous: Callable[..., object]) -> Callable[..., object]:
    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> object:
        found = KEY_IN_MESSAGE.search(str(exc))
        if not isinstance(exc, DagsterInvalidSubsetError | DagsterUnknownPartitionError) or found is None:
            return previous(kind, exc, tb)
        print(
            f"Error: {unknown_partition_line(found[1], Settings(), _registered_checkpoints())}",
            file=sys.stderr,
        )
        return None  # the interpreter still exits 1

    return excepthook


def install_for_cli() -> None:
    """Put the one-line hook in place when this process is Dagster's CLI (`dagster ...`, `dg ...`)."""
    if Path(sys.argv[0]).name in CLI_PROGRAMS and not getattr(sys.excepthook, "realm_partition_hook", False):
        hook = _hook(sys.excepthook)
        hook.realm_partition_hook = True  # type: ignore[attr-defined]
        sys.excepthook = hook
