"""Scaling on Dask: distributed per-channel analysis and multi-board acquisition (issue 8).

Prints one JSON object:
- `run`: the stored 64-channel HOLMES-like run analysed: rig `holmes_boards_sim` (simulated
  uMUX boards, TES with 15 us rise, 60 us decay, 55Fe-like lines), boards roach1 + roach2 with
  32 tones each, taken by cryodaq's own multi-board acquisition; its records (`events`) and the
  pipeline used (`pulses`, per-channel optimal filter and line fit; `holmes` runs on the same
  per-channel plan but is not measured here yet);
- `analysis`: `events_per_s` of the whole pipeline (records of the analysed channels per wall
  second, cluster start-up excluded, results combined and figures written) serially in this
  process (the in-run reference, no Dask), then on 1 and 2 local Dask worker processes in
  alternating rounds (`--rounds` of each; each figure the best round, `_median` too: the
  host's speed drifts within a minute); `scaling_efficiency` = events_per_s(2 workers) /
  (2 x events_per_s(1 worker)), target 0.8, and `scaling_efficiency_median`; the best
  rounds' phases (`work_s` until the last channel is done, `combine_s` for results and
  figures, serial by nature) and `work_scaling_efficiency`, the same ratio for the channels'
  phase; `cpu_scaling_efficiency`, the ratio per CPU second of the workers; and the in-run
  reference `host_parallel_efficiency` (before, after): what two processes spinning at once
  get from this host (1.0 with two free cores; a shared or hyper-threaded host gives less),
  a snapshot of the ceiling of any wall-clock efficiency measured here;
- `acquisition`: `per_core`, one board's blocks (32 tones: `--replay` s the simulator
  produced once, replayed `--repeats` times back to back) in one Dask worker process, in
  `--acq-rounds` alternating rounds of: `kernel`, the trigger engine alone on those blocks (the
  numba scan and record extraction with the engine's per-block bookkeeping; no sinks, no
  store), and `path`, the same blocks through a board task's acquisition (engine, the store's
  sink thread, the run store's writer: chunks, compression, commits, as `cryodaq run` with
  boards does it), each as channel-samples per CPU second of the worker process (best round
  and median), and `path_over_kernel`, their ratio (target >= 0.6), and `path_fixed_cpu_s`,
  the CPU of creating and closing one such acquisition (inside the path's figure: paid once
  per acquisition, not per sample; `path_over_kernel_per_sample_median` leaves it out); then
  for each of `--boards` (default 1, 2 and 4 boards, one worker process per board):
  `realtime_factor` (stream seconds per wall second of the slowest board) of the full
  simulated path (uMUX simulator + trigger + run store, as `cryodaq run` does it), and
  `replay_realtime_factor` of the replayed blocks through the board task's path, its CPU per
  channel-sample, the worker's peak memory and the bytes stored per channel-second
  (`--acquisition-only` skips the stored run and its analysis, `--boards ""` these);
- `records_codec`: what every run store here compresses its records with (`--codec`: `lz4`,
  Blosc LZ4 with bit shuffle, the default, or `zstd`, Zstd level 1: `store.codecs`);
- `per_core`: the single-worker figures per core, for docs/scaling.md;
- `store_filesystem`: the file system the run stores are written to (`--base`): the path's
  cost is mostly file creates and renames, so tmpfs and a disk differ (docs/scaling.md);
- `cores`, `load_average` (before, after): the host is shared; figures scale with what is free.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cryodaq.acquisition.campaign.runner import STORE, CampaignRunner
from cryodaq.acquisition.campaign.validate import load_campaign
from cryodaq.acquisition.cluster.analyze import analyze
from cryodaq.acquisition.cluster.boards import BoardStore
from cryodaq.acquisition.cluster.connection import ClusterSpec, connect
from cryodaq.acquisition.pipelines import PipelineInput
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.codecs import DEFAULT_RECORDS_CODEC, RECORDS_CODECS
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.acquisition.stream.engine import Acquisition
from cryodaq.acquisition.stream.sources import ReplaySource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig, TriggerEngine
from cryodaq.analysis.resonator import find_dips

ROOT = Path(__file__).resolve().parents[1]
RIG = ROOT / "config" / "rigs" / "holmes_boards_sim.yaml"
TONES = 32
RECORD, PRETRIGGER = 256, 64
EDGE_PHI0 = 0.05
TRIGGER = {"all": {"edge_threshold": f"{EDGE_PHI0} Phi0", "noise_every": "10 ms"}}


def campaign(
    out: Path, boards: list[str], duration_s: float, rate_hz: float, seed: int, codec: str
) -> Path:
    """Run a multi-board campaign (tune every board, then one acquisition on all of them),
    its run store's records compressed with `codec`."""
    steps: list[dict[str, Any]] = [
        {"tune": {"instrument": b, "channels": TONES, "points": 5001}} for b in boards
    ]
    steps.append(
        {
            "acquire": {
                "name": "pulses",
                "source": boards[0],
                "boards": boards[1:],
                "duration": duration_s,
                "block": 8192,
                "record_length": RECORD,
                "pretrigger": PRETRIGGER,
                "trigger": TRIGGER,
            }
        }
    )
    path = out.parent / f"{out.name}.yaml"
    doc = {"name": "scale", "rig": str(RIG), "store": {"records_codec": codec}, "steps": steps}
    path.write_text(yaml.safe_dump(doc))
    loaded = load_campaign(
        path, [f"rig.world.seed={seed}", f"rig.world.detectors.tes.rate_hz={rate_hz}"]
    )
    shutil.rmtree(out, ignore_errors=True)
    with connect(ClusterSpec(workers=len(boards))) as client:
        # Given a cluster, even a one-board step runs as a board task on it.
        code = CampaignRunner(loaded.campaign, loaded.rig, loaded.raw, out, client=client).run()
    if code != 0:
        raise RuntimeError(f"campaign failed: {json.loads((out / 'summary.json').read_text())}")
    return out


