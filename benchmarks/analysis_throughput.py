"""Per-record analysis throughput on a stored run (issue 20).

Prints one JSON object. The stored run is made here, in a temporary directory deleted at the
end: a short quickstart run (`config/campaigns/quickstart.yaml`, 8 simulated maXs30 channels,
55Fe pulses and noise records of 4096 int16 samples, `--source-s` of acquisition) is simulated
(or `--source`, the store of an existing run, is used), and its records (all channels, pulse and
noise) are tiled into `--records` records per channel for `--channels` channels, written
through the run store's own writer (RunStore, with the records codec `--codec`: `lz4`, Blosc
LZ4 with bit shuffle, what `cryodaq run` writes by default, or `zstd`, Zstd level 1; the JSON's
`run.records_codec`), so that they are read back through the real path. The filter, the
template and the polarity are learned by the `pulses` pipeline's `learn_filter` on channel 1 of
the source run (not measured here).

Measured, each on every record of the tiled channels, single-threaded, in blocks of `--block`
rows (`RunReader.iter_rows`), `--rounds` rounds alternating, best round reported (`_median`
too); records/s per core = records / CPU seconds of this process:
- `read`: the records alone through the store reader (the in-run reference);
- `apply`: reading plus the per-record kernel `record_features` (baseline, optimal-filter
  amplitude, rms and largest deviation, rise after the peak, residual from the scaled template,
  arrival phase), what a streaming apply pass costs; `apply_over_read` = read / apply speed;
- `pipeline_apply`: the `pulses` pipeline's own apply pass (`pulses_apply.apply_pass`: reading,
  the trigger kinds and times, isolation, `record_features`, the learned cuts, the first
  filter on noise records) over every record of each channel;
- `kernel`: `record_features` alone on records in memory, and `amplitude_kernel` (the filter
  only);
- `matmul`: the other in-run reference, one NumPy matrix product `records @ weights` of a block
  of float64 records in memory (and of the int16 block, which NumPy converts first);
- `read_zarr`: the same records through Zarr's own reader (what `RunReader` used before), on
  the first `--zarr-records` records;
- `decompression`: why reading costs what it does: decoding the stored chunk bytes (already in
  memory, with the run's codec, `codec`) against a memcpy of the decoded bytes, the compression
  ratio, and the same chunks encoded by other codecs (`blosc_lz4_bitshuffle` is the default
  records codec `lz4`, `zstd1` the `zstd` one);
- `cores`, `load_average` (before, after): the host is shared; figures scale with what is free.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numcodecs import LZ4, Blosc, Zstd

from cryodaq.acquisition.campaign.runner import CampaignRunner
from cryodaq.acquisition.campaign.validate import load_campaign
from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch
from cryodaq.acquisition.pipelines.pulses_apply import apply_pass
from cryodaq.acquisition.pipelines.pulses_channel import learn_filter, read_stream
from cryodaq.acquisition.pipelines.pulses_options import DEFAULTS
from cryodaq.acquisition.store.chunk_reader import key_separator
from cryodaq.acquisition.store.codecs import DECODERS, DEFAULT_RECORDS_CODEC, RECORDS_CODECS
from cryodaq.acquisition.store.format import chunk_key, read_json
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.analysis.record_apply import amplitudes, record_features

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "config" / "campaigns" / "quickstart.yaml"


def simulate_source(out: Path, seconds: float, seed: int) -> Path:
    """A quickstart run of `seconds` of acquisition; returns its store."""
    loaded = load_campaign(
        QUICKSTART,
        [f"steps.2.acquire.duration={seconds} s", "steps.3.analyze.options.save_filter=false",
         f"rig.world.seed={seed}"],
    )  # fmt: skip
    if CampaignRunner(loaded.campaign, loaded.rig, loaded.raw, out).run() != 0:
        raise RuntimeError(f"source run failed: {(out / 'summary.json').read_text()}")
    return out / "store"


def learned(store: Path) -> dict[str, Any]:
    """The `pulses` pipeline's filter, template and polarity for channel 1 of the source run."""
    reader = RunReader(store)
    part = reader.acquisitions()[0]
    info = reader.info(part)
    geo = {"length": info["record_length"], "pre": info["pretrigger"],
           "fs": info["sample_rate_hz"]}  # fmt: skip
    ln = learn_filter(read_stream(reader, [part], 1), geo, dict(DEFAULTS))
    return {"weights": ln.filt.weights, "template": ln.avg.template, "sign": ln.avg.sign,
            "pre": geo["pre"], "fs": geo["fs"], "learned": ln, "geo": geo}  # fmt: skip


