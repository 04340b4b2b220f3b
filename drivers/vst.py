"""Vector signal transceiver: FFT power spectra, a CW source, and reflection (S11) sweeps."""

from __future__ import annotations

from typing import Any

import numpy as np

from cryodaq.drivers.base import Instrument, OneOf, Range, Setting
from cryodaq.drivers.errors import InstrumentError
from cryodaq.drivers.microwave import ACQUISITION_MARGIN_S, PowerSpectrum, ReflectionSweep

F_RANGE_HZ = Range(9e3, 6e9)


class VectorSignalTransceiver(Instrument):
    """Spectrum analyser plus CW source of a haloscope readout (like an NI PXIe-5644R).

    The spectrum spans `centre_frequency` +- `span`/2 in bins of (about) `rbw`; the reflection
    sweep steps the source from `sweep_start` to `sweep_stop` and needs the output on.
    """

    centre_frequency = Setting("FREQ:CENT", float, unit="Hz", allowed=F_RANGE_HZ)
    span = Setting("FREQ:SPAN", float, unit="Hz", allowed=Range(10.0, 6e9))
    rbw = Setting("BAND:RES", float, unit="Hz", allowed=Range(1.0, 1e7),
                  doc="Resolution bandwidth: spectrum bin width and sweep IF bandwidth")
    integration_time = Setting("SPEC:TIME", float, unit="s", allowed=Range(1e-3, 3600.0))
    source_frequency = Setting("SOUR:FREQ", float, unit="Hz", allowed=F_RANGE_HZ)
    source_power = Setting("SOUR:POW", float, unit="dBm", allowed=Range(-120.0, 10.0))
    output = Setting("OUTP", bool, doc="CW source output on")
    sweep_start = Setting("SWE:STAR", float, unit="Hz", allowed=F_RANGE_HZ)
    sweep_stop = Setting("SWE:STOP", float, unit="Hz", allowed=F_RANGE_HZ)
    sweep_points = Setting("SWE:POIN", int, allowed=Range(2, 100001))
    switch = Setting(
        "SWIT",
        str,
        allowed=OneOf(("CAVITY", "LOAD")),
        doc="Cryogenic switch at the cavity's port: the cavity, or a black-body load (Y-factor)",
    )

    def _query_float64(self, command: str, duration_s: float) -> np.ndarray:
        """A float64 block, with the reply timeout stretched by the acquisition time."""
        timeout = self.resource.timeout
        self.resource.timeout = timeout + 1000.0 * (duration_s + ACQUISITION_MARGIN_S)
        try:
            raw = self.query_block(command, "B")
        finally:
            self.resource.timeout = timeout
        if raw.size % 8:
            raise InstrumentError(self.name, command, f"block of {raw.size} bytes is not float64")
        return raw.view("<f8")

    def spectrum(self) -> PowerSpectrum:
        """Acquire one power spectrum (takes the integration time).

        `INIT:SPEC` starts the capture, so a refusal surfaces at once; `FETC:SPEC?` waits for it.
        """
        centre, span, tau = self.centre_frequency, self.span, self.integration_time
        self.write("INIT:SPEC")
        power = self._query_float64("FETC:SPEC?", tau).astype(np.float64)
        if power.size == 0:
            raise InstrumentError(self.name, "FETC:SPEC?", "empty spectrum")
        width = span / power.size
        f = centre - span / 2 + (np.arange(power.size) + 0.5) * width
        return PowerSpectrum(f, power, width, tau)

    def reflection_sweep(
        self, start: float | None = None, stop: float | None = None, points: int | None = None
    ) -> ReflectionSweep:
        """Sweep S11 (settings given here are set first); takes points / RBW, needs the output on.

        `INIT:SWE` starts the sweep (refusals surface at once); `FETC:SWE?` waits for it.
        """
        if start is not None:
            self.sweep_start = start
        if stop is not None:
            self.sweep_stop = stop
        if points is not None:
            self.sweep_points = points
        f0, f1, n = self.sweep_start, self.sweep_stop, self.sweep_points
        self.write("INIT:SWE")
        raw = self._query_float64("FETC:SWE?", n / self.rbw)
        if raw.size != 2 * n:
            raise InstrumentError(
                self.name, "FETC:SWE?", f"expected {n} complex points, got {raw.size} values"
            )
        s11 = raw[0::2] + 1j * raw[1::2]
        return ReflectionSweep(np.linspace(f0, f1, n), s11)

    @classmethod
    def spectrum_fields(cls) -> dict[str, Setting[Any]]:
        """Step field -> the VST setting it sets."""
        s = cls.declared_settings()
        return {"centre": s["centre_frequency"], "span": s["span"], "rbw": s["rbw"],
                "integration": s["integration_time"]}  # fmt: skip

    def configure_spectrum(self, **fields: float) -> None:
        """Set the settings of the step fields given."""
        for field, value in fields.items():
            self.set(self.spectrum_fields()[field], value)

    @classmethod
    def reflection_fields(cls) -> dict[str, Setting[Any]]:
        """Step field -> the VST setting it is checked against."""
        s = cls.declared_settings()
        return {"start": s["sweep_start"], "stop": s["sweep_stop"], "points": s["sweep_points"],
                "power_dBm": s["source_power"]}  # fmt: skip

    def reflection(self, start: float, stop: float, points: int, power_dBm: float
                   ) -> ReflectionSweep:  # fmt: skip
        """A reflection sweep with the source at `power_dBm`, switched off afterwards."""
        self.source_power = power_dBm
        self.output = True
        try:
            return self.reflection_sweep(start, stop, points)
        finally:
            self.output = False

    def summary(self) -> dict[str, object]:
        out = "on" if self.output else "off"
        return {
            "centre": f"{self.centre_frequency / 1e9:.6f} GHz",
            "span": f"{self.span / 1e6:g} MHz",
            "rbw": f"{self.rbw:g} Hz",
            "integration": f"{self.integration_time:g} s",
            "source": f"{self.source_frequency / 1e9:.6f} GHz, {self.source_power:g} dBm, {out}",
        }