def stored_run(base: Path, seed: int, duration_s: float, rate_hz: float, codec: str) -> Path:
    """The 64-channel run (made once, then reused from `base`)."""
    run_dir = base / f"stored-64ch-seed{seed}-{duration_s:g}s-{rate_hz:g}Hz-{codec}"
    summary = run_dir / "summary.json"
    if summary.exists() and json.loads(summary.read_text()).get("status") == "completed":
        return run_dir
    base.mkdir(parents=True, exist_ok=True)
    return campaign(run_dir, ["roach1", "roach2"], duration_s, rate_hz, seed, codec)


def time_analysis(run_dir: Path, client: Any, channels: list[int]) -> dict[str, float]:
    """The pulses pipeline on `channels` (after a warm-up on two of them), serially or on
    `client`'s workers: `wall_s`; `cpu_s` of this process or summed over the workers;
    `work_s` until the last channel is done and `combine_s` after it (results and figures,
    serial in this process); `failed` channels."""
    reader = RunReader(run_dir / STORE)
    figures = Path(tempfile.mkdtemp(prefix="scale-figures-"))

    def inp(chans: list[int]) -> PipelineInput:
        opts = {"channels": chans, "save_filter": False}
        return PipelineInput(run_dir, reader, (), opts, figures)

    def cpu() -> float:
        if client is None:
            return time.process_time()
        return sum(client.run(time.process_time).values())

    analyze("pulses", inp(channels[:2]), client)  # imports and JIT in every worker
    done: list[float] = []
    cpu0, start = cpu(), time.perf_counter()
    out = analyze("pulses", inp(channels), client, lambda k, o: done.append(time.perf_counter()))
    end = time.perf_counter()
    cpu_s = cpu() - cpu0
    shutil.rmtree(figures, ignore_errors=True)
    return {
        "wall_s": end - start,
        "cpu_s": cpu_s,
        "work_s": done[-1] - start,
        "combine_s": end - done[-1],
        "failed": sum("error" in r for r in out.results["channels"].values()),
    }


def spin(n: int) -> float:
    """Seconds this process takes for `n` rounds of a pure-Python loop (one core's speed)."""
    start, x = time.perf_counter(), 0
    for i in range(n):
        x += i
    return time.perf_counter() - start


