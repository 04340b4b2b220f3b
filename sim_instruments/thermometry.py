"""Thermometry of a simulated temperature controller: RuO2 sensors on the World's plates and
the discrete PID loop of a heater output."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.ruo2 import RuO2Curve
from cryodaq.sim_instruments.world import World


def plate_name(name: Any, world: World, where: str) -> str:
    """`name` if it is a plate of the World's thermal plant, else a ValueError naming `where`."""
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
        plate = plate_name(spec.get("plate"), world, f"{where}.plate")
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
    """A discrete PID loop driving an output level u in [0, 1] (fraction of full scale).

    u = P e + u_I - P D dT/dt + u_M, u_I += P e h / I, with e the error (K) against the
    (ramped) setpoint, T the reading and u_M the manual output (Lake Shore: "in closed loop
    control mode, Manual Output is added directly to the output of the PID control equation");
    P is in 1/K (fraction of full scale per kelvin). Anti-windup: u_M + u_I stays in [0, 1]
    and u_I does not integrate further into a saturated output. What u means (current,
    voltage) is the output's own business.
    """

    def __init__(self) -> None:
        self.level = 0.0
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
        """One loop cycle at time `t` with settings `s` (`p`, `i`, `d`, `ramp_rate` in K/min,
        `ramp_enabled`, optional `manual`: fraction of full scale added); returns the new
        output level (fraction of full scale)."""
        h = 0.0 if self._last is None else t - self._last[0]
        self._advance_ramp(t, s["ramp_rate"] / 60.0, bool(s["ramp_enabled"]))
        p, i_s, d_s = s["p"], s["i"], s["d"]
        error = self.ramped_K - reading_K
        derivative = 0.0
        if self._last is not None and h > 0:
            derivative = -p * d_s * (reading_K - self._last[1]) / h
        manual = float(s.get("manual", 0.0))
        base = p * error + derivative + manual
        if i_s > 0:  # the integral about the manual output: u_M + u_I stays in [0, 1]
            integral = min(max(self._integral + p * error * h / i_s, -manual), 1.0 - manual)
            pushes_up = base + integral > 1.0 and error > 0
            pushes_down = base + integral < 0.0 and error < 0
            if not (pushes_up or pushes_down):
                self._integral = integral
        else:
            self._integral = 0.0
        self.level = min(max(base + self._integral, 0.0), 1.0)
        self._last = (t, reading_K)
        return self.level
