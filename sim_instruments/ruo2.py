"""RuO2 thermometer: R(T) = R_inf exp(sqrt(T0 / T)) (Efros-Shklovskii hopping) and its inverse."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RuO2Curve:
    """Calibration of one RuO2 sensor."""

    r_inf_ohm: float = 1000.0
    t0_K: float = 0.3

    def resistance(self, temperature_K: float) -> float:
        return self.r_inf_ohm * math.exp(math.sqrt(self.t0_K / temperature_K))

    def temperature(self, resistance_ohm: float) -> float:
        ratio = resistance_ohm / self.r_inf_ohm
        if ratio <= 1.0:
            return math.inf
        return self.t0_K / math.log(ratio) ** 2
