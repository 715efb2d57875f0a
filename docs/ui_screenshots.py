"""Screenshots of the Dagster UI for the README, in headless Chromium driven over the DevTools protocol.

Run `realm campaign --hero tiny --segments 2` and `dg dev -p PORT` first (same REALM_HOME and
DAGSTER_HOME), then: python docs/ui_screenshots.py --port PORT. Plain `chromium --headless --screenshot`
cannot press a key or click, and the asset graph opens with its groups collapsed and the metadata
plots behind a toggle: this presses Alt+E (expand all groups) and clicks "Plots".
"""

import argparse
import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets

DOCS = Path(__file__).resolve().parent


class Page:
    """One Chromium tab spoken to over the DevTools protocol."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params) -> dict:
        """Send one command and wait for its reply (events in between are dropped)."""
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def open(self, url: str, settle_s: float) -> None:
        """Navigate and give the single-page app time to fetch and render."""
        await self.call("Page.navigate", url=url)
        await asyncio.sleep(settle_s)

    async def js(self, expression: str):
        """Evaluate JavaScript in the page; returns its value."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def click_text(self, text: str) -> bool:
        """Click the first button-like element whose text is exactly `text`."""
        return await self.js(
            "(() => { const el = [...document.querySelectorAll('button, [role=button], a, div, span')]"
            f".find(e => e.textContent.trim() === {json.dumps(text)} && e.offsetParent !== null);"
            " if (el) { el.click(); return true; } return false; })()"
        )

    async def click_icon(self, icon: str, nth: int = 0) -> bool:
        """Click the nth button holding the icon named `icon` (the UI labels its icons by name)."""
        return await self.js(
            f"(() => {{ const b = [...document.querySelectorAll('button')].filter(b => "
            f"b.querySelector('[aria-label={json.dumps(icon)}]'))[{nth}];"
            " if (b) { b.click(); return true; } return false; })()"
        )

    async def alt_key(self, key: str) -> None:
        """Press Alt+<key> (a letter), as the UI's keyboard shortcuts expect."""
        for kind in ("keyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent", type=kind, modifiers=1, key=key, code=f"Key{key.upper()}"
            )

    async def screenshot(self, path: Path) -> None:
        """Save the viewport as PNG."""
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
        print(f"wrote {path}")


async def shoot(base: str, cdp_port: int, settle_s: float, zoom_out: int) -> None:
    """The asset graph (groups expanded) and the checkpoints asset's metadata plots."""
    with urllib.request.urlopen(f"http://127.0.0.1:{cdp_port}/json") as resp:
        target = next(t for t in json.load(resp) if t["type"] == "page")
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=2**26) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride", width=1800, height=1100, deviceScaleFactor=1, mobile=False
        )
        await page.open(f"{base}/asset-groups", settle_s)
        await page.click_text("Skip")  # a new UI profile opens on the "Join the Dagster community" dialog
        await asyncio.sleep(1)
        await page.alt_key("e")  # expand every group; the UI remembers it, and fits the graph on load
        await asyncio.sleep(2)
        await page.open(f"{base}/asset-groups", settle_s)
        await page.click_icon("panel_show_right", nth=1)  # fold the asset list away: the graph gets the width
        for _ in range(zoom_out):
            await page.click_icon("zoom_out")
            await asyncio.sleep(1)
        await asyncio.sleep(3)
        await page.screenshot(DOCS / "ui-asset-graph.png")
        # taller: every plotted metadata key of the checkpoints (loss, held-out loss, strain, tokens/s, ...)
        await page.call(
            "Emulation.setDeviceMetricsOverride", width=1800, height=1900, deviceScaleFactor=1, mobile=False
        )
        await page.open(f"{base}/assets/checkpoints?view=overview", settle_s)
        if not await page.click_text("Plots"):
            raise RuntimeError("no 'Plots' toggle in the checkpoints asset's metadata")
        await asyncio.sleep(settle_s / 2)
        await page.screenshot(DOCS / "ui-checkpoint-plots.png")


def main() -> None:
    """Start headless Chromium, take both screenshots, stop it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=3000, help="the port `dg dev` serves the UI on")
    parser.add_argument("--cdp-port", type=int, default=9333)
    parser.add_argument("--zoom-out", type=int, default=2, help="zoom-out clicks so the whole graph shows")
    parser.add_argument("--settle", type=float, default=12.0, help="seconds a page gets to render")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: `make browser` installs it")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1600,1000",
                f"--remote-debugging-port={args.cdp_port}",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3)
            asyncio.run(shoot(f"http://localhost:{args.port}", args.cdp_port, args.settle, args.zoom_out))
        finally:
            browser.terminate()
            browser.wait(timeout=30)


if __name__ == "__main__":
    main()
