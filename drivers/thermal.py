"""Temperature controller of a dilution refrigerator (Lakeshore-372-like): RuO2 thermometer
channels and heater outputs with OFF / MANUAL / PID control."""

from __future__ import annotations

import math
from typing import Any

from cryodaq.drivers.base import Channel, Instrument, OneOf, Range, Setting

HEATER_RANGES_W = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
HEATER_MODES = ("OFF", "MANUAL", "PID")
THERMOMETER_IDS = tuple(range(1, 9))
OUTPUT_IDS = (1, 2)
#: SCPI's +infinity (an open input's resistance) and not-a-number (its temperature).
SCPI_INF = 9.9e37
SCPI_NAN = 9.91e37


def _scpi_float(value: float) -> float:
    """Map SCPI's overload codes to `inf` / `nan`."""
    if math.isclose(abs(value), SCPI_NAN, rel_tol=1e-6):
        return math.nan
    if abs(value) >= SCPI_INF:
        return math.copysign(math.inf, value)
    return value


class Thermometer(Channel):
    """A RuO2 thermometer input. An open input reads `inf` ohm and `nan` K."""

    enabled = Setting("CH{ch}:ENAB", bool, doc="Channel in the scanner; a disabled one is not read")
    resistance = Setting("CH{ch}:RES", float, unit="ohm", readonly=True, doc="Sensor resistance")
    temperature = Setting("CH{ch}:TEMP", float, unit="K", readonly=True,
                          doc="Temperature through the controller's calibration curve")


class HeaterOutput(Channel):
    """A heater output. PID: power = range * clip(u, 0, 1), u = P e + u_I - P D dT/dt with
    du_I/dt = P e / I, e = setpoint - reading (K); P in 1/K (fraction of the range per kelvin)."""

    heater_range = Setting("OUT{ch}:RANG", float, unit="W", allowed=OneOf(HEATER_RANGES_W))
    manual_power = Setting("OUT{ch}:MOUT", float, unit="W", allowed=Range(0.0, 0.1),
                           doc="Power in MANUAL mode (clipped to the range)")
    mode = Setting("OUT{ch}:MODE", str, allowed=OneOf(HEATER_MODES))
    setpoint = Setting("OUT{ch}:SETP", float, unit="K", allowed=Range(0.0, 10.0))
    ramp_rate = Setting("OUT{ch}:RAMP", float, unit="K/min", allowed=Range(1e-4, 10.0))
    ramp_enabled = Setting("OUT{ch}:RAMP:ENAB", bool, doc="Setpoint changes ramp at ramp_rate")
    p = Setting("OUT{ch}:P", float, unit="1/K", allowed=Range(0.0, 1000.0), doc="Proportional gain")
    i = Setting("OUT{ch}:I", float, unit="s", allowed=Range(0.0, 10000.0),
                doc="Integral time (0: no integral action)")
    d = Setting("OUT{ch}:D", float, unit="s", allowed=Range(0.0, 2500.0), doc="Derivative time")
    input_channel = Setting("OUT{ch}:INP", int, allowed=OneOf(THERMOMETER_IDS),
                            doc="Thermometer channel the PID loop reads")
    power = Setting("OUT{ch}:POW", float, unit="W", readonly=True, doc="Heater power applied")
    ramping = Setting("OUT{ch}:RAMP:STAT", bool, readonly=True, doc="Setpoint ramp in progress")

    def _label(self, setting: Setting[Any]) -> str:
        return f"output {self.ch} {setting.name}"


class TemperatureController(Instrument):
    """8 RuO2 thermometer channels (1..8) and 2 heater outputs (1, 2)."""

    channel_ids = THERMOMETER_IDS
    channel_class = Thermometer
    extra_channel_groups = {"outputs": (OUTPUT_IDS, HeaterOutput)}

    def thermometer(self, ch: int) -> Thermometer:
        """Thermometer channel `ch` (1..8)."""
        channel = self.channel(ch)
        assert isinstance(channel, Thermometer)
        return channel

    def output(self, out: int) -> HeaterOutput:
        """Heater output `out` (1 or 2)."""
        output = self.group_channel("outputs", out)
        assert isinstance(output, HeaterOutput)
        return output

    @property
    def outputs(self) -> list[HeaterOutput]:
        return [self.output(out) for out in OUTPUT_IDS]

    # -- convenience -----------------------------------------------------------------------

    def temperature(self, ch: int) -> float:
        """Temperature (K) of channel `ch`; `nan` for an open input."""
        return _scpi_float(self.thermometer(ch).temperature)

    def resistance(self, ch: int) -> float:
        """Resistance (ohm) of channel `ch`; `inf` for an open input."""
        return _scpi_float(self.thermometer(ch).resistance)

    def heater_power(self, out: int) -> float:
        """Power (W) output `out` applies now."""
        return float(self.output(out).power)

    def set_pid(self, out: int, p: float, i: float, d: float = 0.0) -> None:
        """Loop gains of output `out`: P (1/K), I (s, 0 = off), D (s)."""
        output = self.output(out)
        output.p = p
        output.i = i
        output.d = d

    def regulate(self, out: int, setpoint_K: float, input_channel: int | None = None) -> None:
        """Closed-loop control of output `out` at `setpoint_K` (ramped if its ramp is enabled)."""
        output = self.output(out)
        if input_channel is not None:
            output.input_channel = input_channel
        output.setpoint = setpoint_K
        output.mode = "PID"

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for channel in self.channels:
            if channel.enabled:
                t = self.temperature(int(channel.ch))
                out[f"ch{channel.ch}"] = "open" if math.isnan(t) else f"{t * 1e3:.3f} mK"
        for output in self.outputs:
            mode = output.mode
            text = f"{mode}, {output.power:.3g} W of {output.heater_range:g} W"
            if mode == "PID":
                text += f", {output.setpoint * 1e3:g} mK on ch{output.input_channel}"
            out[f"out{output.ch}"] = text
        return out
