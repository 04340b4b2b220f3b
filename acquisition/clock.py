"""Time as a campaign sees it: a simulated World's virtual clock, or the wall clock."""

from __future__ import annotations

import time
from typing import Protocol

from cryodaq.acquisition.rig import Rig


class RunClock(Protocol):
    """The time steps wait on and acquisitions stamp records with."""

    virtual: bool

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def time_ns(self) -> int: ...


class WorldClock:
    """A simulated rig's virtual time: waiting is instant. Time stamps count from `epoch_ns`
    (the wall-clock time the run started), so stored records carry real dates."""

    virtual = True

    def __init__(self, rig: Rig, epoch_ns: int = 0) -> None:
        if rig.world is None:
            raise ValueError(f"rig {rig.spec.name!r} is not simulated: it has no World clock")
        self.world = rig.world
        self.epoch_ns = epoch_ns

    def now(self) -> float:
        return self.world.now()

    def sleep(self, seconds: float) -> None:
        self.world.advance(seconds)

    def time_ns(self) -> int:
        return self.epoch_ns + int(round(self.world.now() * 1e9))


class WallClock:
    """A real rig's time."""

    virtual = False

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def time_ns(self) -> int:
        return time.time_ns()


def clock_for(rig: Rig, epoch_ns: int = 0) -> RunClock:
    """The World's clock (stamps from `epoch_ns`) on a simulated rig, the wall clock on a
    real one."""
    return WorldClock(rig, epoch_ns) if rig.world is not None else WallClock()
