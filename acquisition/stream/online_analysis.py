"""Online analysis sink: a stored filter and calibration give live energies and spectra.

Stored filter file (`.npz`, no pickles): `format` (=1), `channels` (int, k), `polarity` (float,
k), and per channel `weights_<ch>` (record length) and `calibration_<ch>` (numpy polynomial
coefficients, highest power first, amplitude -> eV).
"""

from __future__ import annotations

import threading
import zipfile
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.events import EventBatch
from cryodaq.analysis.online_filter import calibrate, filter_amplitudes

FORMAT_VERSION = 1

#: One live energy: the trigger sample, the filtered amplitude and the calibrated energy.
ENERGY_DTYPE = np.dtype([("sample_index", "i8"), ("amplitude", "f8"), ("energy_ev", "f8")])


class StoredFilterError(CryodaqError):
    """A stored filter file is missing, unreadable or lacks a channel; names the file."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"stored filter {self.path}: {message}")


@dataclass(frozen=True)
class ChannelFilter:
    """Filter weights (one per record sample), calibration polynomial and polarity (+1/-1)."""

    weights: np.ndarray
    calibration: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0]))
    polarity: float = 1.0

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        c = np.asarray(self.calibration, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)):
            raise ValueError(f"weights must be a finite non-empty 1-D array, got shape {w.shape}")
        if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c)):
            raise ValueError(f"calibration must be finite non-empty 1-D, got shape {c.shape}")
        if self.polarity not in (1.0, -1.0):
            raise ValueError(f"polarity must be +1 or -1, got {self.polarity}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "calibration", c)
        object.__setattr__(self, "polarity", float(self.polarity))

    def energies(self, records: np.ndarray, pretrig_mean: np.ndarray) -> tuple[np.ndarray, ...]:
        """(amplitudes, energies in eV) of raw records with their pretrigger means."""
        amp = self.polarity * filter_amplitudes(records, pretrig_mean, self.weights)
        return amp, calibrate(amp, self.calibration)


@dataclass(frozen=True)
class StoredFilter:
    """Per-channel filters, as learned on a calibration run and saved to an `.npz` file."""

    filters: Mapping[int, ChannelFilter]

    def save(self, path: str | Path) -> Path:
        """Write the `.npz` file at exactly `path`; returns it."""
        path = Path(path)
        chans = sorted(self.filters)
        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT_VERSION),
            "channels": np.array(chans, dtype=np.int64),
            "polarity": np.array([self.filters[c].polarity for c in chans], dtype=np.float64),
        }
        for c in chans:
            arrays[f"weights_{c}"] = self.filters[c].weights
            arrays[f"calibration_{c}"] = self.filters[c].calibration
        try:
            with path.open("wb") as f:
                np.savez(f, **arrays)
        except OSError as exc:
            raise StoredFilterError(path, f"cannot write: {exc}") from exc
        return path

    @classmethod
    def load(cls, path: str | Path, channels: Iterable[int] | None = None) -> StoredFilter:
        """Read a stored filter; with `channels`, each of them must be in the file."""
        path = Path(path)
        try:
            npz = np.load(path, allow_pickle=False)
        except FileNotFoundError as exc:
            raise StoredFilterError(path, "no such file") from exc
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise StoredFilterError(path, f"not a readable .npz stored filter ({exc})") from exc
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise StoredFilterError(path, "holds a single .npy array, not an .npz stored filter")
        try:
            with npz:
                data = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise StoredFilterError(path, f"corrupt .npz stored filter ({exc})") from exc

        def need(key: str) -> np.ndarray:
            if key not in data:
                raise StoredFilterError(path, f"has no array {key!r} (has {sorted(data)})")
            return data[key]

        version = int(need("format"))
        if version != FORMAT_VERSION:
            raise StoredFilterError(path, f"format {version}, this cryodaq reads {FORMAT_VERSION}")
        chans = [int(c) for c in need("channels")]
        polarity = need("polarity")
        if polarity.shape != (len(chans),):
            raise StoredFilterError(
                path, f"polarity has shape {polarity.shape}, {len(chans)} channels"
            )
        wanted = chans if channels is None else [int(c) for c in channels]
        missing = [c for c in wanted if c not in chans]
        if missing:
            raise StoredFilterError(
                path, f"no filter for channel(s) {missing} (file has channels {chans})"
            )
        filters: dict[int, ChannelFilter] = {}
        for c in wanted:
            p = float(polarity[chans.index(c)])
            try:
                filters[c] = ChannelFilter(need(f"weights_{c}"), need(f"calibration_{c}"), p)
            except ValueError as exc:
                raise StoredFilterError(path, f"channel {c}: {exc}") from exc
        return cls(filters)


@dataclass(frozen=True)
class Spectrum:
    """Histogram of energies: `counts[i]` in [edges[i], edges[i+1]) (last bin closed)."""

    edges_ev: np.ndarray
    counts: np.ndarray
    underflow: int  # below edges[0]
    overflow: int  # above edges[-1]
    invalid: int  # NaN or infinite energies

    @property
    def total(self) -> int:
        """Every energy seen, in range or not."""
        return int(self.counts.sum()) + self.underflow + self.overflow + self.invalid


class _Histogram:
    def __init__(self, edges: np.ndarray) -> None:
        self.edges = edges
        self.counts = np.zeros(edges.size - 1, np.int64)
        self.under = self.over = self.invalid = 0

    def add(self, e: np.ndarray) -> None:
        finite = np.isfinite(e)
        self.invalid += int(e.size - finite.sum())
        e = e[finite]
        self.under += int(np.count_nonzero(e < self.edges[0]))
        self.over += int(np.count_nonzero(e > self.edges[-1]))
        self.counts += np.histogram(e, self.edges)[0]

    def spectrum(self) -> Spectrum:
        return Spectrum(self.edges.copy(), self.counts.copy(), self.under, self.over, self.invalid)


class OnlineAnalysisSink:
    """Sink applying a `StoredFilter`: live energies per record and a spectrum per channel.

    Records of channels without a filter, or of trigger kinds not in `kinds`, are counted (not
    analysed). The last `keep_last` energies per channel stay available via `energies()`.
    Reading methods may be called from any thread.
    """

    def __init__(
        self,
        filters: StoredFilter | Mapping[int, ChannelFilter],
        bin_edges_ev: np.ndarray,
        *,
        kinds: Iterable[int] | None = None,
        keep_last: int = 100_000,
    ) -> None:
        self._filters = dict(filters.filters if isinstance(filters, StoredFilter) else filters)
        edges = np.asarray(bin_edges_ev, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError("bin_edges_ev must be 1-D, at least 2 edges, strictly increasing")
        self._kinds = None if kinds is None else np.array(sorted({int(k) for k in kinds}))
        self._keep_last = int(keep_last)
        self._lock = threading.Lock()
        self._hist = {c: _Histogram(edges) for c in self._filters}
        self._total = _Histogram(edges)
        self._recent: dict[int, deque[np.ndarray]] = {c: deque() for c in self._filters}
        self._kept = dict.fromkeys(self._filters, 0)
        self._unfiltered: dict[int, int] = {}
        self._skipped_kind = 0

    def consume(self, batch: EventBatch) -> None:
        """Filter, calibrate and histogram every record of the batch."""
        rows_ok = np.ones(len(batch), bool)
        if self._kinds is not None:
            rows_ok = np.isin(batch.trigger_kind, self._kinds)
        results: list[tuple[int, np.ndarray]] = []
        for ch in np.unique(batch.channel).tolist():
            f = self._filters.get(ch)
            rows = np.flatnonzero((batch.channel == ch) & rows_ok)
            if f is None or rows.size == 0:
                continue
            if f.weights.size != batch.record_length:
                raise ValueError(
                    f"channel {ch}: records have {batch.record_length} samples, "
                    f"stored filter weights {f.weights.size}"
                )
            out = np.empty(rows.size, ENERGY_DTYPE)
            out["sample_index"] = batch.sample_index[rows]
            out["amplitude"], out["energy_ev"] = f.energies(
                batch.records[rows], batch.summaries["pretrig_mean"][rows]
            )
            results.append((ch, out))
        with self._lock:
            self._skipped_kind += int(len(batch) - rows_ok.sum())
            for ch in np.unique(batch.channel[rows_ok]).tolist():
                if ch not in self._filters:
                    n = int(np.count_nonzero(batch.channel[rows_ok] == ch))
                    self._unfiltered[ch] = self._unfiltered.get(ch, 0) + n
            for ch, out in results:
                self._hist[ch].add(out["energy_ev"])
                self._total.add(out["energy_ev"])
                self._keep(ch, out)

    def _keep(self, ch: int, out: np.ndarray) -> None:
        recent = self._recent[ch]
        recent.append(out)
        self._kept[ch] += out.size
        while self._kept[ch] - recent[0].size >= self._keep_last:
            self._kept[ch] -= recent.popleft().size

    def close(self) -> None:
        """Nothing to release; the figures stay readable."""

    def spectrum(self, channel: int | None = None) -> Spectrum:
        """Histogram of one channel, or of all channels together (None)."""
        with self._lock:
            if channel is None:
                return self._total.spectrum()
            if channel not in self._hist:
                raise KeyError(f"no stored filter for channel {channel}")
            return self._hist[channel].spectrum()

    def energies(self, channel: int) -> np.ndarray:
        """The last `keep_last` (at least) live energies of `channel`, `ENERGY_DTYPE`."""
        with self._lock:
            if channel not in self._recent:
                raise KeyError(f"no stored filter for channel {channel}")
            chunks = list(self._recent[channel])
        return np.concatenate(chunks) if chunks else np.empty(0, ENERGY_DTYPE)

    def snapshot(self) -> dict[str, Any]:
        """Counts per channel as plain values: analysed, out of range, unfiltered, skipped."""
        with self._lock:
            return {
                "analysed": {c: h.spectrum().total for c, h in self._hist.items()},
                "underflow": self._total.under,
                "overflow": self._total.over,
                "invalid": self._total.invalid,
                "unfiltered": dict(self._unfiltered),
                "skipped_kind": self._skipped_kind,
            }
