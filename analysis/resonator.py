"""Microwave SQUID multiplexing: notch resonators, rf-SQUID frequency modulation, the flux-ramp
signal a tone carries, the channel budget of a readout board, and finding resonators in a sweep.

Conventions (REFERENCE.md section 3): a notch resonator transmits
S21(f) = 1 - (Q_L/Q_c) / (1 + 2j Q_L (f - f_r)/f_r), 1/Q_L = 1/Q_i + 1/Q_c, so its power dip
1 - |S21|^2 is a Lorentzian of full width f_r/Q_L and |S21(f_r)| = Q_L/Q_i. An rf-SQUID moves the
resonance with the flux Phi through it: f_r(Phi) = f_0 + df lambda cos(phi)/(1 + lambda cos(phi)),
phi = 2 pi Phi/Phi0, with df chosen so that the peak-to-peak swing is `swing_hz`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter
from scipy.optimize import curve_fit

#: Half-span of the Lorentzian fit around a dip, in (rough) resonance widths.
FIT_WIDTHS = 2.0
#: Flux phases per quantum used to take the first harmonic of a tone's response.
HARMONIC_PHASES = 128


def loaded_q(q_i: np.ndarray | float, q_c: np.ndarray | float) -> np.ndarray:
    """Loaded quality factor: 1/Q_L = 1/Q_i + 1/Q_c."""
    return 1.0 / (1.0 / np.asarray(q_i, dtype=float) + 1.0 / np.asarray(q_c, dtype=float))


def coupling_q(f_r_hz: np.ndarray | float, bandwidth_hz: np.ndarray | float,
               q_i: np.ndarray | float) -> np.ndarray:
    """Q_c giving a resonance of full width `bandwidth_hz` (= f_r/Q_L) for internal Q `q_i`."""
    q_l = np.asarray(f_r_hz, dtype=float) / np.asarray(bandwidth_hz, dtype=float)
    inv = 1.0 / q_l - 1.0 / np.asarray(q_i, dtype=float)
    if np.any(inv <= 0):
        raise ValueError("Q_i must exceed f_r/bandwidth (the loaded Q) for a positive Q_c")
    return 1.0 / inv


def notch_s21(f_hz: np.ndarray | float, f_r_hz: np.ndarray | float,
              q_i: np.ndarray | float, q_c: np.ndarray | float) -> np.ndarray:
    """Transmission of a notch (hanger) resonator; the arguments broadcast."""
    f = np.asarray(f_hz, dtype=float)
    f_r = np.asarray(f_r_hz, dtype=float)
    q_l = loaded_q(q_i, q_c)
    return 1.0 - (q_l / np.asarray(q_c, dtype=float)) / (1.0 + 2j * q_l * (f - f_r) / f_r)


def _check_lambda(lam: float) -> None:
    if not 0.0 < lam < 1.0:
        raise ValueError(f"SQUID screening parameter lambda must be in (0, 1), got {lam}")


def squid_scale_hz(swing_hz: float, lam: float) -> float:
    """df such that f_0 + df lambda cos/(1 + lambda cos) swings `swing_hz` peak to peak.

    lambda cos/(1 + lambda cos) runs from -lambda/(1 - lambda) to lambda/(1 + lambda): its span
    is 2 lambda/(1 - lambda^2)."""
    _check_lambda(lam)
    return swing_hz * (1.0 - lam * lam) / (2.0 * lam)


def squid_resonance(flux_phi0: np.ndarray | float, f0_hz: np.ndarray | float,
                    swing_hz: np.ndarray | float, lam: float) -> np.ndarray:
    """Resonance frequency f_r(Phi) of a resonator loaded by an rf-SQUID carrying `flux_phi0`."""
    c = lam * np.cos(2.0 * np.pi * np.asarray(flux_phi0, dtype=float))
    return np.asarray(f0_hz, dtype=float) + squid_scale_hz(1.0, lam) * np.asarray(
        swing_hz, dtype=float) * c / (1.0 + c)


def swing_centre(f0_hz: np.ndarray | float, swing_hz: np.ndarray | float,
                 lam: float) -> np.ndarray:
    """Middle of the band f_r(Phi) sweeps: (max + min)/2 over a flux quantum."""
    df = squid_scale_hz(1.0, lam) * np.asarray(swing_hz, dtype=float)
    return np.asarray(f0_hz, dtype=float) + 0.5 * df * (lam / (1.0 + lam) - lam / (1.0 - lam))


def ramp_harmonic(f_tone_hz: np.ndarray | float, f0_hz: np.ndarray | float,
                  swing_hz: np.ndarray | float, lam: float, q_i: np.ndarray | float,
                  q_c: np.ndarray | float, phases: int = HARMONIC_PHASES) -> np.ndarray:
    """First flux harmonic c1 = <arg S21(f_tone; f_r(Phi)) exp(-2 pi i Phi/Phi0)> over a quantum.

    This is what flux-ramp demodulation measures at a tone: with a signal flux Phi_s on the
    SQUID its sums give C - iS proportional to c1 exp(2 pi i Phi_s/Phi0), so
    theta = atan2(-S, C) = 2 pi Phi_s/Phi0 + arg(c1), and |c1| (radians of S21 phase) is the
    signal amplitude the readout noise competes with. Arguments broadcast; the result has
    their broadcast shape.
    """
    if phases < 8:
        raise ValueError(f"phases must be >= 8, got {phases}")
    flux = np.arange(phases) / phases
    shape = np.broadcast_shapes(*(np.shape(a) for a in (f_tone_hz, f0_hz, swing_hz, q_i, q_c)))
    grow = (slice(None),) + (None,) * len(shape)
    f_r = squid_resonance(flux[grow], f0_hz, swing_hz, lam)
    y = np.angle(notch_s21(f_tone_hz, f_r, q_i, q_c))
    return np.mean(y * np.exp(-2j * np.pi * flux)[grow], axis=0)


def guard_factor(spacing_hz: float, bandwidth_hz: float) -> float:
    """g_f = tone spacing / resonance bandwidth."""
    if not spacing_hz > 0 or not bandwidth_hz > 0:
        raise ValueError(f"spacing ({spacing_hz}) and bandwidth ({bandwidth_hz}) must be > 0")
    return spacing_hz / bandwidth_hz


def channel_budget(f_adc_hz: float, f_ramp_hz: float, n_phi0: float, guard: float) -> int:
    """Channels one board reads: floor(f_ADC / (2 f_ramp n_Phi0 g_f)) (HOLMES: 36)."""
    for name, value in (("f_adc_hz", f_adc_hz), ("f_ramp_hz", f_ramp_hz),
                        ("n_phi0", n_phi0), ("guard", guard)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    ratio = f_adc_hz / (2.0 * f_ramp_hz * n_phi0 * guard)
    return int(math.floor(ratio * (1.0 + 1e-12)))


# -- finding resonators in a sweep ------------------------------------------------------------


@dataclass(frozen=True)
class Dips:
    """Resonances found in a sweep, in frequency order.

    `depth` is |S21| at the resonance over the off-resonance level (Q_L/Q_i for a notch),
    `fwhm_hz` the full width of the power dip (f_r/Q_L); both come from a Lorentzian fit of
    |S21|^2 around each dip, and are NaN where that fit did not converge (`fitted` False; the
    frequency is then the interpolated minimum).
    """

    freq_hz: np.ndarray
    depth: np.ndarray
    fwhm_hz: np.ndarray
    fitted: np.ndarray

    def __len__(self) -> int:
        return int(self.freq_hz.size)


def _dip_model(u, level, slope, curvature, u0, power_depth, width):
    """|S21|^2 of a notch, a Lorentzian power dip of full width `width`, on a smooth level
    (gain slope, tails of the neighbouring resonators)."""
    d = u - u0
    x = d / width
    return level * (1.0 + d * (slope + curvature * d)) * (1.0 - power_depth / (1.0 + 4.0 * x * x))


def _regions(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _half_width(p: np.ndarray, i: int, f: np.ndarray) -> float:
    """Full width at half of the peak p[i], linearly interpolated; NaN at the sweep's edge."""
    half = 0.5 * p[i]
    lo = i
    while lo > 0 and p[lo] > half:
        lo -= 1
    hi = i
    while hi < p.size - 1 and p[hi] > half:
        hi += 1
    if p[lo] > half or p[hi] > half:
        return math.nan
    left = f[lo] + (half - p[lo]) / (p[lo + 1] - p[lo]) * (f[lo + 1] - f[lo])
    right = f[hi - 1] + (half - p[hi - 1]) / (p[hi] - p[hi - 1]) * (f[hi] - f[hi - 1])
    return float(right - left)


