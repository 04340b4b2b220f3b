"""Thermal plant of the cryostat: plates on weak links to the mixing-chamber plate.

Each plate has a heat capacity C = gamma T (metal at low temperature), a heater, and a link
that carries P = k (T^n - T_mx^n) to the mixing plate. The mixing plate's temperature rises
with the total heat load, T_mx = (T_base^2 + P_load / c_mx)^(1/2), as a dilution unit's does.
Optionally the base temperature wanders (`fluctuation_K` rms, Ornstein-Uhlenbeck with
correlation time `fluctuation_s`): the slow disturbance a regulated plate's loop must reject.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.sim_instruments.params import number

MIXING = "mixing"
#: Largest relative temperature change of one integration sub-step.
MAX_RELATIVE_STEP = 0.05


class ThermalError(ValueError):
    """A plate name or thermal parameter is wrong; the message names it."""


@dataclass
class Plate:
    """A plate on a weak link to the mixing plate."""

    name: str
    gamma_J_per_K2: float
    link_W: float
    link_exponent: float
    temperature_K: float
    heater_W: float = 0.0

    def link_power(self, t_mixing: float) -> float:
        n = self.link_exponent
        return self.link_W * (self.temperature_K**n - t_mixing**n)

    def conductance(self) -> float:
        n = self.link_exponent
        return n * self.link_W * self.temperature_K ** (n - 1)

    def time_constant(self) -> float:
        return self.gamma_J_per_K2 * self.temperature_K / self.conductance()


class ThermalPlant:
    """The plates of one cryostat; a `Dynamic` of the World."""

    def __init__(self, base_K: float, mixing_cooling: float, plates: list[Plate],
                 fluctuation_K: float = 0.0, fluctuation_s: float = 60.0,
                 rng: np.random.Generator | None = None) -> None:
        self.base_K = base_K
        self.fluctuation_K = fluctuation_K
        self.fluctuation_s = fluctuation_s
        self._wander_K = 0.0
        self._rng = rng if rng is not None else np.random.default_rng(0)
        self.mixing_cooling = mixing_cooling
        self.mixing_heater_W = 0.0
        self.plates = {p.name: p for p in plates}
        self.mixing_K = base_K
        self.max_step_s = 0.1
        self._update_mixing()

    @classmethod
    def from_params(cls, params: Mapping[str, Any],
                    rng: np.random.Generator | None = None) -> ThermalPlant:
        """Build from the World's `thermal` mapping (defaults give a 15 mK fridge); `rng`
        drives the base-temperature fluctuation."""
        mixing = params.get(MIXING) or {}
        base = number(mixing, "base_K", 0.015, "world.thermal.mixing", low=1e-12)
        cooling = number(mixing, "cooling_W_per_K2", 2.5e-3, "world.thermal.mixing", low=1e-12)
        wander = number(mixing, "fluctuation_K", 0.0, "world.thermal.mixing", 0.0, base / 3.0)
        wander_s = number(mixing, "fluctuation_s", 60.0, "world.thermal.mixing", 1e-3, 1e6)
        plates = []
        for name, p in (params.get("plates") or {}).items():
            where = f"world.thermal.plates.{name}"
            p = p or {}
            plates.append(
                Plate(
                    name=name,
                    gamma_J_per_K2=number(p, "gamma_J_per_K2", 1e-4, where, low=1e-12),
                    link_W=number(p, "link_W_per_Kn", 5e-5, where, low=1e-12),
                    link_exponent=number(p, "link_exponent", 2.0, where, low=1e-12),
                    temperature_K=number(p, "initial_K", base, where, low=1e-12),
                )
            )
        return cls(base, cooling, plates, wander, wander_s, rng)

    def names(self) -> list[str]:
        return [MIXING, *self.plates]

    def _plate(self, name: str) -> Plate:
        try:
            return self.plates[name]
        except KeyError:
            raise ThermalError(
                f"no plate {name!r} in world.thermal (plates: {', '.join(self.names())})"
            ) from None

    def temperature(self, name: str) -> float:
        """Temperature (K) of a plate or of the mixing plate."""
        return self.mixing_K if name == MIXING else self._plate(name).temperature_K

    def set_heater(self, name: str, power_W: float) -> None:
        if name == MIXING:
            self.mixing_heater_W = max(0.0, power_W)
        else:
            self._plate(name).heater_W = max(0.0, power_W)

    def deposit(self, name: str, energy_J: float) -> None:
        """Dump `energy_J` into a plate at once (C = gamma T: T -> sqrt(T^2 + 2 E / gamma)).

        The mixing plate has no heat capacity in this model; a pulse must go into a plate."""
        if name == MIXING:
            raise ThermalError("the mixing plate has no heat capacity; deposit into a plate")
        plate = self._plate(name)
        energy = max(0.0, float(energy_J))
        t2 = plate.temperature_K**2 + 2.0 * energy / plate.gamma_J_per_K2
        plate.temperature_K = math.sqrt(t2)
        self._update_mixing()

    def heater(self, name: str) -> float:
        return self.mixing_heater_W if name == MIXING else self._plate(name).heater_W

    def _update_mixing(self) -> None:
        load = self.mixing_heater_W + sum(p.link_power(self.mixing_K) for p in self.plates.values())
        base = self.base_K + self._wander_K
        self.mixing_K = math.sqrt(base**2 + max(load, 0.0) / self.mixing_cooling)

    def step(self, t: float, dt: float) -> None:
        """Advance every plate by `dt`, then the base-temperature wander and the mixing
        plate."""
        for plate in self.plates.values():
            self._step_plate(plate, dt)
        if self.fluctuation_K > 0:
            a = math.exp(-dt / self.fluctuation_s)
            kick = self.fluctuation_K * math.sqrt(1.0 - a * a) * self._rng.standard_normal()
            self._wander_K = a * self._wander_K + kick
        self._update_mixing()

    def _step_plate(self, plate: Plate, dt: float) -> None:
        """Exponential-Euler sub-steps, each changing T by at most `MAX_RELATIVE_STEP`: the
        linearised link is only valid for small changes (a heater switched on at base
        temperature would otherwise overshoot)."""
        left = dt
        while left > 0:
            t_k = plate.temperature_K
            g = plate.conductance()
            net = plate.heater_W - plate.link_power(self.mixing_K)
            capacity = plate.gamma_J_per_K2 * t_k
            limit = MAX_RELATIVE_STEP * t_k * capacity / abs(net) if net else left
            h = min(left, max(limit, 1e-9))
            target = t_k + net / g
            decay = math.exp(-h / plate.time_constant())
            plate.temperature_K = max(target + (t_k - target) * decay, 1e-4)
            left -= h
