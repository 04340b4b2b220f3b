"""Instruments that stream continuous multi-channel blocks (ADC, uMUX board)."""

from __future__ import annotations

from cryodaq.drivers.base import Instrument, Setting, StreamBlock, parse_stream_block
from cryodaq.drivers.errors import SettingRangeError

#: Largest block one FETC? may ask for, per channel.
MAX_FETCH_SAMPLES = 1 << 22


class StreamingInstrument(Instrument):
    """Acquires continuously into an on-board buffer from `start()` on; `FETC? n` reads the
    next n samples per enabled channel, with the counter of the first one."""

    running = Setting("ACQ:RUN", bool, doc="Continuous acquisition into the on-board buffer")

    def start(self) -> None:
        """Start continuous acquisition; the sample counter restarts at 0."""
        self.running = True

    def stop(self) -> None:
        self.running = False

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