def host_parallel_efficiency(n: int = 10_000_000) -> float:
    """What two processes get from this host's cores: one process's loop time over that of
    two processes running it at once (1.0: two free cores; 0.5: one core's worth). The
    ceiling of any wall-clock scaling efficiency at 2 workers measured here."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(spin, [1000, 1000])  # both started
        alone = pool.apply(spin, (n,))
        together = pool.map(spin, [n, n])
    return alone / max(together)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replayed(
    data_path: str, offset: int, rate_hz: float, repeats: int
) -> tuple[ReplaySource, TriggerConfig]:
    """One board's stored blocks as a source (played `repeats` times back to back: the same
    stretch again costs the same) and the benchmark's trigger on its channels."""
    data = np.load(data_path)
    channels = tuple(range(offset + 1, offset + 1 + data.shape[0]))
    source = ReplaySource(
        data, rate_hz, 8192, channels, units_per_value=1 / (2 * np.pi), repeat=repeats
    )
    trigger = ChannelTrigger(
        edge_threshold=EDGE_PHI0 * 2 * np.pi, auto_period=round(0.01 * rate_hz)
    )
    return source, TriggerConfig(RECORD, PRETRIGGER, dict.fromkeys(channels, trigger))


def replay_board(
    args: tuple[str, str, str, int, float, int, str],
) -> tuple[float, float, float, float]:
    """One board's blocks replayed through a board task's acquisition (trigger, sinks, run
    store with records codec `codec`): stream s, wall s, CPU s of the worker process (all its
    threads), its peak memory (MB)."""
    data_path, store, name, offset, rate_hz, repeats, codec = args
    source, config = replayed(data_path, offset, rate_hz, repeats)
    board_store = BoardStore(Path(store), records_codec=codec)
    acq = Acquisition(source, config, name=name, store=board_store)
    cpu0 = time.process_time()
    result = acq.run()
    return result.live_time_s, result.wall_time_s, time.process_time() - cpu0, peak_rss_mb()


def replay_kernel(args: tuple[str, int, float, int]) -> tuple[float, float]:
    """The same blocks through the trigger engine alone (no sinks, no store): stream s and CPU
    s of the worker process."""
    data_path, offset, rate_hz, repeats = args
    source, config = replayed(data_path, offset, rate_hz, repeats)
    source.start()
    engine = TriggerEngine(config, source.channels, rate_hz)
    cpu0 = time.process_time()
    while (block := source.read()) is not None:
        engine.process(block)
    return engine.samples_processed / rate_hz, time.process_time() - cpu0


def fixed_cost(args: tuple[str, str, str]) -> float:
    """CPU s of the worker process to create and close one board's acquisition with no rows
    (its 32 channels' arrays, first and last commit, shapes trimmed): per acquisition, not
    per sample."""
    data_path, store, codec = args
    source, config = replayed(data_path, 0, 250e3, 1)
    cpu0 = time.process_time()
    BoardStore(Path(store), records_codec=codec).acquisition(
        "empty", source.channels, RECORD, source.dtype, 250e3, PRETRIGGER
    ).close()
    return time.process_time() - cpu0


def kernel_and_path(args: argparse.Namespace, data_path: Path) -> dict[str, Any]:
    """Channel-samples per CPU second of the kernel alone and of a board task's path on the
    same blocks, in alternating rounds in one worker process; best and median rounds."""
    rounds = args.base / "per-core"  # a new store per round, all deleted at the end: ext4
    shutil.rmtree(rounds, ignore_errors=True)  # slows file creation after mass deletions
    rates: dict[str, list[float]] = {"kernel": [], "path": []}
    fixed: list[float] = []
    path_cpu: list[float] = []
    loads = [os.getloadavg()[0]]
    with connect(ClusterSpec(workers=1)) as client:
        kernel = (str(data_path), 0, 250e3, args.repeats)
        client.submit(replay_kernel, (*kernel[:3], 1), pure=False).result()  # imports and JIT
        for k in range(args.acq_rounds):
            stream_s, cpu_s = client.submit(replay_kernel, kernel, pure=False).result()
            rates["kernel"].append(TONES * stream_s * 250e3 / cpu_s)
            store = rounds / f"path-{k}"
            writer = RunStore.create(store, records_codec=args.codec)
            task = (str(data_path), str(store), f"round-{k}", 0, 250e3, args.repeats, args.codec)
            stream_s, _, cpu_s, _ = client.submit(replay_board, task, pure=False).result()
            writer.close()
            rates["path"].append(TONES * stream_s * 250e3 / cpu_s)
            path_cpu.append(cpu_s)
            loads.append(os.getloadavg()[0])
            store = rounds / f"fixed-{k}"
            writer = RunStore.create(store, records_codec=args.codec)
            fixed_args = (str(data_path), str(store), args.codec)
            fixed.append(client.submit(fixed_cost, fixed_args, pure=False).result())
            writer.close()
    shutil.rmtree(rounds, ignore_errors=True)
    out: dict[str, Any] = {"rounds": args.acq_rounds, "stream_s": round(stream_s, 2)}
    for name, values in rates.items():
        out[f"{name}_channel_samples_per_cpu_s"] = round(max(values))
        out[f"{name}_channel_samples_per_cpu_s_median"] = round(float(np.median(values)))
    out["path_over_kernel"] = round(max(rates["path"]) / max(rates["kernel"]), 3)
    out["path_over_kernel_median"] = round(
        float(np.median(rates["path"])) / float(np.median(rates["kernel"])), 3
    )
    out["path_over_kernel_rounds"] = [
        round(p / k, 3) for p, k in zip(rates["path"], rates["kernel"], strict=True)
    ]
    out["target_path_over_kernel"] = 0.6
    out["path_fixed_cpu_s"] = fixed_s = round(float(np.median(fixed)), 3)
    # Per sample: the path's CPU without its acquisition's creation and closing.
    samples = TONES * stream_s * 250e3
    steady = [samples / (c - fixed_s) / k for c, k in zip(path_cpu, rates["kernel"], strict=True)]
    out["path_over_kernel_per_sample_median"] = round(float(np.median(steady)), 3)
    out["load_average"] = [round(x, 2) for x in loads]
    return out


