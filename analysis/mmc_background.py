"""Background cuts and rate of the maXs30 analysis (seed paper section 4.2).

Burst cut: trigger times of one ADC are counted in minutes from the start of the acquisition;
a minute with more than `max_per_minute` triggers is dropped together with `guard` minutes
before and after, and the dropped time is taken off the live time.

Rate: events between `lo_eV` and `hi_eV`, per keV, per cm^2 of active (absorber) area of the
pixels that were analysed, per second of live time after the cuts; the error is Poisson,
sqrt(N) (with N = 0 the error given is that of one event, an upper scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BurstCut:
    """Minutes dropped from one acquisition (one ADC) and what they cost."""

    start_s: float
    minute_s: float
    dropped: np.ndarray  # bool per minute
    counts: np.ndarray  # triggers per minute
    live_s: float  # acquisition length
    dropped_s: float  # live time in dropped minutes

    def keeps(self, times_s: np.ndarray) -> np.ndarray:
        """True for events outside the dropped minutes."""
        idx = np.floor((np.asarray(times_s, dtype=np.float64) - self.start_s) / self.minute_s)
        idx = np.clip(idx.astype(np.int64), 0, max(self.dropped.size - 1, 0))
        return ~self.dropped[idx] if self.dropped.size else np.ones(idx.size, bool)

    @property
    def live_after_s(self) -> float:
        return self.live_s - self.dropped_s

    def intervals(self) -> list[tuple[float, float]]:
        """The dropped time as merged [start, stop) intervals (s)."""
        out: list[tuple[float, float]] = []
        end = self.start_s + self.live_s
        for i in np.flatnonzero(self.dropped):
            lo = self.start_s + i * self.minute_s
            hi = min(lo + self.minute_s, end)
            if out and out[-1][1] >= lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((float(lo), float(hi)))
        return out


def burst_cut(
    times_s: np.ndarray,
    start_s: float,
    live_s: float,
    *,
    max_per_minute: int = 30,
    minute_s: float = 60.0,
    guard: int = 1,
) -> BurstCut:
    """The burst cut over [start_s, start_s + live_s) for one ADC's trigger times."""
    if not live_s > 0 or not minute_s > 0:
        raise ValueError(f"live_s and minute_s must be > 0, got {live_s}, {minute_s}")
    if guard < 0 or max_per_minute < 0:
        raise ValueError("guard and max_per_minute must be >= 0")
    n_min = int(np.ceil(live_s / minute_s - 1e-9))
    edges = start_s + minute_s * np.arange(n_min + 1)
    counts, _ = np.histogram(np.asarray(times_s, dtype=np.float64), edges)
    burst = counts > max_per_minute
    dropped = burst.copy()
    for shift in range(1, guard + 1):
        dropped[shift:] |= burst[:-shift]
        dropped[:-shift] |= burst[shift:]
    length = np.full(n_min, minute_s)
    if n_min:
        length[-1] = live_s - minute_s * (n_min - 1)
    return BurstCut(
        start_s, minute_s, dropped, counts, float(live_s), float(length[dropped].sum())
    )


@dataclass(frozen=True)
class BackgroundRate:
    rate_per_keV_cm2_s: float
    rate_err: float
    counts: int
    live_time_s: float
    area_cm2: float
    band_keV: float


def background_rate(
    energies_eV: np.ndarray,
    live_time_s: float,
    area_cm2: float,
    lo_eV: float = 1000.0,
    hi_eV: float = 10000.0,
    weights: np.ndarray | None = None,
) -> BackgroundRate:
    """Rate in /keV/cm^2/s of events in [lo_eV, hi_eV) with its Poisson error; with
    `weights` (per event, e.g. 1 / efficiency at its energy) the weighted count, its error
    sqrt(sum w^2) (`counts` stays the number of events)."""
    if not (live_time_s > 0 and area_cm2 > 0 and hi_eV > lo_eV):
        raise ValueError(
            f"need live_time_s > 0, area_cm2 > 0, hi_eV > lo_eV; got {live_time_s}, "
            f"{area_cm2}, {lo_eV}..{hi_eV}"
        )
    e = np.asarray(energies_eV, dtype=np.float64)
    inside = (e >= lo_eV) & (e < hi_eV)
    n = int(np.count_nonzero(inside))
    band = (hi_eV - lo_eV) / 1e3
    exposure = band * area_cm2 * live_time_s
    if weights is None:
        total, err = float(n), np.sqrt(max(n, 1))
    else:
        w = np.asarray(weights, dtype=np.float64)[inside]
        total, err = float(w.sum()), np.sqrt(max(float((w * w).sum()), 1.0))
    return BackgroundRate(total / exposure, err / exposure, n, float(live_time_s), area_cm2, band)
