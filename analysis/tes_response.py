"""The three-exponential description of a TES pulse that the seed paper fits (rise tau1, fast
and slow decays tau2 and tau3 with the slow share s of the decays' integral; see
`pulse_shapes.three_exponential`), scaled to unit peak, and the largest slew rate it demands.
The physical pulse and its energy response are the electrothermal model's
(`tes_electrothermal`); these are the analysis's descriptions of what it measured.
"""

from __future__ import annotations

import numpy as np

from cryodaq.analysis.pulse_shapes import three_exponential

#: Points of the grid on which the peak of a three-exponential pulse is located.
PEAK_GRID = 20_001


def shape_peak(rise_s: float, fast_s: float, slow_s: float, slow_fraction: float) -> float:
    """Maximum of `three_exponential` (1/s) for these constants, on a fine grid then refined
    by a parabola through the best three points."""
    t = np.linspace(0.0, 5.0 * fast_s, PEAK_GRID)
    y = three_exponential(t, rise_s, fast_s, slow_s, slow_fraction)
    i = int(np.clip(np.argmax(y), 1, t.size - 2))
    y0, y1, y2 = y[i - 1], y[i], y[i + 1]
    curvature = y0 - 2.0 * y1 + y2
    return float(y1 - (y2 - y0) ** 2 / (8.0 * curvature)) if curvature < 0 else float(y1)


def unit_height_pulse(t_s: np.ndarray, rise_s: float, fast_s: float, slow_s: float,
                      slow_fraction: float) -> np.ndarray:
    """Three-exponential pulse of unit peak at times `t_s` after arrival (0 before)."""
    peak = shape_peak(rise_s, fast_s, slow_s, slow_fraction)
    return three_exponential(t_s, rise_s, fast_s, slow_s, slow_fraction) / peak


def max_slew_per_height(rise_s: float, fast_s: float, slow_s: float,
                        slow_fraction: float) -> float:
    """Largest slope (1/s) of the unit-height pulse: at its arrival, where the rise starts."""
    a_fast, a_slow = (1.0 - slow_fraction) / fast_s, slow_fraction / slow_s
    slope0 = (a_fast + a_slow) / rise_s - a_fast / fast_s - a_slow / slow_s
    return slope0 / shape_peak(rise_s, fast_s, slow_s, slow_fraction)
