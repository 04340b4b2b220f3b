"""The channel budget of a uMUX board measured from the resonators a sweep found.

HOLMES (REFERENCE.md sections 2-3): a board reads n_TES = f_ADC / (2 f_ramp n_Phi0 g_f)
channels, where the guard factor g_f = tone spacing / resonance bandwidth. Here both come
from the found resonators: the spacing is the median distance between neighbouring
resonances, the bandwidth the median fitted full width (f_r/Q_L). Two neighbours collide
when they stand closer than `min_guard` of their mean width (the neighbour's Lorentzian
power dip, 1/(1 + 4 x^2) at x widths, still reaches a tone placed on the other once both
swing by half a width with the flux); they overlap when even their half-maximum bands touch
(spacing < mean width).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryodaq.analysis.resonator import channel_budget, guard_factor

#: Default smallest spacing, in mean widths, at which two neighbours do not collide.
MIN_GUARD = 3.0


@dataclass(frozen=True)
class Collision:
    """Two neighbouring resonators (indices into the found set) too close for the guard."""

    first: int
    second: int
    spacing_hz: float
    guard: float  # spacing / mean width of the two
    overlap: bool  # their half-maximum bands overlap (guard < 1)


@dataclass(frozen=True)
class MeasuredBudget:
    """Spacings, guard factor, budget and collisions of a set of found resonators."""

    spacings_hz: np.ndarray  # between neighbours, in frequency order
    spacing_hz: float  # median of `spacings_hz`
    bandwidth_hz: float  # median fitted full width
    guard: float  # spacing_hz / bandwidth_hz
    channels: int  # f_ADC / (2 f_ramp n_Phi0 g_f), rounded down
    resonators: int
    collisions: tuple[Collision, ...]


def collisions(centres_hz: np.ndarray, widths_hz: np.ndarray,
               min_guard: float = MIN_GUARD) -> tuple[Collision, ...]:
    """Neighbouring pairs (in frequency order of `centres_hz`) closer than `min_guard` mean
    widths; a width that is NaN (fit failed) counts as the median of the others."""
    f, w = _checked(centres_hz, widths_hz)
    if not min_guard > 0:
        raise ValueError(f"min_guard must be > 0, got {min_guard}")
    order = np.argsort(f, kind="stable")
    good = np.isfinite(w) & (w > 0)
    w = np.where(good, w, np.median(w[good]) if good.any() else np.nan)
    out = []
    for i, j in zip(order[:-1], order[1:], strict=True):
        spacing = float(f[j] - f[i])
        mean_w = 0.5 * float(w[i] + w[j])
        g = spacing / mean_w if mean_w > 0 else np.inf
        if g < min_guard:
            out.append(Collision(int(i), int(j), spacing, float(g), bool(g < 1.0)))
    return tuple(out)


def measured_budget(centres_hz: np.ndarray, widths_hz: np.ndarray, f_adc_hz: float,
                    f_ramp_hz: float, n_phi0: float, min_guard: float = MIN_GUARD
                    ) -> MeasuredBudget:
    """The budget of the found resonators at this flux ramp (see module docstring); needs
    at least two resonators and one fitted width."""
    f, w = _checked(centres_hz, widths_hz)
    if f.size < 2:
        raise ValueError(f"need at least 2 resonators for a spacing, got {f.size}")
    good = np.isfinite(w) & (w > 0)
    if not good.any():
        raise ValueError("no resonator has a fitted width")
    spacings = np.diff(np.sort(f))
    spacing = float(np.median(spacings))
    bandwidth = float(np.median(w[good]))
    g = guard_factor(spacing, bandwidth)
    return MeasuredBudget(spacings, spacing, bandwidth, g,
                          channel_budget(f_adc_hz, f_ramp_hz, n_phi0, g), int(f.size),
                          collisions(f, w, min_guard))


def _checked(centres_hz: np.ndarray, widths_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(centres_hz, dtype=float)
    w = np.asarray(widths_hz, dtype=float)
    if f.ndim != 1 or f.shape != w.shape:
        raise ValueError(f"centres and widths must be 1-D of one size, got {f.shape}, {w.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("resonator centres must be finite")
    return f, w
