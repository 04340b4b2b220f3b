"""Block sources: continuous `channels x samples` blocks with the counter of their first sample.

A source is an instrument streaming through its driver (ADC, uMUX board) or stored data
replayed. Consecutive blocks continue each other's counters unless data were lost; the
trigger engine turns a jump into a recorded gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.streaming import StreamingInstrument
from cryodaq.drivers.umux import UmuxBoard


@dataclass(frozen=True)
class Block:
    """Consecutive samples `first_sample ...` of `channels` (rows of `data`)."""

    first_sample: int
    sample_rate_hz: float
    channels: tuple[int, ...]
    data: np.ndarray


class BlockSource(Protocol):
    """What the acquisition loop reads from."""

    name: str
    sample_rate_hz: float
    channels: tuple[int, ...]
    dtype: np.dtype
    #: Time (ns, wall or virtual) of sample 0, known after `start()`.
    start_time_ns: int
    #: Physical units per data unit (V per ADC code, Phi0 per radian, ...).
    units_per_value: float
    unit: str

    def start(self) -> None: ...

    def read(self) -> Block | None:
        """The next block, or None when the source has no more data."""

    def stop(self) -> None: ...


class _DriverSource:
    """A source streaming through a driver with `start`, `stop` and `fetch`."""

    dtype: np.dtype
    unit: str
    units_per_value: float

    def __init__(
        self,
        device: StreamingInstrument,
        block_samples: int,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if block_samples < 1:
            raise ValueError(f"{device.name}: block_samples must be >= 1, got {block_samples}")
        self.device = device
        self.name = device.name
        self.block_samples = block_samples
        self._clock_ns = clock_ns
        self.start_time_ns = 0
        self.channels: tuple[int, ...] = ()
        self.sample_rate_hz = self._settings()

    def _settings(self) -> float:
        """Read the device's sample rate (and scale); called again at start."""
        raise NotImplementedError

    def _fetch(self) -> Block:
        raise NotImplementedError

    def start(self) -> None:
        self.sample_rate_hz = self._settings()
        self.device.start()
        self.start_time_ns = self._clock_ns()

    def read(self) -> Block:
        block = self._fetch()
        self.channels = block.channels
        return block

    def stop(self) -> None:
        self.device.stop()


class AdcSource(_DriverSource):
    """int16 codes of the enabled channels of an `Adc16`."""

    dtype = np.dtype(np.int16)
    unit = "V"
    device: Adc16

    def _settings(self) -> float:
        self.units_per_value = self.device.input_range / 32767
        return self.device.sample_rate

    def _fetch(self) -> Block:
        b = self.device.fetch(self.block_samples)
        return Block(b.first_sample, b.sample_rate_hz, b.channels, b.codes)


class UmuxSource(_DriverSource):
    """float32 demodulated phase (rad) of the enabled channels of a `UmuxBoard`."""

    dtype = np.dtype(np.float32)
    unit = "Phi0"
    units_per_value = 1.0 / (2.0 * np.pi)
    device: UmuxBoard

    def _settings(self) -> float:
        return self.device.ramp_frequency

    def _fetch(self) -> Block:
        b = self.device.fetch(self.block_samples)
        return Block(b.first_sample, b.sample_rate_hz, b.channels, b.phase)


class ReplaySource:
    """Stored continuous data (`channels x samples`) replayed in blocks.

    `gaps` lists (first_sample, missing) pairs: samples that were lost when the data were
    taken, so the counter jumps there as it did live. `repeat` plays the data that many times
    back to back, the counter running on (a long stream from a short recording; a block ends
    where the data do).
    """

    def __init__(
        self,
        data: np.ndarray,
        sample_rate_hz: float,
        block_samples: int,
        channels: tuple[int, ...] | None = None,
        first_sample: int = 0,
        gaps: tuple[tuple[int, int], ...] = (),
        start_time_ns: int = 0,
        name: str = "replay",
        units_per_value: float = 1.0,
        unit: str = "",
        repeat: int = 1,
    ) -> None:
        if data.ndim != 2:
            raise ValueError(f"{name}: data must be channels x samples, got shape {data.shape}")
        if repeat < 1:
            raise ValueError(f"{name}: repeat must be >= 1, got {repeat}")
        self.name = name
        self.data = data
        self.sample_rate_hz = float(sample_rate_hz)
        self.block_samples = int(block_samples)
        self.channels = channels or tuple(range(1, data.shape[0] + 1))
        self.dtype = data.dtype
        self.start_time_ns = start_time_ns
        self.units_per_value = units_per_value
        self.unit = unit
        self._first = first_sample
        self._given_gaps = dict(gaps)
        self._gaps = dict(gaps)
        self._repeat = int(repeat)
        self._pos = 0
        self._counter = first_sample

    def start(self) -> None:
        self._pos = 0
        self._counter = self._first
        self._gaps = dict(self._given_gaps)  # a replay started again loses its samples again

    def read(self) -> Block | None:
        if self._pos >= self.data.shape[1] * self._repeat:
            return None
        n = self.block_samples
        for at, missing in self._gaps.items():
            if self._counter <= at < self._counter + n:
                n = at - self._counter  # the block ends where samples were lost
                if n == 0:
                    self._counter += missing
                    del self._gaps[at]
                    n = self.block_samples
                break
        offset = self._pos % self.data.shape[1]
        chunk = self.data[:, offset : offset + n]
        block = Block(self._counter, self.sample_rate_hz, self.channels, chunk)
        self._pos += chunk.shape[1]
        self._counter += chunk.shape[1]
        return block

    def stop(self) -> None:
        """Nothing to release."""
