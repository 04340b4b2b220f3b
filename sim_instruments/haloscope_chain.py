"""The haloscope's cavity, lossy amplification chain and input line, as every simulated
microwave instrument of one World sees them (VST, signal analyser, VNA).

The received noise is the cavity-emitted radiation through the chain of Eqs 5-9 (cables 1-3
with linear temperature profiles, circulator on the mixing plate, HEMT plate) at the current
temperatures of the World's thermal plant, times the chain's gain ripple r(f) and slow linear
drift; with every loss 1 and no ripple or drift it is the lossless model of Eqs 1-4 (Chang et
al. 2024). A reflection is Eq 2a through the input line, the circulator and the chain
(baseline, electrical delay), with the receiver's noise in its bandwidth on top. Every
instrument builds its own view from the same World parameters and named random streams, so
all of them see one chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryodaq.analysis.cavity import Cavity, Chain, line_reflection, reflection
from cryodaq.analysis.cavity_chain import ChainLosses, Temperatures, received_spectrum
from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.world import World

#: Cavity of the seed paper (Sec. IV.1) and its amplification chain (Sec. IV.2).
DEFAULT_CAVITY = {"kappa0_Hz": 432e3, "kappae_Hz": 149e3, "fc_Hz": 4.944458e9}
DEFAULT_CHAIN = {"gain_dB": 93.07, "added_noise_K": 5.28}
#: The rest of the chain: HEMT plate, gain ripple (rms over frequency, its longest period)
#: and gain drift (linear in virtual time).
DEFAULT_CHAIN_EXTRAS = {
    "hemt_K": 4.0,
    "ripple_percent": 0.3,
    "ripple_period_Hz": 6e6,
    "drift_percent_per_hour": 0.04,
}
#: Manufacturers' specifications quoted by the paper (A1, A2, A_cir) and a lossy cable 3.
DEFAULT_CABLES = {"A1": 0.96, "A2": 0.94, "A3": 0.9}
DEFAULT_CIRCULATOR = {"A": 0.96}
#: Relative periods of the ripple's sinusoids (times `ripple_period_Hz`) and their weights.
RIPPLE_PERIODS = (1.0, 0.43, 0.27)
RIPPLE_WEIGHTS = (1.0, 0.6, 0.35)
#: At most this many temperature samples are averaged over one capture.
MAX_THERMAL_SAMPLES = 200


class HaloscopeChain:
    """One instrument's view of the cavity, the chain and the input line of a World.

    World params: `cavity` {kappa0_Hz, kappae_Hz, fc_Hz}, `chain` {gain_dB, added_noise_K,
    hemt_K, ripple_percent, ripple_period_Hz, drift_percent_per_hour}, `cables` {A1, A2, A3}
    and `circulator` {A} (defaults: the seed paper's values and specs). The circulator sits on
    the thermal plant's mixing plate. The gain ripple is a seeded sum of sinusoids in absolute
    frequency scaled to `ripple_percent` rms; the drift is linear in the World's time.
    Instrument params: `attenuator_plate`, `cavity_plate` (plates of `world.thermal`, defaults
    "attenuator" and "cavity"), `input_attenuation_dB` from the source to the cavity,
    `line_phase_rad` and `delay_s` of the line seen in reflection, and `thermal_sample_s`, the
    spacing of the temperature samples averaged over a capture.
    """

    def __init__(self, world: World, name: str, params: Mapping[str, Any]) -> None:
        self.world = world
        cav = world.params.get("cavity") or {}
        chain = world.params.get("chain") or {}
        dc, dg, de = DEFAULT_CAVITY, DEFAULT_CHAIN, DEFAULT_CHAIN_EXTRAS
        self.cavity = Cavity(
            number(cav, "kappa0_Hz", dc["kappa0_Hz"], "world.cavity", 1e-3, 1e9),
            number(cav, "kappae_Hz", dc["kappae_Hz"], "world.cavity", 1e-3, 1e9),
            number(cav, "fc_Hz", dc["fc_Hz"], "world.cavity", 1e3, 1e12),
        )
        self.chain = Chain(
            number(chain, "gain_dB", dg["gain_dB"], "world.chain", -100.0, 250.0),
            number(chain, "added_noise_K", dg["added_noise_K"], "world.chain", 0.0, 1e5),
        )
        self.hemt_K = number(chain, "hemt_K", de["hemt_K"], "world.chain", 0.0, 400.0)
        self.ripple_percent = number(
            chain, "ripple_percent", de["ripple_percent"], "world.chain", 0.0, 50.0
        )
        self.ripple_period_Hz = number(
            chain, "ripple_period_Hz", de["ripple_period_Hz"], "world.chain", 1.0, 1e12
        )
        drift = number(chain, "drift_percent_per_hour", de["drift_percent_per_hour"],
                       "world.chain", -100.0, 100.0)  # fmt: skip
        self.drift_per_s = drift / 100.0 / 3600.0
        cables = world.params.get("cables") or {}
        circ = world.params.get("circulator") or {}
        dcab = DEFAULT_CABLES
        self.losses = ChainLosses(
            A1=number(cables, "A1", dcab["A1"], "world.cables", 1e-6, 1.0),
            A2=number(cables, "A2", dcab["A2"], "world.cables", 1e-6, 1.0),
            A3=number(cables, "A3", dcab["A3"], "world.cables", 1e-6, 1.0),
            A_cir=number(circ, "A", DEFAULT_CIRCULATOR["A"], "world.circulator", 1e-6, 1.0),
        )
        self._ripple_phases = world.rng("chain.ripple").uniform(
            0.0, 2.0 * math.pi, len(RIPPLE_PERIODS)
        )
        self._drift_origin_s = world.now()
        where = f"{name}.sim"
        self.attenuator_plate = self.plate(params, where, "attenuator_plate", "attenuator")
        self.cavity_plate = self.plate(params, where, "cavity_plate", "cavity")
        self.input_attenuation_dB = number(params, "input_attenuation_dB", 60.0, where, 0.0, 200.0)
        self.line_phase_rad = number(params, "line_phase_rad", 0.6, where, -math.pi, math.pi)
        self.delay_s = number(params, "delay_s", 45e-9, where, 0.0, 1e-5)
        self.thermal_sample_s = number(params, "thermal_sample_s", 1.0, where, 1e-3, 1e4)

    def plate(self, params: Mapping[str, Any], where: str, key: str, default: str) -> str:
        """The thermal plate `params[key]` names (or `default`); refuses unknown plates."""
        plate = str(params.get(key, default))
        names = self.world.thermal.names()
        if plate not in names:
            raise ValueError(
                f"{where}.{key}: no plate {plate!r} in world.thermal (plates: {', '.join(names)})"
            )
        return plate

    @property
    def line_baseline(self) -> complex:
        """Reflection far from resonance (phase at f = 0): input line attenuation times gain."""
        amplitude = math.sqrt(self.chain.gain * 10.0 ** (-self.input_attenuation_dB / 10.0))
        return amplitude * complex(math.cos(self.line_phase_rad), math.sin(self.line_phase_rad))

    def temperatures(self) -> Temperatures:
        """The chain's temperatures now: attenuator, cavity, mixing plate, HEMT."""
        thermal = self.world.thermal
        return Temperatures(
            thermal.temperature(self.attenuator_plate),
            thermal.temperature(self.cavity_plate),
            thermal.temperature("mixing"),
            self.hemt_K,
        )

    def gain_ripple(self, f: np.ndarray) -> np.ndarray:
        """r(f) = 1 + sum_k a_k sin(2 pi f / P_k + phi_k), rms `ripple_percent` over a period."""
        f = np.asarray(f, dtype=float)
        if self.ripple_percent == 0.0:
            return np.ones_like(f)
        weights = np.asarray(RIPPLE_WEIGHTS)
        amplitudes = weights * (self.ripple_percent / 100.0) * math.sqrt(2.0 / np.sum(weights**2))
        r = np.ones_like(f)
        for amp, rel, phase in zip(amplitudes, RIPPLE_PERIODS, self._ripple_phases, strict=True):
            r += amp * np.sin(2.0 * math.pi * f / (rel * self.ripple_period_Hz) + phase)
        return r

    def gain_drift(self) -> float:
        """Relative gain now: 1 + drift rate x time since the World started the model."""
        return 1.0 + self.drift_per_s * (self.world.now() - self._drift_origin_s)

    def varied(self, f: np.ndarray, power: np.ndarray) -> np.ndarray:
        """`power` times the chain's gain ripple at `f` and its drift now."""
        if self.ripple_percent == 0.0 and self.drift_per_s == 0.0:
            return power
        return power * self.gain_ripple(f) * self.gain_drift()

    def cavity_noise(self, f: np.ndarray, bin_Hz: float) -> np.ndarray:
        """Eqs 5-9: received cavity noise power (W) per bin at the plates' present
        temperatures, times the gain's ripple and drift."""
        power = received_spectrum(
            f, self.cavity, self.temperatures(), self.losses,
            self.chain.gain_dB, self.chain.added_noise_K, bin_Hz,
        )  # fmt: skip
        return self.varied(f, power)

    def tone_power(self, f: float, source_W: float) -> float:
        """Received power (W) of a CW tone reflected by the cavity."""
        s_r2 = abs(complex(reflection(f, self.cavity))) ** 2
        return source_W * abs(self.line_baseline) ** 2 * s_r2

    def noisy_reflection(
        self, f: np.ndarray, noise_W: np.ndarray, source_W: float, rng: np.random.Generator
    ) -> np.ndarray:
        """Eq 2a through the line, plus the receiver's noise `noise_W` (in its bandwidth)
        relative to the source: complex Gaussian, E|n|^2 = noise / source power."""
        s11 = line_reflection(f, self.cavity, self.line_baseline, self.delay_s)
        sigma = np.sqrt(noise_W / (2.0 * source_W))
        return s11 + sigma * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))

    def capture(self, duration_s: float, f: np.ndarray, bin_Hz: float) -> Capture:
        """A capture of `duration_s` starting now, its temperatures sampled every
        `thermal_sample_s` (at most `MAX_THERMAL_SAMPLES` times)."""
        steps = int(min(MAX_THERMAL_SAMPLES, max(1, math.ceil(duration_s / self.thermal_sample_s))))
        return Capture(self.world.now(), duration_s, f, bin_Hz, steps, sum_W=np.zeros(f.size))


@dataclass
class Capture:
    """A capture in progress; survives a real-time wait (NotYet) between its steps."""

    start_s: float
    duration_s: float
    f: np.ndarray
    bin_Hz: float
    steps: int
    done: int = 0
    sum_W: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def mean_power(
        self, world: World, power: Callable[[np.ndarray, float], np.ndarray]
    ) -> np.ndarray:
        """The mean of `power(f, bin)` over the capture, waiting on the World's clock."""
        while self.done < self.steps:  # resumes here after a real-time wait (NotYet)
            world.reach(self.start_s + self.duration_s * (self.done + 1) / self.steps)
            self.sum_W += power(self.f, self.bin_Hz)
            self.done += 1
        return self.sum_W / self.steps


def radiometer_draw(rng: np.random.Generator, mean_W: np.ndarray, averages: float) -> np.ndarray:
    """`averages` averaged periodograms of noise of mean `mean_W`: Gamma-distributed, relative
    sigma 1/sqrt(averages) (Gaussian for many averages, never negative)."""
    return rng.gamma(averages, mean_W / averages)
