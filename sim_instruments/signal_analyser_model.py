"""Physics behind the simulated X-Series signal analyser: the haloscope chain's noise, trace by
trace, as the analyser's settings make it read.

A trace point is the noise power in the RBW filter's noise bandwidth around the point
(`HaloscopeChain.cavity_noise`, PSD x noise bandwidth; the RBW value means the -3 dB, -6 dB,
impulse or noise bandwidth of a Gaussian filter as `:BAND:TYPE` says). A sweep takes the
sweep time on the World's clock: an FFT sweep observes each bin for the whole time of its FFT
segment (record 2/RBW, segments of `FFT_WIDTH_HZ`), a swept one each point for sweep time /
points. With the average detector a point averages noise over its observation, B t
periodograms; other detectors take one sample per sweep. K averaged sweeps add up (`:AVER`,
`:AVER:COUN`). Log- and voltage-scale averaging read noise 2.51 dB and 1.05 dB low, as the
manual says; RMS averaging reads its power.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.sim_instruments.blocks import array_block
from cryodaq.sim_instruments.device import Handler, SCPIError
from cryodaq.sim_instruments.haloscope_chain import Capture, HaloscopeChain, radiometer_draw
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.world import World

#: Noise bandwidth of a Gaussian filter over the bandwidth the RBW value names.
NOISE_BW = {
    "NOIS": 1.0,
    "DB3": math.sqrt(math.pi / (4.0 * math.log(2.0))),
    "DB6": math.sqrt(math.pi / (8.0 * math.log(2.0))),
    "IMP": 1.0 / math.sqrt(2.0),
}
#: Mean reading of noise over its power by average type: log power (e^-gamma), voltage (pi/4).
AVERAGE_BIAS = {"RMS": 1.0, "LOG": math.exp(-np.euler_gamma), "SCAL": math.pi / 4.0}
#: One FFT covers this much span; an FFT record lasts this many times 1/RBW.
FFT_WIDTH_HZ = 10e6
FFT_RECORD_RBW = 2.0
#: A swept sweep takes this many times span / RBW^2 (at least 1 ms).
SWEPT_TIME_FACTOR = 2.0
MIN_SWEEP_S = 1e-3
DTYPES = {"REAL,32": "f4", "REAL,64": "f8"}
FORMATS = ("ASC,8", "REAL,32", "REAL,64")
#: Frequency coverage (Hz) and least span.
F_MIN_HZ, F_MAX_HZ, MIN_SPAN_HZ = -80e6, 50e9, 10.0
#: Settings that move the others: centre/span <-> start/stop.
COUPLED = ("centre_frequency", "span", "start_frequency", "stop_frequency")


@dataclass
class _Sweeps:
    """K averaged sweeps in progress."""

    capture: Capture
    averages_per_point: float
    bias: float


class SignalAnalyserModel(SimModel, HaloscopeChain):
    """Traces of the haloscope chain's noise (World and instrument params: `HaloscopeChain`)."""

    device_name = "signal_analyser"

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        SimModel.__init__(self, world, name, params)
        HaloscopeChain.__init__(self, world, name, self.params)
        self._rng = world.rng(f"{name}.trace")
        self._sweeps: _Sweeps | None = None
        self._trace: np.ndarray | None = None
        self._format = FORMATS[0]

    def commands(self) -> dict[str, Handler]:
        return {
            r"INIT:IMM": self._initiate,
            r"\*OPC\?": self._complete,
            r"SENS:SWE:TIME\?": lambda m: f"{self.sweep_time():.9e}",
            r"TRAC:DATA\? TRACE1": self._trace_data,
            r"FORM:TRAC:DATA\?": lambda m: self._format,
            r"FORM:TRAC:DATA (.*)": self._set_format,
        }

    def on_reset(self) -> None:
        self._sweeps = None
        self._trace = None
        self._format = FORMATS[0]

    def _set_format(self, match: re.Match[str]) -> None:
        """`:FORM[:DATA] ASCii|REAL,32|REAL,64` (queried as ASC,8, REAL,32, REAL,64)."""
        text = match[1].replace(" ", "").upper()
        text = "ASC,8" if text in ("ASC", "ASCII") else text
        if text not in FORMATS:
            raise SCPIError(-224, f"Illegal parameter value; {match[1]} (ASCii, REAL,32, REAL,64)")
        self._format = text

    def on_setting(self, name: str, ch: str | None, value: Any) -> None:
        if name not in COUPLED:
            return
        centre, span = self.setting("centre_frequency"), self.setting("span")
        start, stop = self.setting("start_frequency"), self.setting("stop_frequency")
        if name in ("centre_frequency", "span"):  # the span shrinks to stay in range
            span = min(span, 2.0 * (centre - F_MIN_HZ), 2.0 * (F_MAX_HZ - centre))
            self._assign(span=span, start_frequency=centre - span / 2,
                         stop_frequency=centre + span / 2)  # fmt: skip
        else:  # the other edge keeps at least the least span
            if name == "start_frequency":
                stop = max(stop, start + MIN_SPAN_HZ)
            else:
                start = min(start, stop - MIN_SPAN_HZ)
            self._assign(start_frequency=start, stop_frequency=stop,
                         centre_frequency=(start + stop) / 2, span=stop - start)  # fmt: skip

    def _assign(self, **values: float) -> None:
        """Coupled settings follow the one that was set."""
        assert self.device is not None
        for name, value in values.items():
            self.device._properties[name].set_value(f"{value:.12e}")

    # -- acquisition ----------------------------------------------------------------------------

    def noise_bandwidth(self) -> float:
        """The RBW filter's noise bandwidth (Hz)."""
        return float(self.setting("rbw")) * NOISE_BW[str(self.setting("rbw_type"))]

    def segments(self) -> int:
        """FFT segments the span takes."""
        return max(1, math.ceil(self.setting("span") / FFT_WIDTH_HZ))

    def sweep_time(self) -> float:
        """Time of one sweep (s): FFT records of all segments, or a swept sweep."""
        rbw, span = float(self.setting("rbw")), float(self.setting("span"))
        if self.setting("sweep_type") == "FFT":
            return self.segments() * FFT_RECORD_RBW / rbw
        return max(MIN_SWEEP_S, SWEPT_TIME_FACTOR * span / rbw**2)

    def _initiate(self, match: re.Match[str]) -> None:
        """Start K averaged sweeps (1 with averaging off) now."""
        start, stop = self.setting("start_frequency"), self.setting("stop_frequency")
        n = int(self.setting("points"))
        f = np.linspace(start, stop, n)
        sweeps = int(self.setting("averages")) if self.setting("averaging") else 1
        t_sweep = self.sweep_time()
        seen = t_sweep / (self.segments() if self.setting("sweep_type") == "FFT" else n)
        b = self.noise_bandwidth()
        per_sweep = max(1.0, b * seen) if self.setting("detector") == "AVER" else 1.0
        bias = AVERAGE_BIAS[str(self.setting("average_type"))] if sweeps > 1 else 1.0
        capture = self.capture(sweeps * t_sweep, f, b)
        self._sweeps = _Sweeps(capture, sweeps * per_sweep, bias)

    def _complete(self, match: re.Match[str]) -> str:
        """`*OPC?`: 1 once the sweeps started by `:INIT:IMM` are done."""
        self._finish()
        return "1"

    def _finish(self) -> None:
        """Complete the sweeps in progress (on the World's clock)."""
        sweeps = self._sweeps
        if sweeps is not None:
            mean = sweeps.capture.mean_power(self.world, self.cavity_noise)
            self._sweeps = None
            self._trace = sweeps.bias * radiometer_draw(self._rng, mean, sweeps.averages_per_point)

    def _trace_data(self, match: re.Match[str]) -> str | bytearray:
        """TRACE1 in `:UNIT:POW`, as `:FORM:DATA` and `:FORM:BORD` say."""
        self._finish()
        if self._trace is None:
            raise SCPIError(-230, "Data corrupt or stale; no sweep taken (:INIT:IMM first)")
        values = self._trace
        if self.setting("power_unit") == "DBM":
            values = 10.0 * np.log10(values / 1e-3)
        form = self._format
        if form.startswith("ASC"):
            return ",".join(f"{v:.5E}" for v in values)
        order = "<" if self.setting("byte_order") == "SWAP" else ">"
        return array_block(values, order + DTYPES[form])
