"""The mirror's static page renders offline from file:// in headless Chromium: table rows and SVG charts."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from test_mirror import populate

from realm_pipeline import ledger
from realm_pipeline.mirror.export import build_mirror, write_mirror

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "mirror.png"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium not installed (apt-get install -y chromium)"
)


def chromium(url: str, profile: Path, *args: str) -> str:
    """Run headless Chromium on `url` with networking extras off; returns stdout."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=120, env={**os.environ, "HOME": str(profile)})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc.stdout.decode()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """index.html of a published mirror built from realistic data."""
    tmp = tmp_path_factory.mktemp("page")
    with ledger.connect(tmp / "realm.duckdb") as con:
        ledger.migrate(con)
        populate(con)
        files = build_mirror(con)
    write_mirror(files, tmp / "mirror")
    return (tmp / "mirror" / "index.html").resolve()


def test_page_renders_from_file_url(page: Path, tmp_path: Path):
    """The DOM holds the leaderboard rows, hero charts with data points, events and maxed-out status."""
    dom = chromium(page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert 'data-ready="1"' in dom, "the page script did not finish"
    rows = re.findall(r"<tr[^>]*>\s*<td>([^<]+)</td>", dom)
    assert len(rows) >= 20 and "binary_add@1" in rows
    assert "tiny.001200" in dom and "dio.000800" in dom and "★ champion" in dom
    paths = re.findall(r'<path [^>]*data-points="(\d+)"', dom)
    assert len(paths) == 2 * 2 * 3  # 2 heroes x 2 charts x 3 skills
    assert all(int(n) >= 2 for n in paths)
    assert len(re.findall(r"<svg [^>]*viewBox", dom)) == 4 and "<circle" in dom
    assert "maxed out" in dom and "still levelling" in dom and "level up" in dom
    # dio's verdict per skill, with its evidence
    assert 'data-skill="bin" data-verdict="capped"' in dom and "6.00×" in dom and "undefined" in dom


def test_screenshot(page: Path, tmp_path: Path):
    """The page renders to a real screenshot (REALM_UPDATE_SCREENSHOT=1 saves it as docs/mirror.png)."""
    out = tmp_path / "mirror.png"
    chromium(
        page.as_uri(),
        tmp_path / "profile",
        f"--screenshot={out}",
        "--window-size=1200,1600",
        "--hide-scrollbars",
    )
    assert out.stat().st_size > 10_000
    if os.environ.get("REALM_UPDATE_SCREENSHOT"):  # refresh the README's picture on purpose, never by default
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(out.read_bytes())


def test_page_shows_effort_and_efficiency_per_level(tmp_path: Path):
    """With per-level held-out losses in the ledger, each hero box gets an effort/efficiency table."""
    with ledger.connect(tmp_path / "realm.duckdb") as con:
        ledger.migrate(con)
        populate(con)
        rows = [
            {
                "checkpoint_id": f"tiny.{st:06d}",
                "hero": "tiny",
                "step": st,
                "skill": "binary_add",
                "level": lv,
                "heldout_loss": 1.0 / (st / 100 + lv),
            }
            for st in range(100, 1300, 100)
            for lv in (1, 2)
        ]
        ledger.upsert(con, "level_losses", rows)
        files = build_mirror(con)
    write_mirror(files, tmp_path / "mirror", allow_empty=True)  # the leaderboard is not what is tested here
    dom = chromium(
        (tmp_path / "mirror" / "index.html").resolve().as_uri(), tmp_path / "profile", "--dump-dom"
    )
    assert 'data-ready="1"' in dom and "Effort and efficiency per level" in dom
    effort_rows = re.findall(r'<tr data-skill="binary_add" data-level="(\d+)">', dom)
    assert effort_rows == ["1", "2"]
