"""Instruments that stream continuous multi-channel blocks (ADC, uMUX board)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.drivers.base import Instrument, Setting
from cryodaq.drivers.errors import InstrumentError, SettingRangeError

#: Preamble of streamed data blocks: first-sample counter, channel mask (bit i = channel i+1),
#: channels, samples (little-endian u64, u64, u32, u32).
STREAM_PREAMBLE = struct.Struct("<QQII")


@dataclass(frozen=True)
class StreamBlock:
    """A `channels x samples` block as an instrument streamed it."""

    first_sample: int
    channels: tuple[int, ...]
    data: np.ndarray


def parse_stream_block(raw: np.ndarray, dtype: str, instrument: str, command: str) -> StreamBlock:
    """Split the bytes of a streamed block into its preamble and its `channels x samples` data."""
    size = STREAM_PREAMBLE.size
    if raw.size < size:
        raise InstrumentError(instrument, command, f"block of {raw.size} bytes has no preamble")
    first, mask, n_ch, n_s = STREAM_PREAMBLE.unpack(raw[:size].tobytes())
    channels = tuple(i + 1 for i in range(64) if mask >> i & 1)
    payload = raw[size:]
    item = np.dtype(dtype).itemsize
    if payload.size % item:
        raise InstrumentError(
            instrument,
            command,
            f"block payload of {payload.size} bytes is not whole {dtype} values",
        )
    data = payload.view(np.dtype(dtype).newbyteorder("<"))
    if len(channels) != n_ch or data.size != n_ch * n_s:
        raise InstrumentError(
            instrument,
            command,
            f"block preamble says {n_ch} x {n_s} values in channels {channels}, "
            f"got {data.size} values",
        )
    return StreamBlock(first, channels, data.reshape(n_ch, n_s))


#: Largest block one FETC? may ask for, per channel.
MAX_FETCH_SAMPLES = 1 << 22


class StreamingInstrument(Instrument):
    """Acquires continuously into an on-board buffer from `start()` on; `FETC? n` reads the
    next n samples per enabled channel, with the counter of the first one."""

    running = Setting("ACQ:RUN", bool, doc="Continuous acquisition into the on-board buffer")

    def make_idle(self) -> None:
        """Clear the status and stop an acquisition a crashed session left running."""
        super().make_idle()
        if self.running:
            self.running = False

    def start(self) -> None:
        """Start continuous acquisition; the sample counter restarts at 0."""
        self.running = True

    def stop(self) -> None:
        self.running = False

    def fetch(self, samples: int) -> Any:
        """The next `samples` samples of every enabled channel (waits until they exist)."""
        raise NotImplementedError

    def available(self) -> int:
        """Samples per channel waiting in the on-board buffer."""
        return int(self.query("ACQ:AVA?"))

    def _fetch_stream(self, samples: int, rate_hz: float, dtype: str) -> StreamBlock:
        """Read one block; the reply timeout grows with the block's duration."""
        command = f"FETC? {int(samples)}"
        if not 1 <= samples <= MAX_FETCH_SAMPLES:
            raise SettingRangeError(
                self.name, command, f"samples must be 1 .. {MAX_FETCH_SAMPLES}, got {samples}"
            )
        timeout = self.resource.timeout
        self.resource.timeout = timeout + 1500.0 * samples / rate_hz
        try:
            return parse_stream_block(self.query_block(command), dtype, self.name, command)
        finally:
            self.resource.timeout = timeout