def tiled_run(source: Path, out: Path, channels: int, records: int, codec: str) -> tuple[Path, str]:
    """`records` records per channel for `channels` channels, tiled from every record of the
    source run, written through the run store's writer with records codec `codec`."""
    reader = RunReader(source)
    part = reader.acquisitions()[0]
    info = reader.info(part)
    blocks = [reader.read(part, ch, ["records", "trigger_kind"]) for ch in reader.channels(part)]
    rec = np.concatenate([b["records"] for b in blocks])
    kind = np.concatenate([b["trigger_kind"] for b in blocks])
    length, pre = int(info["record_length"]), int(info["pretrigger"])
    batch_rows = 4096
    with RunStore.create(out, {"benchmark": "analysis_throughput"}, records_codec=codec) as run:
        acq = run.acquisition("tiled", list(range(1, channels + 1)), length, rec.dtype,
                              info["sample_rate_hz"], pre)  # fmt: skip
        for first in range(0, records, batch_rows):
            n = min(batch_rows, records - first)
            rows = (np.arange(first, first + n) * 7919) % rec.shape[0]  # a stride through all
            si = np.arange(first, first + n, dtype=np.int64) * 2 * length
            for ch in range(1, channels + 1):
                acq.append(EventBatch(
                    "tiled", info["sample_rate_hz"], int(si[0]), int(si[-1] + length), pre,
                    np.full(n, ch, np.int32), si, si * 4000, kind[rows], np.ones(n, np.uint16),
                    rec[rows], np.zeros(n, SUMMARY_DTYPE),
                ))  # fmt: skip
        acq.close()
    return out, "tiled"


def timed(fn: Callable[[], int]) -> dict[str, float]:
    """Records/s per CPU second (per core) and per wall second of `fn` (returns records)."""
    c0, w0 = time.process_time(), time.perf_counter()
    n = fn()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"records": n, "cpu_s": cpu, "wall_s": wall, "per_core": n / cpu, "per_wall_s": n / wall}


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    top = max(runs, key=lambda r: r["per_core"])
    return {**top, "per_core_median": statistics.median(r["per_core"] for r in runs)}