def board_blocks(path: Path, seed: int, seconds: float, rate_hz: float) -> tuple[float, float]:
    """`seconds` of one simulated board's 32 channels, saved to `path`; (stream s, wall s)."""
    doc = yaml.safe_load(RIG.read_text())
    doc["world"]["seed"] = seed
    doc["world"]["detectors"]["tes"]["rate_hz"] = rate_hz
    rig_file = path.with_suffix(".yaml")
    rig_file.write_text(yaml.safe_dump(doc))
    with Rig(load_rig(rig_file)) as rig:
        board = rig.open("roach1")
        sweep = board.sweep(-256e6 * 0.999, 256e6 * 0.999, 5001)
        for i, f in enumerate(find_dips(sweep.baseband_hz, sweep.s21).freq_hz[:TONES]):
            board.set_tone(i + 1, float(f))
        board.start()
        fs = board.ramp_frequency
        blocks, start = [], time.perf_counter()
        for _ in range(max(1, round(seconds * fs / 8192))):
            blocks.append(board.fetch(8192).phase)
        wall = time.perf_counter() - start
    data = np.concatenate(blocks, axis=1)
    np.save(path, data)
    return data.shape[1] / fs, wall


def measure_analysis(
    run_dir: Path, channels: list[int], events: int, rounds: int
) -> dict[str, Any]:
    """Events per second serially (`rounds` times), then on 1 and 2 local workers in `rounds`
    alternating rounds (this host's speed drifts by tens of per cent within a minute: each
    figure is the best round, with the median too), the best rounds' phases, and the host's
    own parallel efficiency before and after."""
    host = [host_parallel_efficiency()]
    # Serial first, without the clusters' event loop in this process.
    timed = {"serial": [time_analysis(run_dir, None, channels) for _ in range(rounds)]}
    with connect(ClusterSpec(workers=1)) as one, connect(ClusterSpec(workers=2)) as two:
        clients = {"1_workers": one, "2_workers": two}
        for _ in range(rounds):
            for name, client in clients.items():
                timed.setdefault(name, []).append(time_analysis(run_dir, client, channels))
        rss = {name: max(c.run(peak_rss_mb).values()) for name, c in clients.items()}
    host.append(host_parallel_efficiency())
    analysis: dict[str, Any] = {"rounds": rounds, "channels_failed": timed["serial"][0]["failed"]}
    for name, runs in timed.items():
        best = min(runs, key=lambda t: t["wall_s"])
        analysis[f"events_per_s_{name}"] = round(events / best["wall_s"], 1)
        analysis[f"events_per_s_{name}_median"] = round(
            events / float(np.median([t["wall_s"] for t in runs])), 1
        )
        analysis[f"events_per_cpu_s_{name}"] = round(events / min(t["cpu_s"] for t in runs), 1)
        for phase in ("wall_s", "work_s", "combine_s"):
            analysis[f"{phase}_{name}"] = round(best[phase], 2)
        if name in rss:
            analysis[f"worker_peak_rss_mb_{name}"] = round(rss[name])
    eps1, eps2 = analysis["events_per_s_1_workers"], analysis["events_per_s_2_workers"]
    analysis["scaling_efficiency"] = round(eps2 / (2 * eps1), 3)
    analysis["scaling_efficiency_median"] = round(
        analysis["events_per_s_2_workers_median"] / (2 * analysis["events_per_s_1_workers_median"]),
        3,
    )
    analysis["target_scaling_efficiency"] = 0.8
    # The per-channel phase alone (the combine step is serial by nature).
    analysis["work_scaling_efficiency"] = round(
        analysis["work_s_1_workers"] / (2 * analysis["work_s_2_workers"]), 3
    )
    # The same work per CPU second with 2 workers as with 1: what 2 free cores would give.
    analysis["cpu_scaling_efficiency"] = round(
        analysis["events_per_cpu_s_2_workers"] / analysis["events_per_cpu_s_1_workers"], 3
    )
    analysis["host_parallel_efficiency"] = [round(h, 3) for h in host]
    return analysis


