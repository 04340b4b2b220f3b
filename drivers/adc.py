"""16-channel digitizer: sample rate, input range, channel enable, int16 block fetch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.base import Channel, Instrument, OneOf, Range, Setting, parse_stream_block
from drivers.errors import SettingRangeError

INPUT_RANGES_V = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
MAX_FETCH_SAMPLES = 1 << 22
FULL_SCALE = 32767


@dataclass(frozen=True)
class AdcBlock:
    """Consecutive samples of the enabled channels, from counter `first_sample` on."""

    first_sample: int
    sample_rate_hz: float
    channels: tuple[int, ...]
    codes: np.ndarray  # int16, channels x samples
    volts_per_code: float

    def volts(self) -> np.ndarray:
        return self.codes * self.volts_per_code


class AdcChannel(Channel):
    enabled = Setting("CH{ch}:ENAB", bool, doc="Channel digitised and streamed")


class Adc16(Instrument):
    """16-channel ADC. Blocks carry the counter of their first sample, so gaps are visible."""

    channel_ids = tuple(range(1, 17))
    channel_class = AdcChannel

    sample_rate = Setting("SAMP:RATE", float, unit="Hz", allowed=Range(1e3, 1e7))
    input_range = Setting("VOLT:RANG", float, unit="V", allowed=OneOf(INPUT_RANGES_V))
    running = Setting("ACQ:RUN", bool, doc="Continuous acquisition into the on-board buffer")

    def start(self) -> None:
        """Start continuous acquisition; the sample counter restarts at 0."""
        self.running = True

    def stop(self) -> None:
        self.running = False

    def available(self) -> int:
        """Samples per channel waiting in the on-board buffer."""
        return int(self.query("ACQ:AVA?"))

    def fetch(self, samples: int) -> AdcBlock:
        """The next `samples` samples of every enabled channel (waits until they exist)."""
        command = f"FETC? {int(samples)}"
        if not 1 <= samples <= MAX_FETCH_SAMPLES:
            raise SettingRangeError(
                self.name, command, f"samples must be 1 .. {MAX_FETCH_SAMPLES}, got {samples}"
            )
        rate = self.sample_rate
        volts_per_code = self.input_range / FULL_SCALE
        timeout = self.resource.timeout
        self.resource.timeout = timeout + 1500.0 * samples / rate
        try:
            block = parse_stream_block(self.query_block(command), "i2", self.name, command)
        finally:
            self.resource.timeout = timeout
        return AdcBlock(block.first_sample, rate, block.channels, block.data, volts_per_code)

    def summary(self) -> dict[str, object]:
        enabled = [c.ch for c in self.channels if c.enabled]
        return {
            "sample_rate": f"{self.sample_rate:g} Hz",
            "input_range": f"{self.input_range:g} V",
            "running": self.running,
            "enabled": f"{len(enabled)}/16",
        }
