"""ROACH2-like microwave SQUID multiplexing (uMUX) board: LO, DAC tone comb, flux ramp,
complex S21 sweeps, and per-channel blocks of demodulated phase (ACQ:MODE PHASE) or of raw
channel IQ at the channeliser's rate (ACQ:MODE RAW)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cryodaq.drivers.base import Channel, OneOf, Range, Setting
from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.drivers.streaming import StreamingInstrument

#: Tones are baseband frequencies within +-BASEBAND_HALF_WIDTH_HZ of the LO (512 MHz ADC).
BASEBAND_HALF_WIDTH_HZ = 256e6
MAX_SWEEP_POINTS = 200_001
CHANNELS = 64


@dataclass(frozen=True)
class UmuxBlock:
    """Demodulated phase (rad) of the enabled channels, one sample per flux-ramp period,
    from counter `first_sample` on."""

    first_sample: int
    sample_rate_hz: float
    channels: tuple[int, ...]
    phase: np.ndarray  # float32, channels x samples

    def flux_phi0(self) -> np.ndarray:
        """SQUID flux in Phi0: phase / (2 pi)."""
        return self.phase.astype(float) / (2.0 * math.pi)


@dataclass(frozen=True)
class UmuxRawBlock:
    """Raw channel IQ (complex64, channels x samples) at the channel rate, from counter
    `first_sample` on: the down-converted tone before flux-ramp demodulation."""

    first_sample: int
    sample_rate_hz: float
    channels: tuple[int, ...]
    iq: np.ndarray


@dataclass(frozen=True)
class Sweep:
    """Complex S21 measured at LO + `baseband_hz`."""

    lo_hz: float
    baseband_hz: np.ndarray
    s21: np.ndarray  # complex128

    @property
    def rf_hz(self) -> np.ndarray:
        """Microwave frequencies of the points."""
        return self.lo_hz + self.baseband_hz


class UmuxChannel(Channel):
    """One DAC tone and its demodulator."""

    frequency = Setting(
        "CH{ch}:FREQ", float, unit="Hz",
        allowed=Range(-BASEBAND_HALF_WIDTH_HZ, BASEBAND_HALF_WIDTH_HZ),
        doc="Tone frequency relative to the LO; reads back rounded to the DAC LUT grid",
    )
    amplitude = Setting("CH{ch}:AMPL", float, allowed=Range(0.0, 1.0),
                        doc="Tone amplitude, fraction of DAC full scale")
    phase = Setting("CH{ch}:PHAS", float, unit="rad", allowed=Range(0.0, 2.0 * math.pi),
                    doc="Tone phase in the DAC comb")
    enabled = Setting("CH{ch}:ENAB", bool, doc="Channel demodulated and streamed")


class UmuxBoard(StreamingInstrument):
    """uMUX readout board. Fetched blocks carry the counter of their first sample, so samples
    lost to a full on-board buffer show as a gap."""

    channel_ids = tuple(range(1, CHANNELS + 1))
    channel_class = UmuxChannel

    lo_frequency = Setting("LO:FREQ", float, unit="Hz", allowed=Range(4e9, 8e9))
    ramp_frequency = Setting("RAMP:FREQ", float, unit="Hz", allowed=Range(1e4, 2e6),
                             doc="Flux-ramp repetition rate = demodulated sample rate")
    ramp_amplitude = Setting("RAMP:AMPL", int, unit="Phi0", allowed=OneOf(tuple(range(1, 9))),
                             doc="Flux quanta per ramp period (n_Phi0)")
    ramp_on = Setting("RAMP:STAT", bool, doc="Flux ramp running")
    mode = Setting("ACQ:MODE", str, allowed=OneOf(("PHASE", "RAW")),
                   doc="Stream demodulated phase per ramp period (PHASE) or raw channel IQ (RAW)")

    # -- tones ----------------------------------------------------------------------------

    def set_tone(self, ch: int, frequency_hz: float, amplitude: float | None = None,
                 phase_rad: float | None = None, enable: bool = True) -> float:
        """Place channel `ch`'s tone; returns the frequency the board actually holds."""
        channel = self.channel(ch)
        assert isinstance(channel, UmuxChannel)
        channel.frequency = frequency_hz
        if amplitude is not None:
            channel.amplitude = amplitude
        if phase_rad is not None:
            channel.phase = phase_rad
        channel.enabled = enable
        return channel.frequency

    @property
    def lut_resolution_hz(self) -> float:
        """Tone frequency grid of the DAC look-up table."""
        return float(self.query("DAC:RES?"))

    @property
    def channel_rate_hz(self) -> float:
        """Sample rate of the channeliser's output (raw IQ)."""
        return float(self.query("CHAN:RATE?"))

    @property
    def channel_budget(self) -> int:
        """Channels the board can demodulate at the present flux ramp."""
        return int(self.query("CHAN:BUDG?"))

    def enabled_channels(self) -> list[int]:
        return [int(c.ch) for c in self.channels if c.enabled]

    # -- sweep ----------------------------------------------------------------------------

    def sweep(self, start_hz: float, stop_hz: float, points: int) -> Sweep:
        """Complex S21 at `points` baseband frequencies from `start_hz` to `stop_hz`."""
        command = f"SWE? {start_hz:.9e},{stop_hz:.9e},{int(points):d}"
        half = BASEBAND_HALF_WIDTH_HZ
        if not (-half <= start_hz < stop_hz <= half and 2 <= points <= MAX_SWEEP_POINTS):
            raise SettingRangeError(
                self.name, command,
                f"need -{half:g} Hz <= start < stop <= {half:g} Hz and "
                f"2 <= points <= {MAX_SWEEP_POINTS}",
            )
        lo = self.lo_frequency
        values = np.ascontiguousarray(self.query_block(command, "d"), dtype="<f8")
        if values.size != 2 * points:
            raise InstrumentError(self.name, command,
                                  f"expected {2 * points} values, got {values.size}")
        s21 = values.view(np.complex128).copy()
        return Sweep(lo, np.linspace(start_hz, stop_hz, points), s21)

    # -- streaming ------------------------------------------------------------------------

    def fetch(self, samples: int) -> UmuxBlock:
        """The next `samples` demodulated samples of every enabled channel (PHASE mode)."""
        if self.mode != "PHASE":
            raise InstrumentError(self.name, "FETC?", "board is in RAW mode; use fetch_raw")
        rate = self.ramp_frequency
        block = self._fetch_stream(samples, rate, "f4")
        return UmuxBlock(block.first_sample, rate, block.channels, block.data)

    def fetch_raw(self, samples: int) -> UmuxRawBlock:
        """The next `samples` raw IQ samples of every enabled channel (RAW mode)."""
        if self.mode != "RAW":
            raise InstrumentError(self.name, "FETC?", "board is in PHASE mode; set mode RAW")
        rate = self.channel_rate_hz
        block = self._fetch_stream(samples, rate, "c8")
        return UmuxRawBlock(block.first_sample, rate, block.channels, block.data)

    def summary(self) -> dict[str, object]:
        ramp = "on" if self.ramp_on else "off"
        return {
            "lo": f"{self.lo_frequency / 1e9:.6g} GHz",
            "flux_ramp": f"{self.ramp_frequency / 1e3:g} kHz x {self.ramp_amplitude} Phi0, {ramp}",
            "mode": self.mode,
            "running": self.running,
            "enabled": f"{len(self.enabled_channels())}/{self.channel_budget}",
        }