def find_dips(f_hz: np.ndarray, s21: np.ndarray, *, baseline_hz: float = 10e6,
              threshold: float = 0.7, min_separation_hz: float | None = None) -> Dips:
    """Resonances in a frequency sweep of complex (or magnitude) S21.

    The off-resonance level is a running median over `baseline_hz` (a few resonance widths,
    so gain slopes and ripple drop out; cable delay does not touch |S21|). A dip is a run of
    points below `threshold` times that level; of dips closer than `min_separation_hz`
    (default `baseline_hz`/4) the deeper is kept. Each is then fitted with a Lorentzian power
    dip on a smooth (quadratic) level over +-`FIT_WIDTHS` rough widths, giving centre, depth
    and width.
    """
    f = np.asarray(f_hz, dtype=float)
    mag = np.abs(np.asarray(s21))
    if f.ndim != 1 or f.shape != mag.shape or f.size < 5:
        raise ValueError("find_dips needs 1-D frequency and S21 arrays of one size >= 5")
    if not np.all(np.diff(f) > 0):
        raise ValueError("find_dips needs strictly increasing frequencies")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    step = float(np.median(np.diff(f)))
    size = max(3, int(round(baseline_hz / step)) | 1)
    norm = mag / median_filter(mag, size=size, mode="nearest")
    minima = [s + int(np.argmin(norm[s:e])) for s, e in _regions(norm < threshold)]
    separation = baseline_hz / 4.0 if min_separation_hz is None else min_separation_hz
    kept: list[int] = []
    for i in sorted(minima, key=lambda k: norm[k]):
        if all(abs(f[i] - f[j]) >= separation for j in kept):
            kept.append(i)
    kept.sort()
    power = 1.0 - norm**2
    mag2 = mag**2
    out = np.full((4, len(kept)), np.nan)
    for n, i in enumerate(kept):
        rough = _half_width(power, i, f)
        if not np.isfinite(rough) or rough <= 0:
            rough = 4.0 * step
        lo_f = f[i] - FIT_WIDTHS * rough
        hi_f = f[i] + FIT_WIDTHS * rough
        if n > 0:
            lo_f = max(lo_f, 0.5 * (f[kept[n - 1]] + f[i]))
        if n + 1 < len(kept):
            hi_f = min(hi_f, 0.5 * (f[kept[n + 1]] + f[i]))
        sel = (f >= lo_f) & (f <= hi_f)
        out[0, n] = _parabolic_minimum(f, mag2, i)
        out[3, n] = 0.0
        if sel.sum() < 9:
            continue
        level = float(np.max(mag2[sel]))
        u = (f[sel] - f[i]) / rough  # fit in units of the rough width: well-conditioned
        guess = (1.0, 0.0, 0.0, 0.0, 1.0 - mag2[i] / level, 1.0)
        try:
            popt, _ = curve_fit(_dip_model, u, mag2[sel] / level, p0=guess, maxfev=2000)
        except (RuntimeError, ValueError):
            continue
        f0 = f[i] + popt[3] * rough
        power_depth, width = popt[4], abs(popt[5]) * rough
        if not (lo_f <= f0 <= hi_f and 0.0 < power_depth <= 1.0):
            continue
        out[:, n] = (f0, math.sqrt(1.0 - power_depth), width, 1.0)
    return Dips(out[0], out[1], out[2], out[3].astype(bool))


def _parabolic_minimum(f: np.ndarray, y: np.ndarray, i: int) -> float:
    """Abscissa of the vertex of the parabola through the points around minimum `i`."""
    if i == 0 or i == f.size - 1:
        return float(f[i])
    y0, y1, y2 = y[i - 1], y[i], y[i + 1]
    curvature = y0 - 2.0 * y1 + y2
    if curvature <= 0:
        return float(f[i])
    delta = float(np.clip(0.5 * (y0 - y2) / curvature, -0.5, 0.5))
    return float(f[i] + delta * 0.5 * (f[i + 1] - f[i - 1]))