def measure_stored_run(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored 64-channel run (made once) and its analysis on 1 and 2 workers."""
    run_dir = stored_run(args.base, args.seed, args.duration, args.rate, args.codec)
    reader = RunReader(run_dir / STORE)
    parts = reader.acquisitions()
    channels = sorted({c for p in parts for c in reader.channels(p)})
    events = sum(reader.committed(p, c) for p in parts for c in reader.channels(p))
    store_bytes = disk_bytes(run_dir / STORE)
    analysis = measure_analysis(run_dir, channels, events, args.rounds)
    run = {
        "rig": "holmes_boards_sim (simulated uMUX, 2 boards x 32 TES)",
        "channels": len(channels),
        "stream_s": args.duration,
        "pulse_rate_hz": args.rate,
        "events": events,
        "records_per_channel": round(events / len(channels), 1),
        "store_bytes_per_record": round(store_bytes / events),
        "record_length": RECORD,
        "pipeline": "pulses",
        "channels_failed": analysis.pop("channels_failed"),
    }
    return run, analysis


def measure_acquisition(args: argparse.Namespace) -> dict[str, Any]:
    """The kernel and a board task's path per core; real-time factors of the full simulated
    path and of replayed blocks for each of `args.boards`."""
    acquisition: dict[str, Any] = {}
    args.base.mkdir(parents=True, exist_ok=True)
    data_path = args.base / "board.npy"
    sim_s, sim_wall = board_blocks(data_path, args.seed, args.replay, args.rate)
    acquisition["simulator_alone_realtime_factor"] = round(sim_s / sim_wall, 4)
    acquisition["per_core"] = kernel_and_path(args, data_path)
    for boards in args.boards:
        names = [f"roach{i}" for i in range(1, boards + 1)]
        out = campaign(
            args.base / f"acquire-{boards}", names, args.acq_duration, args.rate, args.seed,
            args.codec,
        )  # fmt: skip
        parts = json.loads((out / "summary.json").read_text())["acquisitions"]
        rtf = [p["live_time_s"] / p["wall_time_s"] for p in parts.values()]
        store = args.base / f"replay-{boards}"
        shutil.rmtree(store, ignore_errors=True)
        writer = RunStore.create(store, records_codec=args.codec)
        tasks = [
            (str(data_path), str(store), f"replay-part-{b}", 64 * i, 250e3, args.repeats,
             args.codec)
            for i, b in enumerate(names)
        ]  # fmt: skip
        with connect(ClusterSpec(workers=boards)) as client:
            warm = [(*t[:2], f"warm-{t[2]}", *t[3:5], 1, t[6]) for t in tasks]
            client.gather(client.map(replay_board, warm, pure=False))  # JIT in every worker
            replay = client.gather(client.map(replay_board, tasks, pure=False))
        writer.close()
        stored_bytes = sum(disk_bytes(store / "acquisitions" / t[2]) for t in tasks)
        shutil.rmtree(store, ignore_errors=True)
        acquisition[f"{boards}_boards"] = {
            "channels": boards * TONES,
            "realtime_factor": round(min(rtf), 4),
            "replay_realtime_factor": round(min(r[0] / r[1] for r in replay), 2),
            "replay_aggregate_channel_samples_per_s": round(
                sum(TONES * r[0] * 250e3 for r in replay) / max(r[1] for r in replay)
            ),
            "replay_channel_samples_per_cpu_s": round(
                sum(TONES * r[0] * 250e3 for r in replay) / sum(r[2] for r in replay)
            ),
            "replay_worker_peak_rss_mb": round(max(r[3] for r in replay)),
            "store_bytes_per_channel_s": round(stored_bytes / (boards * TONES * replay[0][0])),
        }
    return acquisition


def disk_bytes(root: Path) -> int:
    """Bytes the files under `root` occupy on the disk (allocated blocks: the run store's
    uncompressed chunk files are sparse up to their full size)."""
    return sum(f.stat().st_blocks * 512 for f in root.rglob("*") if f.is_file())


def filesystem(path: Path) -> str:
    """Type and device of the mount holding `path` (from /proc/mounts; '?' elsewhere)."""
    best, found = "", "?"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return found
    target = str(path.resolve())
    for line in mounts:
        device, point, kind = line.split()[:3]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, found = point, f"{kind} ({device} on {point})"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--codec", choices=list(RECORDS_CODECS), default=DEFAULT_RECORDS_CODEC,
        help="records codec of the stores",
    )
    parser.add_argument("--duration", type=float, default=2.0, help="stored run, stream s")
    parser.add_argument("--rate", type=float, default=50.0, help="pulses/s per TES")
    parser.add_argument("--acq-duration", type=float, default=0.25, help="stream s per board")
    parser.add_argument("--replay", type=float, default=0.5, help="simulated s to replay")
    parser.add_argument("--repeats", type=int, default=240, help="times the replay is repeated")
    parser.add_argument(
        "--acq-rounds", type=int, default=5, help="alternating kernel and path rounds"
    )
    parser.add_argument(
        "--boards",
        type=lambda text: [int(b) for b in text.split(",") if b],
        default=[1, 2, 4],
        help="board counts to acquire with (comma-separated; empty: none)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating analysis rounds (best and median)"
    )
    parser.add_argument(
        "--analysis-only", action="store_true", help="skip the acquisition measurements"
    )
    parser.add_argument(
        "--acquisition-only", action="store_true", help="skip the stored run and its analysis"
    )
    parser.add_argument(
        "--base",
        type=Path,
        default=Path(tempfile.gettempdir()) / "cryodaq-scale",
        help="where the stored run is made once and reused",
    )
    args = parser.parse_args()
    if args.analysis_only and args.acquisition_only:
        parser.error("--analysis-only and --acquisition-only exclude each other")
    load_before = os.getloadavg()
    run: dict[str, Any] = {}
    analysis: dict[str, Any] = {}
    per_core: dict[str, Any] = {}
    if not args.acquisition_only:
        run, analysis = measure_stored_run(args)
        eps1 = analysis["events_per_s_1_workers"]
        per_core["analysis_events_per_s"] = eps1
        per_core["analysis_events_per_cpu_s"] = analysis["events_per_cpu_s_1_workers"]
        per_core["analysis_channels_per_s"] = round(eps1 / run["events"] * run["channels"], 3)
    acquisition = {} if args.analysis_only else measure_acquisition(args)
    if acquisition:
        kp = acquisition["per_core"]
        per_core["kernel_channel_samples_per_cpu_s"] = kp["kernel_channel_samples_per_cpu_s"]
        per_core["replay_channel_samples_per_cpu_s"] = kp["path_channel_samples_per_cpu_s"]
        per_core["replay_over_kernel"] = kp["path_over_kernel"]
        if "1_boards" in acquisition:
            rtf = acquisition["1_boards"]["realtime_factor"]
            per_core["simulated_channel_samples_per_s"] = round(TONES * 250e3 * rtf)
    print(
        json.dumps(
            {
                "benchmark": "scale",
                "records_codec": args.codec,
                "store_filesystem": filesystem(args.base),
                "run": run,
                "analysis": analysis,
                "acquisition": acquisition,
                "per_core": per_core,
                "cores": os.cpu_count(),
                "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            }
        )
    )


if __name__ == "__main__":
    main()
