"""16-channel digitizer: sample rate, input range, channel enable, int16 block fetch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryodaq.drivers.base import Channel, OneOf, Range, Setting
from cryodaq.drivers.streaming import StreamingInstrument

INPUT_RANGES_V = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
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


class Adc16(StreamingInstrument):
    """16-channel ADC. Blocks carry the counter of their first sample, so gaps are visible."""

    channel_ids = tuple(range(1, 17))
    channel_class = AdcChannel

    sample_rate = Setting("SAMP:RATE", float, unit="Hz", allowed=Range(1e3, 1e7))
    input_range = Setting("VOLT:RANG", float, unit="V", allowed=OneOf(INPUT_RANGES_V))

    def fetch(self, samples: int) -> AdcBlock:
        """The next `samples` samples of every enabled channel (waits until they exist)."""
        rate = self.sample_rate
        volts_per_code = self.input_range / FULL_SCALE
        block = self._fetch_stream(samples, rate, "i2")
        return AdcBlock(block.first_sample, rate, block.channels, block.data, volts_per_code)

    def summary(self) -> dict[str, object]:
        enabled = [c.ch for c in self.channels if c.enabled]
        return {
            "sample_rate": f"{self.sample_rate:g} Hz",
            "input_range": f"{self.input_range:g} V",
            "running": self.running,
            "enabled": f"{len(enabled)}/16",
        }
