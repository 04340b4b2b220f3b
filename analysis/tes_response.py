"""TES microcalorimeter response read through an rf-SQUID: pulse height against energy, the
unit-height three-exponential pulse, and the largest slew rate a pulse demands.

Pulse height: Phi = k E / (1 + E / E_sat) (Phi0), k = `phi0_per_eV` the small-signal gain and
E_sat the energy scale of the saturation (the TES leaving the steep part of its transition).
Its inverse is E = Phi / (k - Phi / E_sat); to second order E = p/k + p^2/(k^2 E_sat), the
shape of the HOLMES empirical calibration E[keV] = 0.11927 p^2 + 2.7345 p + 0.041166: k =
1/2734.5 Phi0/eV and E_sat = 2.7345^2 / 0.11927 keV = 62.7 keV reproduce its two terms.

Shape: `pulse_shapes.three_exponential` (rise tau1, fast and slow decays tau2 and tau3 with the
slow share s of the decays' integral), here scaled to unit peak.
"""

from __future__ import annotations

import numpy as np

from cryodaq.analysis.pulse_shapes import three_exponential

#: Points of the grid on which the peak of a three-exponential pulse is located.
PEAK_GRID = 20_001


def pulse_height_phi0(energy_eV: np.ndarray | float, phi0_per_eV: float,
                      saturation_eV: float) -> np.ndarray:
    """Pulse height (Phi0) of an energy deposit: k E / (1 + E / E_sat)."""
    if not phi0_per_eV > 0 or not saturation_eV > 0:
        raise ValueError(f"need phi0_per_eV > 0 and saturation_eV > 0, got {phi0_per_eV:g}, "
                         f"{saturation_eV:g}")
    e = np.asarray(energy_eV, dtype=float)
    return phi0_per_eV * e / (1.0 + e / saturation_eV)


def energy_eV(height_phi0: np.ndarray | float, phi0_per_eV: float,
              saturation_eV: float) -> np.ndarray:
    """Inverse of `pulse_height_phi0`: E = Phi / (k - Phi / E_sat)."""
    p = np.asarray(height_phi0, dtype=float)
    return p / (phi0_per_eV - p / saturation_eV)


def energy_per_phi0(height_phi0: np.ndarray | float, phi0_per_eV: float,
                    saturation_eV: float) -> np.ndarray:
    """Slope dE/dPhi (eV/Phi0) of `energy_eV` at a pulse height: k / (k - Phi / E_sat)^2. A
    flux noise turns into this many eV per Phi0 on a pulse of that height (1/k at zero)."""
    p = np.asarray(height_phi0, dtype=float)
    return phi0_per_eV / (phi0_per_eV - p / saturation_eV) ** 2


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
