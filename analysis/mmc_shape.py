"""Pulse-shape parameters of the maXs30 analysis (seed paper section 4.2) and the ellipse cut.

chi2: the average pulse (template s) is fitted to each trace x by least squares, together with
a constant baseline and the template's first and second time derivatives: the arrival phase
within a sample, which the trigger cannot see, shifts each pulse (first order) and the
average of pulses at spread phases is the pulse smoothed over a sample (second order); both
would otherwise add a mismatch that grows as the square of the pulse height. chi2 = sum over
samples of the squared residual divided by the number of samples (the paper's reduced chi2),
here also divided by the noise variance per sample, so that clean pulses give chi2 ~ 1.

zeta: x is cross-correlated with s, and s with itself; zeta = (ratio of the two maxima) /
(ratio of the two integrals over the correlations). The integral of a full cross-correlation is
sum(x) sum(s), so zeta = [max_k (x * s)(k) / sum(s^2)] / [sum(x) / sum(s)]: 1 for a scaled
template, below 1 for slower signals (energy in the substrate, jumps), above for faster ones.

Ellipse cut: centres and widths of the chi2 and zeta distributions come from Gaussian fits
(Poisson likelihood on histograms) of calibration events; the semi-axes are k widths with
k = sqrt(-2 ln f), so that a fraction f of a two-dimensional Gaussian lies outside. chi2's
excess over that of noise records (a shape mismatch) grows as the pulse height squared and is
carried to other heights so. The zeta width has a part from noise, which scales as
1 / amplitude (linear in the noise: zeta - 1 ~ u(n) / A with u(n) = sum(n s) / sum(s^2) -
sum(n) / sum(s)); it is measured on noise records, so the ellipse widens for smaller pulses
as their noise does, instead of rejecting clean low-energy events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryodaq.analysis.line_fit import fit_line, histogram
from cryodaq.analysis.optimal_filter import CHUNK, FWHM_PER_SIGMA, time_derivative
from cryodaq.analysis.record_cuts import robust_sigma


@dataclass(frozen=True)
class ShapeParameters:
    """Per record: least-squares template height, reduced chi2 (noise units), zeta."""

    amplitude: np.ndarray
    chi2: np.ndarray
    zeta: np.ndarray


def _oriented(records: np.ndarray, pretrigger: int, sign: float) -> np.ndarray:
    x = np.asarray(records, dtype=np.float64)
    return sign * (x - x[:, :pretrigger].mean(axis=1, keepdims=True))


def shape_parameters(
    records: np.ndarray,
    template: np.ndarray,
    pretrigger: int,
    noise_variance: float,
) -> ShapeParameters:
    """chi2 and zeta (module docstring) of records (n, L) against `template` (unit peak, either
    sign: records are turned so that the template is positive); `noise_variance` per sample in
    record units^2 (from noise records)."""
    records = np.asarray(records)
    t = np.asarray(template, dtype=np.float64)
    if records.ndim != 2 or records.shape[1] != t.size:
        raise ValueError(f"records must be (n, {t.size}), got shape {records.shape}")
    if not noise_variance > 0:
        raise ValueError(f"noise_variance must be > 0, got {noise_variance}")
    sign = 1.0 if t[np.argmax(np.abs(t))] > 0 else -1.0
    t = sign * t
    length = t.size
    d1 = time_derivative(t)
    basis = np.stack([t, d1, time_derivative(d1), np.ones(length)], axis=1)
    project = np.linalg.pinv(basis)  # (4, L)
    nfft = 2 * length
    t_hat = np.conj(np.fft.rfft(t, nfft))
    sum_t, sum_tt = float(t.sum()), float(t @ t)
    n = records.shape[0]
    amp, chi2, zeta = np.empty(n), np.empty(n), np.empty(n)
    for i in range(0, n, CHUNK):
        x = _oriented(records[i : i + CHUNK], pretrigger, sign)
        coef = x @ project.T
        resid = x - coef @ basis.T
        amp[i : i + CHUNK] = coef[:, 0]
        chi2[i : i + CHUNK] = (resid * resid).mean(axis=1) / noise_variance
        corr = np.fft.irfft(np.fft.rfft(x, nfft, axis=1) * t_hat, nfft, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            zeta[i : i + CHUNK] = (corr.max(axis=1) / sum_tt) / (x.sum(axis=1) / sum_t)
    return ShapeParameters(amp, chi2, zeta)


def zeta_noise(noise_records: np.ndarray, template: np.ndarray, pretrigger: int) -> float:
    """The noise part of zeta's spread times the pulse height (record units): zeta of
    A s + n is 1 + u(n) / A to first order in n, u(n) = sum(n s)/sum(s^2) - sum(n)/sum(s),
    with n treated as `shape_parameters` treats records; the width of u over noise records
    (a Gaussian fit)."""
    t = np.asarray(template, dtype=np.float64)
    sign = 1.0 if t[np.argmax(np.abs(t))] > 0 else -1.0
    t = sign * t
    u = np.empty(len(noise_records))
    for i in range(0, u.size, CHUNK):
        x = _oriented(noise_records[i : i + CHUNK], pretrigger, sign)
        u[i : i + CHUNK] = x @ t / float(t @ t) - x.sum(axis=1) / float(t.sum())
    return gaussian_core(u)[1]


@dataclass(frozen=True)
class Ellipse:
    """The ellipse cut of one pixel in the chi2-zeta plane (learned on calibration events).

    Centre and widths are those fitted at the calibration line (`reference_amplitude`),
    carried to other pulse heights A by how their parts scale: zeta's noise part as 1 / A;
    chi2's excess over pure noise (`chi2_noise_*`, fitted on noise records) as A^2, the
    residual shape mismatch, which grows with the pulse while the noise does not.
    """

    chi2_centre: float
    chi2_width: float  # Gaussian sigma at the reference amplitude
    zeta_centre: float
    zeta_width: float  # Gaussian sigma at the reference amplitude
    zeta_noise: float  # noise part of the zeta sigma times the amplitude
    reference_amplitude: float
    k: float  # semi-axes = k widths
    chi2_noise_centre: float  # chi2 of noise records: its level without a pulse
    chi2_noise_width: float

    def _ratio(self, amplitude: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(amplitude, dtype=np.float64)) / self.reference_amplitude

    def zeta_sigma(self, amplitude: np.ndarray) -> np.ndarray:
        """Gaussian width of zeta at pulse height `amplitude`: shape part + noise / A."""
        shape2 = max(
            self.zeta_width**2 - (self.zeta_noise / self.reference_amplitude) ** 2, 0.0
        )
        a = np.maximum(np.abs(np.asarray(amplitude, dtype=np.float64)), 1e-300)
        return np.sqrt(shape2 + (self.zeta_noise / a) ** 2)

    def chi2_mean(self, amplitude: np.ndarray) -> np.ndarray:
        """Centre of chi2 at pulse height `amplitude`: noise + mismatch ~ A^2."""
        r2 = self._ratio(amplitude) ** 2
        return self.chi2_noise_centre + (self.chi2_centre - self.chi2_noise_centre) * r2

    def chi2_sigma(self, amplitude: np.ndarray) -> np.ndarray:
        """Gaussian width of chi2 at pulse height `amplitude`: noise + mismatch ~ A^2."""
        excess2 = max(self.chi2_width**2 - self.chi2_noise_width**2, 0.0)
        r4 = self._ratio(amplitude) ** 4
        return np.sqrt(self.chi2_noise_width**2 + excess2 * r4)

    def radius(self, chi2: np.ndarray, zeta: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
        """Distance from the centre in widths (the cut keeps radius <= k)."""
        dc = (np.asarray(chi2) - self.chi2_mean(amplitude)) / self.chi2_sigma(amplitude)
        dz = (np.asarray(zeta) - self.zeta_centre) / self.zeta_sigma(amplitude)
        return np.hypot(dc, dz)

    def inside(self, chi2: np.ndarray, zeta: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
        """True for events the cut keeps (NaN parameters are outside)."""
        r = self.radius(chi2, zeta, amplitude)
        return np.isfinite(r) & (r <= self.k)


def gaussian_core(values: np.ndarray, span_sigmas: float = 5.0) -> tuple[float, float]:
    """(centre, sigma) of a Gaussian fitted (Poisson likelihood) to the histogram of `values`
    over median +- `span_sigmas` robust sigmas, in bins of a quarter sigma."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    s = robust_sigma(v)
    if v.size < 10 or not s > 0:
        raise ValueError(f"need >= 10 finite values with a spread, got {v.size}")
    med = float(np.median(v))
    counts, edges = histogram(v, med - span_sigmas * s, med + span_sigmas * s, s / 4.0)
    fit = fit_line(counts, edges, None, centre=med, fwhm=FWHM_PER_SIGMA * s)
    return fit.centre, fit.fwhm / FWHM_PER_SIGMA


