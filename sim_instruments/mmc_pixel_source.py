"""One thermodynamic MMC pixel behind one SQUID: a `world.detectors` entry with `model: mmc`
(the quickstart's rig, `config/rigs/mmc_simple_sim.yaml`).

The pixel is the model of `cryodaq.analysis.mmc_thermo` built from the entry's physical keys
(`cryodaq.sim_instruments.mmc_pixels`; one pixel per channel, its spreads drawn per channel),
running at the temperature of the thermal plate `plate` (default `detector`, the one the
temperature controller regulates; `temperature_K` without a World). Photons arrive as a
Poisson process at `rate_hz` with the energy spectrum of `lines` / `continuum` (as
`PulseSource`), are photoabsorbed with the probability the absorber's thickness of Au gives
(`cryodaq.analysis.am241_lines.au_photoabsorption`, xraydb), lose the athermal fraction of
their hit position and give the model's pulse at the plate temperature of that moment. The
noise is the model's: thermodynamic fluctuations, Er 1/f and the two-stage SQUID's white and
1/f noise (`mmc_render`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cryodaq.analysis.am241_lines import au_photoabsorption
from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.mmc_pixels import PixelModel
from cryodaq.sim_instruments.mmc_render import ChannelNoise, NoiseSections, add_terms
from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.pulse_source import HISTORY_LENGTH, TAIL_DECAYS, EnergySpectrum

if TYPE_CHECKING:
    from cryodaq.sim_instruments.world import World


class MmcPixelSource:
    """Flux (Phi_0) of one MMC pixel at its SQUID; a source for `squid_model`."""

    def __init__(self, params: Mapping[str, Any], rng: np.random.Generator, where: str,
                 world: World | None = None) -> None:
        self.rate_hz = number(params, "rate_hz", 1.0, where, 0.0)
        self.spectrum = EnergySpectrum.from_params(params, where)
        self.world = world
        self.plate = str(params.get("plate", "detector"))
        self.fixed_K = number(params, "temperature_K", 0.020, where, 1e-4, 10.0)
        if world is not None:
            world.thermal.temperature(self.plate)  # a wrong plate name fails here, named
        rng_pixel, self._rng_events, self._rng_noise, state_rng = rng.spawn(4)
        self.model = PixelModel(params, where, 1, rng_pixel)
        self.thickness_um = float(self.model.design.absorber_thickness_m[0]) * 1e6
        self._state = ziggurat.new_state(state_rng)
        self._spare = np.zeros(1)
        self._noise = ChannelNoise(self._rng_noise)
        self._buf = np.zeros(0)
        self._terms = np.zeros((5, 0))
        self._next_t: float | None = None
        #: Recent photons absorbed, (arrival time s, energy eV): the truth for tests.
        self.history: deque[tuple[float, float]] = deque(maxlen=HISTORY_LENGTH)

    def temperature(self) -> float:
        """The pixel's temperature now (K): its plate's, or `temperature_K`."""
        if self.world is None:
            return self.fixed_K
        return float(self.world.thermal.temperature(self.plate))

    @property
    def white_density(self) -> float:
        return self.model.readout.white_phi0_per_rthz

    def white_sigma(self, rate_hz: float) -> float:
        """Rms (Phi_0) per sample of the SQUIDs' white noise at `rate_hz`."""
        return self.white_density * math.sqrt(rate_hz / 2.0)

    def _arrivals_until(self, t_end: float, t_start: float) -> None:
        if self.rate_hz <= 0:
            return
        if self._next_t is None or self._next_t < t_start - 1.0:
            self._next_t = t_start + self._rng_events.exponential(1.0 / self.rate_hz)
        times, energies = [], []
        while self._next_t < t_end:
            # one arrival, its energy, absorption and hit position: the random stream does
            # not depend on block sizes
            e = float(self.spectrum.sample(self._rng_events, 1)[0])
            absorbed, position = self._rng_events.random(2)
            if absorbed < float(au_photoabsorption(e, self.thickness_um)[0]):
                times.append(self._next_t)
                energies.append((e, position))
            self._next_t += self._rng_events.exponential(1.0 / self.rate_hz)
        if not times:
            return
        e, u = np.array(energies).T
        chip = np.full(e.size, self.temperature())
        height, rise, decay = self.model.absorber_hits(np.zeros(e.size, np.int64), e, chip, u)
        self.history.extend(zip(times, e, strict=True))
        terms = np.array([times, height, rise, decay, np.zeros(e.size)])
        self._terms = np.concatenate([self._terms, terms], axis=1)

    def _sections(self, rate_hz: float) -> NoiseSections:
        t = self.temperature()
        return self._noise.at(rate_hz, t, lambda: self.model.channel_noise([0], t))

    def _render(self, out: np.ndarray, t0: float, rate: float,
                sigma: Callable[[float], float] | None, scale: float) -> None:
        n = out.shape[0]
        t_end = t0 + n / rate
        self._arrivals_until(t_end, t0)
        if self._buf.size < n:
            self._buf = np.zeros(n)
        buf = self._buf[:n]
        lo = hi = 0
        if self._terms.shape[1]:
            ended, lo, hi = add_terms(buf, t0, rate, self._terms)
            if ended > 64:
                over = self._terms[0] + TAIL_DECAYS * self._terms[3] <= t_end
                self._terms = np.ascontiguousarray(self._terms[:, ~over])
        noise = self._sections(rate)
        own = noise.white_sigma()
        noise.set_white(own if sigma is None else sigma(own))
        noise.render(out, buf, lo, hi, self._state, self._spare, self._noise.phase, scale)
        self._noise.phase += n

    def block(self, t0: float, n: int, rate_hz: float, white: np.random.Generator | None = None,
              white_sigma: float | None = None) -> np.ndarray:
        """Flux (Phi_0) at t0 + i / rate_hz; `white_sigma`: a caller's merged white noise of
        at least that rms replaces the channel's own (`white` is not used: one stream)."""
        out = np.empty(n)
        merged = None if white_sigma is None else (lambda own: max(own, white_sigma))
        self._render(out, t0, rate_hz, merged, 1.0)
        return out

    def codes(self, t0: float, n: int, rate_hz: float, codes_per_phi0: float,
              electronics_phi0: float, out: np.ndarray) -> None:
        """ADC codes (int16 `out`) through a locked FLL and an ADC in one pass (as
        `MmcChannel.codes`)."""
        q2 = 1.0 / (12.0 * codes_per_phi0**2)
        self._render(out, t0, rate_hz,
                     lambda own: math.sqrt(max(own**2 - q2, electronics_phi0**2)),
                     codes_per_phi0)

    def predictions(self) -> dict[str, float]:
        """The model at the pixel's temperature now: rise_s, decay_s, phi0_per_eV,
        gain_per_K, baseline_fwhm_eV (optimal-filter limit, infinite record)."""
        from cryodaq.analysis import mmc_thermo as thermo

        t = self.temperature()
        r = self.model.response(t)
        return {
            "temperature_K": t,
            "rise_s": float(r.rise_s[0]),
            "decay_s": float(r.decay_s[0]),
            "phi0_per_eV": float(r.phi0_per_eV[0]),
            "gain_per_K": float(thermo.gain_per_K(self.model.design, t)[0]),
            "baseline_fwhm_eV": self.model.baseline_fwhm_eV(0, [0], t),
        }
