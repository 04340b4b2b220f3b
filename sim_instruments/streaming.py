"""The sample counter and on-board buffer of streaming instruments (ADC, uMUX board)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cryodaq.sim_instruments.device import SCPIError

if TYPE_CHECKING:
    from cryodaq.sim_instruments.world import World


class SampleStream:
    """Sample counter behind a bounded on-board buffer.

    Samples are produced at `rate_hz` from `start_s` on; a reader slower than the clock loses
    the oldest ones, and the next block's first-sample counter jumps by the number lost.
    """

    def __init__(self, buffer_samples: int) -> None:
        self.buffer_samples = buffer_samples
        self.start_s = 0.0
        self.next = 0

    def start(self, t_s: float) -> None:
        self.start_s = t_s
        self.next = 0

    def produced(self, now_s: float, rate_hz: float) -> int:
        return int(math.floor((now_s - self.start_s) * rate_hz + 1e-9))

    def available(self, now_s: float, rate_hz: float) -> int:
        return max(0, min(self.produced(now_s, rate_hz) - self.next, self.buffer_samples))

    def first_kept(self, now_s: float, rate_hz: float) -> int:
        """Counter of the oldest sample still in the buffer (drops what overflowed)."""
        overflow = self.produced(now_s, rate_hz) - self.buffer_samples - self.next
        if overflow > 0:
            self.next += overflow
        return self.next


#: Largest block one FETC? may ask for, per channel.
MAX_FETCH_SAMPLES = 1 << 22


def fetch_window(
    stream: SampleStream, world: World, count: str, rate_hz: float
) -> tuple[int, float, int]:
    """For `FETC? <count>`: (first sample counter, its time, sample count), once the World's
    time has reached the block's end. Refuses a bad count with the SCPI error."""
    try:
        n = int(count)
    except ValueError:
        raise SCPIError(-104, f"Data type error; sample count {count!r}") from None
    if not 1 <= n <= MAX_FETCH_SAMPLES:
        raise SCPIError(-222, f"Data out of range; 1 <= samples <= {MAX_FETCH_SAMPLES}")
    first = stream.first_kept(world.now(), rate_hz)
    t0 = stream.start_s + first / rate_hz
    world.reach(t0 + n / rate_hz)
    return first, t0, n
