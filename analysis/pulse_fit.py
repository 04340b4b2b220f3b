"""Fit of a two-exponential pulse b + A u(t - t0) to an average pulse, with errors.

u is `analysis.pulse_shapes`' two-exponential scaled to unit height. The arrival t0 is free:
an average of pulses whose arrival phases spread over one sample is the true pulse smoothed by
a one-sample box, which for every sample after the first of the rise is again a two-exponential
with the same time constants, arriving ~half a sample later, so rise and decay stay unbiased.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from analysis.pulse_shapes import unit_pulse


@dataclass(frozen=True)
class PulseFit:
    """Fitted pulse (times in s, heights in the pulse's units) and 1-sigma errors."""

    rise_s: float
    rise_err_s: float
    decay_s: float
    decay_err_s: float
    amplitude: float
    amplitude_err: float
    t0_s: float  # arrival, relative to the first sample after the pretrigger
    t0_err_s: float
    baseline: float
    chi2: float
    dof: int
    pretrigger: int
    sample_rate_hz: float

    def model(self, n_samples: int) -> np.ndarray:
        """The fitted pulse at samples 0 .. n_samples-1 of a record."""
        t = (np.arange(n_samples) - self.pretrigger) / self.sample_rate_hz
        return self.baseline + self.amplitude * unit_pulse(t - self.t0_s, self.rise_s, self.decay_s)


def _shape(n: np.ndarray, t0: float, tau_a: float, tau_b: float) -> np.ndarray:
    """Unit-height two-exponential in samples, symmetric in its two time constants."""
    lo, hi = min(tau_a, tau_b), max(tau_a, tau_b)
    if hi - lo < 1e-9 * hi:
        hi = lo * (1 + 1e-9)
    dt = np.clip(n - t0, 0.0, None)
    tp = lo * hi / (hi - lo) * np.log(hi / lo)
    return (np.exp(-dt / hi) - np.exp(-dt / lo)) / (np.exp(-tp / hi) - np.exp(-tp / lo))


def _guess(y: np.ndarray, pretrigger: int) -> tuple[float, float, float, float]:
    """Height, arrival, rise and decay (samples) from the 10/90 % points and the tail slope."""
    peak_i = int(np.argmax(y[pretrigger:])) + pretrigger
    height = float(y[peak_i])
    before = y[pretrigger : peak_i + 1]
    i10 = pretrigger + int(np.argmax(before >= 0.1 * height))
    i90 = pretrigger + int(np.argmax(before >= 0.9 * height))
    rise = max((i90 - i10) / np.log(9.0), 0.3)
    tail = np.arange(peak_i + int(3 * rise) + 1, y.size)
    tail = tail[y[tail] > 0.05 * height]
    decay = 20.0 * rise
    if tail.size > 4:
        slope = np.polyfit(tail, np.log(y[tail]), 1)[0]
        if slope < 0:
            decay = max(-1.0 / slope, 2.0 * rise)
    t0 = i10 - 0.1 * rise
    return height, t0, rise, decay


def fit_pulse(
    pulse: np.ndarray,
    pretrigger: int,
    sample_rate_hz: float,
    sigma: float | np.ndarray | None = None,
) -> PulseFit:
    """Least-squares fit of b + A u(t - t0) to `pulse` (positive-going, any units).

    `sigma`: the rms of each sample's noise (scalar or per sample). Errors come from the
    Jacobian at the minimum, scaled by sqrt(chi2/dof) when that exceeds 1 (or always when
    `sigma` is None); the average pulse's noise is correlated between samples (1/f, template
    noise), so they are statistical estimates, not guarantees.
    """
    y = np.asarray(pulse, dtype=np.float64)
    if y.ndim != 1 or not 1 <= pretrigger < y.size - 8:
        raise ValueError(f"need a 1-D pulse longer than pretrigger + 8, got {y.shape}")
    n = np.arange(y.size, dtype=np.float64)
    s = np.ones_like(y) if sigma is None else np.broadcast_to(np.asarray(sigma, float), y.shape)
    if not np.all(s > 0):
        raise ValueError("sigma must be > 0")
    height, t0, rise, decay = _guess(y, pretrigger)
    if not height > 0:
        raise ValueError("pulse has no positive peak after the pretrigger")

    def resid(p: np.ndarray) -> np.ndarray:
        a, t, lr, ld, b = p
        return (b + a * _shape(n, t, np.exp(lr), np.exp(ld)) - y) / s

    x0 = np.array([height, t0, np.log(rise), np.log(decay), 0.0])
    lo = [0.0, pretrigger - 20.0 * rise - 5, np.log(0.01), np.log(0.01), -np.inf]
    hi = [np.inf, pretrigger + 20.0 * rise + 5, np.log(1e3 * y.size), np.log(1e3 * y.size), np.inf]
    fit = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac", method="trf")
    a, t, lr, ld, b = fit.x
    chi2 = float(np.sum(fit.fun**2))
    dof = y.size - 5
    jtj = fit.jac.T @ fit.jac
    cov = np.linalg.pinv(jtj)
    scale = chi2 / dof if sigma is None else max(1.0, chi2 / dof)
    err = np.sqrt(np.clip(np.diag(cov) * scale, 0, None))
    taus = [(np.exp(lr), err[2]), (np.exp(ld), err[3])]
    (r, r_rel), (d, d_rel) = sorted(taus)
    dt = 1.0 / sample_rate_hz
    return PulseFit(
        rise_s=r * dt,
        rise_err_s=r * r_rel * dt,
        decay_s=d * dt,
        decay_err_s=d * d_rel * dt,
        amplitude=float(a),
        amplitude_err=float(err[0]),
        t0_s=(t - pretrigger) * dt,
        t0_err_s=float(err[1]) * dt,
        baseline=float(b),
        chi2=chi2,
        dof=dof,
        pretrigger=pretrigger,
        sample_rate_hz=float(sample_rate_hz),
    )
