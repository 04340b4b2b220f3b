"""Temperature correction and quadratic energy calibration of one maXs30 pixel (seed paper
section 4.1).

Temperature: the pulse height of an MMC follows the chip temperature (~0.5 % for ~10 uK). The
non-gradiometric channels' output follows that temperature; with u (m signals, one per such
channel, at each event's time) the height is A = A0 (1 + c . (u - u_ref)). `learn_temperature`
fits c by least squares on events of one line (robustly, twice, dropping > 4 sigma outliers);
`TemperatureCorrection.apply` divides it out.

Calibration: E = c1 A + c2 A^2 (no offset: no pulse, no energy) through the fitted positions
of two lines (Mn Ka and Kb), with the pieces of `cryodaq.analysis.line_calibration`:
Poisson-likelihood fits of the natural (Holzer) shapes convolved with a Gaussian. The start is the
dominant peak (Ka), which needs no peak search, so a pixel with few Kb events still calibrates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cryodaq.analysis.line_calibration import (
    Calibration,
    KnownLine,
    LineResult,
    fit_known_line,
    polynomial_calibration,
)
from cryodaq.analysis.line_fit import dominant_peak
from cryodaq.analysis.record_cuts import robust_sigma


@dataclass(frozen=True)
class TemperatureCorrection:
    """A = A0 (1 + coefficients . (u - reference)); u one row per event, one column per
    thermometer channel."""

    coefficients: np.ndarray
    reference: np.ndarray
    n_events: int

    def factor(self, signals: np.ndarray) -> np.ndarray:
        """1 + c . (u - u_ref) for each event (rows of `signals`)."""
        u = np.atleast_2d(np.asarray(signals, dtype=np.float64))
        if self.coefficients.size == 0:
            return np.ones(u.shape[0])
        return 1.0 + (u - self.reference) @ self.coefficients

    def apply(self, amplitudes: np.ndarray, signals: np.ndarray) -> np.ndarray:
        """Amplitudes as they would be at the reference temperature."""
        return np.asarray(amplitudes, dtype=np.float64) / self.factor(signals)


def no_temperature_correction() -> TemperatureCorrection:
    """The identity (no thermometer channel recorded)."""
    return TemperatureCorrection(np.zeros(0), np.zeros(0), 0)


def learn_temperature(amplitudes: np.ndarray, signals: np.ndarray) -> TemperatureCorrection:
    """Fit A / median(A) - 1 = c . (u - mean u) on events of one line (see module docstring)."""
    a = np.asarray(amplitudes, dtype=np.float64)
    u = np.asarray(signals, dtype=np.float64)
    u = u.reshape(a.size, -1) if u.size else np.zeros((a.size, 0))
    if u.shape[1] == 0:
        return no_temperature_correction()
    if a.size < 3 * (u.shape[1] + 1):
        raise ValueError(f"need >= {3 * (u.shape[1] + 1)} events, got {a.size}")
    ok = np.isfinite(a) & np.all(np.isfinite(u), axis=1)
    ref = u[ok].mean(axis=0)
    coef = np.zeros(u.shape[1])
    for _ in range(2):
        y = a[ok] / np.median(a[ok]) - 1.0
        design = np.column_stack([np.ones(ok.sum()), u[ok] - ref])
        sol, *_ = np.linalg.lstsq(design, y, rcond=None)
        coef = sol[1:] / (1.0 + sol[0])  # relative to the height at the reference
        resid = y - design @ sol
        keep = np.abs(resid - np.median(resid)) <= 4.0 * robust_sigma(resid)
        idx = np.flatnonzero(ok)
        ok[idx[~keep]] = False
    return TemperatureCorrection(coef, ref, int(ok.sum()))


def calibrate_on_lines(
    amplitudes: np.ndarray,
    lines: Sequence[KnownLine],
    fwhm_guess_eV: float,
    *,
    bin_eV: float | None = None,
    passes: int = 1,
) -> tuple[Calibration, list[LineResult]]:
    """E = c1 A + c2 A^2 through the fitted centres of `lines` (the first the most intense,
    e.g. Mn Ka then Kb): a provisional linear scale puts the dominant peak at the first line;
    the lines are fitted on the scale, their centres turned back into amplitudes and the
    calibration solved through them (no offset with two lines), `passes` times; returns it and
    the lines fitted on its scale (bins `bin_eV`, default a fraction of the FWHM)."""
    a = np.asarray(amplitudes, dtype=np.float64)
    a = a[np.isfinite(a) & (a > 0)]
    if a.size < 10 or not lines:
        raise ValueError(f"need >= 10 positive amplitudes and a line, got {a.size}")
    names = [ln.name for ln in lines]
    energies = np.array([ln.energy_eV for ln in lines])
    cal = polynomial_calibration(np.array([dominant_peak(a)]), energies[:1], names[:1])
    for _ in range(passes):
        fits = [fit_known_line(cal.energy(a), ln, fwhm_guess_eV, bin_eV=bin_eV) for ln in lines]
        centres = np.array([f.fit.centre for f in fits])
        if not np.all(np.isfinite(centres)):
            raise ValueError(f"calibration line fits did not converge: {centres}")
        cal = polynomial_calibration(cal.amplitude(centres), energies, names)
    return cal, [fit_known_line(cal.energy(a), ln, fwhm_guess_eV, bin_eV=bin_eV) for ln in lines]
