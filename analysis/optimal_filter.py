"""Optimal (Wiener) filter for pulse amplitudes: learned once, applied many times.

Learn: the average pulse (aligned, baseline-subtracted, scaled to unit peak) is the template
s(t); the noise PSD J(f) (one-sided, units^2/Hz) comes from averaged periodograms of noise
records of the same length. The filter in the frequency domain is H(f) = S(f) / J(f), turned
into time-domain weights w with `w @ template == 1`, so `apply` returns pulse heights in the
records' units.

DC: the filter's DC bin is set to zero, so `sum(w) == 0`; a constant baseline (offset, or the
part of a drift that is constant over the record) gives exactly nothing, and records need no
baseline subtraction. This is the optimal filter for a pulse on an unknown constant baseline;
the resolution it loses is the information of the DC bin, which 1/f noise makes worthless.

Arrival time: records keep the arrival phase within a sample that the trigger cannot see;
the filter is by default also made blind to the template's time derivative (see
`optimal_filter`), which removes the first-order dependence of the amplitude on that phase.

Resolution: `ideal_sigma` is sigma^-2 = integral 4 |P(f)|^2 / J(f) df (REFERENCE section 6)
over the record's frequency grid f_k = k / T with P = dt * DFT(template) and df = 1/T, the DC
bin left out (as in the filter) and the Nyquist bin weighted 1/2 (it is real).
`predicted_sigma` is the same sum for the filter actually used, df sum |W_k|^2 J_k: equal to
`ideal_sigma` without the arrival-time constraint, a few 0.1 % above it with. Both are exact
when the noise's DFT bins are uncorrelated (stationary noise with correlation times short
against the record); 1/f noise far below 1/T correlates neighbouring low bins, which they
ignore (a few % for 1/f knees near 1/T).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryodaq.analysis.record_apply import (
    amplitudes,
    baseline_subtracted_sum,
    rising_edges,
    row_means,
)

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: Records per chunk when a float64 copy of integer records is needed (bounds its size).
CHUNK = 4096
#: Records per chunk of the noise PSD (their spectra stay in the cache).
PSD_CHUNK = 256


@dataclass(frozen=True)
class NoiseSpectrum:
    """One-sided noise PSD (units^2/Hz) at the record's DFT frequencies."""

    freqs_hz: np.ndarray
    psd: np.ndarray
    n_records: int
    sample_rate_hz: float

    @property
    def record_length(self) -> int:
        return 2 * (self.freqs_hz.size - 1)


@dataclass(frozen=True)
class AveragePulse:
    """Average pulse scaled to unit peak (the template), and how it was made."""

    template: np.ndarray  # extreme value +1 (positive pulses) or -1 (negative pulses)
    height: float  # |peak| of the average (record units): template * height = average
    n_records: int  # records averaged
    pretrigger: int
    sample_rate_hz: float
    used: np.ndarray  # bool (n,): records averaged (the others were misaligned)

    @property
    def sign(self) -> float:
        """+1 for positive-going pulses, -1 for negative-going ones."""
        return 1.0 if self.template[np.argmax(np.abs(self.template))] > 0 else -1.0

    @property
    def average(self) -> np.ndarray:
        """The average pulse in record units (baseline-subtracted)."""
        return self.template * self.height


@dataclass(frozen=True)
class OptimalFilter:
    """Time-domain weights of the optimal filter, with what it was learned from."""

    weights: np.ndarray  # (L,), weights @ template == 1, sum(weights) == 0
    template: np.ndarray  # unit-peak template
    noise: NoiseSpectrum
    predicted_sigma: float  # rms of this filter's amplitudes of noise (template heights)
    ideal_sigma: float  # REFERENCE section 6 integral for the template: the best possible

    @property
    def predicted_fwhm(self) -> float:
        return FWHM_PER_SIGMA * self.predicted_sigma

    @property
    def ideal_fwhm(self) -> float:
        return FWHM_PER_SIGMA * self.ideal_sigma

    def apply(self, records: np.ndarray) -> np.ndarray:
        """Filtered amplitude of each record (n, L): its height in units of the template."""
        return apply_weights(records, self.weights)


