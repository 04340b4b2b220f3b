"""The live view in a real browser (Debian's chromium, driven by Playwright) while `cryodaq run
--live` runs a short quickstart: every channel shows a rate, rates and spectrum move, the end
state appears. The screenshot goes to the test's directory; with
CRYODAQ_SCREENSHOT=docs/live_view.png it refreshes the README's picture."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (.ci/run installs it)",
)


def _rates(page) -> dict[int, float]:
    cells = page.locator("#channels tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.channel, r.querySelector('.rate').textContent])"
    )
    return {int(ch): float(rate) for ch, rate in cells}


def _entries(page) -> int:
    text = page.locator("#spectrum-entries").text_content() or ""
    found = re.search(r"(\d+) pulses", text)
    return int(found.group(1)) if found else 0


def test_live_view_in_a_browser(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    run = subprocess.Popen(
        [sys.executable, "-m", "cryodaq.acquisition", "run",
         str(ROOT / "config" / "campaigns" / "quickstart.yaml"), "--out", str(tmp_path / "run"),
         "--live", "--set", "steps.1.wait_stable.window=2 s",
         "--set", "steps.2.acquire.duration=60 s"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(run.stdout), daemon=True)
    try:
        first = run.stdout.readline()
        output.append(first)
        url = re.search(r"live view: (http://127\.0\.0\.1:\d+/)", first)
        assert url, first
        reader.start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url.group(1))
            rows = page.locator("#channels tbody tr")
            expect(rows).to_have_count(8, timeout=90_000)  # channels 1-8: 9-16 are disabled
            deadline = time.monotonic() + 40
            while not all(r > 0 for r in _rates(page).values()) or _entries(page) == 0:
                assert time.monotonic() < deadline, f"not every channel triggers: {_rates(page)}"
                page.wait_for_timeout(250)
            expect(page.locator("#status")).to_have_text("running")
            expect(page.locator("#current")).to_contain_text("acquire calib")
            rates, entries = _rates(page), _entries(page)
            page.wait_for_timeout(3000)
            later, later_entries = _rates(page), _entries(page)
            assert later != rates and later_entries > entries, (rates, later, entries)
            assert all(r > 0 for r in later.values())
            expect(page.locator("#pulses-plot canvas")).to_have_count(1)
            expect(page.locator("#end")).to_contain_text("completed: 4 steps", timeout=60_000)
            expect(page.locator("#status")).to_have_text("completed")
            expect(page.locator("#spectrum-entries")).to_contain_text("online energies")
            page.wait_for_timeout(300)
            shot = Path(os.environ.get("CRYODAQ_SCREENSHOT") or tmp_path / "live_view.png")
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            browser.close()
        assert run.wait(30) == 0, "".join(output)
        # the thermometry log the page plotted: the plate regulated to 20 mK by a heater
        log = (tmp_path / "run" / "data" / "thermometry.jsonl").read_text().splitlines()
        last = json.loads(log[-1])
        assert len(log) > 10 and last["sensor"] == "tc.1" and last["target_K"] == 0.02
        assert abs(last["K"] - 0.02) <= 0.2e-3 and last["heater_W"]["tc.0"] > 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
