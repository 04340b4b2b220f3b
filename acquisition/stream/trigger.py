"""Per-channel triggering of continuous multi-channel streams, one block at a time.

The engine keeps, per channel, the tail of the previous block and the triggers whose record
is not complete yet, so a record may start in one block and end in the next. A gap in the
sample counter drops the records it cuts (counted) and restarts the channels' state: records
never straddle a gap. Coincidences and fan-out are resolved when a record is emitted, which
happens only once its last sample has arrived; with the window no longer than the record's
post-trigger part, every partner within the window is known by then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch, Gap, TriggerKind
from cryodaq.acquisition.stream.sources import Block
from cryodaq.acquisition.stream.trigger_kernels import (
    DEFAULT_EDGE_WIDTH,
    extract,
    kernel_history,
    scan,
)

PRIMARY = (int(TriggerKind.EDGE), int(TriggerKind.LEVEL))
#: Widest edge kernel half (samples).
MAX_EDGE_WIDTH = 4096


class TriggerConfigError(CryodaqError, ValueError):
    """A trigger setting is outside what the engine can do; the message names it."""


@dataclass(frozen=True)
class ChannelTrigger:
    """How one channel triggers.

    `polarity` +1 for positive-going pulses, -1 for negative ones, 0 for both (a double
    meander: two pixels of opposite sign on one channel; edge triggers only, each record's
    summaries taken with the sign of its larger excursion). `edge_threshold` applies to
    the edge kernel of half-width `edge_width`: the sum of the last `edge_width` samples minus
    the sum of the `edge_width` before (data units; width 2: x[i] + x[i-1] - x[i-2] - x[i-3];
    a wider kernel averages white noise down for slow pulses; after an edge trigger the kernel
    must fall below a quarter of the threshold, after the holdoff, before the next: a large pulse's
    tail never triggers). `level` applies to the signal;
    `auto_period` (samples, 0: off) takes periodic noise records.
    """

    polarity: int = 1
    edge_threshold: float | None = None
    level: float | None = None
    auto_period: int = 0
    edge_width: int = DEFAULT_EDGE_WIDTH

    def check(self, ch: int) -> None:
        if self.polarity not in (1, -1, 0):
            raise TriggerConfigError(
                f"channel {ch}: polarity must be +1, -1 or 0 (both), got {self.polarity}"
            )
        if self.polarity == 0 and self.level is not None:
            raise TriggerConfigError(
                f"channel {ch}: a level trigger needs polarity +1 or -1, not 0 (both)"
            )
        if self.edge_threshold is not None and not self.edge_threshold > 0:
            raise TriggerConfigError(
                f"channel {ch}: edge_threshold must be > 0, got {self.edge_threshold}"
            )
        if self.auto_period < 0:
            raise TriggerConfigError(f"channel {ch}: auto_period must be >= 0 samples")
        if not 1 <= self.edge_width <= MAX_EDGE_WIDTH:
            raise TriggerConfigError(
                f"channel {ch}: edge_width must be 1 .. {MAX_EDGE_WIDTH} samples, "
                f"got {self.edge_width}"
            )


@dataclass(frozen=True)
class TriggerConfig:
    """Record geometry, per-channel triggers and group triggers of one acquisition."""

    record_length: int
    pretrigger: int
    channels: Mapping[int, ChannelTrigger]
    holdoff: int | None = None  # samples after a trigger with no new edge/level trigger
    fanout: Mapping[int, Sequence[int]] = field(default_factory=dict)
    coincidence_window: int = 0  # samples; 0: no coincidence flags
    coincidence_min: int = 2

    def check(self, channels: Sequence[int]) -> None:
        """Refuse settings the engine cannot honour, naming the parameter and range."""
        if not 1 <= self.pretrigger < self.record_length:
            raise TriggerConfigError(
                f"pretrigger must be in 1 .. record_length-1 = {self.record_length - 1}, "
                f"got {self.pretrigger}"
            )
        if self.holdoff is not None and self.holdoff < 1:
            raise TriggerConfigError(f"holdoff must be >= 1 sample, got {self.holdoff}")
        post = self.record_length - self.pretrigger
        if not 0 <= self.coincidence_window <= post:
            raise TriggerConfigError(
                f"coincidence_window must be in 0 .. record_length - pretrigger = {post} "
                f"samples, got {self.coincidence_window}"
            )
        for ch, trig in self.channels.items():
            if ch not in channels:
                raise TriggerConfigError(f"trigger for channel {ch}, which the source lacks")
            trig.check(ch)
        for src, targets in self.fanout.items():
            for ch in (src, *targets):
                if ch not in channels:
                    raise TriggerConfigError(f"fanout names channel {ch}, which the source lacks")


class TriggerEngine:
    """Turns blocks of one source into `EventBatch`es."""

    def __init__(
        self,
        config: TriggerConfig,
        channels: Sequence[int],
        sample_rate_hz: float,
        start_time_ns: int = 0,
        acquisition: str = "acquisition",
    ) -> None:
        config.check(channels)
        self.config = config
        self.channels = tuple(channels)
        self.row = {ch: i for i, ch in enumerate(self.channels)}
        self.rate = float(sample_rate_hz)
        self.start_time_ns = int(start_time_ns)
        self.acquisition = acquisition
        self.holdoff = config.holdoff or config.record_length
        n = len(self.channels)
        trig = [config.channels.get(ch, ChannelTrigger()) for ch in self.channels]
        self._edge_on = np.array([t.edge_threshold is not None for t in trig])
        self._threshold = np.array([t.edge_threshold or 0.0 for t in trig])
        self._level_on = np.array([t.level is not None for t in trig])
        self._level = np.array([t.level or 0.0 for t in trig])
        self._polarity = np.array([t.polarity for t in trig], dtype=np.float64)
        self._auto = np.array([t.auto_period for t in trig], dtype=np.int64)
        self._fanout = {self.row[s]: [self.row[t] for t in ts] for s, ts in config.fanout.items()}
        self._width = np.array([t.edge_width for t in trig], dtype=np.int64)
        self._history = kernel_history(int(self._width.max(initial=DEFAULT_EDGE_WIDTH)))
        self._tail_len = config.record_length + config.pretrigger + self._history
        self._tail: np.ndarray | None = None
        self._valid_from = 0  # first absolute sample of the current contiguous stretch
        self._scanned_to = 0  # first absolute sample not yet scanned for triggers
        self._expected: int | None = None
        self._last = np.full(n, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self._next_auto = np.zeros(n, dtype=np.int64)
        self._armed = np.ones(n, dtype=np.bool_)
        self._pending: list[tuple[int, int, int]] = []  # (abs index, row, kind)
        self._recent_primary: list[tuple[int, int]] = []  # (abs index, row) for coincidences
        #: Running totals: samples processed per channel, records emitted, records lost.
        self.samples_processed = 0
        self.records_emitted = 0
        self.records_lost_to_gaps = 0
        self.gaps: list[Gap] = []

    @property
    def records_pending(self) -> int:
        """Triggers whose record has not been completed yet (lost if the stream ends now)."""
        return len(self._pending)

    # -- state across blocks ---------------------------------------------------------------

    def _restart(self, first: int) -> int:
        """Forget everything before `first` (start or gap); return the records dropped."""
        lost = len(self._pending)
        self._pending.clear()
        self._recent_primary.clear()
        self._tail = None
        self._valid_from = first
        self._scanned_to = first
        self._last[:] = np.iinfo(np.int64).min // 2
        self._next_auto[:] = first
        self._armed[:] = True
        return lost

    def _check_block(self, block: Block) -> tuple[Gap | None, int]:
        if block.channels != self.channels:
            raise CryodaqError(
                f"{self.acquisition}: block has channels {block.channels}, the engine was "
                f"set up for {self.channels}"
            )
        if self._expected is None:
            return None, self._restart(block.first_sample)
        if block.first_sample < self._expected:
            raise CryodaqError(
                f"{self.acquisition}: sample counter went back from {self._expected} to "
                f"{block.first_sample} (instrument restarted?)"
            )
        if block.first_sample > self._expected:
            gap = Gap(self._expected, block.first_sample)
            return gap, self._restart(block.first_sample)
        return None, 0

    # -- one block ----------------------------------------------------------------------------

    def process(
        self, block: Block, external: Mapping[int, Sequence[int]] | None = None
    ) -> EventBatch:
        """Trigger one block; `external` gives absolute sample indices of external triggers."""
        gap, lost = self._check_block(block)
        if gap is not None:
            self.gaps.append(gap)
        self.records_lost_to_gaps += lost
        data = block.data
        n_new = data.shape[1]
        tail = self._tail if self._tail is not None else data[:, :0]
        work = np.concatenate([tail, data], axis=1) if tail.shape[1] else data
        work_abs0 = block.first_sample - tail.shape[1]
        work_end = block.first_sample + n_new
        self._expected = work_end

        # No trigger before a full pretrigger (and the kernel's history) exists; the scan
        # resumes where the last one stopped (one sample before the previous block's end).
        settle = max(self._history, self.config.pretrigger) + 1
        first_scan = max(self._scanned_to, self._valid_from + settle) - work_abs0
        found = self._scan(work, work_abs0, first_scan)
        for ch, indices in (external or {}).items():
            row = self.row[ch]
            for a in indices:
                if block.first_sample <= a < work_end:
                    found.append((int(a), row, int(TriggerKind.EXTERNAL)))
        self._add_group_triggers(found)
        self._pending.extend(found)
        self._recent_primary.extend((a, row) for a, row, kind in found if kind in PRIMARY)

        batch = self._emit(work, work_abs0, work_end, block, gap, lost)
        keep = min(self._tail_len, work.shape[1])
        self._tail = np.ascontiguousarray(work[:, work.shape[1] - keep :])
        self.samples_processed += n_new
        return batch

    def _scan(
        self, work: np.ndarray, work_abs0: int, first_scan: int
    ) -> list[tuple[int, int, int]]:
        n = len(self.channels)
        width = work.shape[1]
        span = max(width - 1 - first_scan, 0)
        auto_max = int(np.max(span // np.maximum(self._auto, 1) + 1)) if self._auto.any() else 0
        cap = span // self.holdoff + auto_max + 2
        out_index = np.empty((n, cap), dtype=np.int64)
        out_kind = np.empty((n, cap), dtype=np.uint8)
        out_count = np.zeros(n, dtype=np.int64)
        scan_to = width - 1  # the edge refinement looks one sample ahead
        scan_from = np.full(n, min(max(first_scan, self._history), scan_to), dtype=np.int64)
        scan(
            work,
            scan_from,
            scan_to,
            work_abs0,
            self._edge_on,
            self._threshold,
            self._width,
            self._polarity,
            self._level_on,
            self._level,
            self._auto,
            self.holdoff,
            self._last,
            self._next_auto,
            self._armed,
            out_index,
            out_kind,
            out_count,
        )
        self._scanned_to = max(self._scanned_to, work_abs0 + scan_to)
        return [
            (int(out_index[r, k]), r, int(out_kind[r, k]))
            for r in range(n)
            for k in range(int(out_count[r]))
        ]

    def _add_group_triggers(self, found: list[tuple[int, int, int]]) -> None:
        if not self._fanout:
            return
        taken = {(a, row) for a, row, _ in found}
        for a, row, kind in list(found):
            if kind not in PRIMARY:
                continue
            for target in self._fanout.get(row, ()):
                if (a, target) not in taken:
                    found.append((a, target, int(TriggerKind.GROUP)))
                    taken.add((a, target))

    def _multiplicity(self, ready: list[tuple[int, int, int]]) -> np.ndarray:
        window = self.config.coincidence_window
        mult = np.ones(len(ready), dtype=np.uint16)
        if window <= 0 or not self._recent_primary:
            return mult
        primary = np.array(sorted(self._recent_primary), dtype=np.int64).reshape(-1, 2)
        times, rows = primary[:, 0], primary[:, 1]
        for i, (a, _, kind) in enumerate(ready):
            if kind not in PRIMARY:
                continue
            lo = int(np.searchsorted(times, a - window, side="left"))
            hi = int(np.searchsorted(times, a + window, side="right"))
            mult[i] = len(set(rows[lo:hi].tolist()))
        return mult

    def _emit(
        self,
        work: np.ndarray,
        work_abs0: int,
        work_end: int,
        block: Block,
        gap: Gap | None,
        lost: int,
    ) -> EventBatch:
        cfg = self.config
        ready, waiting, dropped = [], [], 0
        for item in self._pending:
            start = item[0] - cfg.pretrigger
            if start < self._valid_from:
                dropped += 1  # an external trigger too close to the start or the last gap
            elif start + cfg.record_length <= work_end:
                ready.append(item)
            else:
                waiting.append(item)
        self._pending = waiting
        ready.sort()
        mult = self._multiplicity(ready)
        horizon = work_end - cfg.record_length - cfg.coincidence_window
        self._recent_primary = [p for p in self._recent_primary if p[0] >= horizon]

        n = len(ready)
        rows = np.array([r for _, r, _ in ready], dtype=np.int64)
        index = np.array([a for a, _, _ in ready], dtype=np.int64)
        kinds = np.array([k for _, _, k in ready], dtype=np.uint8)
        starts = index - cfg.pretrigger - work_abs0
        records = np.empty((n, cfg.record_length), dtype=work.dtype)
        sf = np.empty((n, 6), dtype=np.float64)
        si = np.empty(n, dtype=np.int64)
        if n:
            extract(
                work,
                rows,
                starts,
                cfg.pretrigger,
                self._polarity[rows],
                1.0 / self.rate,
                records,
                sf,
                si,
            )
        summaries = np.empty(n, dtype=SUMMARY_DTYPE)
        for k, name in enumerate(
            (
                "pretrig_mean",
                "pretrig_rms",
                "peak_value",
                "rise_time_s",
                "postpeak_deriv",
                "pulse_average",
            )
        ):
            summaries[name] = sf[:, k]
        summaries["peak_index"] = si
        self.records_emitted += n
        self.records_lost_to_gaps += dropped
        channel = np.array(self.channels, dtype=np.int32)[rows] if n else np.zeros(0, np.int32)
        return EventBatch(
            acquisition=self.acquisition,
            sample_rate_hz=self.rate,
            block_first_sample=block.first_sample,
            block_samples=block.data.shape[1],
            pretrigger=cfg.pretrigger,
            channel=channel,
            sample_index=index,
            timestamp_ns=self.start_time_ns + np.round(index * (1e9 / self.rate)).astype(np.int64),
            trigger_kind=kinds,
            coincidence=mult,
            records=records,
            summaries=summaries,
            gaps=(gap,) if gap is not None else (),
            records_lost_to_gaps=lost + dropped,
        )
