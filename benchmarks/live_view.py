"""The live view's cost to the acquisition it watches (issue 17).

Runs one campaign (an `acquire` of `--seconds` s on the simulated ADCs `--sources` of `--rig`,
one stream on one clock when several, all their channels enabled, no other step) in alternating
rounds: unwatched (the in-run reference) and watched (the live server in a background thread,
as `cryodaq run --live` serves it, with `--browsers` event streams open all along, each on
another channel, spread over the ADCs). Prints one JSON object:
- `unwatched`, `watched`: per round the acquisition's `realtime_factor` (stream seconds per wall
  second of the acquire step), its records and `cpu_s_per_stream_s` (CPU seconds of the whole
  process, every thread, per stream second); `watched` also the updates each browser got, and
  the live server's reading of the run: looks, mean and max CPU ms per look (reading the new
  rows of the store) and per page content (one browser's selection made into JSON), both
  together per stream second (`live_cpu_s_per_stream_s`: the simulation may run slower than
  real time, a rig streaming in real time hands the looks that many rows per wall second), and
  per browser `max_update_gap_s`, the longest wait between two page updates, and
  `first_update_s`, the wait for the first;
- `watched_over_unwatched`: the ratio of the rounds' median realtime factors (goal >= 0.9) and
  `watched_over_unwatched_best` of the best rounds; `cpu_watched_over_unwatched` the ratio of
  the median CPU per stream second (what watching costs, whatever else the host runs);
  `same_records`: every round stored the same records, event fields and summaries (the same
  seed: the same data; compared by digest);
- `channels`, `cores`, `load_average` (before, after): the host is shared.

ADCs that `--sources` names and the rig lacks are added in a copy of the rig (in the run's
temporary folder), like its first ADC, reading the FLL channels after those of the ADCs before
them, with FLL electronics (`fll2`, ...) like its `fll` added every 32 channels: e.g.
`--rig mmc_simple_sim --sources adc1,adc2,adc3,adc4` watches 64 channels at 500 kHz. The FLL
must read `world.detectors` (one independent pixel per channel), not a 32-channel array.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import statistics
import tempfile
import threading
import time
import urllib.request
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from cryodaq.acquisition.campaign.runner import CampaignRunner
from cryodaq.acquisition.campaign.validate import load_campaign
from cryodaq.acquisition.live.server import LiveServer
from cryodaq.acquisition.live.watcher import RunWatcher
from cryodaq.acquisition.store.reader import RunReader

ROOT = Path(__file__).resolve().parent.parent
FLL_CHANNELS = 32  # channels of one simulated FLL electronics (sim_instruments/squid_model.py)

CAMPAIGN = """
name: live_view_benchmark
rig: {rig}
steps:
  - acquire:
      name: pulses
      {source}
      duration: {seconds} s
      record_length: 4096
      pretrigger: 1024
      trigger:
        all: {{edge_threshold: 3 mV, noise_every: 100 ms}}
