"""Keysight X-Series signal analyser (N9010B EXA, N9020B MXA, N9030B PXA), Swept SA measurement.

A power spectrum is taken as FFT sweeps (`:SWE:TYPE FFT`) with the RBW given as the filter's
noise bandwidth (`:BAND:TYPE NOIS`), the average detector and power (RMS) averaging: each trace
point then holds the average power of noise in one RBW, PSD x RBW, with no log-average bias
(-2.51 dB) and no 3 dB-vs-noise bandwidth error (6 %). The points are spaced by one RBW
(points = span / RBW + 1), so the bins tile the span. In an FFT sweep every bin of the span is
observed for the whole (reported) sweep time, so a trace averaged over K sweeps integrates
K x sweep time; longer integrations average several such traces (K <= 10000).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cryodaq.drivers.base import Instrument, OneOf, Range, Setting
from cryodaq.drivers.errors import InstrumentError
from cryodaq.drivers.microwave import PowerSpectrum, formatted_values, sweep_and_wait

F_RANGE_HZ = Range(-80e6, 50e9)
#: Widest span one FFT covers (standard analysis bandwidth of an N9020B): beyond it the
#: analyser stitches segments and a bin is no longer observed for the whole sweep.
FFT_WIDTH_HZ = 10e6
MAX_AVERAGES = 10_000
MAX_POINTS = 100_001
#: Client-side integration time of a spectrum (declared for checks; never sent).
INTEGRATION_RANGE = Range(1e-3, 86400.0)
INTEGRATION = Setting("integration_time", float, unit="s", allowed=INTEGRATION_RANGE)
DTYPES = {"REAL,32": "f4", "REAL,64": "f8"}


class SignalAnalyser(Instrument):
    """Spectrum analyser mode (`:INST:SEL SA`) of a Keysight X-Series signal analyser."""

    default_timeout_s = 2.0
    mode = Setting(":INST:SEL", str, allowed=OneOf(("SA",)), doc="Instrument mode")
    centre_frequency = Setting(":SENS:FREQ:CENT", float, unit="Hz", allowed=F_RANGE_HZ)
    span = Setting(":SENS:FREQ:SPAN", float, unit="Hz", allowed=Range(10.0, 50e9))
    start_frequency = Setting(":SENS:FREQ:STAR", float, unit="Hz", allowed=F_RANGE_HZ)
    stop_frequency = Setting(":SENS:FREQ:STOP", float, unit="Hz", allowed=F_RANGE_HZ)
    rbw = Setting(":SENS:BAND:RES", float, unit="Hz", allowed=Range(1.0, 8e6))
    rbw_type = Setting(":SENS:BAND:TYPE", str, allowed=OneOf(("DB3", "DB6", "IMP", "NOIS")),
                       doc="What the RBW value means: -3 dB, -6 dB, impulse or noise bandwidth")
    points = Setting(":SENS:SWE:POIN", int, allowed=Range(1, MAX_POINTS))
    sweep_type = Setting(":SENS:SWE:TYPE", str, allowed=OneOf(("FFT", "SWE")))
    sweep_time = Setting(":SENS:SWE:TIME", float, unit="s", readonly=True,
                         doc="Time of one sweep (in FFT sweeps reported, not set)")
    averages = Setting(":SENS:AVER:COUN", int, allowed=Range(1, MAX_AVERAGES))
    averaging = Setting(":SENS:AVER", bool, doc="Trace averaging ([:SENSe]:AVERage[:STATe])")
    average_type = Setting(":SENS:AVER:TYPE", str, allowed=OneOf(("LOG", "RMS", "SCAL")))
    detector = Setting(":SENS:DET:TRAC", str,
                       allowed=OneOf(("AVER", "NORM", "POS", "SAMP", "NEG")))  # fmt: skip
    continuous = Setting(":INIT:CONT", bool, doc="Continuous sweeps (off: single, :INIT:IMM)")
    data_format = Setting(":FORM:DATA", str, allowed=OneOf(("ASC,8", "REAL,32", "REAL,64")))
    byte_order = Setting(":FORM:BORD", str, allowed=OneOf(("NORM", "SWAP")))
    power_unit = Setting(":UNIT:POW", str, allowed=OneOf(("W", "DBM")))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.integration_time = 1.0

    def options(self) -> list[str]:
        """Installed options (`*OPT?`), e.g. ["526", "B25", "P26"]."""
        return [o.strip() for o in self.query("*OPT?").strip('"').split(",") if o.strip()]

    def modes(self) -> list[str]:
        """Installed modes (`:INST:CAT?`, `"SA 1,PNOISE 14"`), by name."""
        entries = self.query(":INST:CAT?").strip('"').split(",")
        return [e.split()[0] for e in entries if e.strip()]

    # -- the spectrum step ----------------------------------------------------------------------

    @classmethod
    def spectrum_fields(cls) -> dict[str, Setting[Any]]:
        """Step field -> the setting it sets (integration: a client-side time)."""
        s = cls.declared_settings()
        return {"centre": s["centre_frequency"], "span": s["span"], "rbw": s["rbw"],
                "integration": INTEGRATION}  # fmt: skip

    def configure_spectrum(self, **fields: float) -> None:
        """Set centre, span and RBW as given; keep the integration time for `spectrum`."""
        if "integration" in fields:
            self.integration_time = INTEGRATION_RANGE.check(fields.pop("integration"), "s")
        for field, value in fields.items():
            self.set(self.spectrum_fields()[field], value)

    def prepare_spectrum(self) -> None:
        """Spectrum mode, FFT sweeps, noise-bandwidth RBW, average detector, power averaging,
        single sweeps, little-endian float64 traces in W, one point per RBW."""
        self.mode = "SA"
        self.continuous = False
        self.sweep_type = "FFT"
        self.rbw_type = "NOIS"
        self.detector = "AVER"
        self.average_type = "RMS"
        self.averaging = True
        self.data_format = "REAL,64"
        self.byte_order = "SWAP"
        self.power_unit = "W"
        self.points = min(MAX_POINTS, round(self.span / self.rbw) + 1)

    def spectrum(self) -> PowerSpectrum:
        """Average power per RBW over the integration time (see the module docstring)."""
        self.prepare_spectrum()
        span, rbw, n = self.span, self.rbw, self.points
        if span > FFT_WIDTH_HZ:
            raise InstrumentError(self.name, ":SENS:FREQ:SPAN", f"span {span:g} Hz exceeds one "
                                  f"FFT ({FFT_WIDTH_HZ:g} Hz): the bins' integration is unknown")
        sweep_s = self.sweep_time
        sweeps = max(1, math.ceil(self.integration_time / sweep_s))
        traces = math.ceil(sweeps / MAX_AVERAGES)
        self.averages = math.ceil(sweeps / traces)
        total = np.zeros(n)
        for _ in range(traces):
            total += self.trace(self.averages * sweep_s)
        f = np.linspace(self.start_frequency, self.stop_frequency, n)
        return PowerSpectrum(f, total / traces, rbw, traces * self.averages * sweep_s)

    def trace(self, duration_s: float = 0.0) -> np.ndarray:
        """One single sweep (`:INIT:IMM`, `*OPC?` waits for it), TRACE1 in W."""
        sweep_and_wait(self, ":INIT:IMM", duration_s)
        values = self._trace_values(":TRAC:DATA? TRACE1")
        if self.power_unit.upper() == "DBM":
            return 1e-3 * 10.0 ** (values / 10.0)
        return values

    def _trace_values(self, command: str) -> np.ndarray:
        """An array in the present `:FORM:DATA` and `:FORM:BORD`."""
        return formatted_values(self, command, DTYPES)

    def summary(self) -> dict[str, object]:
        return {
            "centre": f"{self.centre_frequency / 1e9:.6f} GHz",
            "span": f"{self.span / 1e6:g} MHz",
            "rbw": f"{self.rbw:g} Hz ({self.rbw_type})",
            "points": self.points,
            "averages": f"{self.averages} ({'on' if self.averaging else 'off'})",
        }
