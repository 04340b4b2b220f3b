"""Physics behind the simulated vector signal transceiver (VST) of a haloscope chain.

The VST looks through a cryogenic amplification chain at a microwave cavity whose antenna
also sees the noise of an attenuator (Chang et al. 2024, Fig. 1b). Its power spectrum is the
lossless cavity-emitted radiation of Eqs 1-4 at the current temperatures of the attenuator and
cavity plates of the World's thermal plant; its reflection sweep is Eq 2a seen through the
input line, the circulator and the chain (baseline, electrical delay), with the receiver's
noise on top. A capture takes its integration time on the World's clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.cavity import Cavity, Chain, line_reflection, lossless_emitted_power, reflection
from sim_instruments.blocks import array_block
from sim_instruments.device import Handler, SCPIError
from sim_instruments.model import SimModel
from sim_instruments.world import World

#: Cavity of the seed paper (Sec. IV.1) and its amplification chain (Sec. IV.2).
DEFAULT_CAVITY = {"kappa0_Hz": 432e3, "kappae_Hz": 149e3, "fc_Hz": 4.944458e9}
DEFAULT_CHAIN = {"gain_dB": 93.07, "added_noise_K": 5.28}
#: Frequency coverage of the instrument and the largest spectrum one capture returns.
F_MIN_HZ, F_MAX_HZ = 9e3, 6e9
MAX_BINS = 1 << 20
#: At most this many temperature samples are averaged over one capture.
MAX_THERMAL_SAMPLES = 200


def _number(
    params: Mapping[str, Any], key: str, default: float, low: float, high: float, where: str
) -> float:
    """`params[key]` (or `default`) as a float in [low, high]; ValueError naming the key if not."""
    raw = params.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not low <= value <= high:
        raise ValueError(f"{where}.{key} must be a number in [{low:g}, {high:g}], got {raw!r}")
    return value


@dataclass
class _Capture:
    """A spectrum capture in progress; survives a real-time wait (NotYet) between its steps."""

    start_s: float
    integration_s: float
    f: np.ndarray
    bin_Hz: float
    steps: int
    done: int = 0
    sum_W: np.ndarray = field(default_factory=lambda: np.zeros(0))


class VstModel(SimModel):
    """Power spectra and S11 of a haloscope cavity behind an amplification chain.

    World params: `cavity` {kappa0_Hz, kappae_Hz, fc_Hz} and `chain` {gain_dB, added_noise_K}
    (defaults: the seed paper's values). Instrument params: `attenuator_plate`, `cavity_plate`
    (plates of `world.thermal`, defaults "attenuator" and "cavity"), `input_attenuation_dB`
    from the source to the cavity, `line_phase_rad` and `delay_s` of the line seen by S11, and
    `thermal_sample_s`, the spacing of the temperature samples averaged over a capture.
    """

    device_name = "vst"

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(world, name, params)
        cav = world.params.get("cavity") or {}
        chain = world.params.get("chain") or {}
        dc, dg = DEFAULT_CAVITY, DEFAULT_CHAIN
        self.cavity = Cavity(
            _number(cav, "kappa0_Hz", dc["kappa0_Hz"], 1e-3, 1e9, "world.cavity"),
            _number(cav, "kappae_Hz", dc["kappae_Hz"], 1e-3, 1e9, "world.cavity"),
            _number(cav, "fc_Hz", dc["fc_Hz"], 1e3, 1e12, "world.cavity"),
        )
        self.chain = Chain(
            _number(chain, "gain_dB", dg["gain_dB"], -100.0, 250.0, "world.chain"),
            _number(chain, "added_noise_K", dg["added_noise_K"], 0.0, 1e5, "world.chain"),
        )
        where = f"{name}.sim"
        self.attenuator_plate = self._plate("attenuator_plate", "attenuator")
        self.cavity_plate = self._plate("cavity_plate", "cavity")
        p = self.params
        self.input_attenuation_dB = _number(p, "input_attenuation_dB", 60.0, 0.0, 200.0, where)
        self.line_phase_rad = _number(p, "line_phase_rad", 0.6, -math.pi, math.pi, where)
        self.delay_s = _number(p, "delay_s", 45e-9, 0.0, 1e-5, where)
        self.thermal_sample_s = _number(p, "thermal_sample_s", 1.0, 1e-3, 1e4, where)
        self._spectrum_rng = world.rng(f"{name}.spectrum")
        self._s11_rng = world.rng(f"{name}.s11")
        self._capture: _Capture | None = None
        self._sweep_start_s: float | None = None

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
        return {r"SPEC:DATA\?": self._spectrum, r"SWE:DATA\?": self._sweep}

    def on_reset(self) -> None:
        self._capture = None
        self._sweep_start_s = None

    # -- physics ------------------------------------------------------------------------------

    @property
    def line_baseline(self) -> complex:
        """Complex S11 far from resonance at f = 0 phase reference: input line times chain."""
        amplitude = math.sqrt(self.chain.gain * 10.0 ** (-self.input_attenuation_dB / 10.0))
        return amplitude * complex(math.cos(self.line_phase_rad), math.sin(self.line_phase_rad))

    def noise_power(self, f: np.ndarray, bin_Hz: float) -> np.ndarray:
        """Eqs 1-4: received noise power (W) per bin at the plates' current temperatures."""
        thermal = self.world.thermal
        emitted = lossless_emitted_power(
            f,
            self.cavity,
            thermal.temperature(self.attenuator_plate),
            thermal.temperature(self.cavity_plate),
            bin_Hz,
        )
        return self.chain.received_power(emitted, bin_Hz)

    def _source_W(self) -> float:
        return 1e-3 * 10.0 ** (self.setting("source_power") / 10.0)

    def _new_capture(self) -> _Capture:
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
        return _Capture(self.world.now(), tau, f, bin_hz, steps, sum_W=np.zeros(n))

    def _spectrum(self, match: re.Match[str]) -> bytearray:
        """Average power per bin over the integration time (W, float64 block).

        The mean follows the temperatures sampled through the capture; the scatter is that of
        B tau averaged periodograms: Gamma-distributed, relative sigma 1/sqrt(B tau) (Gaussian
        for large B tau, never negative). A CW tone from the source lands in its bin.
        """
        if self._capture is None:
            self._capture = self._new_capture()
        cap = self._capture
        while cap.done < cap.steps:
            self.world.reach(cap.start_s + cap.integration_s * (cap.done + 1) / cap.steps)
            cap.sum_W += self.noise_power(cap.f, cap.bin_Hz)
            cap.done += 1
        self._capture = None
        mean = cap.sum_W / cap.steps
        averages = cap.bin_Hz * cap.integration_s
        power = self._spectrum_rng.gamma(averages, mean / averages)
        if self.setting("output"):
            f_src = self.setting("source_frequency")
            k = math.floor((f_src - (cap.f[0] - cap.bin_Hz / 2)) / cap.bin_Hz)
            if 0 <= k < power.size:
                s_r2 = abs(complex(reflection(f_src, self.cavity))) ** 2
                power[k] += self._source_W() * abs(self.line_baseline) ** 2 * s_r2
        return array_block(power)

    def _sweep(self, match: re.Match[str]) -> bytearray:
        """S11 at `sweep_points` frequencies from start to stop, interleaved re/im float64.

        Each point dwells 1/RBW; its noise is the received noise power in the RBW relative to
        the source power (complex Gaussian, E|n|^2 = P_r / P_source).
        """
        if not self.setting("output"):
            raise SCPIError(-221, "Settings conflict; source output off (OUTP 1 first)")
        start, stop = self.setting("sweep_start"), self.setting("sweep_stop")
        n, rbw = int(self.setting("sweep_points")), self.setting("rbw")
        if not stop > start:
            raise SCPIError(-221, f"Settings conflict; sweep stop {stop:g} Hz <= start {start:g} Hz")
        if self._sweep_start_s is None:
            self._sweep_start_s = self.world.now()
        self.world.reach(self._sweep_start_s + n / rbw)
        self._sweep_start_s = None
        f = np.linspace(start, stop, n)
        s11 = line_reflection(f, self.cavity, self.line_baseline, self.delay_s)
        sigma = np.sqrt(self.noise_power(f, rbw) / (2.0 * self._source_W()))
        s11 = s11 + sigma * (self._s11_rng.standard_normal(n) + 1j * self._s11_rng.standard_normal(n))
        out = np.empty(2 * n)
        out[0::2], out[1::2] = s11.real, s11.imag
        return array_block(out)
