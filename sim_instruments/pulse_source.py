"""A microcalorimeter's flux signal: Poisson-arriving pulses of a configured energy spectrum on
white plus 1/f noise, generated block by block with no seam at block boundaries."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from cryodaq.analysis.pulse_shapes import peak_norm, two_exponential
from cryodaq.sim_instruments.noise import ColoredNoise
from cryodaq.sim_instruments.params import number

#: A pulse is followed for this many decay times, then dropped (residual < 1e-5 of its height).
TAIL_DECAYS = 12.0
#: How many generated pulses are remembered as truth.
HISTORY_LENGTH = 100_000


#: Pulse samples are computed exactly every this many samples and by recurrence in between.
ANCHOR_SAMPLES = 64


@numba.njit(cache=True, nogil=True)
def add_pulse(out, t0, rate, time, height, rise, decay):  # pragma: no cover - numba
    """Add one pulse of peak `height` arriving at `time` to out[i], sampled at t0 + i / rate,
    for TAIL_DECAYS decay times. Each exponential is evaluated exactly every ANCHOR_SAMPLES
    samples and by multiplication in between (relative error ~1e-14); a rise term below 1e-17
    is dropped (no denormals)."""
    n = out.shape[0]
    span = int(TAIL_DECAYS * decay * rate) + 1
    step_d = math.exp(-1.0 / (rate * decay))
    step_r = math.exp(-1.0 / (rate * rise))
    arrival = int(np.ceil((time - t0) * rate))
    last = min(n, arrival + span)  # the tail ends span samples after arrival, in any block
    scale = height / peak_norm(rise, decay)
    for i in range(max(arrival, 0), last, ANCHOR_SAMPLES):
        dt = t0 + i / rate - time
        out[i] += scale * two_exponential(dt, rise, decay)
        ed = scale * math.exp(-dt / decay)
        er = scale * math.exp(-dt / rise) if dt < 40.0 * rise else 0.0
        for j in range(i + 1, min(last, i + ANCHOR_SAMPLES)):
            ed *= step_d
            er *= step_r
            out[j] += ed - er


@numba.njit(cache=True, nogil=True)
def _add_pulses(out, t0, rate, times, heights, rise, decay):  # pragma: no cover - numba
    """Add the pulses arriving at `times` (shape `rise`, `decay`) to out (see `add_pulse`)."""
    for p in range(times.shape[0]):
        add_pulse(out, t0, rate, times[p], heights[p], rise, decay)


@dataclass(frozen=True)
class EnergySpectrum:
    """Lines (energy, relative weight, Gaussian FWHM) plus an optional flat continuum."""

    energies_eV: np.ndarray
    weights: np.ndarray
    fwhm_eV: np.ndarray
    continuum: tuple[float, float, float] | None  # (from_eV, to_eV, weight)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str) -> EnergySpectrum:
        lines = params.get("lines") or []
        rows = []
        for i, line in enumerate(lines):
            w = f"{where}.lines[{i}]"
            rows.append(
                (
                    number(line, "energy_eV", 0.0, w, 1e-3),
                    number(line, "weight", 1.0, w, 0.0),
                    number(line, "fwhm_eV", 0.0, w, 0.0),
                )
            )
        cont = params.get("continuum")
        continuum = None
        if cont:
            lo = number(cont, "from_eV", 100.0, f"{where}.continuum", 0.0)
            hi = number(cont, "to_eV", 10000.0, f"{where}.continuum", lo)
            continuum = (lo, hi, number(cont, "weight", 1.0, f"{where}.continuum", 0.0))
        if not rows and continuum is None:
            rows = [(5898.75, 1.0, 0.0)]  # Mn Ka, the usual calibration line
        arr = np.array(rows, dtype=float).reshape(-1, 3)
        return cls(arr[:, 0], arr[:, 1], arr[:, 2], continuum)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` energies (eV) drawn from the spectrum."""
        weights = list(self.weights) + ([self.continuum[2]] if self.continuum else [])
        p = np.asarray(weights, dtype=float)
        if p.sum() <= 0:
            raise ValueError("energy spectrum has zero total weight")
        which = rng.choice(p.size, size=n, p=p / p.sum())
        out = np.empty(n)
        is_line = which < self.energies_eV.size
        idx = which[is_line]
        sigma = self.fwhm_eV[idx] / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        out[is_line] = self.energies_eV[idx] + sigma * rng.standard_normal(idx.size)
        if self.continuum is not None:
            lo, hi, _ = self.continuum
            out[~is_line] = rng.uniform(lo, hi, size=int((~is_line).sum()))
        return out


