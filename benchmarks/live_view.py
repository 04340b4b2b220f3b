"""The live view's cost to the acquisition it watches (issue 17).

Runs one campaign (an `acquire` of `--seconds` s on a simulated ADC of `--rig`, all its
channels enabled, no other step) in alternating rounds: unwatched (the in-run reference) and
watched (the live server in a background thread, as `cryodaq run --live` serves it, with
`--browsers` event streams open all along, each on another channel). Prints one JSON object:
- `unwatched`, `watched`: per round the acquisition's `realtime_factor` (stream seconds per wall
  second of the acquire step), its records and `cpu_s_per_stream_s` (CPU seconds of the whole
  process, every thread, per stream second); `watched` also the updates each browser got, and
  the live server's reading of the run: looks, mean and max CPU ms per look (reading the new
  rows of the store) and per page content (one browser's selection made into JSON);
- `watched_over_unwatched`: the ratio of the rounds' median realtime factors (goal >= 0.9) and
  `watched_over_unwatched_best` of the best rounds; `cpu_watched_over_unwatched` the ratio of
  the median CPU per stream second (what watching costs, whatever else the host runs);
  `same_records`: every watched round stored as many records as the unwatched ones (the same
  seed: the same data);
- `channels`, `cores`, `load_average` (before, after): the host is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from cryodaq.acquisition.campaign.runner import CampaignRunner
from cryodaq.acquisition.campaign.validate import load_campaign
from cryodaq.acquisition.live.server import LiveServer
from cryodaq.acquisition.live.watcher import RunWatcher

ROOT = Path(__file__).resolve().parent.parent

CAMPAIGN = """
name: live_view_benchmark
rig: {rig}
steps:
  - acquire:
      name: pulses
      source: {source}
      duration: {seconds} s
      record_length: 4096
      pretrigger: 1024
      trigger:
        all: {{edge_threshold: 3 mV, noise_every: 100 ms}}
"""


class TimedWatcher(RunWatcher):
    """The live server's reader, timing its looks and page contents (CPU time of its thread:
    on a shared host, wall time would count the waits for a core or the GIL)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.looks: list[float] = []
        self.views: list[float] = []

    def look(self) -> None:
        t0 = time.thread_time()
        super().look()
        self.looks.append(time.thread_time() - t0)

    def payload(self, channel: int | None = None, summed: bool = True) -> str:
        t0 = time.thread_time()
        out = super().payload(channel, summed)
        self.views.append(time.thread_time() - t0)
        return out


def one_round(campaign: Path, run_dir: Path, browsers: int) -> dict[str, Any]:
    loaded = load_campaign(campaign)
    runner = CampaignRunner(loaded.campaign, loaded.rig, loaded.raw, run_dir)
    out: dict[str, Any] = {}
    if browsers:
        server = LiveServer(run_dir)
        watcher = TimedWatcher(run_dir)
        server.hub.watcher = watcher
        server.start()
        got = [0] * browsers

        def watch(i: int) -> None:
            url = f"{server.url}api/events?channel={i + 1}&spectrum=channel"
            with urllib.request.urlopen(url, timeout=600) as r:
                for line in r:
                    got[i] += line.startswith(b"data: {")
                    if line.startswith(b"event: end"):
                        return

        threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(browsers)]
        for t in threads:
            t.start()
        cpu0 = time.process_time()
        try:
            code = runner.run()
        finally:
            cpu = time.process_time() - cpu0
            server.finish()
        for t in threads:
            t.join(10)
        out["updates_per_browser"] = got
        out["looks"] = len(watcher.looks)
        out["look_ms_mean"] = 1e3 * statistics.fmean(watcher.looks) if watcher.looks else None
        out["look_ms_max"] = 1e3 * max(watcher.looks) if watcher.looks else None
        out["view_ms_mean"] = 1e3 * statistics.fmean(watcher.views) if watcher.views else None
    else:
        cpu0 = time.process_time()
        code = runner.run()
        cpu = time.process_time() - cpu0
    if code != 0:
        raise SystemExit(f"{run_dir}: the campaign ended with {code}")
    step = runner.progress.done["0"]
    live = step["result"]["live_s"]
    out["realtime_factor"] = live / step["wall_time_s"]
    out["records"] = step["result"]["records"]
    out["cpu_s_per_stream_s"] = cpu / live
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rig", default="maxs30_sim", help="a rig of config/rigs/")
    parser.add_argument("--source", default="adc1", help="its ADC")
    parser.add_argument("--seconds", type=float, default=6.0, help="stream per round, s")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each")
    parser.add_argument("--browsers", type=int, default=3, help="event streams open")
    args = parser.parse_args()
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        campaign = Path(tmp) / "campaign.yaml"
        rig = ROOT / "config" / "rigs" / f"{args.rig}.yaml"
        campaign.write_text(CAMPAIGN.format(rig=rig, source=args.source, seconds=args.seconds))
        one_round(campaign, Path(tmp) / "warm-up", 0)  # compile the kernels once
        rounds: dict[str, list[dict[str, Any]]] = {"unwatched": [], "watched": []}
        for k in range(args.rounds):
            for mode, browsers in (("unwatched", 0), ("watched", args.browsers)):
                rounds[mode].append(one_round(campaign, Path(tmp) / f"{mode}{k}", browsers))
        channels = len(json.loads((Path(tmp) / "unwatched0" / "summary.json").read_text())
                       ["acquisitions"]["pulses"].get("channels", [])) or None
    load.append(os.getloadavg())
    factor = {m: [r["realtime_factor"] for r in rs] for m, rs in rounds.items()}
    cpu = {m: statistics.median(r["cpu_s_per_stream_s"] for r in rs) for m, rs in rounds.items()}
    print(json.dumps({
        "rig": args.rig, "source": args.source, "seconds": args.seconds,
        "browsers": args.browsers, "channels": channels,
        **rounds,
        "watched_over_unwatched": statistics.median(factor["watched"])
        / statistics.median(factor["unwatched"]),
        "watched_over_unwatched_best": max(factor["watched"]) / max(factor["unwatched"]),
        "cpu_watched_over_unwatched": cpu["watched"] / cpu["unwatched"],
        "same_records": len({r["records"] for rs in rounds.values() for r in rs}) == 1,
        "cores": os.cpu_count(),
        "load_average": load,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
