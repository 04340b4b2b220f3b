"""Arrival-phase dependence of filtered pulse heights, and its correction.

With only ~20 samples on the rising edge, where a pulse arrives within its sample changes the
filtered height (seed paper, section 6): the start of the pulse is a kink, which no smooth
expansion in the arrival time (the optimal filter's first-order protection) captures. The
phase is measured per record as the fractional sample where the pulse first reaches half its
peak; the relative height against it (events of known lines, each divided by its line's
height) is learned as the median in phase bins of equal population and divided out. The
dependence need not be smooth (a sample boundary crossing the pulse's start is a kink, and
the readout may add steps), so the correction is constant within each bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def rising_phase(records: np.ndarray, pretrigger: int, sign: float = 1.0) -> np.ndarray:
    """Fractional sample index where each record (n, L), baseline-subtracted (pretrigger
    mean) and times `sign`, first reaches half its peak after the pretrigger (linear
    interpolation between the two samples around the crossing)."""
    x = sign * np.asarray(records, dtype=np.float64)
    if x.ndim != 2 or not 1 <= pretrigger < x.shape[1] - 1:
        raise ValueError(f"need records (n, L) and 1 <= pretrigger < L - 1, got {x.shape}")
    x = x - x[:, :pretrigger].mean(axis=1, keepdims=True)
    half = 0.5 * x[:, pretrigger:].max(axis=1)
    above = x[:, pretrigger:] >= half[:, None]
    i = np.argmax(above, axis=1) + pretrigger
    rows = np.arange(x.shape[0])
    lo, hi = x[rows, i - 1], x[rows, i]
    step = np.where(hi > lo, hi - lo, np.inf)
    return i - 1 + np.clip((half - lo) / step, 0.0, 1.0)


@dataclass(frozen=True)
class PhaseCorrection:
    """Relative height `gains[k]` for phases in [edges[k], edges[k+1]) (the outer bins
    extend to infinity)."""

    edges: np.ndarray
    gains: np.ndarray

    def gain(self, phases: np.ndarray) -> np.ndarray:
        k = np.searchsorted(self.edges[1:-1], np.asarray(phases, float), side="right")
        return self.gains[k]

    def apply(self, amplitudes: np.ndarray, phases: np.ndarray) -> np.ndarray:
        """Heights as they would be at a typical phase."""
        return np.asarray(amplitudes, float) / self.gain(phases)


def no_phase_correction() -> PhaseCorrection:
    return PhaseCorrection(np.array([-np.inf, np.inf]), np.ones(1))


def learn_phase_correction(
    relative: np.ndarray, phases: np.ndarray, *, bins: int = 16, min_per_bin: int = 30
) -> PhaseCorrection:
    """Median relative height per phase bin (equal populations), normalised to their overall
    median, from events of known lines (`relative`: each height over its line's); fewer bins
    when there are few events (under two bins: no correction)."""
    a = np.asarray(relative, dtype=np.float64)
    p = np.asarray(phases, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(p)
    a, p = a[ok], p[ok]
    n = min(bins, a.size // min_per_bin)
    if n < 2:
        return no_phase_correction()
    edges = np.quantile(p, np.linspace(0.0, 1.0, n + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n - 1)
    gains = np.array([np.median(a[which == k]) for k in range(n)]) / np.median(a)
    return PhaseCorrection(edges, gains)
