"""The simulated World's clock: virtual time that jumps ahead, or wall time for served rigs."""

from __future__ import annotations

import time


class VirtualClock:
    """Seconds since the World started.

    Virtual mode (laptop runs, tests): time moves only when something advances it, as fast as
    the host allows. Real-time mode (a rig served over TCP): time follows the wall clock, and
    advancing to a future instant sleeps until then, as a real instrument makes you wait.
    """

    def __init__(self, realtime: bool = False) -> None:
        self.realtime = realtime
        self._virtual = 0.0
        self._wall_start = time.monotonic()

    def now(self) -> float:
        if self.realtime:
            return time.monotonic() - self._wall_start
        return self._virtual

    def advance_to(self, t: float) -> None:
        """Move time forward to `t` (never backwards)."""
        if self.realtime:
            delay = t - self.now()
            if delay > 0:
                time.sleep(delay)
        elif t > self._virtual:
            self._virtual = float(t)
