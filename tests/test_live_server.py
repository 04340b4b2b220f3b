"""The live view's server: its JSON and event-stream endpoints on a finished run, its address,
`cryodaq live` on a finished run, and that watching an acquisition changes nothing it stores."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from starlette.requests import Request
from typer.testing import CliRunner

from cryodaq.acquisition.campaign.runner import CampaignRunner
from cryodaq.acquisition.campaign.validate import load_campaign
from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.live.app import STATIC, selection
from cryodaq.acquisition.live.histogram import GrowingHistogram
from cryodaq.acquisition.live.server import LiveServer, bind
from cryodaq.acquisition.pipelines.look import LOOK_CSS
from cryodaq.acquisition.store.reader import RunReader

ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "config" / "rigs" / "mmc_simple_sim.yaml"
#: Four channels, 3 s of 55Fe pulses and noise records, seed 7 (not the rig file's).
CAMPAIGN = f"""
name: live_test
rig: {RIG}
steps:
  - set: {{adc1.channels.5-16.enabled: false, world.seed: 7}}
  - acquire:
      name: pulses
      source: adc1
      duration: 3 s
      record_length: 2048
      pretrigger: 512
      trigger:
        all: {{edge_threshold: 3 mV, noise_every: 100 ms}}
"""


def _run(tmp: Path, name: str, watched: bool) -> tuple[Path, int]:
    """Run the campaign into `tmp/name`; watched: served live with two browsers' event
    streams open all along. Returns the run directory and the events the watchers got."""
    path = tmp / "campaign.yaml"
    path.write_text(CAMPAIGN)
    loaded = load_campaign(path)
    runner = CampaignRunner(loaded.campaign, loaded.rig, loaded.raw, tmp / name)
    if not watched:
        assert runner.run() == 0
        return tmp / name, 0
    server = LiveServer(tmp / name, interval_s=0.1).start()
    got = [0, 0]

    def watch(i: int) -> None:
        with urllib.request.urlopen(f"{server.url}api/events?channel={i + 1}", timeout=30) as r:
            for line in r:
                got[i] += line.startswith(b"data: {")
                if line.startswith(b"event: end"):
                    return

    watchers = [threading.Thread(target=watch, args=(i,)) for i in range(2)]
    for w in watchers:
        w.start()
    try:
        assert runner.run() == 0
    finally:
        server.finish()
    for w in watchers:
        w.join(10)
    return tmp / name, min(got)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("live")
    plain, _ = _run(tmp, "plain", watched=False)
    watched, events = _run(tmp, "watched", watched=True)
    assert events >= 3, f"the watchers got {events} updates during the run"
    return {"plain": plain, "watched": watched}


def test_watched_acquisition_stores_the_same_records(runs: dict[str, Path]) -> None:
    plain, watched = RunReader(runs["plain"] / "store"), RunReader(runs["watched"] / "store")
    assert plain.acquisitions() == watched.acquisitions() == ["pulses"]
    fields = ["records", "sample_index", "trigger_kind", "coincidence", "summaries"]
    total = 0
    for ch in plain.channels("pulses"):
        a, b = plain.read("pulses", ch, fields), watched.read("pulses", ch, fields)
        for f in fields:
            np.testing.assert_array_equal(a[f], b[f], err_msg=f"channel {ch} {f}")
        total += a["records"].shape[0]
    assert total > 100  # ~4 x (30 pulses + 30 noise records)
    assert plain.summary()["drops"] == watched.summary()["drops"] == {}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=20) as r:
        assert r.headers["Content-Type"] == "application/json"
        return json.load(r)


def test_view_of_a_finished_run(runs: dict[str, Path]) -> None:
    server = LiveServer(runs["plain"]).start()
    try:
        view = _get(f"{server.url}api/view?channel=2&spectrum=channel")
        summed = _get(f"{server.url}api/view")["spectrum"]
        server.hub.finish(0)
        with urllib.request.urlopen(f"{server.url}api/events?channel=3", timeout=20) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            body = r.read().decode()
    finally:
        server.finish(0)
    assert view["campaign"]["status"] == "completed"
    assert view["campaign"]["end"] == "completed: 2 steps"
    assert (view["campaign"]["steps_done"], view["campaign"]["steps_to_go"]) == (2, 0)
    assert [c["channel"] for c in view["channels"]] == [1, 2, 3, 4]
    stored = RunReader(runs["plain"] / "store").summary()["acquisitions"]["pulses"]
    for row in view["channels"]:
        assert row["records"] == stored["records_per_channel"][row["channel"]]
        assert 0 < row["mean_rate_hz"] < 50 and row["noise"] > 0 and not row["stopped"]
    assert view["pulses"]["channel"] == 2 and len(view["pulses"]["pulses"]) == 10
    # pulses are positive after the baseline, and well above the pretrigger's noise
    average = np.array(view["pulses"]["average"])
    assert average.max() > 10 * np.abs(average[: len(average) // 5]).max()
    spectrum = view["spectrum"]
    assert spectrum["kind"] == "height" and spectrum["channel"] == 2
    assert spectrum["entries"] == view["channels"][1]["pulses"]
    assert summed["entries"] == sum(c["pulses"] for c in view["channels"])
    assert view["temperatures"]["setpoints"] == {}
    assert view["haloscope"] is None and view["umux"] is None
    payloads = re.findall(r"^data: (\{.+\})$", body, re.M)
    assert json.loads(payloads[-1])["pulses"]["channel"] == 3
    assert body.rstrip().endswith("event: end\ndata: {}")


def test_page_and_scripts_come_from_the_package() -> None:
    page = (STATIC / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/static/") for s in sources), sources
    for s in sources:  # the look shared with the run report comes from the pipelines room
        assert (STATIC / s.removeprefix("/static/")).is_file() or s == f"/static/{LOOK_CSS.name}"
    assert "uPlot" in (STATIC / "uPlot.iife.min.js").read_text()[:200]
    assert "MIT" in (STATIC / "uPlot.LICENSE").read_text()
    assert "http" not in (STATIC / "live.js").read_text()


def test_binds_to_this_machine_only_by_default(tmp_path: Path) -> None:
    server = LiveServer(tmp_path)
    try:
        host, port = server.socket.getsockname()[:2]
        assert host == "127.0.0.1" and port > 0 and server.url == f"http://127.0.0.1:{port}/"
        with pytest.raises(CryodaqError, match=f"127.0.0.1:{port}: .*in use"):
            bind("127.0.0.1", port)
    finally:
        server.socket.close()
    with pytest.raises(CryodaqError, match="--live-port 70000: a port is 0"):
        bind("127.0.0.1", 70000)


def test_cryodaq_live_serves_a_finished_run(runs: dict[str, Path]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryodaq.acquisition", "live", str(runs["watched"])],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url + "api/view", timeout=20) as r:
            view = json.load(r)
        assert view["campaign"]["status"] == "completed"
        assert view["acquisition"]["name"] == "pulses" and view["acquisition"]["closed"]
        with urllib.request.urlopen(url, timeout=5) as r:
            assert b"/static/live.js" in r.read()
        with urllib.request.urlopen(f"{url}static/{LOOK_CSS.name}", timeout=5) as r:
            assert r.read() == LOOK_CSS.read_bytes()  # the look shared with the run report
        # the run has ended: a browser gets its content, then the end, and stops listening
        with urllib.request.urlopen(url + "api/events", timeout=20) as r:
            body = r.read().decode()
        assert re.search(r"^data: \{.+\}$", body, re.M)
        assert body.rstrip().endswith("event: end\ndata: {}")
        for api in ("view", "events"):
            with pytest.raises(urllib.error.HTTPError) as got:
                urllib.request.urlopen(f"{url}api/{api}?channel=999", timeout=20)
            assert got.value.code == 404
            assert json.load(got.value) == {
                "error": "channel 999: acquisition pulses has channels 1, 2, 3, 4"
            }
    finally:
        proc.terminate()
        proc.wait(10)


def test_cryodaq_live_refuses_a_directory_that_is_no_run(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["live", str(tmp_path)])
    assert done.exit_code == 2
    assert "not a cryodaq run directory (no campaign.json, no store/)" in done.output


@pytest.mark.parametrize("seed", [1, 2])
def test_growing_histogram_is_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h = GrowingHistogram(64)
    values = [rng.exponential(1.0, 50), rng.exponential(40.0, 500), np.array([-1.0, np.nan])]
    for v in values:
        h.add(v)
    assert h.top >= 40 and h.below == 1 and h.invalid == 1
    edges = np.linspace(0, h.top, 65)
    expected = np.histogram(np.concatenate(values[:2]), edges)[0]
    np.testing.assert_array_equal(h.counts, expected)
    merged = GrowingHistogram(64)
    merged.add(values[0])
    merged = merged.merged(h)
    np.testing.assert_array_equal(merged.counts, expected + np.histogram(values[0], edges)[0])


def test_no_live_names_its_replacement(tmp_path: Path) -> None:
    """`--no-live` once silenced the terminal display; it now says what replaced it."""
    done = CliRunner().invoke(app, ["run", str(tmp_path / "c.yaml"), "--no-live"])
    assert done.exit_code == 2
    assert "--no-live is gone: the terminal display is --no-display" in done.output


@pytest.mark.parametrize(
    ("query", "chosen"),
    [(b"", (None, True)), (b"channel=-2&spectrum=channel", (-2, False)),
     (b"channel=--5", (None, True)), (b"channel=%C2%B2", (None, True))],
)  # fmt: skip
def test_a_channel_that_is_no_whole_number_is_the_first(query: bytes, chosen: tuple) -> None:
    """`--5` and `²` once passed the digit check and broke `int` (a server error)."""
    assert selection(Request({"type": "http", "query_string": query, "headers": []})) == chosen
