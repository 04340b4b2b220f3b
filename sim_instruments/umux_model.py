"""Physics behind the simulated ROACH2-like microwave SQUID multiplexing (uMUX) board.

The board sees a comb of notch resonators (the World's `resonators` section), each loaded by an
rf-SQUID that carries a static flux plus the flux of its detector (a TES of `tes_model`, or a
`PulseSource`). It sweeps the feedline (complex S21 through cable delay, amplifier gain and
noise). With the flux ramp on it streams, per enabled tone, either the demodulated phase (one
sample per ramp period: the channel signal at the channel rate with the HEMT's noise,
demodulated as the firmware does, `umux_demod.demodulate`; computed per ramp period from
tabulated sums, `umux_period`, wherever those hold) or, in RAW mode, the channel IQ itself.

Noise: a tone of amplitude `reference_amplitude` reaches the chip with `tone_power_dBm`; the
HEMT (`hemt_noise_K`, `hemt_gain_dB`) and the room-temperature amplifier (`room_noise_K`) add
k_B T_sys per Hz, T_sys = T_HEMT + T_room / G_HEMT, so each channel sample carries complex
noise of variance k_B T_sys f_ch / P_tone relative to the carrier.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.analysis.resonator import (
    channel_budget,
    coupling_q,
    guard_factor,
    notch_s21,
    ramp_harmonic,
    squid_resonance,
    swing_centre,
)
from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.blocks import array_block, stream_block
from cryodaq.sim_instruments.device import Handler, SCPIError
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.pulse_source import PulseSource, detector_source
from cryodaq.sim_instruments.streaming import SampleStream, fetch_window
from cryodaq.sim_instruments.tes_model import TesArray, TesDetector, is_tes
from cryodaq.sim_instruments.umux_demod import (
    calibration,
    channel_iq,
    demodulate,
    readout_flux_density,
    reference_weights,
    response_table,
    tone_leak,
)
from cryodaq.sim_instruments.umux_period import (
    PeriodTables,
    demodulate_periods,
    period_tables,
    quanta_changes,
)
from cryodaq.sim_instruments.world import World

#: ADC (and DAC) complex bandwidth: tones live within +-ADC_BANDWIDTH_HZ/2 of the LO.
ADC_BANDWIDTH_HZ = 512e6
#: Largest sweep, in points.
MAX_SWEEP_POINTS = 200_001
#: Flux-ramp phases averaged when sweeping with the ramp running.
RAMP_AVERAGE_PHASES = 32
#: Resonators whose flux signal at a tone is below this fraction of a well-placed tone's are
#: left out of that channel: the nearest neighbours (~0.5 % at 7 bandwidths) are in, the next
#: ones (~0.1 %, 0.002 Phi0 for a 2 Phi0 pulse) are not, which halves the cost per sample.
CROSSTALK_FLOOR = 3e-3
BOLTZMANN = 1.380649e-23
#: The leak table of a channel no other tone reaches.
NO_LEAK = np.zeros(1, dtype=complex)
#: Instants at which the DAC comb's peak is looked for over one LUT period.
COMB_PEAK_POINTS = 1 << 16
#: Acquisition modes: demodulated phase per ramp period, or raw channel IQ.
MODES = ("PHASE", "RAW")


#: Defaults of the World's `resonators` section: 33 resonators 14 MHz apart (fabrication
#: scatters each by `frequency_scatter_Hz` rms), 2 MHz wide, centred on the board's power-on
#: LO (5 GHz) so all sit inside its 512 MHz window; the flux swing `swing_Hz` defaults to the
#: bandwidth.
RESONATOR_DEFAULTS: dict[str, float] = {
    "count": 33,
    "first_Hz": 5.0e9 - 16 * 14e6,
    "spacing_Hz": 14e6,
    "bandwidth_Hz": 2e6,
    "Qi": 5e4,
    "scatter": 0.1,
    "frequency_scatter_Hz": 0.3e6,
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
        """Build the comb; Q_i and Q_c scatter log-normally by `scatter`, frequencies normally
        by `frequency_scatter_Hz`, static flux uniform."""
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
        spread = number(s, "frequency_scatter_Hz", d["frequency_scatter_Hz"], where, 0.0,
                        spacing / 8.0)
        f0 = f0 + spread * rng.standard_normal(f0.size)
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


@dataclass(frozen=True)
class ToneSetup:
    """What the firmware holds for one channel: the resonators its tone sees (the one it reads
    first), their response tables, the centring calibration, the noise per channel sample and
    the readout flux noise that predicts, and the raw-IQ phasor (gain, tone phase, cable)."""

    resonators: np.ndarray
    luts: np.ndarray
    static: np.ndarray
    centre: complex
    rot: complex
    sigma: float
    readout_density: float
    raw_phasor: complex
    weights: tuple[np.ndarray, np.ndarray]


@functools.cache
def _workers(pid: int) -> ThreadPoolExecutor:
    """Threads for the demodulation kernels, one per core (they never touch the World); one
    pool per process `pid`, since a forked child does not inherit the parent's threads."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="umux")


