"""Shared fixtures: a fresh REALM_HOME and Dagster instance per test that needs one."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


@pytest.fixture(autouse=True)
def _homes_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test ends with the homes it began with: the realm CLI, run in-process, exports DAGSTER_HOME."""
    for name in ("REALM_HOME", "DAGSTER_HOME", "REALM_CONFIG_DIR"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:  # recorded as absent, so teardown removes whatever the test exported
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of configs/ a test may break."""
    dest = tmp_path / "configs"
    shutil.copytree(CONFIGS, dest)
    return dest


@pytest.fixture
def realm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh REALM_HOME with its own DAGSTER_HOME (dagster.yaml installed, pool `gpu` = 1)."""
    home = tmp_path / "realm_home"
    monkeypatch.setenv("REALM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    from realm_pipeline.cli import init_instance

    init_instance()
    return home


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core box they thrash."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """mount(size_bytes, read_only=False) -> a directory on a real tmpfs of that size; calling it again
    remounts it (resized, or read-only). Skips the test where it may not mount (needs CAP_SYS_ADMIN)."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    mounted = []

    def mount(size: int, read_only: bool = False) -> Path:
        opts = (f"size={size}" if not mounted else f"remount,size={size}") + (",ro" if read_only else ",rw")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mount_point)], capture_output=True, text=True
        )
        if done.returncode != 0:
            if mounted:
                raise AssertionError(f"remount failed: {done.stderr}")
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root / CAP_SYS_ADMIN")
        mounted.append(size)
        return mount_point

    yield mount
    if mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
