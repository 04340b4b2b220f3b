"""Physics behind the simulated E5071C VNA: the haloscope cavity's reflection through the input
line, the circulator and the amplification chain (`HaloscopeChain`), with the chain's noise in
the IF bandwidth relative to the stimulus on top. A sweep takes points / IF bandwidth on the
World's clock. Instrument param `wiring` (default S11: port 1 drives the input line and,
through a room-temperature coupler, receives the chain's output; S21: input line on port 1,
chain on port 2) names the one S-parameter the cavity is wired to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.sim_instruments.blocks import array_block
from cryodaq.sim_instruments.device import Handler, SCPIError
from cryodaq.sim_instruments.haloscope_chain import HaloscopeChain
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.world import World

#: The E5071C's binary blocks carry a 6-digit length (`#6NNNNNN`).
LENGTH_DIGITS = 6
DTYPES = {"REAL": "f8", "REAL32": "f4"}
WIRINGS = ("S11", "S21", "S12", "S22")


@dataclass(frozen=True)
class _Sweep:
    """A sweep in progress."""

    start_s: float
    f: np.ndarray
    if_bandwidth_Hz: float
    source_W: float


class VnaModel(SimModel, HaloscopeChain):
    """S-parameter sweeps of the haloscope cavity (params: `HaloscopeChain`, and `wiring`)."""

    device_name = "vna"

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        SimModel.__init__(self, world, name, params)
        HaloscopeChain.__init__(self, world, name, self.params)
        self.wiring = str(self.params.get("wiring", "S11")).upper()
        if self.wiring not in WIRINGS:
            raise ValueError(f"{name}.sim.wiring must be one of {', '.join(WIRINGS)}")
        self._rng = world.rng(f"{name}.sdata")
        self._sweep: _Sweep | None = None
        self._data: np.ndarray | None = None
        self._f: np.ndarray | None = None

    def commands(self) -> dict[str, Handler]:
        return {
            r"TRIG:SEQ:SING": self._trigger,
            r"\*OPC\?": self._complete,
            r"CALC1:SEL:DATA:SDAT\?": lambda m: self._array(self._measured()),
            r"SENS1:FREQ:DATA\?": lambda m: self._array(self._stimulus()),
        }

    def on_reset(self) -> None:
        self._sweep = None
        self._data = self._f = None

    def _trigger(self, match: re.Match[str]) -> None:
        """`:TRIG:SING`: one sweep of channel 1, if it waits for a bus trigger."""
        if self.setting("trigger_source") != "BUS" or not self.setting("continuous"):
            raise SCPIError(-211, "Trigger ignored; needs :TRIG:SOUR BUS and :INIT1:CONT ON")
        if self.setting("parameter") != self.wiring:
            raise SCPIError(-221, f"Settings conflict; the cavity is wired to {self.wiring}")
        if not self.setting("output"):
            raise SCPIError(-221, "Settings conflict; stimulus output off (:OUTP ON first)")
        start, stop = self.setting("start_frequency"), self.setting("stop_frequency")
        if not stop > start:
            raise SCPIError(-221, f"Settings conflict; stop {stop:g} Hz <= start {start:g} Hz")
        f = np.linspace(start, stop, int(self.setting("points")))
        source_W = 1e-3 * 10.0 ** (self.setting("source_power") / 10.0)
        self._sweep = _Sweep(self.world.now(), f, float(self.setting("if_bandwidth")), source_W)

    def _complete(self, match: re.Match[str]) -> str:
        """`*OPC?`: 1 once a triggered sweep is done."""
        self._finish()
        return "1"

    def _finish(self) -> None:
        """Complete a triggered sweep (on the World's clock)."""
        sweep = self._sweep
        if sweep is not None:
            self.world.reach(sweep.start_s + sweep.f.size / sweep.if_bandwidth_Hz)
            self._sweep = None
            noise = self.cavity_noise(sweep.f, sweep.if_bandwidth_Hz)
            self._data = self.noisy_reflection(sweep.f, noise, sweep.source_W, self._rng)
            self._f = sweep.f

    def _measured(self) -> np.ndarray:
        """The last sweep's complex data, interleaved re, im."""
        self._finish()
        if self._data is None:
            raise SCPIError(-230, "Data corrupt or stale; no sweep taken (:TRIG:SING first)")
        out = np.empty(2 * self._data.size)
        out[0::2], out[1::2] = self._data.real, self._data.imag
        return out

    def _stimulus(self) -> np.ndarray:
        """The last sweep's frequencies (or those the settings give before any sweep)."""
        self._finish()
        if self._f is not None:
            return self._f
        start, stop = self.setting("start_frequency"), self.setting("stop_frequency")
        return np.linspace(start, stop, int(self.setting("points")))

    def _array(self, values: np.ndarray) -> str | bytearray:
        """`values` as `:FORM:DATA` and `:FORM:BORD` say."""
        form = str(self.setting("data_format"))
        if form == "ASC":
            return ",".join(f"{v:+.10E}" for v in values)
        order = "<" if self.setting("byte_order") == "SWAP" else ">"
        return array_block(values, order + DTYPES[form], LENGTH_DIGITS)
