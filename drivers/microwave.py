"""What the `spectrum` and `reflection` steps need of an instrument: typed protocols and the
data they return, implemented by the VST, the signal analyser and the VNA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cryodaq.drivers.base import Setting
from cryodaq.drivers.errors import InstrumentError

#: Extra reply time (s) on top of the time a sweep takes.
ACQUISITION_MARGIN_S = 2.0


@dataclass(frozen=True)
class PowerSpectrum:
    """Average power per bin (W) over `integration_s`, at the bins' centre frequencies.

    `bin_width_Hz` is each bin's noise bandwidth (a bin holds PSD x bin width of noise) and
    `integration_s` the time each bin was observed, so that 1/sqrt(bin width x integration) is
    the relative scatter of a bin (radiometer equation).
    """

    frequencies_Hz: np.ndarray
    power_W: np.ndarray
    bin_width_Hz: float
    integration_s: float

    @property
    def relative_scatter(self) -> float:
        """Expected relative scatter of one bin, 1/sqrt(B tau) (radiometer equation)."""
        return float(1.0 / np.sqrt(self.bin_width_Hz * self.integration_s))


@dataclass(frozen=True)
class ReflectionSweep:
    """Complex S11 (raw: through the line and amplification chain) at `frequencies_Hz`."""

    frequencies_Hz: np.ndarray
    s11: np.ndarray


@runtime_checkable
class SpectrumInstrument(Protocol):
    """Gives a `PowerSpectrum` over centre +- span/2 in bins of `rbw`, integrated `integration`."""

    @classmethod
    def spectrum_fields(cls) -> dict[str, Setting[Any]]:
        """Step field (centre, span, rbw, integration) -> its declaration (unit, range)."""
        ...

    def configure_spectrum(self, **fields: float) -> None:
        """Apply the step fields given (SI values); the others keep their settings."""
        ...

    def spectrum(self) -> PowerSpectrum:
        """Acquire one power spectrum with the present configuration."""
        ...


@runtime_checkable
class ReflectionInstrument(Protocol):
    """Gives a `ReflectionSweep` from start to stop in `points`, driven at `power_dBm`."""

    @classmethod
    def reflection_fields(cls) -> dict[str, Setting[Any]]:
        """Step field (start, stop, points, power_dBm) -> its declaration (unit, range)."""
        ...

    def reflection(self, start: float, stop: float, points: int, power_dBm: float
                   ) -> ReflectionSweep:  # fmt: skip
        """Sweep the reflection with these stimulus settings (the source off afterwards)."""
        ...


def formatted_values(inst: Any, command: str, dtypes: dict[str, str]) -> np.ndarray:
    """The array `command` returns in `inst`'s present `data_format`: `ASC...` as text, the
    binary formats of `dtypes` (format -> NumPy type) as an IEEE 488.2 block, little-endian
    when its `byte_order` is SWAP (the Keysight default is big-endian, NORM)."""
    form = inst.data_format.upper()
    if form.startswith("ASC"):
        return np.array([float(v) for v in inst.query(command).split(",")])
    swap = inst.byte_order.upper() == "SWAP"
    dtype = np.dtype(dtypes[form]).newbyteorder("<" if swap else ">")
    raw = inst.query_block(command, "B")
    if raw.size % dtype.itemsize:
        raise InstrumentError(inst.name, command, f"block of {raw.size} bytes is not {form}")
    return raw.view(dtype).astype(np.float64)


def sweep_and_wait(inst: Any, command: str, duration_s: float) -> None:
    """Send `command` (starts one sweep) and wait for it with `*OPC?`, the reply timeout
    stretched by the sweep's `duration_s`."""
    timeout = inst.resource.timeout
    inst.resource.timeout = timeout + 1000.0 * (duration_s + ACQUISITION_MARGIN_S)
    try:
        inst.write(command)
        if inst.query("*OPC?") != "1":
            raise InstrumentError(inst.name, "*OPC?", "sweep did not complete")
    finally:
        inst.resource.timeout = timeout
