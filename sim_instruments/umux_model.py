"""Physics behind the simulated ROACH2-like microwave SQUID multiplexing (uMUX) board.

The board sees a comb of notch resonators (the World's `resonators` section), each loaded by an
rf-SQUID that carries a static flux plus the flux of its detector. It sweeps the feedline
(complex S21 through cable delay, amplifier gain and noise) and, with the flux ramp on,
demodulates one phase sample per ramp period for each enabled tone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from analysis.resonator import (
    channel_budget,
    coupling_q,
    guard_factor,
    notch_s21,
    ramp_harmonic,
    squid_resonance,
    swing_centre,
)
from sim_instruments.blocks import array_block, stream_block
from sim_instruments.device import Handler, SCPIError
from sim_instruments.model import SimModel
from sim_instruments.params import number
from sim_instruments.pulse_source import PulseSource, detector_source
from sim_instruments.streaming import SampleStream, fetch_window
from sim_instruments.world import World

#: ADC (and DAC) complex bandwidth: tones live within +-ADC_BANDWIDTH_HZ/2 of the LO.
ADC_BANDWIDTH_HZ = 512e6
#: Largest demodulated block one FETC? may ask for, per channel.
#: Largest sweep, in points.
MAX_SWEEP_POINTS = 200_001
#: Flux-ramp phases averaged when sweeping with the ramp running.
RAMP_AVERAGE_PHASES = 32
#: Resonators whose flux signal at a tone is below this fraction of a well-placed tone's are
#: left out of that channel (their crosstalk is far below the readout noise).
CROSSTALK_FLOOR = 1e-3



@numba.njit(cache=True)
def _unwrapped_angle(z, last, out):  # pragma: no cover - numba
    """out[i] = arg z[i] plus the multiple of 2 pi that keeps each step within [-pi, pi),
    continuing from the unwrapped phase `last` (as the firmware's unwrapper does); returns
    the last unwrapped phase at full precision."""
    prev = last
    for i in range(z.shape[0]):
        step = math.atan2(z[i].imag, z[i].real) - prev
        step -= 2.0 * math.pi * math.floor((step + math.pi) / (2.0 * math.pi))
        prev += step
        out[i] = prev
    return prev


#: Defaults of the World's `resonators` section: 33 resonators 14 MHz apart, 2 MHz wide,
#: centred on the board's power-on LO (5 GHz) so all sit inside its 512 MHz window; the flux
#: swing `swing_Hz` defaults to the bandwidth.
RESONATOR_DEFAULTS: dict[str, float] = {
    "count": 33,
    "first_Hz": 5.0e9 - 16 * 14e6,
    "spacing_Hz": 14e6,
    "bandwidth_Hz": 2e6,
    "Qi": 5e4,
    "scatter": 0.1,
    "lambda": 0.3,
}


@dataclass(frozen=True)
class ResonatorComb:
    """The multiplexer chip: per resonator f_0, Q_i, Q_c and static SQUID flux (Phi0)."""

    f0_hz: np.ndarray
    q_i: np.ndarray
    q_c: np.ndarray
    static_phi0: np.ndarray
    lam: float
    swing_hz: float
    spacing_hz: float
    bandwidth_hz: float
    qi_nominal: float

    @classmethod
    def from_params(cls, section: Mapping[str, Any] | None, rng: np.random.Generator,
                    where: str = "world.resonators") -> ResonatorComb:
        """Build the comb; Q_i and Q_c scatter log-normally by `scatter`, static flux uniform."""
        s = dict(section or {})
        d = RESONATOR_DEFAULTS
        count = number(s, "count", d["count"], where, 1, 4096)
        if count != int(count):
            raise ValueError(f"{where}.count must be an integer, got {count:g}")
        first = number(s, "first_Hz", d["first_Hz"], where, 1e9, 20e9)
        spacing = number(s, "spacing_Hz", d["spacing_Hz"], where, 1e3, 1e9)
        bandwidth = number(s, "bandwidth_Hz", d["bandwidth_Hz"], where, 1e3, spacing)
        f0 = first + spacing * np.arange(int(count))
        q_loaded = float(f0[-1]) / bandwidth
        qi = number(s, "Qi", d["Qi"], where, 1.05 * q_loaded, 1e9)
        scatter = number(s, "scatter", d["scatter"], where, 0.0, 1.0)
        lam = number(s, "lambda", d["lambda"], where, 1e-3, 0.95)
        swing = number(s, "swing_Hz", bandwidth, where, 1.0, spacing)
        qc = coupling_q(f0, bandwidth, qi)
        q_i = qi * np.exp(scatter * rng.standard_normal(f0.size))
        q_c = qc * np.exp(scatter * rng.standard_normal(f0.size))
        static = rng.uniform(-0.5, 0.5, f0.size)
        return cls(f0, q_i, q_c, static, lam, swing, spacing, bandwidth, qi)

    def nominal_harmonic(self) -> float:
        """|c1| of a tone at the swing centre of a resonator with nominal Q_i and bandwidth."""
        f0 = float(self.f0_hz[0])
        q_c = coupling_q(f0, self.bandwidth_hz, self.qi_nominal)
        tone = swing_centre(f0, self.swing_hz, self.lam)
        return float(abs(ramp_harmonic(tone, f0, self.swing_hz, self.lam, self.qi_nominal, q_c)))

    def resonance_hz(self, flux_phi0: np.ndarray | float = 0.0) -> np.ndarray:
        """Resonance frequencies with `flux_phi0` added to each SQUID's static flux."""
        return squid_resonance(self.static_phi0 + flux_phi0, self.f0_hz, self.swing_hz, self.lam)

    def centre_hz(self) -> np.ndarray:
        """Middle of each resonator's flux swing: where a tone reads it best."""
        return swing_centre(self.f0_hz, self.swing_hz, self.lam)

    def transmission(self, f_hz: np.ndarray, flux_phi0: float = 0.0) -> np.ndarray:
        """S21 of the feedline: the product of every notch at its current resonance."""
        s21 = np.ones(f_hz.shape, dtype=complex)
        for f_r, q_i, q_c in zip(self.resonance_hz(flux_phi0), self.q_i, self.q_c, strict=True):
            s21 *= notch_s21(f_hz, f_r, q_i, q_c)
        return s21

    def harmonics(self, f_tone_hz: float) -> np.ndarray:
        """Flux-ramp first harmonic c1 of each resonator at a tone (radians of S21 phase)."""
        return ramp_harmonic(f_tone_hz, self.f0_hz, self.swing_hz, self.lam, self.q_i, self.q_c)


class UmuxModel(SimModel):
    """uMUX readout of the World's resonator comb, one channel per DAC tone.

    Instrument params: `detector` (kind in world.detectors; default the first one),
    `buffer_samples`, `readout_noise_phi0_per_rthz` (flux noise of a tone of amplitude
    `reference_amplitude` at the centre of a nominal resonator's swing; HEMT-limited, so it
    scales inversely with tone amplitude and with the tone's flux response), `lut_length`
    (DAC look-up table: tones are multiples of 512 MHz / lut_length), `cable_delay_s`, `gain`,
    `gain_slope` (fractional gain change across the band), `sweep_noise` (S21 noise per point,
    relative to the gain).
    """

    device_name = "umux"

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(world, name, params)
        p = self.params
        self.comb = ResonatorComb.from_params(
            world.params.get("resonators"), world.rng("resonators"))
        detectors = world.params.get("detectors") or {}
        self.detector_kind: str | None = p.get("detector") or next(iter(detectors), None)
        if self.detector_kind is not None and self.detector_kind not in detectors:
            known = ", ".join(sorted(detectors)) or "none"
            raise ValueError(f"{name}.detector {self.detector_kind!r} is not in world.detectors "
                             f"(defined: {known})")
        self.readout_noise = number(p, "readout_noise_phi0_per_rthz", 1.5e-6, name, 0.0, 1.0)
        self.reference_amplitude = number(p, "reference_amplitude", 0.02, name, 1e-6, 1.0)
        lut = number(p, "lut_length", 2**21, name, 16, 2**30)
        if lut != int(lut):
            raise ValueError(f"{name}.lut_length must be an integer, got {lut:g}")
        self.lut_resolution_hz = ADC_BANDWIDTH_HZ / int(lut)
        self.cable_delay_s = number(p, "cable_delay_s", 50e-9, name, 0.0, 1e-6)
        self.gain = number(p, "gain", 1.0, name, 1e-9, 1e9)
        self.gain_slope = number(p, "gain_slope", 0.1, name, -0.9, 0.9)
        self.sweep_noise = number(p, "sweep_noise", 1e-3, name, 0.0, 1.0)
        self.stream = SampleStream(int(number(p, "buffer_samples", 1 << 22, name, 1, 1 << 31)))
        # Signal of a well-placed tone on a nominal resonator: the noise is quoted against it.
        self._ref_harmonic = self.comb.nominal_harmonic()
        self._sources: dict[int, PulseSource] = {}
        self._last_phase: dict[int, float] = {}
        self._sweep_rng = world.rng(f"{name}.sweep")
        self._readout_rng = world.rng(f"{name}.readout")

    def commands(self) -> dict[str, Handler]:
        return {
            r"FETC\?\s+(\S+)": self._fetch,
            r"SWE\?\s+([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s]+)": self._sweep,
            r"CH(\d+):FREQ\?": self._tone_query,
            r"DAC:RES\?": lambda m: f"{self.lut_resolution_hz:.15e}",
            r"ACQ:COUN\?": lambda m: str(self.stream.next),
            r"ACQ:AVA\?": lambda m: str(self._available()),
            r"CHAN:BUDG\?": lambda m: str(self.budget()),
        }

    # -- settings -------------------------------------------------------------------------

    def budget(self, f_ramp_hz: float | None = None, n_phi0: int | None = None) -> int:
        """Channels the board can demodulate at this flux ramp (HOLMES formula)."""
        return channel_budget(
            ADC_BANDWIDTH_HZ,
            self.setting("ramp_frequency") if f_ramp_hz is None else f_ramp_hz,
            self.setting("ramp_amplitude") if n_phi0 is None else n_phi0,
            guard_factor(self.comb.spacing_hz, self.comb.bandwidth_hz),
        )

    def _budget_error(self, wanted: int, f_ramp_hz: float, n_phi0: int) -> SCPIError:
        g_f = guard_factor(self.comb.spacing_hz, self.comb.bandwidth_hz)
        n = self.budget(f_ramp_hz, n_phi0)
        return SCPIError(
            -221,
            f"Settings conflict; {wanted} channels exceed the budget f_ADC/(2 f_ramp n_Phi0 g_f)"
            f" = {ADC_BANDWIDTH_HZ / 1e6:g} MHz/(2 x {f_ramp_hz / 1e3:g} kHz x {n_phi0:g}"
            f" x {g_f:g}) = {n}",
        )

    def _enabled(self) -> list[int]:
        assert self.device is not None
        return [int(c) for c in self.device.channel_ids("channel") if self.setting("enabled", c)]

    def check_setting(self, name: str, ch: str | None, value: Any) -> None:
        ramp = ("ramp_frequency", "ramp_amplitude", "ramp_on")
        if name in ramp and self.setting("running"):
            raise SCPIError(-221, "Settings conflict; stop acquisition (ACQ:RUN 0) first")
        f_ramp, n_phi0 = self.setting("ramp_frequency"), self.setting("ramp_amplitude")
        wanted = len(self._enabled())
        if name == "enabled" and value and ch is not None and int(ch) not in self._enabled():
            wanted += 1
        elif name == "ramp_frequency":
            f_ramp = float(value)
        elif name == "ramp_amplitude":
            n_phi0 = int(value)
        else:
            return
        if wanted > self.budget(f_ramp, n_phi0):
            raise self._budget_error(wanted, f_ramp, n_phi0)

    def on_setting(self, name: str, ch: str | None, value: Any) -> None:
        if name == "running" and value:
            self.stream.start(self.world.now())
            self._last_phase.clear()

    def on_reset(self) -> None:
        self.stream.start(self.world.now())
        self._last_phase.clear()

    def tone_hz(self, ch: int | str) -> float:
        """Baseband frequency of a channel's tone, on the DAC LUT grid."""
        grid = self.lut_resolution_hz
        return round(float(self.setting("tone_frequency", ch)) / grid) * grid

    def _tone_query(self, match: re.Match[str]) -> str:
        assert self.device is not None
        if match.group(1) not in self.device.channel_ids("channel"):
            raise SCPIError(-114, f"Header suffix out of range; no channel {match.group(1)}")
        return f"{self.tone_hz(match.group(1)):.15e}"  # exact: a multiple of the LUT grid

    # -- sweep ----------------------------------------------------------------------------

    def _sweep(self, match: re.Match[str]) -> bytearray:
        try:
            start, stop = float(match.group(1)), float(match.group(2))
            points = int(match.group(3))
        except ValueError:
            raise SCPIError(-104, f"Data type error; sweep {match.group(0)!r}") from None
        half = ADC_BANDWIDTH_HZ / 2
        if not (-half <= start < stop <= half and 2 <= points <= MAX_SWEEP_POINTS):
            raise SCPIError(-222, f"Data out of range; need -{half:g} <= start < stop <= {half:g}"
                                  f" Hz and 2 <= points <= {MAX_SWEEP_POINTS}")
        baseband = np.linspace(start, stop, points)
        s21 = self.sweep(baseband)
        return array_block(np.column_stack([s21.real, s21.imag]), "<f8")

    def sweep(self, baseband_hz: np.ndarray) -> np.ndarray:
        """Complex S21 the board measures at LO + `baseband_hz` (ramp running: time-averaged)."""
        rf = self.setting("lo_frequency") + baseband_hz
        if self.setting("ramp_on"):
            ramp = np.arange(RAMP_AVERAGE_PHASES) / RAMP_AVERAGE_PHASES
            s21 = np.mean([self.comb.transmission(rf, r) for r in ramp], axis=0)
        else:
            s21 = self.comb.transmission(rf)
        gain = self.gain * (1.0 + self.gain_slope * baseband_hz / (ADC_BANDWIDTH_HZ / 2))
        s21 = s21 * gain * np.exp(-2j * np.pi * rf * self.cable_delay_s)
        noise = self._sweep_rng.standard_normal((2, rf.size)) * (self.sweep_noise * self.gain)
        return s21 + noise[0] + 1j * noise[1]

    # -- demodulated stream ---------------------------------------------------------------

    def _available(self) -> int:
        if not self.setting("running"):
            return 0
        return self.stream.available(self.world.now(), self.setting("ramp_frequency"))

    def detector(self, k: int) -> PulseSource | None:
        """The detector on resonator `k` (0-based), or None if the World defines none."""
        if self.detector_kind is None:
            return None
        if k not in self._sources:
            self._sources[k] = detector_source(
                self.world.params, self.detector_kind, self.world.rng(f"{self.name}.res{k}"))
        return self._sources[k]

    def _fetch(self, match: re.Match[str]) -> bytearray:
        if not self.setting("ramp_on"):
            raise SCPIError(-221, "Settings conflict; flux ramp off (RAMP:STAT 1), nothing to "
                                  "demodulate")
        if not self.setting("running"):
            raise SCPIError(-221, "Settings conflict; acquisition not running (ACQ:RUN 1)")
        rate = self.setting("ramp_frequency")
        first, t0, n = fetch_window(self.stream, self.world, match.group(1), rate)
        channels = self._enabled()
        phase = np.empty((len(channels), n), dtype=np.float32)
        flux: dict[int, np.ndarray] = {}
        for row, ch in enumerate(channels):
            phase[row] = self._demodulate(ch, t0, n, rate, flux)
        self.stream.next = first + n
        return stream_block(first, channels, phase)

    def _phasor(self, k: int, t0: float, n: int, rate: float,
                cache: dict[int, np.ndarray]) -> np.ndarray:
        """exp(2 pi i Phi_k) of resonator k's SQUID flux (static + detector), once per block."""
        if k not in cache:
            source = self.detector(k)
            flux = self.comb.static_phi0[k] + (
                np.zeros(n) if source is None else source.block(t0, n, rate))
            cache[k] = np.exp(2j * np.pi * flux)
        return cache[k]

    def _demodulate(self, ch: int, t0: float, n: int, rate: float,
                    cache: dict[int, np.ndarray]) -> np.ndarray:
        """Firmware output of one channel: atan2 of the tone's flux-ramp harmonic, unwrapped.

        Every resonator adds c1_k exp(2 pi i Phi_k(t)) to the harmonic (crosstalk included);
        the HEMT adds complex white noise. Off every resonator only noise is left, whose phase
        is uniformly random; a flux step over half a quantum per sample unwraps wrongly, as in
        the firmware (the slew-rate limit).
        """
        amplitude = self.setting("tone_amplitude", ch) / self.reference_amplitude
        c1 = self.comb.harmonics(self.setting("lo_frequency") + self.tone_hz(ch)) * amplitude
        sigma = (2.0 * np.pi * self.readout_noise * math.sqrt(rate / 2.0) * self._ref_harmonic)
        z = self._readout_rng.standard_normal(2 * n).view(np.complex128)
        z *= sigma
        for k in np.flatnonzero(np.abs(c1) > CROSSTALK_FLOOR * self._ref_harmonic):
            z += c1[k] * self._phasor(int(k), t0, n, rate, cache)
        out = np.empty(n, dtype=np.float32)
        last = self._last_phase.get(ch)
        start = float(np.angle(z[0])) if last is None else last
        self._last_phase[ch] = _unwrapped_angle(z, start, out)
        return out
