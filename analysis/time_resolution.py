"""Time resolution of a pulse detector: how close two pulses may arrive and still be told apart
(pile-up), with a Wiener (deconvolution) filter, and the unresolved pile-up fraction.

Wiener filter: for records x = a (s * d) + n, d a train of unit impulses at the arrivals, s
the pulse per unit amplitude starting at t = 0 and n noise of one-sided PSD J, the linear
estimate of a d with least mean-square error has DFT bins
G_k = conj(S_k) / (|S_k|^2 + <|N_k|^2> / a^2), <|N_k|^2> = J_k L fs / 2.
It turns each pulse into a narrow spike at its arrival, as narrow as the signal-to-noise ratio
at high frequencies allows (the rise time and the sampling rate set where that runs out).

Resolving pairs (Monte Carlo on the measured noise): two pulses of equal amplitude a with
arrivals `separation` apart (the first at a random phase within a sample) are added to noise
records; the Wiener output is searched for peaks above half a single pulse's spike. A record
holds two resolved pulses when its second most prominent such peak stands out by more than
the prominence that 1 % of single-pulse records reach by noise alone. The time resolution
tau_R is the separation at which half of the pairs are resolved (interpolated), and the
unresolved pile-up fraction is f_pp ~ A tau_R for an activity A per detector (HOLMES).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from cryodaq.analysis.optimal_filter import NoiseSpectrum, noise_psd

#: Fraction of single pulses allowed to look like two (sets the prominence threshold).
FALSE_PAIR_FRACTION = 0.01
#: The Wiener output is searched for peaks between the samples too, on this finer grid.
OVERSAMPLE = 4
#: Peaks are searched from this many samples before the first arrival to after the last.
SEARCH_SAMPLES = 6


@dataclass(frozen=True)
class WienerFilter:
    """DFT-domain gain of the Wiener deconvolution filter for records of `length` samples."""

    gain: np.ndarray
    length: int

    def apply(self, records: np.ndarray, oversample: int = 1) -> np.ndarray:
        """Filtered records (n, L * oversample): spikes at the pulse arrivals (DC removed),
        band-limited interpolation between the samples when `oversample` > 1."""
        x = np.asarray(records, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.length:
            raise ValueError(f"records must be (n, {self.length}), got shape {x.shape}")
        if oversample < 1:
            raise ValueError(f"oversample must be >= 1, got {oversample}")
        spectrum = np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1) * self.gain
        if oversample > 1:
            spectrum[:, -1] *= 0.5  # the Nyquist bin splits between +-fs/2
        n = self.length * oversample
        return oversample * np.fft.irfft(spectrum, n=n, axis=1)


def wiener_filter(pulse: np.ndarray, noise: NoiseSpectrum, amplitude: float) -> WienerFilter:
    """The Wiener filter for pulses `amplitude * pulse` (pulse sampled from its arrival at
    sample 0, as long as the noise records) in `noise` (see module docstring)."""
    s = np.asarray(pulse, dtype=np.float64)
    if s.ndim != 1 or s.size != noise.record_length:
        raise ValueError(f"pulse must be 1-D with {noise.record_length} samples, got {s.shape}")
    if not amplitude > 0:
        raise ValueError(f"amplitude must be > 0, got {amplitude}")
    spec = np.fft.rfft(s)
    noise_power = noise.psd * s.size * noise.sample_rate_hz / 2.0
    gain = np.conj(spec) / (np.abs(spec) ** 2 + noise_power / amplitude**2)
    gain[0] = 0.0
    return WienerFilter(gain, s.size)


def second_prominence(filtered: np.ndarray, height: float) -> np.ndarray:
    """Per filtered record, the prominence of its second most prominent peak above `height`
    (0 where it has fewer than two)."""
    out = np.zeros(filtered.shape[0])
    for i, y in enumerate(filtered):
        _, props = find_peaks(y, height=height, prominence=0.0)
        prom = np.sort(props["prominences"])
        if prom.size >= 2:
            out[i] = prom[-2]
    return out


@dataclass(frozen=True)
class PairResolution:
    """Fraction of equal-amplitude pairs resolved at each separation, and tau_R."""

    separations_s: np.ndarray
    resolved: np.ndarray  # fraction per separation
    n_pairs: int
    false_pairs: float  # fraction of single pulses seen as two (by construction ~1 %)
    prominence: float  # threshold on the second peak's prominence (filter output units)
    spike: float  # spike of a single noiseless pulse (filter output units)
    time_resolution_s: float  # separation where half are resolved (nan: never)


def half_point(x: np.ndarray, y: np.ndarray) -> float:
    """First x where y (fractions) reaches 0.5, linearly interpolated; nan if it never does."""
    above = np.flatnonzero(y >= 0.5)
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (0.5 - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1]))


def pulses_in_noise(
    pulse: Callable[[np.ndarray], np.ndarray], amplitude: float, noise: np.ndarray,
    sample_rate_hz: float, pretrigger: int, n: int, rng: np.random.Generator,
    separation_s: float | None = None,
) -> np.ndarray:
    """`n` records: noise records (n, L) drawn with replacement plus one pulse of `amplitude`
    arriving at `pretrigger` and a uniform phase within a sample (two, `separation_s` apart)."""
    t = np.arange(noise.shape[1]) / sample_rate_hz
    phase = (pretrigger + rng.uniform(0.0, 1.0, n)) / sample_rate_hz
    x = noise[rng.integers(0, noise.shape[0], n)].copy()
    x += amplitude * pulse(t[None, :] - phase[:, None])
    if separation_s is not None:
        x += amplitude * pulse(t[None, :] - phase[:, None] - separation_s)
    return x


def pair_resolution(
    pulse: Callable[[np.ndarray], np.ndarray],
    amplitude: float,
    noise_records: np.ndarray,
    sample_rate_hz: float,
    pretrigger: int,
    separations_s: np.ndarray,
    *,
    n_pairs: int = 200,
    rng: np.random.Generator | None = None,
) -> PairResolution:
    """Monte Carlo of pile-up pairs on the measured noise (see module docstring).

    `pulse(t_s)`: the detector's pulse per unit amplitude at times from its arrival (0 before);
    `noise_records` (n, L): clean noise records, drawn with replacement as the background of
    each simulated record; pulses arrive at `pretrigger` plus a uniform phase in one sample.
    """
    rng = rng or np.random.default_rng(0)
    noise_x = np.asarray(noise_records, dtype=np.float64)
    n_noise, length = noise_x.shape
    if n_noise < 2 or not 1 <= pretrigger < length:
        raise ValueError(f"need >= 2 noise records and 1 <= pretrigger < {length}")
    dt = 1.0 / sample_rate_hz
    t = np.arange(length) * dt
    noise = noise_psd(noise_x, sample_rate_hz)
    filt = wiener_filter(pulse(t), noise, amplitude)

    def second(sep: float | None, height: float) -> np.ndarray:
        """Second prominences in the filtered records of singles (sep None) or pairs, searched
        from a few samples before the first arrival to a few after the second."""
        x = pulses_in_noise(pulse, amplitude, noise_x, sample_rate_hz, pretrigger, n_pairs, rng,
                            sep)
        y = filt.apply(x, OVERSAMPLE)
        lo = (pretrigger - SEARCH_SAMPLES) * OVERSAMPLE
        hi = int((pretrigger + (sep or 0.0) / dt + SEARCH_SAMPLES + 1) * OVERSAMPLE)
        return second_prominence(y[:, max(lo, 0) : min(hi, y.shape[1])], height)

    spike = float(filt.apply(amplitude * pulse(t - pretrigger * dt)[None, :], OVERSAMPLE).max())
    threshold = float(np.quantile(second(None, 0.5 * spike), 1.0 - FALSE_PAIR_FRACTION))
    threshold = max(threshold, 1e-12 * spike)
    false = float(np.mean(second(None, 0.5 * spike) > threshold))
    seps = np.asarray(separations_s, dtype=np.float64)
    frac = np.array([np.mean(second(s, 0.5 * spike) > threshold) for s in seps])
    return PairResolution(seps, frac, n_pairs, false, threshold, spike, half_point(seps, frac))


def pileup_fraction(activity_bq: float, time_resolution_s: float) -> float:
    """Unresolved pile-up fraction f_pp ~ A tau_R (HOLMES; valid while it is << 1)."""
    if not activity_bq >= 0 or not time_resolution_s >= 0:
        raise ValueError(
            f"activity_bq and time_resolution_s must be >= 0, got {activity_bq}, "
            f"{time_resolution_s}"
        )
    return float(activity_bq * time_resolution_s)
