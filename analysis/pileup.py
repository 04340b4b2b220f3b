"""Pile-up of 163Ho decays in one detector: the spectrum of unresolved pairs, and flagging the
pairs a record's pulse shape resolves.

Unresolved pairs (REFERENCE.md section 10): two decays closer than the time resolution tau_R
are recorded as one event of energy E1 + E2 (seed paper), so their spectrum is the
self-convolution of the single-decay spectrum, normalised to one (`pileup_density`; triples,
f_pp times rarer, with the three-fold one); a fraction f_pp ~ A tau_R of the recorded events
are such pile-up. Above Q only they (and background) live.

Resolved pairs: the Wiener filter of `cryodaq.analysis.time_resolution` turns each pulse of a
record into a spike at its arrival; a record is flagged when its second most prominent spike
(above `height`) stands out by more than what `FALSE_FLAG_FRACTION` of single pulses reach by
noise alone (`learn_pileup_flag`, on the detector's average pulse and measured noise). The
separation at which half of the equal-energy pairs get flagged is this flag's tau_R
(`flag_time_resolution`), so what is flagged and what is left unresolved come from one rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from cryodaq.analysis.ho163 import HO163_LINES, Q_EV, HoLine, ho163_density_m2
from cryodaq.analysis.optimal_filter import noise_psd
from cryodaq.analysis.time_resolution import (
    OVERSAMPLE,
    SEARCH_SAMPLES,
    WienerFilter,
    half_point,
    pulses_in_noise,
    second_prominence,
    wiener_filter,
)

#: Fraction of single pulses a flag may call pile-up (sets its threshold).
FALSE_FLAG_FRACTION = 0.01
#: Second spikes are looked for, and must stand out by, at least this share of the spike of
#: a pulse at the reference energy (pairs of Q/2: ~350 eV).
SPIKE_FRACTION = 0.25
#: Grid step (eV) of the self-convolution.
PILEUP_STEP_EV = 0.5


def _single(q_eV: float, m2_eV2: float, lines: tuple[HoLine, ...],
            step_eV: float) -> np.ndarray:
    grid = np.arange(0.0, q_eV + step_eV, step_eV)
    single = ho163_density_m2(grid, q_eV, m2_eV2, lines)
    total = single.sum() * step_eV
    return single / total if total > 0 else single  # m^2 beyond every (Q - E)^2: nothing


def pair_density(q_eV: float = Q_EV, m2_eV2: float = 0.0,
                 lines: tuple[HoLine, ...] = HO163_LINES, step_eV: float = PILEUP_STEP_EV
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(energy grid 0 .. 2 Q, density per eV normalised to one) of E1 + E2 for two decays of
    the spectrum at Q and m_nu^2 (a large m_nu lowers the lines near Q, M1 by its phase
    space)."""
    single = _single(q_eV, m2_eV2, lines, step_eV)
    pair = np.clip(fftconvolve(single, single), 0.0, None)
    total = pair.sum() * step_eV
    return np.arange(pair.size) * step_eV, pair / total if total > 0 else pair