"""


def rig_with(rig: Path, sources: list[str], folder: Path) -> Path:
    """`rig`, or a copy of it in `folder` with the ADCs of `sources` it lacks added (see the
    module docstring)."""
    doc = yaml.safe_load(rig.read_text())
    insts = doc["instruments"]
    missing = [s for s in sources if s not in insts]
    if not missing:
        return rig
    known = [s for s in sources if s in insts]
    if not known or "fll" not in insts:
        raise SystemExit(f"{rig}: --sources names none of its ADCs (one is copied for the "
                         f"others), or it has no fll; it has {', '.join(insts)}")
    adc, fll = insts[known[0]], insts["fll"]
    if "detector" not in fll.get("sim", {}):
        raise SystemExit(f"{rig}: instrument fll reads no world.detectors entry (sim.detector); "
                         f"adding {', '.join(missing)} needs a rig like mmc_simple_sim")
    width = len(adc["sim"]["inputs"])
    ports = [int(m) for i in insts.values() for m in re.findall(r"::(\d+)::", i["address"])]
    port = iter(range(max(ports) + 1, max(ports) + 100))
    for k, name in enumerate(sources):
        if name in insts:
            continue
        first = k * width  # this ADC's first FLL channel, counted from 0 over all FLLs
        inputs = []
        for g in range(first, first + width):
            unit = "fll" if g < FLL_CHANNELS else f"fll{g // FLL_CHANNELS + 1}"
            if unit not in insts:
                insts[unit] = copy.deepcopy(fll)
                insts[unit]["address"] = f"TCPIP0::127.0.0.1::{next(port)}::SOCKET"
            inputs.append(f"{unit}.ch{g % FLL_CHANNELS + 1}")
        insts[name] = copy.deepcopy(adc)
        insts[name]["address"] = f"TCPIP0::127.0.0.1::{next(port)}::SOCKET"
        insts[name]["sim"]["inputs"] = inputs
    doc["name"] = f"{doc['name']}_{len(sources)}adc"
    out = folder / f"{doc['name']}.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def records_digest(run_dir: Path) -> str:
    """SHA-256 of every stored record, its event fields and summaries, channel by channel (not
    the timestamps: they count from the wall-clock start of the run)."""
    reader, h = RunReader(run_dir / "store"), hashlib.sha256()
    fields = ["records", "sample_index", "trigger_kind", "coincidence", "summaries"]
    for ch in reader.channels("pulses"):
        for name, arr in reader.read("pulses", ch, fields).items():
            h.update(f"{ch}:{name}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()[:16]


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


def one_round(
    campaign: Path, run_dir: Path, browsers: int, channels: list[int]
) -> dict[str, Any]:
    loaded = load_campaign(campaign)
    runner = CampaignRunner(loaded.campaign, loaded.rig, loaded.raw, run_dir)
    out: dict[str, Any] = {}
    if browsers:
        server = LiveServer(run_dir)
        watcher = TimedWatcher(run_dir)
        server.hub.watcher = watcher
        server.start()
        seen: list[list[float]] = [[] for _ in range(browsers)]  # wall times of updates

        def watch(i: int) -> None:
            ch = channels[i * len(channels) // browsers]  # spread over the ADCs
            url = f"{server.url}api/events?channel={ch}&spectrum=channel"
            with urllib.request.urlopen(url, timeout=600) as r:
                for line in r:
                    if line.startswith(b"data: {"):
                        seen[i].append(time.monotonic())
                    if line.startswith(b"event: end"):
                        return

        threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(browsers)]
        for t in threads:
            t.start()
        cpu0, t_start = time.process_time(), time.monotonic()
        try:
            code = runner.run()
        finally:
            cpu = time.process_time() - cpu0
            server.finish()
        for t in threads:
            t.join(10)
        out["updates_per_browser"] = [len(t) for t in seen]
        # the page's update interval as each browser saw it: the longest wait for an update
        # from the first to the last, and the first after the run started
        out["max_update_gap_s"] = [max((b - a for a, b in pairwise(t)), default=None)
                                   for t in seen]
        out["first_update_s"] = [t[0] - t_start if t else None for t in seen]
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
    if browsers:  # the live view's share: what it would cost a rig streaming in real time
        out["live_cpu_s_per_stream_s"] = (sum(watcher.looks) + sum(watcher.views)) / live
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rig", default="maxs30_sim", help="a rig of config/rigs/")
    parser.add_argument("--sources", default="adc1",
                        help="its ADCs, comma-separated (several: one stream, one clock)")
    parser.add_argument("--seconds", type=float, default=6.0, help="stream per round, s")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each")
    parser.add_argument("--browsers", type=int, default=3, help="event streams open")
    args = parser.parse_args()
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        campaign = Path(tmp) / "campaign.yaml"
        rig = rig_with(ROOT / "config" / "rigs" / f"{args.rig}.yaml", sources, Path(tmp))
        source = f"source: {sources[0]}" if len(sources) == 1 else f"sources: {sources}"
        campaign.write_text(CAMPAIGN.format(rig=rig, source=source, seconds=args.seconds))
        one_round(campaign, Path(tmp) / "warm-up", 0, [])  # compile the kernels once
        channels = RunReader(Path(tmp) / "warm-up" / "store").channels("pulses")
        rounds: dict[str, list[dict[str, Any]]] = {"unwatched": [], "watched": []}
        digests = set()
        for k in range(args.rounds):
            for mode, browsers in (("unwatched", 0), ("watched", args.browsers)):
                run_dir = Path(tmp) / f"{mode}{k}"
                rounds[mode].append(one_round(campaign, run_dir, browsers, channels))
                digests.add(records_digest(run_dir))
    load.append(os.getloadavg())
    factor = {m: [r["realtime_factor"] for r in rs] for m, rs in rounds.items()}
    cpu = {m: statistics.median(r["cpu_s_per_stream_s"] for r in rs) for m, rs in rounds.items()}
    print(json.dumps({
        "rig": args.rig, "sources": sources, "seconds": args.seconds,
        "browsers": args.browsers, "channels": len(channels),
        **rounds,
        "watched_over_unwatched": statistics.median(factor["watched"])
        / statistics.median(factor["unwatched"]),
        "watched_over_unwatched_best": max(factor["watched"]) / max(factor["unwatched"]),
        "cpu_watched_over_unwatched": cpu["watched"] / cpu["unwatched"],
        "same_records": len(digests) == 1,
        "cores": os.cpu_count(),
        "load_average": load,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
