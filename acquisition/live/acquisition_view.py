"""One acquisition of a run store, read as it grows: per channel rates, records, noise, flags,
pulse-height (or energy) spectra and the last pulses, from the committed rows only."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.live.chunks import ChunkedArray
from cryodaq.acquisition.live.histogram import GrowingHistogram
from cryodaq.acquisition.store.commit import Commit
from cryodaq.acquisition.store.format import channel_group
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.stream.online_analysis import ChannelFilter

#: Stream time over which trigger rates are counted (s).
RATE_WINDOW_S = 5.0
#: Noise figures: the first records give a channel's reference, the last ones its present value.
NOISE_REFERENCE, NOISE_RECENT = 20, 20
#: Present noise this many times its reference (or below its inverse) is a jump.
NOISE_JUMP = 1.5
#: Records read of a channel per look: more are read at the next look (views lag, data never).
ROWS_PER_LOOK = 20_000
#: Records whose energies are computed per channel per look (they are read whole).
ENERGIES_PER_LOOK = 400
#: Pulses overlaid, and pulses averaged, of the chosen channel.
OVERLAID, AVERAGED = 10, 100
#: Points a plotted pulse keeps at most (longer records are averaged down).
PULSE_POINTS = 512

AUTO = int(TriggerKind.AUTO)


class ChannelState:
    """What has been read of one channel: rows, recent pulse triggers, noise, spectra."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.arrays: dict[str, ChunkedArray] = {}
        self.read = 0
        self.energies_read = 0
        self.pulses = 0
        self.recent: deque[int] = deque()  # sample indices of pulse triggers in the rate window
        self.noise_ref: list[float] = []
        self.noise_recent: deque[float] = deque(maxlen=NOISE_RECENT)
        self.heights = GrowingHistogram()
        self.energies = GrowingHistogram()

    def array(self, field: str) -> ChunkedArray:
        if field not in self.arrays:
            sub = "summaries/" if field in ("peak_value", "pretrig_rms", "pretrig_mean") else ""
            self.arrays[field] = ChunkedArray(self.dir / f"{sub}{field}")
        return self.arrays[field]


