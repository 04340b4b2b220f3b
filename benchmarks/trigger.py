"""Trigger engine throughput on 32 int16 channels, against memcpy and a plain NumPy trigger.

Prints one JSON object: `samples_per_s` of `TriggerEngine.process` (edge triggers, records of
1024 samples with summaries, 10 pulses/s/channel at 500 kS/s), `memcpy_samples_per_s` (copying
the same blocks), `numpy_samples_per_s` (a straightforward vectorised NumPy edge trigger and
record cut, no summaries), `cpu_cores_used` (process CPU time / wall time during the engine
run) and `peak_rss_mb`.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from cryodaq.acquisition.stream.sources import Block
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig, TriggerEngine

CHANNELS = 32
RATE_HZ = 500e3
RECORD, PRETRIGGER = 1024, 256
THRESHOLD = 200.0


def make_stream(samples: int, seed: int = 1) -> np.ndarray:
    """32 channels of noise (rms 10 codes) with 10 pulses/s/channel of ~1000 codes (int16)."""
    rng = np.random.default_rng(seed)
    t = np.arange(3000)
    pulse = 1000.0 * (np.exp(-t / 500.0) - np.exp(-t / 5.0))
    expected = int(10 * samples / RATE_HZ)
    data = np.empty((CHANNELS, samples), dtype=np.int16)
    for c in range(CHANNELS):
        row = rng.normal(0.0, 10.0, samples)
        for a in rng.integers(0, samples - t.size, expected):
            row[a : a + t.size] += pulse
        data[c] = row
    return data


def numpy_trigger(block: np.ndarray) -> int:
    """Reference: vectorised edge trigger (same kernel and threshold) and record cut."""
    x = block.astype(np.float64)
    d = x[:, 3:] + x[:, 2:-1] - x[:, 1:-2] - x[:, :-3]
    fire = (d[:, 1:] >= THRESHOLD) & (d[:, :-1] < THRESHOLD)
    rows, cols = np.nonzero(fire)
    records = [
        block[r, max(c - PRETRIGGER, 0) : c - PRETRIGGER + RECORD]
        for r, c in zip(rows, cols, strict=True)
    ]
    return len(records)


def rate(fn, blocks: list[np.ndarray]) -> tuple[float, float]:
    """Samples per second of `fn` over the blocks, and CPU cores used meanwhile."""
    wall, cpu = time.perf_counter(), time.process_time()
    for b in blocks:
        fn(b)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return sum(b.size for b in blocks) / wall, cpu / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="distinct stream, s")
    parser.add_argument("--repeat", type=int, default=15, help="times the stream is replayed")
    parser.add_argument("--block", type=int, default=1 << 16, help="samples per block")
    args = parser.parse_args()
    stream = make_stream(int(args.seconds * RATE_HZ))
    blocks = [stream[:, i : i + args.block] for i in range(0, stream.shape[1], args.block)]
    blocks = blocks * args.repeat  # a long acquisition: memory must stay bounded

    config = TriggerConfig(
        RECORD, PRETRIGGER, {c: ChannelTrigger(edge_threshold=THRESHOLD) for c in range(1, 33)}
    )
    channels = tuple(range(1, CHANNELS + 1))

    def engine_run(engine: TriggerEngine) -> callable:
        first = [0]

        def step(b: np.ndarray) -> None:
            engine.process(Block(first[0], RATE_HZ, channels, b))
            first[0] += b.shape[1]

        return step

    warm = engine_run(TriggerEngine(config, channels, RATE_HZ))
    for b in blocks[:3]:  # compile or load the cached kernels for every array layout
        warm(b)
    engine = TriggerEngine(config, channels, RATE_HZ)
    engine_rate, cores = rate(engine_run(engine), blocks)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    memcpy_rate, _ = rate(np.copy, blocks)
    numpy_rate, _ = rate(numpy_trigger, blocks[: len(blocks) // args.repeat])
    print(
        json.dumps(
            {
                "benchmark": "trigger",
                "channels": CHANNELS,
                "samples_per_s": round(engine_rate),
                "memcpy_samples_per_s": round(memcpy_rate),
                "numpy_samples_per_s": round(numpy_rate),
                "cpu_cores_used": round(cores, 2),
                "records": engine.records_emitted,
                "stream_seconds": round(sum(b.shape[1] for b in blocks) / RATE_HZ, 1),
                "peak_rss_mb": round(rss_mb, 1),
                "target_samples_per_s": 250e6,
            }
        )
    )


if __name__ == "__main__":
    main()