def _demodulate_channel(first: int, tables: PeriodTables | None, luts: np.ndarray,
                        static: np.ndarray, fluxes: list[np.ndarray], ratio: int, n_phi0: int,
                        wa: np.ndarray, wb: np.ndarray, drop: int, centre: complex,
                        rot: complex, leak: np.ndarray, sigma: float, noise: np.ndarray,
                        last: float, out: np.ndarray, out32: np.ndarray) -> float:
    """One channel's block (`fluxes`: its resonators' detector flux at the periods'
    boundaries): `demodulate_periods` from `tables`, or `demodulate` without, into `out` and
    its float32 copy `out32`; returns the last unwrapped phase."""
    signal = np.empty((len(fluxes), out.size + 1))
    for row, flux in enumerate(fluxes):
        signal[row] = flux
    args = (luts, static, signal, ratio, n_phi0, wa, wb, drop, centre, rot, leak, sigma, noise,
            last, out)
    if tables is None:
        last = demodulate(first, *args)
    else:
        last = demodulate_periods(first, tables.main, tables.cross, tables.slow,
                                  tables.leak_stride, tables.centre_of_mass, *args)
    out32[:] = out
    return last


class _ChannelState:
    """Per-channel demodulator state: noise stream, last unwrapped phase, slip bookkeeping."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.noise = ziggurat.new_state(rng)
        self.last = math.nan
        self.reference: float | None = None  # demodulated minus true flux at the start (Phi0)
        self.quanta = 0  # whole quanta the demodulator is off by since the start


class UmuxModel(SimModel):
    """uMUX readout of the World's resonator comb, one channel per DAC tone.

    Instrument params: `detectors` (kinds of world.detectors, assigned to the resonators in
    turn, resonator k carrying detectors[k % len]; `detector` for a single kind; default the
    first kind defined), `array` (name of the TES array in the World, default the
    instrument's), `buffer_samples`, `tone_power_dBm` (at the chip for a tone of amplitude
    `reference_amplitude`), `hemt_noise_K`, `hemt_gain_dB`, `room_noise_K`, `channel_rate_hz`
    (channeliser output rate f_ch), `reset_drop_samples` (channel samples discarded after each
    ramp reset), `lut_length` (DAC look-up table: tones are multiples of 512 MHz / lut_length),
    `cable_delay_s`, `gain`, `gain_slope` (fractional gain change across the band),
    `sweep_noise` (S21 noise per sweep point, relative to the gain), `channel_isolation_dB`
    (how much the channel filter attenuates a tone one resonator spacing away; default:
    perfect isolation).
    """

    device_name = "umux"

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(world, name, params)
        p = self.params
        self.comb = ResonatorComb.from_params(
            world.params.get("resonators"), world.rng("resonators"))
        detectors = world.params.get("detectors") or {}
        kinds = p.get("detectors") or p.get("detector") or next(iter(detectors), None)
        self.kinds: list[str] = [] if kinds is None else (
            [kinds] if isinstance(kinds, str) else [str(k) for k in kinds])
        for kind in self.kinds:
            if kind not in detectors:
                known = ", ".join(sorted(detectors)) or "none"
                key = "detector" if "detector" in p else "detectors"
                raise ValueError(f"{name}.{key} {kind!r} is not in world.detectors "
                                 f"(defined: {known})")
        self.array: TesArray | None = None
        if any(is_tes(detectors[k]) for k in self.kinds):
            array = str(p.get("array", name))
            self.array = world.detector_array(array, lambda: TesArray(world, array, self.kinds))
        self.reference_amplitude = number(p, "reference_amplitude", 0.02, name, 1e-6, 1.0)
        self.tone_power_dBm = number(p, "tone_power_dBm", -80.0, name, -150.0, 0.0)
        self.hemt_noise_K = number(p, "hemt_noise_K", 2.0, name, 0.0, 1e4)
        self.hemt_gain_dB = number(p, "hemt_gain_dB", 45.0, name, 0.0, 100.0)
        self.room_noise_K = number(p, "room_noise_K", 290.0, name, 0.0, 1e5)
        self.channel_rate_hz = number(p, "channel_rate_hz", ADC_BANDWIDTH_HZ / 32, name, 1e5,
                                      ADC_BANDWIDTH_HZ)
        drop = number(p, "reset_drop_samples", 1, name, 0, 1000)
        if drop != int(drop):
            raise ValueError(f"{name}.reset_drop_samples must be an integer, got {drop:g}")
        self.reset_drop = int(drop)
        lut = number(p, "lut_length", 2**21, name, 16, 2**30)
        if lut != int(lut):
            raise ValueError(f"{name}.lut_length must be an integer, got {lut:g}")
        self.lut_resolution_hz = ADC_BANDWIDTH_HZ / int(lut)
        self.isolation_dB = number(p, "channel_isolation_dB", math.inf, name, 0.0, math.inf)
        self.lut_period_samples = round(self.channel_rate_hz / self.lut_resolution_hz)
        if abs(self.lut_period_samples * self.lut_resolution_hz - self.channel_rate_hz) > 1e-6:
            raise ValueError(f"{name}.lut_length: the look-up table ({int(lut)} samples) must "
                             f"last whole channel samples at channel_rate_hz "
                             f"{self.channel_rate_hz:g}")
        self.cable_delay_s = number(p, "cable_delay_s", 50e-9, name, 0.0, 1e-6)
        self.gain = number(p, "gain", 1.0, name, 1e-9, 1e9)
        self.gain_slope = number(p, "gain_slope", 0.1, name, -0.9, 0.9)
        self.sweep_noise = number(p, "sweep_noise", 1e-3, name, 0.0, 1.0)
        self.stream = SampleStream(int(number(p, "buffer_samples", 1 << 22, name, 1, 1 << 31)))
        self._ref_harmonic = self.comb.nominal_harmonic()
        self._sources: dict[int, PulseSource] = {}
        self._tails: dict[int, tuple[int, np.ndarray]] = {}
        self._setups: dict[tuple[Any, ...], ToneSetup] = {}
        self._states: dict[int, _ChannelState] = {}
        self._leaks: dict[int, np.ndarray] = {}
        self._tables: dict[int, PeriodTables | None] = {}
        self._sweep_rng = world.rng(f"{name}.sweep")
        #: The firmware's random phase of each DAC tone (added to CH<n>:PHAS), which keeps the
        #: comb's crest factor ~sqrt(2 ln N) instead of N.
        self.dac_phase = world.rng(f"{name}.dac").uniform(0.0, 2.0 * np.pi, 65)

    def commands(self) -> dict[str, Handler]:
        return {
            r"FETC\?\s+(\S+)": self._fetch,
            r"SWE\?\s+([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s]+)": self._sweep,
            r"CH(\d+):FREQ\?": self._tone_query,
            r"DAC:RES\?": lambda m: f"{self.lut_resolution_hz:.15e}",
            r"CHAN:RATE\?": lambda m: f"{self.channel_rate_hz:.15e}",
            r"RAMP:FREQ\?": lambda m: f"{self.ramp_hz():.15e}",
            r"ACQ:COUN\?": lambda m: str(self.stream.next),
            r"ACQ:AVA\?": lambda m: str(self._available()),
            r"CHAN:BUDG\?": lambda m: str(self.budget()),
        }

    # -- settings -------------------------------------------------------------------------

    def budget(self, f_ramp_hz: float | None = None, n_phi0: int | None = None) -> int:
        """Channels the board can demodulate at this flux ramp (HOLMES formula)."""
        return channel_budget(
            ADC_BANDWIDTH_HZ,
            self.ramp_hz(f_ramp_hz),
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

    def comb_peak(self) -> float:
        """Peak of the DAC comb's complex envelope over one LUT period, in units of full
        scale: |sum_k A_k exp(i (2 pi f_k t + phi_k))| on `COMB_PEAK_POINTS` instants."""
        channels = self._enabled()
        if not channels:
            return 0.0
        t = np.arange(COMB_PEAK_POINTS) / (COMB_PEAK_POINTS * self.lut_resolution_hz)
        comb = np.zeros(t.size, dtype=complex)
        for ch in channels:
            phase = self.dac_phase[ch] + float(self.setting("tone_phase", ch))
            comb += float(self.setting("tone_amplitude", ch)) * np.exp(
                1j * (2.0 * np.pi * self.tone_hz(ch) * t + phase))
        return float(np.max(np.abs(comb)))

    def check_setting(self, name: str, ch: str | None, value: Any) -> None:
        if name == "running" and value and not self.setting("running"):
            peak = self.comb_peak()
            if peak > 1.0:
                raise SCPIError(-221, f"Settings conflict; the DAC tone comb peaks at "
                                      f"{peak:.3g} x full scale and would clip: lower the tone "
                                      f"amplitudes")
        frozen = ("ramp_frequency", "ramp_amplitude", "ramp_on", "acq_mode")
        if name in frozen and self.setting("running"):
            raise SCPIError(-221, "Settings conflict; stop acquisition (ACQ:RUN 0) first")
        f_ramp, n_phi0 = self.ramp_hz(), self.setting("ramp_amplitude")
        wanted = len(self._enabled())
        if name == "enabled" and value and ch is not None and int(ch) not in self._enabled():
            wanted += 1
        elif name == "ramp_frequency":
            f_ramp = self.ramp_hz(float(value))
        elif name == "ramp_amplitude":
            n_phi0 = int(value)
        else:
            return
        if wanted > self.budget(f_ramp, n_phi0):
            raise self._budget_error(wanted, f_ramp, n_phi0)

    def on_setting(self, name: str, ch: str | None, value: Any) -> None:
        if name == "running" and value:
            self._start()

    def on_reset(self) -> None:
        self._start()

    def _start(self) -> None:
        """A new acquisition: restart the counter, the demodulators and the detector map."""
        self.stream.start(self.world.now())
        self._states.clear()
        self._tails.clear()
        self._tables.clear()
        if self.device is None:
            return
        self._leaks = self._tone_leaks()
        if self.array is None:
            return
        self.array.channel_of.clear()
        self.array.stream_start_s = self.stream.start_s
        self.array.sample_rate_hz = self.ramp_hz()
        for ch in self._enabled():
            own = self.resonator_of(ch)
            if own is not None and isinstance(self.detector(own), TesDetector):
                self.array.channel_of[own] = ch
        for k, det in self.array.detectors_by_resonator.items():
            det.set_readout(self.nominal_readout_density(k), self.ramp_hz())

    def samples_per_period(self, f_ramp_hz: float | None = None) -> int:
        """Channel samples per ramp period: the ramp is generated from the channel clock."""
        wanted = float(self.setting("ramp_frequency")) if f_ramp_hz is None else f_ramp_hz
        return max(self.reset_drop + 6, round(self.channel_rate_hz / wanted))

    def ramp_hz(self, f_ramp_hz: float | None = None) -> float:
        """The ramp frequency the board runs for a requested one: f_ch / whole samples."""
        return self.channel_rate_hz / self.samples_per_period(f_ramp_hz)

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

    # -- channels -------------------------------------------------------------------------

    def system_noise_K(self) -> float:
        """T_sys = T_HEMT + T_room / G_HEMT (K)."""
        return self.hemt_noise_K + self.room_noise_K / 10.0 ** (self.hemt_gain_dB / 10.0)

    def _setup(self, ch: int) -> ToneSetup:
        """The channel's firmware setup for its present tone and ramp (cached)."""
        f_rf = self.setting("lo_frequency") + self.tone_hz(ch)
        amplitude = float(self.setting("tone_amplitude", ch))
        phase = self.dac_phase[int(ch)] + float(self.setting("tone_phase", ch))
        return self._tone_setup(f_rf, amplitude, phase)

    def nominal_readout_density(self, k: int) -> float:
        """Readout flux noise (Phi0/sqrt(Hz)) of a well-tuned channel on resonator k: a tone
        of the reference amplitude at the centre of its swing, at the present ramp."""
        f_rf = float(self.comb.centre_hz()[k])
        return self._tone_setup(f_rf, self.reference_amplitude, 0.0).readout_density

    def _tone_setup(self, f_rf: float, amplitude: float, phase: float) -> ToneSetup:
        n_phi0 = int(self.setting("ramp_amplitude"))
        f_ramp = self.ramp_hz()
        key = (f_rf, amplitude, phase, n_phi0, f_ramp)
        if key in self._setups:
            return self._setups[key]
        c1 = np.abs(self.comb.harmonics(f_rf))
        seen = np.flatnonzero(c1 > CROSSTALK_FLOOR * self._ref_harmonic)
        ks = np.concatenate([[int(np.argmax(c1))], seen[seen != np.argmax(c1)]]).astype(int)
        if seen.size == 0:
            ks = ks[:0]
        c = self.comb
        luts = response_table(f_rf, c.f0_hz[ks], c.swing_hz, c.lam, c.q_i[ks], c.q_c[ks])
        static = c.static_phi0[ks].copy()
        power_w = 10.0 ** ((self.tone_power_dBm - 30.0) / 10.0) * (
            amplitude / self.reference_amplitude) ** 2
        sigma = math.sqrt(BOLTZMANN * self.system_noise_K() * self.channel_rate_hz
                          / (2.0 * max(power_w, 1e-300)))
        ratio = self.samples_per_period()
        if ks.size:
            centre, rot = calibration(luts, static, n_phi0)
            density = readout_flux_density(luts, static, ratio, n_phi0, self.reset_drop,
                                           centre, rot, sigma, f_ramp)
        else:
            centre, rot, density = 0j, 1 + 0j, math.inf
        raw = self.gain * amplitude / self.reference_amplitude * np.exp(
            1j * (phase - 2 * np.pi * f_rf * self.cable_delay_s))
        weights = reference_weights(ratio, n_phi0, self.reset_drop)
        setup = ToneSetup(ks, luts, static, centre, rot, sigma, density, complex(raw), weights)
        self._setups[key] = setup
        return setup

    def _tone_leaks(self) -> dict[int, np.ndarray]:
        """Per enabled channel, the other tones its channel filter lets through (`tone_leak`):
        each attenuated by `channel_isolation_dB` at one resonator spacing and 40 dB/decade
        beyond, scaled by its amplitude and its (ramp-averaged) transmission relative to the
        channel's own tone."""
        channels = self._enabled()
        if not math.isfinite(self.isolation_dB) or len(channels) < 2:
            return {}
        lo = self.setting("lo_frequency")
        tones = np.array([self.tone_hz(ch) for ch in channels])
        amps = np.array([float(self.setting("tone_amplitude", ch)) for ch in channels])
        phases = np.array([self.dac_phase[ch] + float(self.setting("tone_phase", ch))
                           for ch in channels])
        ramp = np.arange(RAMP_AVERAGE_PHASES) / RAMP_AVERAGE_PHASES
        s21 = np.mean([self.comb.transmission(lo + tones, r) for r in ramp], axis=0)
        leaks = {}
        for i, ch in enumerate(channels):
            others = np.arange(len(channels)) != i
            offset = np.abs(tones[others] - tones[i])
            rolloff = np.minimum(1.0, self.comb.spacing_hz / np.maximum(offset, 1.0)) ** 2
            size = 10.0 ** (-self.isolation_dB / 20.0) * rolloff * amps[others] / max(
                amps[i], 1e-12) * np.abs(s21[others])
            leaks[ch] = tone_leak(tones[i], tones[others], size,
                                  phases[others] - phases[i] + np.angle(s21[others]),
                                  self.channel_rate_hz, self.lut_period_samples)
        return leaks

    def readout_density(self, ch: int) -> float:
        """Predicted white flux noise (Phi0/sqrt(Hz)) of the readout on channel `ch`."""
        return self._setup(ch).readout_density

    def resonator_of(self, ch: int) -> int | None:
        """Resonator (0-based) that channel `ch`'s tone reads, or None if it reads none."""
        ks = self._setup(ch).resonators
        return int(ks[0]) if ks.size else None

    def detector(self, k: int) -> PulseSource | TesDetector | None:
        """The detector on resonator `k` (0-based), or None if the World defines none."""
        if not self.kinds:
            return None
        kind = self.kinds[k % len(self.kinds)]
        if is_tes((self.world.params.get("detectors") or {})[kind]):
            assert self.array is not None
            if k not in self.array.detectors_by_resonator:
                self.array.detector(k).set_readout(self.nominal_readout_density(k),
                                                   self.ramp_hz())
            return self.array.detector(k)
        if k not in self._sources:
            self._sources[k] = detector_source(
                self.world.params, kind, self.world.rng(f"{self.name}.res{k}"))
        return self._sources[k]

    def _signal(self, k: int, first: int, count: int,
                cache: dict[tuple[int, int, int], np.ndarray]) -> np.ndarray:
        """Detector flux of resonator k at ramp-period boundaries first .. first + count - 1;
        consecutive requests continue the detector's stream (the last boundaries are kept)."""
        key = (k, first, count)
        if key in cache:
            return cache[key]
        source = self.detector(k)
        if source is None:
            out = np.zeros(count)
        else:
            rate = self.ramp_hz()
            channel = self.array.channel_of.get(k, -1) if self.array is not None else -1

            def generate(p: int, n: int) -> np.ndarray:
                t0 = self.stream.start_s + p / rate
                if isinstance(source, TesDetector):
                    return source.block(t0, n, rate, channel)
                return source.block(t0, n, rate)

            tail = self._tails.get(k)
            if tail is not None and tail[0] <= first <= tail[0] + tail[1].size:
                have = tail[1][first - tail[0]:count + first - tail[0]]
                end = tail[0] + tail[1].size
                more = count - have.size
                out = np.concatenate([have, generate(end, more)]) if more > 0 else have
            else:
                out = generate(first, count)
            end = first + count
            if tail is None or end >= tail[0] + tail[1].size:
                self._tails[k] = (end - min(2, count), out[-min(2, count):].copy())
        cache[key] = out
        return out

    def _state(self, ch: int) -> _ChannelState:
        if ch not in self._states:
            self._states[ch] = _ChannelState(self.world.rng(f"{self.name}.ch{ch}.hemt"))
        return self._states[ch]

    # -- streams --------------------------------------------------------------------------

    def _rate(self) -> float:
        raw = self.setting("acq_mode") == "RAW"
        return self.channel_rate_hz if raw else self.ramp_hz()

    def _available(self) -> int:
        if not self.setting("running"):
            return 0
        return self.stream.available(self.world.now(), self._rate())

    def _fetch(self, match: re.Match[str]) -> bytearray:
        if not self.setting("ramp_on"):
            raise SCPIError(-221, "Settings conflict; flux ramp off (RAMP:STAT 1), nothing to "
                                  "demodulate")
        if not self.setting("running"):
            raise SCPIError(-221, "Settings conflict; acquisition not running (ACQ:RUN 1)")
        first, _, n = fetch_window(self.stream, self.world, match.group(1), self._rate())
        channels = self._enabled()
        cache: dict[tuple[int, int, int], np.ndarray] = {}
        if self.setting("acq_mode") == "RAW":
            iq = np.empty((len(channels), n), dtype=np.complex64)
            for row, ch in enumerate(channels):
                iq[row] = self._raw(ch, first, n, cache)
            data = iq
        else:
            data = self._demodulate(channels, first, n, cache)
        self.stream.next = first + n
        return stream_block(first, channels, data)

    def _ramp(self) -> tuple[int, int]:
        return self.samples_per_period(), int(self.setting("ramp_amplitude"))

    def _period_tables(self, ch: int, setup: ToneSetup) -> PeriodTables | None:
        """The channel's per-period tables (`umux_period`) for this acquisition, or None where
        the channel is demodulated sample by sample."""
        if ch not in self._tables:
            ratio, n_phi0 = self._ramp()
            self._tables[ch] = period_tables(
                setup.luts, setup.centre, setup.rot, setup.sigma, self._leaks.get(ch, NO_LEAK),
                ratio, n_phi0, self.reset_drop, setup.weights)
        return self._tables[ch]

    def _demodulate(self, channels: list[int], first: int, n: int,
                    cache: dict[tuple[int, int, int], np.ndarray]) -> np.ndarray:
        """Firmware output (float32) of the channels for ramp periods first .. first + n - 1:
        from the per-period tables of `umux_period` where they hold, else sample by sample.
        The kernels release the GIL and run on worker threads while this one generates the
        next channel's detector flux (which reads the World, whose lock it holds)."""
        ratio, n_phi0 = self._ramp()
        out = np.empty((len(channels), n))
        out32 = np.empty((len(channels), n), dtype=np.float32)
        jobs = []
        for row, ch in enumerate(channels):
            setup = self._setup(ch)
            fluxes = [self._signal(int(k), first, n + 1, cache) for k in setup.resonators]
            state = self._state(ch)
            job = _workers(os.getpid()).submit(
                _demodulate_channel, first, self._period_tables(ch, setup), setup.luts,
                setup.static, fluxes, ratio, n_phi0, *setup.weights, self.reset_drop,
                setup.centre, setup.rot, self._leaks.get(ch, NO_LEAK), setup.sigma, state.noise,
                state.last, out[row], out32[row])
            jobs.append((setup, fluxes, state, job))
        for row, (setup, fluxes, state, job) in enumerate(jobs):
            state.last = job.result()
            if setup.resonators.size:
                self._track_slips(int(setup.resonators[0]), state, fluxes[0], out[row], first)
        return out32

    def _track_slips(self, k: int, state: _ChannelState, flux: np.ndarray, phase: np.ndarray,
                     first: int) -> None:
        """Whole quanta between the demodulated and the true flux of the read detector: each
        change is a slip, recorded with its time for the truth."""
        source = self.detector(k)
        if not isinstance(source, TesDetector):
            return
        if state.reference is None:
            state.reference = float(phase[0] / (2.0 * np.pi) - 0.5 * (flux[0] + flux[1]))
        steps = np.empty(phase.size, dtype=np.int64)
        counts = np.empty(phase.size, dtype=np.int64)
        changed = quanta_changes(phase, flux, state.reference, state.quanta, steps, counts)
        rate = self.ramp_hz()
        for q, count in zip(steps[:changed], counts[:changed], strict=True):
            source.slip_changes.append((self.stream.start_s + (first + q) / rate, int(count)))
            state.quanta = int(count)

    def _raw(self, ch: int, first: int, n: int,
             cache: dict[tuple[int, int, int], np.ndarray]) -> np.ndarray:
        """Raw channel IQ of channel samples first .. first + n - 1."""
        setup = self._setup(ch)
        ratio, n_phi0 = self._ramp()
        p0 = first // ratio
        count = (first + n - 1) // ratio + 2 - p0
        signal = np.array([self._signal(int(k), p0, count, cache) for k in setup.resonators]
                          ).reshape(setup.resonators.size, count)
        out = np.empty(n, dtype=np.complex128)
        channel_iq(first, p0, setup.luts, setup.static, signal, ratio, n_phi0, setup.raw_phasor,
                   self._leaks.get(ch, NO_LEAK), setup.sigma * abs(setup.raw_phasor),
                   self._state(ch).noise, out)
        return out
