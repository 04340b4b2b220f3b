"""Live monitor sink: trigger counts and rates per channel in stream time, gaps, progress."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.table import Table

from cryodaq.acquisition.events import EventBatch, TriggerKind


@dataclass(frozen=True)
class _Block:
    """What the sliding window keeps of one batch."""

    first: int  # first sample of the block
    stop: int  # one past its last sample
    channel: np.ndarray
    sample_index: np.ndarray
    last_trigger: int  # largest sample_index (-1 if none)

    @property
    def end(self) -> int:
        """One past the last sample this block says anything about."""
        return max(self.stop, self.last_trigger + 1)


class LiveMonitor:
    """Sink that counts triggers per channel and kind, and rates over a sliding window.

    Times are stream times (sample indices / sample rate), so rates are right on virtual time.
    Rates divide by live time: samples of the blocks received (gaps and batches dropped before
    this sink are not live time). `snapshot()` may be called from any thread.
    """

    def __init__(
        self, channels: Iterable[int] = (), window_s: float = 10.0, duration_s: float | None = None
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = float(window_s)
        self.duration_s = duration_s
        self._lock = threading.Lock()
        self._channels: set[int] = {int(c) for c in channels}
        self._acquisition = ""
        self._rate: float | None = None
        self._first_sample: int | None = None
        self._end_sample = 0
        self._samples = 0
        self._batches = 0
        self._counts: dict[int, np.ndarray] = {}  # channel -> counts per TriggerKind value
        self._gaps = 0
        self._gap_samples = 0
        self._lost = 0
        self._window: deque[_Block] = deque()
        self._wall_start: float | None = None
        self._wall_last = 0.0
        self._closed = False

    def consume(self, batch: EventBatch) -> None:
        """Add one batch to the counts and the window."""
        now = time.monotonic()
        n_kinds = max(TriggerKind) + 1
        pairs, n = np.zeros((2, 0), np.int64), np.zeros(0, np.int64)
        if len(batch):
            ch_kind = np.stack(
                [batch.channel.astype(np.int64), batch.trigger_kind.astype(np.int64)]
            )
            pairs, n = np.unique(ch_kind, axis=1, return_counts=True)
            if pairs[1].min() < 0 or pairs[1].max() >= n_kinds:
                raise ValueError(f"unknown trigger kind in {sorted(set(pairs[1].tolist()))}")
        stop = batch.block_first_sample + batch.block_samples
        block = _Block(
            batch.block_first_sample,
            stop,
            batch.channel.copy(),
            batch.sample_index.copy(),
            int(batch.sample_index.max()) if len(batch) else -1,
        )
        with self._lock:
            if self._rate is None:
                self._rate = float(batch.sample_rate_hz)
                self._first_sample = batch.block_first_sample
                self._acquisition = batch.acquisition
                self._wall_start = now
            elif batch.sample_rate_hz != self._rate:
                raise ValueError(
                    f"sample rate changed from {self._rate} to {batch.sample_rate_hz} Hz"
                )
            self._wall_last = now
            self._batches += 1
            self._end_sample = max(self._end_sample, stop)
            self._samples += batch.block_samples
            self._gaps += len(batch.gaps)
            self._gap_samples += sum(g.samples for g in batch.gaps)
            self._lost += batch.records_lost_to_gaps
            for (ch, kind), k in zip(pairs.T.tolist(), n.tolist(), strict=True):
                self._counts.setdefault(ch, np.zeros(n_kinds, np.int64))[kind] += k
            self._window.append(block)
            cutoff = self._cutoff()
            while self._window and self._window[0].end <= cutoff:
                self._window.popleft()

    def close(self) -> None:
        """Mark the stream finished (the figures stay readable)."""
        with self._lock:
            self._closed = True

    def _cutoff(self) -> int:
        assert self._rate is not None and self._first_sample is not None
        return max(self._first_sample, self._end_sample - round(self.window_s * self._rate))

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of every figure as plain Python values (thread-safe)."""
        with self._lock:  # copy under the lock, compute outside it
            rate = self._rate or 0.0
            first, end = self._first_sample or 0, self._end_sample
            cutoff = self._cutoff() if rate else 0
            blocks = list(self._window)
            counts = {ch: c.copy() for ch, c in self._counts.items()}
            names = sorted(self._channels | set(counts))
            samples, batches, closed = self._samples, self._batches, self._closed
            gaps, gap_samples, lost = self._gaps, self._gap_samples, self._lost
            wall_s = self._wall_last - self._wall_start if self._wall_start is not None else 0.0
            acquisition = self._acquisition
        stream_s = (end - first) / rate if rate else 0.0
        live_s = samples / rate if rate else 0.0
        window_live_s, window_counts = _window_counts(blocks, cutoff, end)
        window_live_s = window_live_s / rate if rate else 0.0
        kinds = np.zeros(max(TriggerKind) + 1, np.int64)
        channels: dict[int, dict[str, Any]] = {}
        for ch in names:
            c = counts.get(ch, np.zeros_like(kinds))
            kinds += c
            n_window = window_counts.get(ch, 0)
            channels[ch] = {
                "triggers": int(c.sum()),
                "rate_hz": n_window / window_live_s if window_live_s else 0.0,
                "mean_rate_hz": float(c.sum() / live_s) if live_s else 0.0,
                "by_kind": {k.name: int(c[k]) for k in TriggerKind if c[k]},
            }
        return {
            "acquisition": acquisition,
            "sample_rate_hz": rate,
            "batches": batches,
            "samples_processed": samples,
            "stream_time_s": stream_s,
            "live_time_s": live_s,
            "window_live_s": window_live_s,
            "progress": (min(1.0, stream_s / self.duration_s) if self.duration_s else None),
            "wall_time_s": wall_s,
            "speed": stream_s / wall_s if wall_s > 0 else None,
            "records": int(kinds.sum()),
            "records_by_kind": {k.name: int(kinds[k]) for k in TriggerKind if kinds[k]},
            "gaps": gaps,
            "gap_samples": gap_samples,
            "records_lost_to_gaps": lost,
            "finished": closed,
            "channels": channels,
        }

    def table(self) -> Table:
        """A rich Table of the current snapshot."""
        s = self.snapshot()
        kinds = [k.name for k in TriggerKind if k.name in s["records_by_kind"]]
        table = Table(title=f"{s['acquisition'] or 'acquisition'}: {s['records']} records")
        table.add_column("ch", justify="right")
        table.add_column("triggers", justify="right")
        table.add_column(f"rate ({self.window_s:g} s) Hz", justify="right")
        table.add_column("mean Hz", justify="right")
        for k in kinds:
            table.add_column(k.lower(), justify="right")
        for ch, c in s["channels"].items():
            table.add_row(
                str(ch),
                str(c["triggers"]),
                f"{c['rate_hz']:.2f}",
                f"{c['mean_rate_hz']:.2f}",
                *(str(c["by_kind"].get(k, 0)) for k in kinds),
            )
        progress = f" ({s['progress']:.0%})" if s["progress"] is not None else ""
        speed = f", x{s['speed']:.1f} real time" if s["speed"] else ""
        table.caption = (
            f"stream {s['stream_time_s']:.1f} s{progress}{speed}; "
            f"{s['samples_processed']} samples; {s['gaps']} gaps ({s['gap_samples']} samples, "
            f"{s['records_lost_to_gaps']} records lost)"
        )
        return table

    def __rich__(self) -> Table:
        return self.table()


def _window_counts(blocks: list[_Block], cutoff: int, end: int) -> tuple[int, dict[int, int]]:
    """Live samples of `blocks` within [cutoff, end), and triggers per channel in it."""
    live = sum(max(0, min(b.stop, end) - max(b.first, cutoff)) for b in blocks)
    with_triggers = [b for b in blocks if b.channel.size]
    if not with_triggers:
        return live, {}
    ch = np.concatenate([b.channel for b in with_triggers])
    idx = np.concatenate([b.sample_index for b in with_triggers])
    uniq, n = np.unique(ch[(idx >= cutoff) & (idx < end)], return_counts=True)
    return live, {int(c): int(k) for c, k in zip(uniq, n, strict=True)}