def triple_density(q_eV: float = Q_EV, m2_eV2: float = 0.0,
                   lines: tuple[HoLine, ...] = HO163_LINES, step_eV: float = PILEUP_STEP_EV
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(energy grid 0 .. 3 Q, density per eV normalised to one) of E1 + E2 + E3."""
    single = _single(q_eV, m2_eV2, lines, step_eV)
    _, pair = pair_density(q_eV, m2_eV2, lines, step_eV)
    triple = np.clip(fftconvolve(pair, single), 0.0, None)
    total = triple.sum() * step_eV
    return np.arange(triple.size) * step_eV, triple / total if total > 0 else triple


def pileup_density(q_eV: float = Q_EV, lines: tuple[HoLine, ...] = HO163_LINES,
                   step_eV: float = PILEUP_STEP_EV, fraction: float = 0.0, m2_eV2: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(energy grid 0 .. 3 Q, density per eV normalised to one) of the unresolved pile-up
    events: pairs (`pair_density`) and, for a pile-up `fraction` f, triples in the ratio
    f : 1 (each further decay within tau_R comes with the same probability f)."""
    if not 0.0 <= fraction < 0.5:
        raise ValueError(f"pile-up fraction must be in [0, 0.5), got {fraction}")
    _, pair = pair_density(q_eV, m2_eV2, lines, step_eV)
    grid, triple = triple_density(q_eV, m2_eV2, lines, step_eV)
    total = fraction * triple
    total[: pair.size] += pair
    return grid, total / (1.0 + fraction)


@dataclass(frozen=True)
class PileupFlag:
    """Flags records holding two resolved pulses (see module docstring)."""

    wiener: WienerFilter
    pretrigger: int
    height: float  # spikes below this are not searched (filter output units)
    prominence: float  # second-spike prominence above which a record is flagged
    spike: float  # spike of one noiseless reference pulse

    def second(self, records: np.ndarray, window: int | None = None) -> np.ndarray:
        """Second-spike prominence per record, searched from a few samples before the
        pretrigger to `window` samples after it (default: the record's end)."""
        y = self.wiener.apply(records, OVERSAMPLE)
        lo = max((self.pretrigger - SEARCH_SAMPLES) * OVERSAMPLE, 0)
        hi = y.shape[1] if window is None else min(
            (self.pretrigger + window + SEARCH_SAMPLES) * OVERSAMPLE, y.shape[1])
        return second_prominence(y[:, lo:hi], self.height)

    def apply(self, records: np.ndarray, window: int | None = None) -> np.ndarray:
        """True for each record (n, L) flagged as two resolved pulses."""
        return self.second(records, window) > self.prominence


def learn_pileup_flag(pulse: Callable[[np.ndarray], np.ndarray], amplitude: float,
                      noise_records: np.ndarray, sample_rate_hz: float, pretrigger: int,
                      *, n_singles: int = 400, rng: np.random.Generator | None = None
                      ) -> PileupFlag:
    """The flag for pulses `amplitude * pulse(t)` (the reference energy) in the measured noise:
    spikes searched above `SPIKE_FRACTION` of the reference pulse's (and 5 rms of the filtered
    noise); the threshold the second prominence of single pulses exceeds with probability
    `FALSE_FLAG_FRACTION`, at least `SPIKE_FRACTION` of the reference spike (a pair's ripple
    is not a second pulse)."""
    rng = rng or np.random.default_rng(0)
    noise = np.asarray(noise_records, dtype=np.float64)
    if noise.ndim != 2 or noise.shape[0] < 2 or not 1 <= pretrigger < noise.shape[1]:
        raise ValueError(f"need >= 2 noise records (n, L) and 1 <= pretrigger < L, got "
                         f"{noise.shape} and {pretrigger}")
    t = np.arange(noise.shape[1]) / sample_rate_hz
    wiener = wiener_filter(pulse(t), noise_psd(noise, sample_rate_hz), amplitude)
    spike = float(wiener.apply(amplitude * pulse(t - pretrigger / sample_rate_hz)[None, :],
                               OVERSAMPLE).max())
    height = max(5.0 * float(np.std(wiener.apply(noise, OVERSAMPLE))), SPIKE_FRACTION * spike)
    flag = PileupFlag(wiener, pretrigger, height, 0.0, spike)
    singles = pulses_in_noise(pulse, amplitude, noise, sample_rate_hz, pretrigger, n_singles, rng)
    threshold = float(np.quantile(flag.second(singles), 1.0 - FALSE_FLAG_FRACTION))
    return PileupFlag(wiener, pretrigger, height, max(threshold, SPIKE_FRACTION * spike), spike)


@dataclass(frozen=True)
class FlagResolution:
    """Fraction of equal-amplitude pairs flagged at each separation, and the flag's tau_R."""

    separations_s: np.ndarray
    flagged: np.ndarray
    false_flags: float  # fraction of single pulses flagged
    time_resolution_s: float  # separation where half are flagged (nan: never)


def flag_time_resolution(flag: PileupFlag, pulse: Callable[[np.ndarray], np.ndarray],
                         amplitude: float, noise_records: np.ndarray, sample_rate_hz: float,
                         separations_s: np.ndarray, *, n_pairs: int = 100,
                         rng: np.random.Generator | None = None) -> FlagResolution:
    """Monte Carlo of equal-amplitude pairs on the measured noise through `flag`."""
    rng = rng or np.random.default_rng(1)
    noise = np.asarray(noise_records, dtype=np.float64)
    pre = flag.pretrigger
    seps = np.asarray(separations_s, dtype=np.float64)
    singles = pulses_in_noise(pulse, amplitude, noise, sample_rate_hz, pre, n_pairs, rng)
    false = float(np.mean(flag.apply(singles)))
    frac = np.array([
        np.mean(flag.apply(pulses_in_noise(pulse, amplitude, noise, sample_rate_hz, pre,
                                           n_pairs, rng, float(s))))
        for s in seps
    ])
    return FlagResolution(seps, frac, false, half_point(seps, frac))
