"""The one simulated World behind every instrument of a rig."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from cryodaq.sim_instruments.clock import VirtualClock
from cryodaq.sim_instruments.thermal_model import ThermalPlant


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
        self._arrays: dict[str, Any] = {}
        self._param_listeners: list[Callable[[str], None]] = []
        thermal = self.params.get("thermal") or {}
        self.thermal = ThermalPlant.from_params(thermal, self.rng("thermal"))
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

    # -- detector arrays (one object behind many instruments' channels) -----------------------

    def detector_array(self, name: str, build: Callable[[], Any] | None = None) -> Any:
        """The detector array `name` (e.g. "mmc"), built by `build` on first use; tests reach
        its truth as `rig.world.detector_array("mmc").truth()`."""
        if name not in self._arrays:
            if build is None:
                known = ", ".join(sorted(self._arrays)) or "none (open the instrument reading it)"
                raise WorldError(f"no detector array {name!r} in the World (built: {known})")
            self._arrays[name] = build()
        return self._arrays[name]

    # -- parameters changed while running (a campaign's `set: {world.KEY: value}`) ---------------

    def on_param_change(self, callback: Callable[[str], None]) -> None:
        """Call `callback(dotted_key)` after `set_param` changes a parameter; the component
        re-reads what it uses (and raises `WorldError`/`ValueError` naming a bad value)."""
        self._param_listeners.append(callback)

    def set_param(self, dotted_key: str, value: Any) -> None:
        """Set World parameter `dotted_key` (e.g. "background.shield") from now on, as a lab
        would swap a source or mount a shield between acquisitions. A component that does
        not listen keeps what it read when it was built."""
        parts = dotted_key.split(".")
        if not all(parts):
            raise WorldError(f"world parameter {dotted_key!r}: empty key")
        with self.lock:
            node = self.params
            for part in parts[:-1]:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                elif not isinstance(child, dict):
                    raise WorldError(f"world.{dotted_key}: world.{part} is not a mapping")
                else:
                    child = node[part] = dict(child)
                node = child
            node[parts[-1]] = value
            for callback in self._param_listeners:
                callback(dotted_key)
