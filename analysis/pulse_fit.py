"""Fits of a two-exponential pulse b + A u(t - t0), and of a three-exponential TES pulse (one
rise, a fast and a slow decay), to an average pulse, with errors.

u is `cryodaq.analysis.pulse_shapes`' two-exponential scaled to unit height. The arrival t0 is free:
an average of pulses whose arrival phases spread over one sample is the true pulse smoothed by
a one-sample box, which for every sample after the first of the rise is again a two-exponential
with the same time constants, arriving ~half a sample later, so rise and decay stay unbiased.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from cryodaq.analysis.pulse_shapes import peak_norm, three_exponential, unit_pulse


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


@dataclass(frozen=True)
class ThreeExponentialFit:
    """Fitted b + A g(t - t0), g = `pulse_shapes.three_exponential` (times in s; A is the
    decays' integral in the pulse's units x s), with 1-sigma errors of the shape parameters."""

    rise_s: float
    rise_err_s: float
    fast_s: float
    fast_err_s: float
    slow_s: float
    slow_err_s: float
    slow_fraction: float
    slow_fraction_err: float
    area: float  # A
    t0_s: float
    baseline: float
    chi2: float
    dof: int
    pretrigger: int
    sample_rate_hz: float

    def pulse(self, t_s: np.ndarray) -> np.ndarray:
        """The fitted pulse without its baseline at times `t_s` from its arrival."""
        return self.area * three_exponential(
            t_s, self.rise_s, self.fast_s, self.slow_s, self.slow_fraction
        )

    def model(self, n_samples: int) -> np.ndarray:
        """The fitted pulse at samples 0 .. n_samples-1 of a record."""
        t = (np.arange(n_samples) - self.pretrigger) / self.sample_rate_hz
        return self.baseline + self.pulse(t - self.t0_s)

    @property
    def height(self) -> float:
        """Peak of the fitted pulse (found on a fine grid)."""
        t = np.linspace(0.0, 10.0 * self.fast_s, 4001)
        return float(np.max(self.pulse(t)))

    @property
    def max_slope(self) -> float:
        """Largest rate of change of the fitted pulse (units/s), on the rising edge."""
        t = np.linspace(0.0, 5.0 * self.rise_s, 4001)
        return float(np.max(np.gradient(self.pulse(t), t)))


#: Widest box (samples) the fitted pulse may be averaged over (see `fit_three_exponential`).
MAX_BOX_SAMPLES = 3.0


def _boxed_three_exponential(
    x: np.ndarray, tau1: float, tau2: float, tau3: float, frac: float, width: float
) -> np.ndarray:
    """`three_exponential` at x (samples after arrival) averaged over [x - width, x]: each
    term c exp(-u/tau) integrates to c tau (exp(-max(x - w, 0)/tau) - exp(-max(x, 0)/tau))."""
    if width < 1e-6:
        return three_exponential(x, tau1, tau2, tau3, frac)
    a_fast, a_slow = (1.0 - frac) / tau2, frac / tau3
    lo, hi = np.clip(x - width, 0.0, None), np.clip(x, 0.0, None)
    out = np.zeros_like(x)
    for c, tau in ((a_fast, tau2), (a_slow, tau3), (-(a_fast + a_slow), tau1)):
        out += c * tau * (np.exp(-lo / tau) - np.exp(-hi / tau))
    return out / width


def fit_three_exponential(
    pulse: np.ndarray,
    pretrigger: int,
    sample_rate_hz: float,
    sigma: float | np.ndarray | None = None,
) -> ThreeExponentialFit:
    """Least-squares fit of b + A g(t - t0) (rise tau1 < fast decay tau2 <= slow decay tau3,
    slow share s of the decays' integral) to a positive-going `pulse`.

    The model is averaged over a box of fitted width (0 .. `MAX_BOX_SAMPLES` samples) before
    each sample: an average pulse mixes arrival phases over a sample, and a flux-ramp readout
    averages the flux over its ramp period; both round the pulse's sharp start, which a bare
    three-exponential would absorb into a longer rise. Starts from `fit_pulse` (rise and one
    decay). `sigma` and the errors as in `fit_pulse`. The record should hold a few tau3 for
    tau3 and s to be well determined.
    """
    y = np.asarray(pulse, dtype=np.float64)
    if y.ndim != 1 or not 1 <= pretrigger < y.size - 8:
        raise ValueError(f"need a 1-D pulse longer than pretrigger + 8, got {y.shape}")
    offset = float(np.median(y[:pretrigger]))  # the start values assume a baseline near 0
    y = y - offset
    two = fit_pulse(y, pretrigger, sample_rate_hz, sigma)
    s = np.ones_like(y) if sigma is None else np.broadcast_to(np.asarray(sigma, float), y.shape)
    n = np.arange(y.size, dtype=np.float64)
    dt = 1.0 / sample_rate_hz
    rise, decay = two.rise_s / dt, two.decay_s / dt
    t0 = pretrigger + two.t0_s / dt

    def shape(p: np.ndarray) -> np.ndarray:
        _, t, l1, l21, l32, frac, _, width = p
        tau1 = np.exp(l1)
        tau2 = tau1 * np.exp(l21)
        return _boxed_three_exponential(n - t, tau1, tau2, tau2 * np.exp(l32), frac, width)

    def resid(p: np.ndarray) -> np.ndarray:
        return (p[6] + p[0] * shape(p) - y) / s

    area0 = two.amplitude * decay / peak_norm(rise, decay)  # the decay's integral
    best = None
    for ratio, frac in ((5.0, 0.03), (20.0, 0.03), (5.0, 0.2)):
        x0 = np.array([area0, t0, np.log(rise), np.log(decay / rise) + 1e-3, np.log(ratio),
                       frac, two.baseline, 0.5])
        lo = [0.0, t0 - 5.0 * rise - 5, np.log(0.01), 1e-6, 0.0, 0.0, -np.inf, 0.0]
        hi = [np.inf, t0 + 5.0 * rise + 5, np.log(1e3 * y.size), np.log(1e5), np.log(1e4), 1.0,
              np.inf, MAX_BOX_SAMPLES]
        x0 = np.clip(x0, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
        fit = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac", method="trf")
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    p = best.x
    chi2 = float(np.sum(best.fun**2))
    dof = y.size - p.size
    cov = np.linalg.pinv(best.jac.T @ best.jac)
    scale = chi2 / dof if sigma is None else max(1.0, chi2 / dof)
    err = np.sqrt(np.clip(np.diag(cov) * scale, 0, None))
    tau1 = np.exp(p[2])
    tau2 = tau1 * np.exp(p[3])
    tau3 = tau2 * np.exp(p[4])
    # Relative errors of tau2 and tau3 from their log-ratio parametrisation (correlations
    # with tau1 are kept: the variance of a sum of the log parameters).
    var2 = cov[2, 2] + cov[3, 3] + 2 * cov[2, 3]
    var3 = var2 + cov[4, 4] + 2 * (cov[2, 4] + cov[3, 4])
    rel2, rel3 = (np.sqrt(max(v * scale, 0.0)) for v in (var2, var3))
    return ThreeExponentialFit(
        rise_s=tau1 * dt,
        rise_err_s=tau1 * err[2] * dt,
        fast_s=tau2 * dt,
        fast_err_s=tau2 * rel2 * dt,
        slow_s=tau3 * dt,
        slow_err_s=tau3 * rel3 * dt,
        slow_fraction=float(p[5]),
        slow_fraction_err=float(err[5]),
        area=float(p[0]) * dt,
        t0_s=(p[1] - pretrigger) * dt,
        baseline=float(p[6]) + offset,
        chi2=chi2,
        dof=dof,
        pretrigger=pretrigger,
        sample_rate_hz=float(sample_rate_hz),
    )
