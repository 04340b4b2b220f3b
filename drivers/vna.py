"""Keysight ENA vector network analyser in the E5071C dialect: a reflection sweep of channel 1.

The E5071C names the measured parameter with `:CALC1:PAR1:DEF S11` (the E5080B uses
`:CALC1:MEAS1:DEF`); its binary format is `:FORM:DATA REAL` (64-bit; `REAL32`, `ASC`) in the
byte order of `:FORM:BORD`; a sweep is waited for with `:TRIG:SING` and `*OPC?` (the one
overlapped command `*OPC?` waits on), which needs the trigger source BUS and channel 1
initiated (`:INIT1:CONT ON`). `:CALC1:DATA:SDAT?` gives the corrected complex data,
interleaved re, im; `:SENS1:FREQ:DATA?` the stimulus frequencies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cryodaq.drivers.base import Instrument, OneOf, Range, Setting
from cryodaq.drivers.errors import InstrumentError
from cryodaq.drivers.microwave import ReflectionSweep, formatted_values, sweep_and_wait

F_RANGE_HZ = Range(9e3, 20e9)
DTYPES = {"REAL": "f8", "REAL32": "f4"}


class NetworkAnalyser(Instrument):
    """Channel 1, trace 1 of a Keysight E5071C ENA."""

    default_timeout_s = 2.0
    start_frequency = Setting(":SENS1:FREQ:STAR", float, unit="Hz", allowed=F_RANGE_HZ)
    stop_frequency = Setting(":SENS1:FREQ:STOP", float, unit="Hz", allowed=F_RANGE_HZ)
    points = Setting(":SENS1:SWE:POIN", int, allowed=Range(2, 20001))
    if_bandwidth = Setting(":SENS1:BAND", float, unit="Hz", allowed=Range(10.0, 1.5e6))
    source_power = Setting(":SOUR1:POW", float, unit="dBm", allowed=Range(-85.0, 10.0))
    parameter = Setting(":CALC1:PAR1:DEF", str, allowed=OneOf(("S11", "S21", "S12", "S22")))
    output = Setting(":OUTP", bool, doc="Stimulus signal output on")
    continuous = Setting(":INIT1:CONT", bool, doc="Channel 1 initiated (off: held)")
    trigger_source = Setting(":TRIG:SOUR", str, allowed=OneOf(("INT", "EXT", "MAN", "BUS")))
    data_format = Setting(":FORM:DATA", str, allowed=OneOf(("ASC", "REAL", "REAL32")))
    byte_order = Setting(":FORM:BORD", str, allowed=OneOf(("NORM", "SWAP")))

    @classmethod
    def reflection_fields(cls) -> dict[str, Setting[Any]]:
        """Step field -> the setting it sets."""
        s = cls.declared_settings()
        return {"start": s["start_frequency"], "stop": s["stop_frequency"],
                "points": s["points"], "power_dBm": s["source_power"]}  # fmt: skip

    def reflection(self, start: float, stop: float, points: int, power_dBm: float
                   ) -> ReflectionSweep:  # fmt: skip
        """One sweep of the configured parameter with the stimulus on, off afterwards."""
        self.start_frequency, self.stop_frequency = start, stop
        self.points, self.source_power = points, power_dBm
        self.output = True
        try:
            return self.sweep()
        finally:
            self.output = False

    def sweep(self) -> ReflectionSweep:
        """Trigger one sweep (`:TRIG:SING`, `*OPC?`), read the complex data and stimulus."""
        self.trigger_source = "BUS"
        self.continuous = True
        self.data_format = "REAL"
        self.byte_order = "SWAP"
        n = self.points
        sweep_and_wait(self, ":TRIG:SING", n / self.if_bandwidth)
        raw = self._values(":CALC1:DATA:SDAT?")
        f = self._values(":SENS1:FREQ:DATA?")
        if raw.size != 2 * n or f.size != n:
            raise InstrumentError(self.name, ":CALC1:DATA:SDAT?",
                                  f"expected {n} points, got {raw.size} values and {f.size} "
                                  "frequencies")  # fmt: skip
        return ReflectionSweep(f, raw[0::2] + 1j * raw[1::2])

    def _values(self, command: str) -> np.ndarray:
        """An array in the present `:FORM:DATA` and `:FORM:BORD`."""
        return formatted_values(self, command, DTYPES)

    def summary(self) -> dict[str, object]:
        return {
            "sweep": f"{self.start_frequency / 1e9:.6f} .. {self.stop_frequency / 1e9:.6f} GHz",
            "points": self.points,
            "if_bandwidth": f"{self.if_bandwidth:g} Hz",
            "source": f"{self.source_power:g} dBm, {'on' if self.output else 'off'}",
            "parameter": self.parameter,
        }
