"""Writes a run continuously until killed; the SIGKILL test of the run store runs it.

Usage: python store_writer_child.py STORE_PATH [RECORDS_CODEC]. Prints `committed <rows>
<monotonic s>` when a new commit is visible and `appended <rows> <monotonic s>` every few
batches. Every value is a function of the batch number, so the parent can check any committed
prefix exactly.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch, Gap
from cryodaq.acquisition.store.writer import RunStore

CHANNELS = (0, 1, 2, 5, 9, 12)
RECORD_LENGTH = 128
PRETRIGGER = 16
RATE_HZ = 1e6
ROWS_PER_BATCH = 4  # per channel
BLOCK = 10_000  # samples per block
GAP = 500  # samples missing before every 7th block
T0_NS = 1_700_000_000_000_000_000
ACQ = "stream"


def block_first(k: np.ndarray | int) -> np.ndarray | int:
    return k * BLOCK + GAP * (k // 7)


def expected(ch: int, rows: np.ndarray) -> dict[str, np.ndarray]:
    """What rows `rows` of channel `ch` must hold."""
    k, j = np.divmod(rows, ROWS_PER_BATCH)
    si = (block_first(k) + 100 + 1000 * j + ch).astype(np.int64)
    records = ((si[:, None] * 7 + np.arange(RECORD_LENGTH)) % 65536 - 32768).astype(np.int16)
    summaries = np.zeros(si.size, SUMMARY_DTYPE)
    for i, name in enumerate(SUMMARY_DTYPE.names or ()):
        summaries[name] = si % 4096 + i
    summaries["peak_index"] = si % RECORD_LENGTH
    return {
        "sample_index": si,
        "timestamp_ns": T0_NS + si * 1000,
        "trigger_kind": (1 + si % 5).astype(np.uint8),
        "coincidence": np.full(si.size, 1 + ch, np.uint16),
        "records": records,
        "summaries": summaries,
        "energy": si * 0.5,
    }


def expected_gaps(batches: int) -> list[Gap]:
    first = [int(block_first(k)) for k in range(7, batches, 7)]
    return [Gap(f - GAP, f) for f in first]


def expected_drops(batches_added: int) -> int:
    """Records reported dropped once batches 0..batches_added-1 were handled."""
    return 2 * len(range(0, batches_added, 5))


def batch(k: int) -> EventBatch:
    rows = np.arange(k * ROWS_PER_BATCH, (k + 1) * ROWS_PER_BATCH)
    parts = [expected(ch, rows) for ch in CHANNELS]
    cat = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    gaps = (Gap(block_first(k) - GAP, block_first(k)),) if k and k % 7 == 0 else ()
    return EventBatch(
        acquisition=ACQ,
        sample_rate_hz=RATE_HZ,
        block_first_sample=int(block_first(k)),
        block_samples=BLOCK,
        pretrigger=PRETRIGGER,
        channel=np.repeat(np.array(CHANNELS, np.int32), ROWS_PER_BATCH),
        sample_index=cat["sample_index"],
        timestamp_ns=cat["timestamp_ns"],
        trigger_kind=cat["trigger_kind"],
        coincidence=cat["coincidence"],
        records=cat["records"],
        summaries=cat["summaries"],
        gaps=gaps,
        records_lost_to_gaps=1 if gaps else 0,
        extra={"energy": cat["energy"]},
    )


def main(path: str, codec: str = "zstd") -> None:
    meta = {"rig": {"name": "sigkill-test"}, "campaign": {"steps": 1}}
    run = RunStore.create(path, meta, records_codec=codec)
    acq = run.acquisition(ACQ, CHANNELS, RECORD_LENGTH, "int16", RATE_HZ, PRETRIGGER)
    seen = 0
    k = 0
    while True:
        if k % 5 == 0:
            acq.add_drops("monitor", 2, 1)
        acq.append(batch(k))
        k += 1
        if k % 10 == 0:
            rows = k * ROWS_PER_BATCH * len(CHANNELS)
            print(f"appended {rows} {time.monotonic():.6f}", flush=True)
        total = acq.committed_total
        now = time.monotonic()
        if total != seen:
            seen = total
            print(f"committed {total} {now:.6f}", flush=True)
        time.sleep(0.002)


if __name__ == "__main__":
    main(*sys.argv[1:3])