def apply_weights(records: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`records @ weights` in float64; records (n, L) of any numeric dtype (compiled: each
    record is converted as it is read, `record_apply.amplitudes`)."""
    records = np.asarray(records)
    w = np.asarray(weights, dtype=np.float64)
    if records.ndim != 2 or records.shape[1] != w.size:
        raise ValueError(f"records must be (n, {w.size}), got shape {records.shape}")
    return amplitudes(records, w)


def noise_psd(records: np.ndarray, sample_rate_hz: float) -> NoiseSpectrum:
    """Average one-sided periodogram of noise records (n, L), rectangular window.

    J_k = 2 dt / L <|X_k|^2> for every bin (so J is the density at DC and Nyquist too), each
    record's mean removed first (J_0 is then 0; the filter does not use it).
    """
    records = np.asarray(records)
    if records.ndim != 2 or records.shape[0] < 1 or records.shape[1] < 4:
        raise ValueError(f"need noise records (n >= 1, L >= 4), got shape {records.shape}")
    n, length = records.shape
    if length % 2:
        raise ValueError(f"record length must be even, got {length}")
    power = np.zeros(length // 2 + 1)
    for i in range(0, n, PSD_CHUNK):
        x = records[i : i + PSD_CHUNK].astype(np.float64)
        x -= x.mean(axis=1, keepdims=True)
        spectrum = np.fft.rfft(x, axis=1)
        power += (spectrum.real**2 + spectrum.imag**2).sum(axis=0)
    dt = 1.0 / sample_rate_hz
    psd = 2.0 * dt / length * power / n
    return NoiseSpectrum(np.fft.rfftfreq(length, dt), psd, n, float(sample_rate_hz))


def average_pulse(
    records: np.ndarray, pretrigger: int, sample_rate_hz: float, *, max_shift: int = 3
) -> AveragePulse:
    """Average of pulse records (n, L), each baseline-subtracted (its pretrigger mean).

    Records are averaged as stored: the trigger aligned them (to the sample; the arrival
    phase within the sample stays spread over one sample, and the filter is built for that
    spread). Records whose rising edge (first sample at half the peak) is more than
    `max_shift` samples from the median edge are left out as misaligned. Pulses may be of
    either polarity: the median pulse's sign decides, and the template is the average divided
    by the size of its peak, so a filter for it gives matching pulses positive amplitudes.
    """
    records = np.asarray(records)
    if records.ndim != 2 or records.shape[0] < 1:
        raise ValueError(f"need pulse records (n >= 1, L), got shape {records.shape}")
    length = records.shape[1]
    if not 1 <= pretrigger < length:
        raise ValueError(f"pretrigger must be in 1 .. {length - 1}, got {pretrigger}")
    base = row_means(records, 0, pretrigger)
    sign = 1.0 if np.median(row_means(records, pretrigger, length) - base) >= 0 else -1.0
    edge = rising_edges(records, base, sign, max(pretrigger - max_shift, 0))
    ok = edge >= 0
    if not ok.any():
        raise ValueError("no pulse record has a rising edge after the pretrigger")
    keep = ok & (np.abs(edge - np.median(edge[ok])) <= max_shift)
    avg = baseline_subtracted_sum(records, base, keep) / keep.sum()
    peak = float(np.max(sign * avg))
    if not np.isfinite(peak) or peak <= 0.0:
        raise ValueError("average pulse has no peak")
    return AveragePulse(avg / peak, peak, int(keep.sum()), pretrigger, float(sample_rate_hz), keep)


def time_derivative(x: np.ndarray) -> np.ndarray:
    """dx/dn at the samples: 4th-order central differences, 2nd order next to the ends."""
    d = np.gradient(x)
    d[2:-2] = (x[:-4] - 8.0 * x[1:-3] + 8.0 * x[3:-1] - x[4:]) / 12.0
    return d


def _bin_weights(n_bins: int) -> np.ndarray:
    """c_k of the one-sided sums: 0 at DC (left out), 1/2 at Nyquist (a real bin), else 1."""
    c = np.ones(n_bins)
    c[0], c[-1] = 0.0, 0.5
    return c


def fisher_information(template: np.ndarray, noise: NoiseSpectrum) -> float:
    """sigma^-2 = sum_k c_k 4 |P(f_k)|^2 / J(f_k) df with P = dt DFT(template) (see module)."""
    template = np.asarray(template, dtype=np.float64)
    if template.size != noise.record_length:
        raise ValueError(
            f"template has {template.size} samples, the noise records {noise.record_length}"
        )
    dt = 1.0 / noise.sample_rate_hz
    p = dt * np.fft.rfft(template)
    psd = np.where(noise.psd > 0, noise.psd, np.inf)
    c = _bin_weights(p.size)
    return float(np.sum(c * 4.0 * np.abs(p) ** 2 / psd) / (template.size * dt))


def filter_variance(weights: np.ndarray, noise: NoiseSpectrum) -> float:
    """Variance of `weights @ record` for records of noise `noise`: df sum_k c_k |W_k|^2 J_k.

    Exact for noise whose DFT bins are uncorrelated; the DC bin is left out (the filters here
    have none, and a record's constant offset is not noise they see).
    """
    w = np.fft.rfft(np.asarray(weights, dtype=np.float64))
    c = _bin_weights(w.size)
    df = noise.sample_rate_hz / weights.size
    return float(df * np.sum(c * np.abs(w) ** 2 * noise.psd))


def optimal_filter(
    template: np.ndarray, noise: NoiseSpectrum, *, arrival_safe: bool = True
) -> OptimalFilter:
    """The optimal filter for `template` in `noise`: H = S / J, DC bin zeroed, w @ template = 1.

    With `arrival_safe` the filter is also made blind to the template's time derivative d
    (H = (S - beta D) / J with beta = <D, S> / <D, D> in the noise metric): a pulse arriving a
    fraction of a sample early or late then gives the same amplitude to first order. Without
    it, a pulse whose tail the record cuts (decay longer than the record) gives amplitudes
    that depend on the arrival phase, which broadens lines. The price is the factor
    1 / sqrt(1 - rho^2) on sigma, rho the noise-weighted correlation of s and d (~1e-3 for
    the maXs30 pulse).
    """
    template = np.asarray(template, dtype=np.float64)
    if template.ndim != 1 or template.size != noise.record_length:
        raise ValueError(
            f"template must be 1-D with {noise.record_length} samples, got {template.shape}"
        )
    if np.any(noise.psd[1:] <= 0) or not np.all(np.isfinite(noise.psd)):
        raise ValueError("noise PSD must be finite and > 0 at every frequency above DC")
    c = _bin_weights(noise.psd.size)
    inv_j = np.zeros_like(noise.psd)
    inv_j[1:] = 1.0 / noise.psd[1:]
    s = np.fft.rfft(template)
    h = s * inv_j
    if arrival_safe:
        d = np.fft.rfft(time_derivative(template))
        dd = np.sum(c * np.abs(d) ** 2 * inv_j)
        if dd > 0:
            h = (s - np.sum(c * np.real(np.conj(d) * s) * inv_j) / dd * d) * inv_j
    h[0] = 0.0
    w = np.fft.irfft(h, n=template.size)
    norm = w @ template
    if not np.isfinite(norm) or norm <= 0:
        raise ValueError("template has no signal outside DC that the filter can see")
    w /= norm
    return OptimalFilter(
        w,
        template,
        noise,
        np.sqrt(filter_variance(w, noise)),
        1.0 / np.sqrt(fisher_information(template, noise)),
    )


def learn_optimal_filter(
    pulse_records: np.ndarray,
    noise_records: np.ndarray,
    pretrigger: int,
    sample_rate_hz: float,
) -> tuple[AveragePulse, OptimalFilter]:
    """Average pulse of `pulse_records` and the optimal filter for it in `noise_records`."""
    avg = average_pulse(pulse_records, pretrigger, sample_rate_hz)
    return avg, optimal_filter(avg.template, noise_psd(noise_records, sample_rate_hz))