class PulseSource:
    """Flux (in Phi0) through one SQUID from one detector: pulses of height `phi0_per_eV * E`,
    two-exponential shape (`rise_s`, `decay_s`), Poisson arrivals at `rate_hz`, on noise of
    density `noise_phi0_per_rthz` with a 1/f knee at `noise_knee_hz`."""

    def __init__(self, params: Mapping[str, Any], rng: np.random.Generator, where: str) -> None:
        self.rate_hz = number(params, "rate_hz", 1.0, where, 0.0)
        self.rise_s = number(params, "rise_s", 10e-6, where, 1e-9)
        self.decay_s = number(params, "decay_s", 3e-3, where, 1e-9)
        if not self.rise_s < self.decay_s:
            raise ValueError(
                f"{where}: rise_s ({self.rise_s:g}) must be < decay_s ({self.decay_s:g})"
            )
        self.phi0_per_eV = number(params, "phi0_per_eV", 1e-5, where, 0.0)
        self.noise_density = number(params, "noise_phi0_per_rthz", 1e-6, where, 0.0)
        self.noise_knee_hz = number(params, "noise_knee_hz", 0.0, where, 0.0)
        self.spectrum = EnergySpectrum.from_params(params, where)
        self._rng_events, self._rng_noise = rng.spawn(2)
        self._noise: ColoredNoise | None = None
        self._next_t: float | None = None
        self._times = np.zeros(0)
        self._heights = np.zeros(0)
        #: Recent pulses generated, (arrival time s, energy eV): the truth for tests.
        self.history: deque[tuple[float, float]] = deque(maxlen=HISTORY_LENGTH)

    def _noise_at(self, rate_hz: float) -> ColoredNoise:
        if self._noise is None or self._noise.rate_hz != rate_hz:
            self._noise = ColoredNoise(
                self.noise_density, self.noise_knee_hz, rate_hz, self._rng_noise
            )
        return self._noise

    def _arrivals_until(self, t_end: float, t_start: float) -> None:
        if self.rate_hz <= 0:
            return
        if self._next_t is None or self._next_t < t_start - TAIL_DECAYS * self.decay_s:
            self._next_t = t_start + self._rng_events.exponential(1.0 / self.rate_hz)
        times, energies = [], []
        while self._next_t < t_end:
            # One arrival, then its energy: the random stream does not depend on block sizes.
            times.append(self._next_t)
            energies.append(self.spectrum.sample(self._rng_events, 1)[0])
            self._next_t += self._rng_events.exponential(1.0 / self.rate_hz)
        if times:
            self.history.extend(zip(times, energies, strict=True))
            self._times = np.concatenate([self._times, times])
            self._heights = np.concatenate([self._heights, np.array(energies) * self.phi0_per_eV])

    def white_sigma(self, rate_hz: float) -> float:
        """Rms (Phi0) of the white part of the noise per sample at `rate_hz`."""
        return self._noise_at(rate_hz)._sigma_white

    def block(
        self,
        t0: float,
        n: int,
        rate_hz: float,
        white: np.random.Generator | None = None,
        white_sigma: float | None = None,
    ) -> np.ndarray:
        """Flux (Phi0) at times t0 + i / rate_hz, i < n; consecutive blocks join seamlessly.
        With `white` and `white_sigma`, the white noise is `white_sigma` times normals of
        `white` instead (see `ColoredNoise.block`)."""
        t_end = t0 + n / rate_hz
        self._arrivals_until(t_end, t0)
        keep = self._times > t0 - TAIL_DECAYS * self.decay_s
        self._times, self._heights = self._times[keep], self._heights[keep]
        out = self._noise_at(rate_hz).block(n, white, white_sigma)
        if self._times.size:
            _add_pulses(out, t0, rate_hz, self._times, self._heights, self.rise_s, self.decay_s)
        return out


def detector_source(
    world_params: Mapping[str, Any], kind: str, rng: np.random.Generator
) -> PulseSource:
    """A `PulseSource` for detector `kind` of `world.detectors`."""
    detectors = world_params.get("detectors") or {}
    if kind not in detectors:
        known = ", ".join(sorted(detectors)) or "none"
        raise ValueError(f"world.detectors has no {kind!r} (defined: {known})")
    return PulseSource(detectors[kind] or {}, rng, f"world.detectors.{kind}")
