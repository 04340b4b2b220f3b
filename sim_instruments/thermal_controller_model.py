"""Physics behind the simulated temperature controller (Lakeshore-372-like).

Thermometers are RuO2 sensors on plates of the World's thermal plant: a reading converts the
true plate temperature to a resistance with the sensor's own curve, adds measurement noise,
and converts back with the controller's calibration curve (which may be off by a relative
factor). Heater outputs drive plate heaters: OFF, MANUAL (a fixed power, clipped to the range)
or PID, where a discrete PID loop on the (noisy, calibrated) reading of its input channel runs
as a World dynamic, with a setpoint ramp and anti-windup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.sim_instruments.device import Handler, SCPIError
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.ruo2 import RuO2Curve
from cryodaq.sim_instruments.world import World

THERMOMETER_IDS = tuple(range(1, 9))
OUTPUT_IDS = (1, 2)
#: SCPI's "+infinity" (an open input's resistance) and "not a number" (its temperature).
SCPI_INF = 9.9e37
SCPI_NAN = 9.91e37


def _index(key: Any, allowed: tuple[int, ...], where: str) -> int:
    try:
        index = int(key)
    except (TypeError, ValueError):
        index = -1
    if index not in allowed:
        raise ValueError(f"{where}: {key!r} is not one of {', '.join(map(str, allowed))}")
    return index


def _numbered(value: Any) -> dict[Any, Any]:
    """A `{number: item}` mapping, or a list numbered from 1 (as the ADC's `inputs`)."""
    if isinstance(value, list | tuple):
        return {i + 1: item for i, item in enumerate(value)}
    return dict(value or {})


def _plate(name: Any, world: World, where: str) -> str:
    known = world.thermal.names()
    if name not in known:
        plates = ", ".join(known)
        raise ValueError(f"{where}: no plate {name!r} in world.thermal (plates: {plates})")
    return str(name)


@dataclass
class Sensor:
    """A RuO2 thermometer on a plate, read through the controller's calibration curve."""

    plate: str
    curve: RuO2Curve
    calibration: RuO2Curve
    noise_rel: float

    @classmethod
    def from_params(cls, spec: Any, world: World, where: str) -> Sensor:
        """From a plate name or `{plate, r_inf_ohm, t0_K, calibration_error, noise_rel}`."""
        spec = {"plate": spec} if isinstance(spec, str) else dict(spec or {})
        plate = _plate(spec.get("plate"), world, f"{where}.plate")
        r_inf = number(spec, "r_inf_ohm", 1000.0, where, 1.0, 1e6)
        t0 = number(spec, "t0_K", 0.3, where, 1e-3, 100.0)
        error = number(spec, "calibration_error", 0.0, where, -0.5, 0.5)
        noise = number(spec, "noise_rel", 1e-4, where, 0.0, 0.1)
        # T = t0 / ln(R/R_inf)^2: a curve with t0 scaled by (1 + e) reads (1 + e) T.
        return cls(plate, RuO2Curve(r_inf, t0), RuO2Curve(r_inf, t0 * (1.0 + error)), noise)

    def resistance(self, world: World, rng: np.random.Generator) -> float:
        """One noisy resistance measurement (ohm) at the plate's present temperature."""
        true_r = self.curve.resistance(world.thermal.temperature(self.plate))
        return true_r * (1.0 + self.noise_rel * rng.standard_normal())

    def temperature(self, world: World, rng: np.random.Generator) -> float:
        """One reading (K): a measured resistance through the controller's curve."""
        return self.calibration.temperature(self.resistance(world, rng))


class HeaterLoop:
    """One heater output: its power, and in PID mode a discrete PID loop.

    Output as a fraction of the range: u = P e + u_I - P D dT/dt, u_I += P e h / I, with e the
    error (K) against the (ramped) setpoint and T the reading; P is in 1/K (fraction of the
    range per kelvin). Anti-windup: u_I stays in [0, 1] and does not integrate further into a
    saturated output. The power is range * clip(u, 0, 1).
    """

    def __init__(self, plate: str | None) -> None:
        self.plate = plate
        self.power_W = 0.0
        self.active = False
        self.next_update_s = 0.0
        self.target_K = 0.0
        self.ramped_K = 0.0
        self._ramp_t = 0.0
        self._integral = 0.0
        self._last: tuple[float, float] | None = None  # (time, reading) of the last update

    def start(self, t: float, target_K: float, reading_K: float, ramp: bool) -> None:
        """Enter closed loop at `t`; a ramp starts from the present reading."""
        self.active = True
        self.next_update_s = t
        self.target_K = target_K
        self.ramped_K = reading_K if ramp else target_K
        self._ramp_t = t
        self._integral = 0.0
        self._last = None

    def retarget(self, t: float, target_K: float, rate_K_per_s: float, ramp: bool) -> None:
        """A new setpoint at `t`: a ramp runs on from where it stands at `t`."""
        self._advance_ramp(t, rate_K_per_s, ramp)
        self.target_K = target_K

    def _advance_ramp(self, t: float, rate_K_per_s: float, ramp: bool) -> None:
        if ramp:
            step = rate_K_per_s * (t - self._ramp_t)
            delta = self.target_K - self.ramped_K
            if abs(delta) <= step:
                self.ramped_K = self.target_K
            else:
                self.ramped_K += math.copysign(step, delta)
        else:
            self.ramped_K = self.target_K
        self._ramp_t = t

    def stop(self) -> None:
        self.active = False

    def ramping(self, ramp: bool) -> bool:
        return self.active and ramp and self.ramped_K != self.target_K

    def update(self, t: float, reading_K: float, s: Mapping[str, Any]) -> float:
        """One loop cycle at time `t` with settings `s`; returns the new power (W)."""
        h = 0.0 if self._last is None else t - self._last[0]
        self._advance_ramp(t, s["ramp_rate"] / 60.0, bool(s["ramp_enabled"]))
        p, i_s, d_s = s["p"], s["i"], s["d"]
        error = self.ramped_K - reading_K
        derivative = 0.0
        if self._last is not None and h > 0:
            derivative = -p * d_s * (reading_K - self._last[1]) / h
        base = p * error + derivative
        if i_s > 0:
            integral = min(max(self._integral + p * error * h / i_s, 0.0), 1.0)
            pushes_up = base + integral > 1.0 and error > 0
            pushes_down = base + integral < 0.0 and error < 0
            if not (pushes_up or pushes_down):
                self._integral = integral
        else:
            self._integral = 0.0
        u = min(max(base + self._integral, 0.0), 1.0)
        self._last = (t, reading_K)
        self.power_W = u * s["heater_range"]
        return self.power_W


class TemperatureControllerModel(SimModel):
    """Thermometers and heaters of a dilution refrigerator's temperature controller.

    params: `sensors` (channel -> plate name, or a mapping with `plate`, `r_inf_ohm`, `t0_K`,
    `calibration_error` (relative), `noise_rel`), `heaters` (output -> plate), both also as
    lists numbered from 1; `loop_period_s` (PID update interval). Unlisted channels are open
    inputs (they read SCPI +inf ohm / NaN K); an output without a plate can only be OFF.
    """

    device_name = "tc372"

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(world, name, params)
        where = f"{name}.sensors"
        self.sensors = {
            _index(ch, THERMOMETER_IDS, where): Sensor.from_params(spec, world, f"{where}.{ch}")
            for ch, spec in _numbered(self.params.get("sensors")).items()
        }
        where = f"{name}.heaters"
        heaters = {
            _index(out, OUTPUT_IDS, where): _plate(plate, world, f"{where}.{out}")
            for out, plate in _numbered(self.params.get("heaters")).items()
            if plate
        }
        if len(set(heaters.values())) < len(heaters):
            raise ValueError(f"{where}: two outputs drive the same plate ({heaters})")
        self.loops = {out: HeaterLoop(heaters.get(out)) for out in OUTPUT_IDS}
        self._settings_cache: dict[int, dict[str, Any]] = {}
        self.loop_period_s = number(self.params, "loop_period_s", 0.1, name, 1e-3, 10.0)
        self._readout_rng = world.rng(f"{name}.readout")
        self._loop_rng = world.rng(f"{name}.loop")
        self._t = world.now()
        world.add_dynamic(self, first=True)

    # -- SCPI -------------------------------------------------------------------------------

    def commands(self) -> dict[str, Handler]:
        return {
            r"CH(\d+):RES\?": lambda m: self._reading(m, resistance=True),
            r"CH(\d+):TEMP\?": lambda m: self._reading(m, resistance=False),
            r"OUT(\d+):POW\?": lambda m: f"{self._loop(m.group(1)).power_W:.9e}",
            r"OUT(\d+):RAMP:STAT\?": self._ramp_status,
        }

    def _reading(self, match: re.Match[str], resistance: bool) -> str:
        ch = int(match.group(1))
        if ch not in THERMOMETER_IDS:
            raise SCPIError(-114, f"Header suffix out of range; no channel {ch}")
        if not self.setting("enabled", ch):
            raise SCPIError(-221, f"Settings conflict; channel {ch} is disabled (CH{ch}:ENAB 1)")
        self.world.now()
        sensor = self.sensors.get(ch)
        if sensor is None:  # open input
            return f"{SCPI_INF if resistance else SCPI_NAN:.9e}"
        if resistance:
            return f"{sensor.resistance(self.world, self._readout_rng):.9e}"
        return f"{sensor.temperature(self.world, self._readout_rng):.9e}"

    def _loop(self, out: str) -> HeaterLoop:
        loop = self.loops.get(int(out))
        if loop is None:
            raise SCPIError(-114, f"Header suffix out of range; no output {out}")
        self.world.now()
        return loop

    def _ramp_status(self, match: re.Match[str]) -> str:
        out = match.group(1)
        return "1" if self._loop(out).ramping(bool(self.setting("ramp_enabled", out))) else "0"

    def _output_settings(self, out: int) -> dict[str, Any]:
        """An output's loop settings, read once per change (`on_setting`/`on_reset` forget)."""
        cached = self._settings_cache.get(out)
        if cached is None:
            names = ("heater_range", "manual_power", "mode", "setpoint", "ramp_rate",
                     "ramp_enabled", "p", "i", "d", "input_channel")
            cached = self._settings_cache[out] = {n: self.setting(n, out) for n in names}
        return cached

    # -- settings ---------------------------------------------------------------------------

    def check_setting(self, name: str, ch: str | None, value: Any) -> None:
        if ch is None:
            return
        if name == "mode" and value != "OFF":
            if self.loops[int(ch)].plate is None:
                raise SCPIError(-221, f"Settings conflict; output {ch} drives no heater")
            if value == "PID":
                self._check_input(int(ch), self.setting("input_channel", ch))
        elif name == "input_channel" and self.setting("mode", ch) == "PID":
            self._check_input(int(ch), int(value))
        elif name == "enabled" and not value:
            for out in OUTPUT_IDS:
                mode, source = self.setting("mode", out), self.setting("input_channel", out)
                if mode == "PID" and source == int(ch):
                    raise SCPIError(
                        -221, f"Settings conflict; channel {ch} is the input of output {out} (PID)"
                    )

    def _check_input(self, out: int, ch: int) -> None:
        where = f"Settings conflict; output {out} input channel {ch}"
        if ch not in self.sensors:
            raise SCPIError(-221, f"{where} has no sensor")
        if not self.setting("enabled", ch):
            raise SCPIError(-221, f"{where} is disabled")

    def on_setting(self, name: str, ch: str | None, value: Any) -> None:
        self._settings_cache.clear()
        if ch is None or name == "enabled":
            return
        out = int(ch)
        loop = self.loops[out]
        t = self.world.now()
        mode = self.setting("mode", out)
        if mode != "PID":
            loop.stop()
            manual = min(self.setting("manual_power", out), self.setting("heater_range", out))
            loop.power_W = manual if mode == "MANUAL" else 0.0
        elif not loop.active:
            sensor = self.sensors[self.setting("input_channel", out)]
            reading = sensor.temperature(self.world, self._loop_rng)
            ramp = bool(self.setting("ramp_enabled", out))
            loop.start(t, self.setting("setpoint", out), reading, ramp)
        elif name == "setpoint":
            rate = self.setting("ramp_rate", out) / 60.0
            loop.retarget(t, float(value), rate, bool(self.setting("ramp_enabled", out)))
        elif name == "heater_range":
            loop.power_W = min(loop.power_W, float(value))
        if loop.plate is not None:
            self.world.thermal.set_heater(loop.plate, loop.power_W)

    def on_reset(self) -> None:
        self._settings_cache.clear()
        for loop in self.loops.values():
            loop.stop()
            loop.power_W = 0.0
            if loop.plate is not None:
                self.world.thermal.set_heater(loop.plate, 0.0)

    # -- World dynamic ------------------------------------------------------------------------

    @property
    def max_step_s(self) -> float:
        """Time to the next loop update (steps land on it); unbounded with no loop running."""
        pending = [loop.next_update_s - self._t for loop in self.loops.values() if loop.active]
        if not pending:
            return math.inf
        ahead = min(pending)
        return ahead if ahead > 1e-9 else self.loop_period_s

    def step(self, t: float, dt: float) -> None:
        """Run the loop cycles due at `t` (before the plant integrates `[t, t + dt]`)."""
        for out, loop in self.loops.items():
            if loop.active and t >= loop.next_update_s - 1e-9:
                s = self._output_settings(out)
                sensor = self.sensors[s["input_channel"]]
                power = loop.update(t, sensor.temperature(self.world, self._loop_rng), s)
                self.world.thermal.set_heater(str(loop.plate), power)
                loop.next_update_s += self.loop_period_s
                if loop.next_update_s <= t:  # fell off the grid: restart it from now
                    loop.next_update_s = t + self.loop_period_s
        self._t = t + dt