class AcquisitionView:
    """Reads acquisition `name` of a run store incrementally; `look()` reads what is new."""

    def __init__(self, reader: RunReader, name: str) -> None:
        self.reader = reader
        self.name = name
        info = reader.info(name)
        self.channels = [int(c) for c in info["channels"]]
        self.rate = float(info["sample_rate_hz"])
        self.record_length = int(info["record_length"])
        self.pretrigger = int(info["pretrigger"])
        meta = info.get("metadata", {})
        self.unit = str(meta.get("unit", ""))
        self.scale = float(meta.get("units_per_value", 1.0) or 1.0)
        self.source = str(meta.get("source", ""))
        base = reader.path / "acquisitions" / name
        self.state = {ch: ChannelState(base / channel_group(ch)) for ch in self.channels}
        self.commit: Commit | None = None
        self.filters: dict[int, ChannelFilter] = {}
        self._next = 0  # round-robin start, so a slow look still reaches every channel

    def look(self, budget_s: float = 0.2) -> None:
        """Read the new committed rows of every channel (within `budget_s`, round-robin)."""
        self.commit = self.reader.commit(self.name)
        t0 = time.monotonic()
        n = len(self.channels)
        for k in range(n):
            ch = self.channels[(self._next + k) % n]
            self._read_channel(ch)
            if time.monotonic() - t0 > budget_s:
                self._next = (self._next + k + 1) % n
                return
        self._next = 0

    def _read_channel(self, ch: int) -> None:
        st = self.state[ch]
        rows = int(self.commit.rows.get(channel_group(ch), 0))
        start, stop = st.read, min(rows, st.read + ROWS_PER_LOOK)
        if stop > start:
            kind = st.array("trigger_kind").rows(start, stop)
            index = st.array("sample_index").rows(start, stop)
            peak = st.array("peak_value").rows(start, stop).astype(np.float64) * self.scale
            rms = st.array("pretrig_rms").rows(start, stop).astype(np.float64) * self.scale
            pulse = kind != AUTO
            st.pulses += int(pulse.sum())
            st.recent.extend(index[pulse].tolist())
            st.heights.add(peak[pulse])
            noise = rms[~pulse] if (~pulse).any() else rms
            for value in noise.tolist():
                if len(st.noise_ref) < NOISE_REFERENCE:
                    st.noise_ref.append(value)
                st.noise_recent.append(value)
            st.read = stop
        end = self.commit.next_sample or 0
        while st.recent and st.recent[0] < end - RATE_WINDOW_S * self.rate:
            st.recent.popleft()
        self._energies(ch, st, rows)

    def _energies(self, ch: int, st: ChannelState, rows: int) -> None:
        f = self.filters.get(ch)
        if f is None or f.weights.size != self.record_length:
            return
        start, stop = st.energies_read, min(rows, st.energies_read + ENERGIES_PER_LOOK)
        if stop <= start:
            return
        kind = st.array("trigger_kind").rows(start, stop)
        pulse = kind != AUTO
        if pulse.any():
            records = st.array("records").rows(start, stop)[pulse]
            mean = st.array("pretrig_mean").rows(start, stop)[pulse]
            st.energies.add(f.energies(records, mean)[1])
        st.energies_read = stop

    @property
    def stream_time_s(self) -> float:
        """Stream time committed so far."""
        c = self.commit
        if c is None or c.first_sample is None or c.next_sample is None:
            return 0.0
        return (c.next_sample - c.first_sample) / self.rate

    def channel_rows(self) -> list[dict[str, Any]]:
        """Per channel: rate, records, noise, and whether it stopped or its noise jumped."""
        c = self.commit
        live = (c.processed_samples / self.rate) if c else 0.0
        window = min(RATE_WINDOW_S, live)
        closed = bool(c and c.closed)
        out = []
        for ch in self.channels:
            st = self.state[ch]
            rate = len(st.recent) / window if window > 0 else 0.0
            mean_rate = st.pulses * (self.rate / max(1, c.processed_samples)) if c else 0.0
            ref = float(np.median(st.noise_ref)) if st.noise_ref else None
            now = float(np.median(st.noise_recent)) if st.noise_recent else None
            jumped = bool(
                ref and now and len(st.noise_ref) >= NOISE_REFERENCE
                and not 1 / NOISE_JUMP <= now / ref <= NOISE_JUMP
            )
            # no pulse in the rate window (while it runs), or none at all
            stopped = bool(live >= RATE_WINDOW_S and (st.pulses == 0 or not closed and rate == 0))
            out.append({
                "channel": ch,
                "rate_hz": rate,
                "mean_rate_hz": mean_rate,
                "records": int(c.rows.get(channel_group(ch), 0)) if c else 0,
                "pulses": st.pulses,
                "noise": now,
                "noise_reference": ref,
                "noise_jumped": jumped,
                "stopped": stopped,
            })  # fmt: skip
        return out

    def totals(self) -> dict[str, Any]:
        """The acquisition's gaps, drops and times, as last committed."""
        c = self.commit
        return {
            "name": self.name,
            "source": self.source,
            "unit": self.unit,
            "sample_rate_hz": self.rate,
            "stream_time_s": self.stream_time_s,
            "live_time_s": (c.processed_samples / self.rate) if c else 0.0,
            "records": c.total_rows if c else 0,
            "gaps": c.gaps if c else 0,
            "gap_samples": c.gap_samples if c else 0,
            "records_lost_to_gaps": c.records_lost_to_gaps if c else 0,
            "drops": {k: int(v.get("records", 0)) for k, v in (c.drops if c else {}).items()},
            "closed": bool(c and c.closed),
        }

    def spectrum(self, channel: int | None) -> dict[str, Any]:
        """Energies where a stored filter gives them, pulse heights otherwise; of `channel`, or
        summed over channels (None)."""
        chans = self.channels if channel is None else [channel]
        chans = [c for c in chans if c in self.state]
        energies = any(self.state[c].energies.total for c in chans)
        total = GrowingHistogram()
        for c in chans:
            h = self.state[c].energies if energies else self.state[c].heights
            total = total.merged(h)
        filled = np.flatnonzero(total.counts)
        # the bins up to a little above the highest filled one (the range only doubles)
        keep = min(total.counts.size, int(filled[-1] * 1.1) + 2) if filled.size else 0
        return {
            "kind": "energy" if energies else "height",
            "unit": "eV" if energies else self.unit,
            "x": total.centres()[:keep].tolist(),
            "counts": total.counts[:keep].tolist(),
            "entries": total.total,
            "channel": channel,
        }

    def pulses(self, channel: int) -> dict[str, Any]:
        """The last pulses of `channel` and the average of the last ones, baseline subtracted,
        in data units (0.1 resolution; times `scale` gives the source's unit), on a time axis
        in ms from the trigger."""
        st = self.state.get(channel)
        rows = st.read if st else 0
        empty = {"channel": channel, "t_ms": [], "pulses": [], "average": None, "averaged": 0,
                 "scale": self.scale}
        if not st or rows == 0:
            return empty
        start = max(0, rows - 4 * AVERAGED)
        kind = st.array("trigger_kind").rows(start, rows)
        picked = (np.flatnonzero(kind != AUTO) + start)[-AVERAGED:]
        if picked.size == 0:
            return empty
        lo = int(picked[0])
        records = st.array("records").rows(lo, rows)[picked - lo].astype(np.float64)
        base = st.array("pretrig_mean").rows(lo, rows)[picked - lo].astype(np.float64)
        records = records - base[:, None]
        step = max(1, -(-self.record_length // PULSE_POINTS))
        usable = records.shape[1] // step * step
        records = records[:, :usable].reshape(records.shape[0], -1, step).mean(axis=2)
        t_ms = (np.arange(records.shape[1]) * step - self.pretrigger) / self.rate * 1e3
        return {
            "channel": channel,
            "t_ms": np.round(t_ms, 6).tolist(),
            "pulses": np.round(records[-OVERLAID:], 1).tolist(),
            "average": np.round(records.mean(axis=0), 1).tolist(),
            "averaged": int(records.shape[0]),
            "scale": self.scale,
        }
