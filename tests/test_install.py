"""A non-editable `pip install .` works from any directory: shipped configs, ./configs, $REALM_CONFIG_DIR."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding a wheel install of this checkout; other packages come from the test's venv."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    # Copy the checkout (symlinks kept, as git keeps them) so the in-tree build leaves no build/ here.
    # (dot-directories such as .git, .venv and a .realm state directory are not part of the package)
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "build", "dist"),
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    )  # the new venv's site-packages
    # Nothing may download: the dependencies (and pip, setuptools) are this venv's, seen through a .pth.
    (site / "realm_base.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    return venv


def _realm(venv: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REALM_CONFIG_DIR", "DAGSTER_HOME")
    }
    clean.update(REALM_HOME=str(cwd / "home"), **env)
    return subprocess.run(
        [str(venv / "bin" / "realm"), *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=300
    )


def test_installed_package_is_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import realm_pipeline; print(realm_pipeline.__file__)"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip().startswith(str(installed)), done.stdout


def test_doctor_and_init_in_another_directory_use_the_shipped_configs(
    installed: Path, tmp_path: Path
) -> None:
    done = _realm(installed, tmp_path, "doctor")
    assert done.returncode == 0, done.stderr
    shipped = next(installed.rglob("site-packages/realm_pipeline/configs"))
    assert f"configs: {shipped} (ok)" in done.stdout
    assert "tiny" in done.stdout and "bin" in done.stdout
    init = _realm(installed, tmp_path, "init")
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").read_text() == (
        REPO / "realm_pipeline" / "dagster.yaml"
    ).read_text()
    assert (tmp_path / "home" / "realm.duckdb").is_file()


def test_an_edited_copy_of_configs_is_found_in_cwd_and_by_env(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "project"
    shutil.copytree(REPO / "configs", work / "configs")
    hero = (work / "configs" / "heroes" / "tiny.yaml").read_text().replace("name: tiny", "name: mine")
    (work / "configs" / "heroes" / "mine.yaml").write_text(hero)
    done = _realm(installed, work, "doctor")
    assert done.returncode == 0, done.stderr
    assert f"configs: {work / 'configs'} (ok)" in done.stdout and "mine" in done.stdout

    # $REALM_CONFIG_DIR wins over ./configs; a bad edit there is refused naming file, line, field, value
    other = tmp_path / "elsewhere"
    shutil.copytree(REPO / "configs", other)
    tiny = other / "heroes" / "tiny.yaml"
    tiny.write_text(tiny.read_text().replace("hidden_size: 96", "hidden_size: lots"))
    bad = _realm(installed, work, "doctor", REALM_CONFIG_DIR=str(other))
    assert bad.returncode != 0
    assert f"{tiny}: line 7: field 'base.config.hidden_size': value 'lots'" in bad.stderr, bad.stderr
    missing = _realm(installed, work, "doctor", REALM_CONFIG_DIR=str(tmp_path / "nope"))
    assert (
        missing.returncode != 0 and "REALM_CONFIG_DIR" in missing.stderr and "no realm.yaml" in missing.stderr
    )