def learn_ellipse(
    params: ShapeParameters,
    zeta_noise_rms: float,
    reject_fraction: float = 0.01,
    noise: ShapeParameters | None = None,
) -> Ellipse:
    """Ellipse from calibration events (one line, e.g. Mn Ka): Gaussian fits of chi2 and zeta,
    semi-axes k widths with k = sqrt(-2 ln `reject_fraction`); `noise` (the shape parameters
    of noise records) gives chi2's level without a pulse (without it, chi2's centre and width
    are taken as the same at every pulse height)."""
    if not 0.0 < reject_fraction < 1.0:
        raise ValueError(f"reject_fraction must be in (0, 1), got {reject_fraction}")
    c0, cs = gaussian_core(params.chi2)
    z0, zs = gaussian_core(params.zeta)
    n0, ns = gaussian_core(noise.chi2) if noise is not None else (c0, cs)
    return Ellipse(
        chi2_centre=c0,
        chi2_width=cs,
        zeta_centre=z0,
        zeta_width=zs,
        zeta_noise=float(zeta_noise_rms),
        reference_amplitude=float(np.median(params.amplitude)),
        k=float(np.sqrt(-2.0 * np.log(reject_fraction))),
        chi2_noise_centre=n0,
        chi2_noise_width=ns,
    )
