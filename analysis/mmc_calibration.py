"""Temperature correction of one maXs30 pixel's pulse heights (seed paper section 4.1).

Temperature: the pulse height of an MMC follows the chip temperature (~0.5 % for ~10 uK). The
non-gradiometric channels' output follows that temperature; with u (m signals, one per such
channel, at each event's time) the height is A = A0 (1 + c . (u - u_ref)). `learn_temperature`
fits c by least squares on events of one line (robustly, twice, dropping > 4 sigma outliers);
`TemperatureCorrection.apply` divides it out.

The energy calibration (Mn Ka and Kb: the exact quadratic through both, the paper's; with
241Am lines a cubic) is `cryodaq.analysis.multiline_calibration.calibrate_lines` on the lines of
`cryodaq.analysis.calibration_sources`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