def decompression(store: Path, sample_chunks: int) -> dict[str, Any]:
    """Decoding of stored record chunks (bytes in memory, the run's codec) against memcpy;
    other codecs."""
    array = store / "acquisitions" / "tiled" / "ch001" / "records"
    meta = read_json(array / "zarr.json")
    codec = meta["codecs"][1]
    decoder = DECODERS[codec["name"]]
    files = [array / chunk_key(i, 1, key_separator(meta)) for i in range(sample_chunks)]
    stored = [f.read_bytes() for f in files if f.exists()]
    raw = [decoder.decode(b) for b in stored]
    nbytes = sum(len(r) for r in raw)

    def rate(fn: Callable[[], Any]) -> float:
        cpu = []
        for _ in range(3):
            t = time.process_time()
            fn()
            cpu.append(time.process_time() - t)
        return nbytes / min(cpu) / 1e6

    dst = np.ones(nbytes, np.uint8)
    src = np.frombuffer(b"".join(raw), np.uint8)
    out: dict[str, Any] = {
        "chunks": len(stored),
        "codec": codec,
        "ratio": nbytes / sum(len(b) for b in stored),
        "decode_MB_per_s": rate(lambda: [decoder.decode(b) for b in stored]),
        "memcpy_MB_per_s": rate(lambda: np.copyto(dst, src)),
        "other_codecs": {},
    }
    codecs = {
        "zstd1": Zstd(level=1),
        "lz4": LZ4(acceleration=1),
        "blosc_zstd1_byteshuffle": Blosc("zstd", 1, Blosc.SHUFFLE, typesize=2),
        "blosc_lz4_byteshuffle": Blosc("lz4", 5, Blosc.SHUFFLE, typesize=2),
        "blosc_lz4_bitshuffle": Blosc("lz4", 5, Blosc.BITSHUFFLE, typesize=2),
        "blosc_zstd1_bitshuffle": Blosc("zstd", 1, Blosc.BITSHUFFLE, typesize=2),
    }
    for name, codec in codecs.items():
        enc = [codec.encode(r) for r in raw]
        out["other_codecs"][name] = {
            "ratio": nbytes / sum(len(e) for e in enc),
            "decode_MB_per_s": rate(lambda c=codec, e=enc: [c.decode(x) for x in e]),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000, help="records per channel")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--source-s", type=float, default=20.0, help="seconds of quickstart run")
    ap.add_argument("--source", type=Path, help="tile this run's store instead of simulating")
    ap.add_argument("--block", type=int, default=4096, help="rows per block read")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--zarr-records", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--codec", choices=list(RECORDS_CODECS), default=DEFAULT_RECORDS_CODEC,
                    help="the tiled run's records codec")  # fmt: skip
    args = ap.parse_args()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="cryodaq-analysis-throughput-"))
    try:
        source = args.source or simulate_source(tmp / "source", args.source_s, args.seed)
        filt = learned(source)
        t0 = time.perf_counter()
        store, part = tiled_run(source, tmp / "tiled", args.channels, args.records, args.codec)
        write_s = time.perf_counter() - t0
        reader = RunReader(store)
        chans = reader.channels(part)
        w, t, pre, sign = filt["weights"], filt["template"], filt["pre"], filt["sign"]
        record_features(reader.read(part, 1, ["records"], 0, 8)["records"], w, t, pre, sign)

        def read() -> int:
            return sum(
                len(b["records"])
                for ch in chans
                for _, b in reader.iter_rows(part, ch, ["records"], args.block)
            )

        def apply() -> int:
            n = 0
            for ch in chans:
                for _, b in reader.iter_rows(part, ch, ["records"], args.block):
                    n += record_features(b["records"], w, t, pre, sign).amplitude.size
            return n

        def pipeline_apply() -> int:
            ln, geo = filt["learned"], filt["geo"]
            n = 0
            for ch in chans:  # the trigger kinds and times, no record held
                n += apply_pass(reader, read_stream(reader, [part], ch, 0), ch, ln, geo).records
            return n

        block = reader.read(part, 1, ["records"], 0, args.block)["records"]
        x = block.astype(np.float64)
        reps = max(1, args.records // args.block)
        in_memory = {
            "kernel": lambda: record_features(block, w, t, pre, sign).amplitude.size,
            "amplitude_kernel": lambda: amplitudes(block, w).size,
            "matmul_float64": lambda: (x @ w).size,
            "matmul_int16": lambda: (block @ w).size,
        }
        streamed = {"read": read, "apply": apply, "pipeline_apply": pipeline_apply}
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in (*streamed, *in_memory)}
        for _ in range(args.rounds):
            for name, fn in streamed.items():
                rounds[name].append(timed(fn))
            for name, fn in in_memory.items():
                times = max(1, reps // 4) if name == "matmul_int16" else reps  # NumPy's slow one
                rounds[name].append(
                    timed(lambda fn=fn, times=times: sum(fn() for _ in range(times)))
                )
        figures = {k: best(v) for k, v in rounds.items()}
        path = store / "acquisitions" / part / "ch001" / "records"
        nz = min(args.zarr_records, args.records)
        figures["read_zarr"] = timed(
            lambda: np.asarray(zarr.open_array(store=str(path), mode="r")[:nz]).shape[0]
        )
        result = {
            "run": {
                "source": str(args.source or f"quickstart, {args.source_s} s, seed {args.seed}"),
                "records_per_channel": args.records,
                "channels": len(chans),
                "record_length": int(block.shape[1]),
                "dtype": str(block.dtype),
                "records_codec": args.codec,
                "stored_MB": sum(f.stat().st_blocks * 512 for f in store.rglob("*") if f.is_file())
                / 1e6,  # allocated: uncompressed chunk files are sparse up to their size
                "write_s": write_s,
                "block_rows": args.block,
            },
            "records_per_s_per_core": {k: v["per_core"] for k, v in figures.items()},
            "apply_over_read": figures["read"]["per_core"] / figures["apply"]["per_core"],
            "pipeline_apply_over_read": figures["read"]["per_core"]
            / figures["pipeline_apply"]["per_core"],
            "goal": {"records_per_s_per_core": 1e5, "apply_over_read_at_most": 2.0},
            "figures": figures,
            "decompression": decompression(store, 400),
            "cores": os.cpu_count(),
            "load_average": [load_before, os.getloadavg()],
        }
        print(json.dumps(result, indent=1, default=float))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
