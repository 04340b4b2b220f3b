"""Physics behind the simulated vector signal transceiver (VST) of a haloscope chain.

The VST looks through a cryogenic amplification chain at a microwave cavity whose antenna
also sees the noise of an attenuator (Chang et al. 2024, Fig. 1b). Its power spectrum is the
cavity-emitted radiation through the lossy chain of Eqs 5-9 (cables 1-3 with linear
temperature profiles, circulator on the mixing plate, HEMT plate) at the current temperatures
of the World's thermal plant, times the chain's gain ripple r(f) and slow linear drift; with
every loss 1 and no ripple or drift it is the lossless model of Eqs 1-4. Its reflection sweep
is Eq 2a seen through the input line, the circulator and the chain (baseline, electrical
delay), with the receiver's noise on top. A capture takes its integration time on the World's clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryodaq.analysis.cavity import Cavity, Chain, line_reflection, reflection
from cryodaq.analysis.cavity_chain import (
    ChainLosses,
    Temperatures,
    load_spectrum,
    received_spectrum,
)
from cryodaq.sim_instruments.blocks import array_block
from cryodaq.sim_instruments.device import Handler, SCPIError
from cryodaq.sim_instruments.model import SimModel
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
#: Cryogenic switch of the Y-factor configuration (Fig. 1a): relative transmission of the load's
#: path, heat (J) dissipated per actuation into the switch's plate.
DEFAULT_SWITCH = {"path_A": 1.0, "heat_J": 0.0}
SWITCH_POSITIONS = ("CAVITY", "LOAD")
#: Relative periods of the ripple's sinusoids (times `ripple_period_Hz`) and their weights.
RIPPLE_PERIODS = (1.0, 0.43, 0.27)
RIPPLE_WEIGHTS = (1.0, 0.6, 0.35)
#: Frequency coverage of the instrument and the largest spectrum one capture returns.
F_MIN_HZ, F_MAX_HZ = 9e3, 6e9
MAX_BINS = 1 << 20
#: At most this many temperature samples are averaged over one capture.
MAX_THERMAL_SAMPLES = 200


@dataclass
class _Capture:
    """A spectrum capture in progress; survives a real-time wait (NotYet) between its steps."""

    start_s: float
    integration_s: float
    f: np.ndarray
    bin_Hz: float
    steps: int
    tone_bin: int = -1
    tone_W: float = 0.0
    done: int = 0
    sum_W: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class _Sweep:
    """An S11 sweep in progress."""

    start_s: float
    f: np.ndarray
    rbw_Hz: float
    source_W: float


class VstModel(SimModel):
    """Power spectra and S11 of a haloscope cavity behind an amplification chain.

    World params: `cavity` {kappa0_Hz, kappae_Hz, fc_Hz}, `chain` {gain_dB, added_noise_K,
    hemt_K, ripple_percent, ripple_period_Hz, drift_percent_per_hour}, `cables` {A1, A2, A3}
    and `circulator` {A} (defaults: the seed paper's values and specs). The circulator sits on
    the thermal plant's mixing plate. `switch` {path_A, heat_J, plate} is the Y-factor
    configuration's cryogenic switch at the cavity's port (setting `switch` CAVITY | LOAD): on
    LOAD the chain sees a black-body load (plate `load_plate`) through an extra path of
    transmission `path_A` at the switch body's temperature (plate `plate` if given, else the
    mixing plate); each actuation dumps `heat_J` into the switch's plate. The gain ripple is a
    seeded sum of sinusoids in absolute frequency scaled to `ripple_percent` rms; the drift is
    linear in the World's time.
    Instrument params: `attenuator_plate`, `cavity_plate` (plates of `world.thermal`, defaults
    "attenuator" and "cavity"), `load_plate` (default "load", needed only on LOAD),
    `input_attenuation_dB` from the source to the cavity,
    `line_phase_rad` and `delay_s` of the line seen by S11, and
    `thermal_sample_s`, the spacing of the temperature samples averaged over a capture.
    """

    device_name = "vst"

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(world, name, params)
        cav = world.params.get("cavity") or {}
        chain = world.params.get("chain") or {}
        dc, dg = DEFAULT_CAVITY, DEFAULT_CHAIN
        self.cavity = Cavity(
            number(cav, "kappa0_Hz", dc["kappa0_Hz"], "world.cavity", 1e-3, 1e9),
            number(cav, "kappae_Hz", dc["kappae_Hz"], "world.cavity", 1e-3, 1e9),
            number(cav, "fc_Hz", dc["fc_Hz"], "world.cavity", 1e3, 1e12),
        )
        self.chain = Chain(
            number(chain, "gain_dB", dg["gain_dB"], "world.chain", -100.0, 250.0),
            number(chain, "added_noise_K", dg["added_noise_K"], "world.chain", 0.0, 1e5),
        )
        de = DEFAULT_CHAIN_EXTRAS
        self.hemt_K = number(chain, "hemt_K", de["hemt_K"], "world.chain", 0.0, 400.0)
        self.ripple_percent = number(
            chain, "ripple_percent", de["ripple_percent"], "world.chain", 0.0, 50.0
        )
        self.ripple_period_Hz = number(
            chain, "ripple_period_Hz", de["ripple_period_Hz"], "world.chain", 1.0, 1e12
        )
        self.drift_per_s = (
            number(
                chain,
                "drift_percent_per_hour",
                de["drift_percent_per_hour"],
                "world.chain",
                -100.0,
                100.0,
            )
            / 100.0
            / 3600.0
        )
        cables = world.params.get("cables") or {}
        circ = world.params.get("circulator") or {}
        dcab = DEFAULT_CABLES
        self.losses = ChainLosses(
            A1=number(cables, "A1", dcab["A1"], "world.cables", 1e-6, 1.0),
            A2=number(cables, "A2", dcab["A2"], "world.cables", 1e-6, 1.0),
            A3=number(cables, "A3", dcab["A3"], "world.cables", 1e-6, 1.0),
            A_cir=number(circ, "A", DEFAULT_CIRCULATOR["A"], "world.circulator", 1e-6, 1.0),
        )
        sw = world.params.get("switch") or {}
        ds = DEFAULT_SWITCH
        self.switch_path_A = number(sw, "path_A", ds["path_A"], "world.switch", 1e-6, 1.0)
        self.switch_heat_J = number(sw, "heat_J", ds["heat_J"], "world.switch", 0.0, 10.0)
        self.switch_plate: str | None = None
        if sw.get("plate") is not None:
            self.switch_plate = str(sw["plate"])
            if self.switch_plate not in world.thermal.names():
                raise ValueError(
                    f"world.switch.plate: no plate {self.switch_plate!r} in world.thermal "
                    f"(plates: {', '.join(world.thermal.names())})"
                )
        if self.switch_heat_J > 0.0 and self.switch_plate in (None, "mixing"):
            raise ValueError("world.switch.heat_J > 0 needs world.switch.plate (a thermal plate)")
        self._switch_position = SWITCH_POSITIONS[0]
        ripple_rng = world.rng("chain.ripple")
        self._ripple_phases = ripple_rng.uniform(0.0, 2.0 * math.pi, len(RIPPLE_PERIODS))
        self._drift_origin_s = world.now()
        where = f"{name}.sim"
        self.attenuator_plate = self._plate("attenuator_plate", "attenuator")
        self.cavity_plate = self._plate("cavity_plate", "cavity")
        p = self.params
        self.load_plate = str(p.get("load_plate", "load"))
        self.input_attenuation_dB = number(p, "input_attenuation_dB", 60.0, where, 0.0, 200.0)
        self.line_phase_rad = number(p, "line_phase_rad", 0.6, where, -math.pi, math.pi)
        self.delay_s = number(p, "delay_s", 45e-9, where, 0.0, 1e-5)
        self.thermal_sample_s = number(p, "thermal_sample_s", 1.0, where, 1e-3, 1e4)
        self._spectrum_rng = world.rng(f"{name}.spectrum")
        self._s11_rng = world.rng(f"{name}.s11")
        self._capture: _Capture | None = None
        self._sweep: _Sweep | None = None

    def _plate(self, key: str, default: str) -> str:
        plate = str(self.params.get(key, default))
        names = self.world.thermal.names()
        if plate not in names:
            raise ValueError(
                f"{self.name}.sim.{key}: no plate {plate!r} in world.thermal "
                f"(plates: {', '.join(names)})"
            )
        return plate

    # -- SCPI -------------------------------------------------------------------------------

    def commands(self) -> dict[str, Handler]:
        return {
            r"INIT:SPEC": self._init_spectrum,
            r"FETC:SPEC\?": self._fetch_spectrum,
            r"INIT:SWE": self._init_sweep,
            r"FETC:SWE\?": self._fetch_sweep,
        }

    def on_reset(self) -> None:
        self._capture = None
        self._sweep = None
        self._actuate(str(self.setting("switch")))

    def check_setting(self, name: str, ch: str | None, value: Any) -> None:
        if (
            name == "switch"
            and str(value).upper() == "LOAD"
            and self.load_plate not in self.world.thermal.names()
        ):
            raise SCPIError(
                -221, f"Settings conflict; no load plate {self.load_plate!r} in world.thermal"
            )
        super().check_setting(name, ch, value)

    def on_setting(self, name: str, ch: str | None, value: Any) -> None:
        if name == "switch":
            self._actuate(str(value))

    def _actuate(self, position: str) -> None:
        """Move the switch; a real move dissipates `heat_J` into the switch's plate."""
        position = position.upper()
        if position == self._switch_position:
            return
        self._switch_position = position
        if self.switch_heat_J > 0.0 and self.switch_plate is not None:
            self.world.thermal.deposit(self.switch_plate, self.switch_heat_J)

    @property
    def switch_position(self) -> str:
        return self._switch_position

    # -- physics ------------------------------------------------------------------------------

    @property
    def line_baseline(self) -> complex:
        """S11 far from resonance (phase at f = 0): input line attenuation times chain gain."""
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

    def noise_power(self, f: np.ndarray, bin_Hz: float) -> np.ndarray:
        """Eqs 5-9: received noise power (W) per bin at the plates' current temperatures,
        times the gain's ripple and drift; with the switch on LOAD, the load's black body
        through the path difference instead of the cavity (`load_spectrum`)."""
        if self._switch_position == "LOAD":
            thermal = self.world.thermal
            switch_K = None if self.switch_plate is None else thermal.temperature(self.switch_plate)
            power = load_spectrum(
                f,
                thermal.temperature(self.load_plate),
                self.temperatures(),
                self.losses,
                self.chain.gain_dB,
                self.chain.added_noise_K,
                bin_Hz,
                path_A=self.switch_path_A,
                switch_K=switch_K,
            )
        else:
            power = received_spectrum(
                f,
                self.cavity,
                self.temperatures(),
                self.losses,
                self.chain.gain_dB,
                self.chain.added_noise_K,
                bin_Hz,
            )
        if self.ripple_percent == 0.0 and self.drift_per_s == 0.0:
            return power
        return power * self.gain_ripple(f) * self.gain_drift()

    def tone_power(self, f: float, source_W: float) -> float:
        """Received power (W) of a CW tone reflected by the cavity."""
        s_r2 = abs(complex(reflection(f, self.cavity))) ** 2
        return source_W * abs(self.line_baseline) ** 2 * s_r2

    def _source_W(self) -> float:
        return 1e-3 * 10.0 ** (self.setting("source_power") / 10.0)

    # -- spectrum -----------------------------------------------------------------------------

    def _init_spectrum(self, match: re.Match[str]) -> None:
        """Start a capture of `integration_time` now, with the present settings."""
        centre, span = self.setting("centre_frequency"), self.setting("span")
        rbw, tau = self.setting("rbw"), self.setting("integration_time")
        n = round(span / rbw)
        if n < 1:
            raise SCPIError(-221, f"Settings conflict; span {span:g} Hz below RBW {rbw:g} Hz")
        if n > MAX_BINS:
            raise SCPIError(-221, f"Settings conflict; span/RBW = {n} bins > {MAX_BINS}")
        if centre - span / 2 < F_MIN_HZ or centre + span / 2 > F_MAX_HZ:
            raise SCPIError(
                -221, f"Settings conflict; span leaves {F_MIN_HZ:g} .. {F_MAX_HZ:g} Hz"
            )
        bin_hz = span / n
        if bin_hz * tau < 1.0:
            raise SCPIError(
                -221, f"Settings conflict; integration {tau:g} s below 1/RBW = {1 / bin_hz:g} s"
            )
        f = centre - span / 2 + (np.arange(n) + 0.5) * bin_hz
        steps = int(min(MAX_THERMAL_SAMPLES, max(1, math.ceil(tau / self.thermal_sample_s))))
        cap = _Capture(self.world.now(), tau, f, bin_hz, steps, sum_W=np.zeros(n))
        if self.setting("output"):
            f_src = self.setting("source_frequency")
            cap.tone_bin = math.floor((f_src - (centre - span / 2)) / bin_hz)
            cap.tone_W = self.tone_power(f_src, self._source_W())
        self._capture = cap

    def _fetch_spectrum(self, match: re.Match[str]) -> bytearray:
        """Average power per bin over the integration time (W, float64 block).

        The mean follows the temperatures sampled through the capture; the scatter is that of
        B tau averaged periodograms: Gamma-distributed, relative sigma 1/sqrt(B tau) (Gaussian
        for large B tau, never negative). A CW tone from the source lands in its bin.
        """
        cap = self._capture
        if cap is None:
            raise SCPIError(-230, "Data stale; no spectrum initiated (INIT:SPEC first)")
        while cap.done < cap.steps:  # resumes here after a real-time wait (NotYet)
            self.world.reach(cap.start_s + cap.integration_s * (cap.done + 1) / cap.steps)
            cap.sum_W += self.noise_power(cap.f, cap.bin_Hz)
            cap.done += 1
        self._capture = None
        mean = cap.sum_W / cap.steps
        averages = cap.bin_Hz * cap.integration_s
        power = self._spectrum_rng.gamma(averages, mean / averages)
        if 0 <= cap.tone_bin < power.size:
            power[cap.tone_bin] += cap.tone_W
        return array_block(power)

    # -- reflection ---------------------------------------------------------------------------

    def _init_sweep(self, match: re.Match[str]) -> None:
        """Start an S11 sweep now: `sweep_points` from start to stop, 1/RBW per point."""
        if not self.setting("output"):
            raise SCPIError(-221, "Settings conflict; source output off (OUTP 1 first)")
        start, stop = self.setting("sweep_start"), self.setting("sweep_stop")
        if not stop > start:
            raise SCPIError(-221, f"Settings conflict; sweep stop {stop:g} <= start {start:g} Hz")
        f = np.linspace(start, stop, int(self.setting("sweep_points")))
        self._sweep = _Sweep(self.world.now(), f, self.setting("rbw"), self._source_W())

    def _fetch_sweep(self, match: re.Match[str]) -> bytearray:
        """S11 interleaved re/im float64: Eq 2a through the line, plus the receiver's noise in
        the RBW relative to the source (complex Gaussian, E|n|^2 = P_r / P_source)."""
        sweep = self._sweep
        if sweep is None:
            raise SCPIError(-230, "Data stale; no sweep initiated (INIT:SWE first)")
        self.world.reach(sweep.start_s + sweep.f.size / sweep.rbw_Hz)
        self._sweep = None
        n = sweep.f.size
        s11 = line_reflection(sweep.f, self.cavity, self.line_baseline, self.delay_s)
        sigma = np.sqrt(self.noise_power(sweep.f, sweep.rbw_Hz) / (2.0 * sweep.source_W))
        noise = self._s11_rng.standard_normal(n) + 1j * self._s11_rng.standard_normal(n)
        s11 = s11 + sigma * noise
        out = np.empty(2 * n)
        out[0::2], out[1::2] = s11.real, s11.imag
        return array_block(out)
