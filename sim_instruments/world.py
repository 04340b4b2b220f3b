"""The one simulated World behind every instrument of a rig."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from sim_instruments.clock import VirtualClock
from sim_instruments.thermal_model import ThermalPlant


class Dynamic(Protocol):
    """Something that evolves with time (thermal plant, a control loop)."""

    max_step_s: float

    def step(self, t: float, dt: float) -> None: ...


class Signal(Protocol):
    """An analog waveform another instrument can digitise."""

    def block(self, start: int, n: int, rate_hz: float) -> np.ndarray: ...


class WorldError(ValueError):
    """A World parameter or wiring is wrong; the message names it."""


class NotYet(Exception):
    """Raised inside a command handler when its data exist only at wall time `t`: the device
    releases the World, waits, and asks again (real-time served rigs only)."""

    def __init__(self, t: float) -> None:
        super().__init__(t)
        self.t = t


class World:
    """Detector, sources, cryostat and microwave chain shared by the instruments of one rig.

    Every random stream is derived from `seed` and a stable name, so the same seed gives the
    same data whatever order instruments are opened in.
    """

    def __init__(self, params: Mapping[str, Any] | None = None, *, realtime: bool = False) -> None:
        self.params: dict[str, Any] = dict(params or {})
        try:
            self.seed = int(self.params.get("seed", 0))
        except (TypeError, ValueError):
            raise WorldError(
                f"world.seed must be an integer, got {self.params['seed']!r}"
            ) from None
        self.clock = VirtualClock(realtime=realtime)
        self.lock = threading.RLock()
        self._dynamics: list[Dynamic] = []
        self._synced_to = 0.0
        self._signals: dict[str, Signal] = {}
        self.thermal = ThermalPlant.from_params(self.params.get("thermal") or {})
        self.add_dynamic(self.thermal)

    # -- randomness -------------------------------------------------------------------------

    def rng(self, name: str) -> np.random.Generator:
        """Independent, reproducible random stream for the component called `name`."""
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
        return np.random.default_rng(np.random.SeedSequence([self.seed, key]))

    # -- time -------------------------------------------------------------------------------

    def add_dynamic(self, dynamic: Dynamic, first: bool = False) -> None:
        """Evolve `dynamic` with the clock; `first` steps it before the others (controllers)."""
        if first:
            self._dynamics.insert(0, dynamic)
        else:
            self._dynamics.append(dynamic)

    def now(self) -> float:
        """Current time (s), with every dynamic brought up to it."""
        with self.lock:
            self.sync()
            return self._synced_to

    def advance_to(self, t: float) -> None:
        """Let time run to `t` (virtual: instantly; real-time: by waiting)."""
        self.clock.advance_to(t)
        with self.lock:
            self.sync()

    def reach(self, t: float) -> None:
        """From inside a command: make time `t` have happened, or raise `NotYet` to wait."""
        if self.clock.realtime and t > self.clock.now():
            raise NotYet(t)
        self.advance_to(t)

    def advance(self, dt: float) -> None:
        self.advance_to(self.clock.now() + dt)

    def sync(self) -> None:
        """Integrate every dynamic from where it stands to the clock's time."""
        target = self.clock.now()
        while self._synced_to < target:
            dt = min([target - self._synced_to] + [d.max_step_s for d in self._dynamics])
            for dynamic in self._dynamics:
                dynamic.step(self._synced_to, dt)
            self._synced_to += dt

    # -- signals between instruments --------------------------------------------------------------

    def register_signal(self, name: str, signal: Signal) -> None:
        self._signals[name] = signal

    def signal(self, name: str) -> Signal:
        try:
            return self._signals[name]
        except KeyError:
            known = ", ".join(sorted(self._signals)) or "none"
            raise WorldError(f"no signal {name!r} in the World (known: {known})") from None
