"""The simulated fridge the 372 tests run on, and the plant's laws they compare against.

Expectations come from the plant's laws (plate link P = k (T^n - T_mx^n), mixing plate
T_mx = sqrt(T_base^2 + P_load / c)) and the 372's heater outputs as its manual gives them
(sample heater: a current source of range I_k = 31.6 uA .. 100 mA in half decades, P =
(u I_k)^2 R; analog output: 0-10 V, P = (u 10 V)^2 / R), independently of the simulator's code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import brentq

from cryodaq.drivers.lakeshore372 import LakeShore372
from cryodaq.sim_instruments.lakeshore372_model import LakeShore372Model
from cryodaq.sim_instruments.world import World
from tests.conftest import open_simulated

BASE_K = 0.012
COOLING_W_PER_K2 = 1.5e-3
#: Two plates with different links: attenuator (n = 2, tau = gamma / (n k) = 1 s),
#: cavity (n = 3, tau = gamma / (3 k T) = 0.33 s at 250 mK).
PLATES = {
    "attenuator": {"gamma_J_per_K2": 1e-4, "link_W_per_Kn": 5e-5, "link_exponent": 2.0},
    "cavity": {"gamma_J_per_K2": 5e-5, "link_W_per_Kn": 2e-4, "link_exponent": 3.0},
}
#: Sample heater current ranges 1..8 of the 372 (A), from its manual.
SAMPLE_RANGES_A = tuple(10.0 ** (-4.5 + 0.5 * k) for k in range(8))  # 31.6 uA .. 100 mA
SAMPLE_OHM = 100.0  # the sim's default sample heater, as HTRSET's default
CAVITY_OHM = 1e6  # analog output into 1 Mohm: (10 V)^2 / R = 100 uW full scale
CAVITY_FULL_W = 10.0**2 / CAVITY_OHM


def make(
    closing: list[Any],
    sensors: dict[Any, Any] | None = None,
    plates: dict[str, dict[str, float]] | None = None,
    seed: int = 7,
    **params: Any,
) -> tuple[LakeShore372, World]:
    """A 372 on a two-plate fridge; output 0 -> attenuator, analog output 2 -> cavity."""
    plates = plates or {name: {**p, "initial_K": BASE_K} for name, p in PLATES.items()}
    world = World({
        "seed": seed,
        "thermal": {
            "mixing": {"base_K": BASE_K, "cooling_W_per_K2": COOLING_W_PER_K2},
            "plates": plates,
        },
    })
    params.setdefault("heaters", {0: "attenuator",
                                  2: {"plate": "cavity", "resistance_ohm": CAVITY_OHM}})
    sensors = sensors or {1: "mixing", 2: "attenuator", 3: "cavity"}
    model = LakeShore372Model(world, "tc", {"sensors": sensors, **params})
    tc = open_simulated(LakeShore372, "lakeshore372", model)
    closing.append(tc)
    return tc, world


def sample_full_W(range_index: int, ohm: float = SAMPLE_OHM) -> float:
    return SAMPLE_RANGES_A[range_index - 1] ** 2 * ohm


def link_power(plate: str, t: float, t_mx: float) -> float:
    p = PLATES[plate]
    n = p["link_exponent"]
    return p["link_W_per_Kn"] * (t**n - t_mx**n)


def mixing_K(load_W: float) -> float:
    return math.sqrt(BASE_K**2 + load_W / COOLING_W_PER_K2)


def steady_temperature(plate: str, power_W: float) -> float:
    """Plate temperature where the link carries `power_W` to the mixing plate it warms."""
    p = PLATES[plate]
    n = p["link_exponent"]
    return (mixing_K(power_W) ** n + power_W / p["link_W_per_Kn"]) ** (1.0 / n)


def held_power(plate: str, t: float) -> float:
    """Heater power that holds `plate` at `t` in steady state."""
    return brentq(lambda w: w - link_power(plate, t, mixing_K(w)), 0.0, 1.0, xtol=1e-15)


def loop_conductance(plate: str, t: float) -> float:
    """d(heater power)/dT in steady state at `t`: the link's n k T^(n-1), reduced because the
    mixing plate warms with the load (dT_mx/dP = 1 / (2 c T_mx))."""
    p = PLATES[plate]
    n, k = p["link_exponent"], p["link_W_per_Kn"]
    t_mx = mixing_K(held_power(plate, t))
    return n * k * t ** (n - 1) / (1 + n * k * t_mx ** (n - 2) / (2 * COOLING_W_PER_K2))


def ramp_lag(plate: str, t: np.ndarray, rate_K_per_s: float, p: float, i_s: float,
             full_W: float) -> np.ndarray:
    """Steady lag of a PI loop behind a ramp. The level u = sqrt(P_heater / P_full) must rise
    as fast as the power the link needs: du/dt = G r / (2 sqrt(P_held P_full)); the integral
    term grows at P e / I, so e = r I G / (2 P sqrt(P_held P_full))."""
    g = np.array([loop_conductance(plate, x) for x in t])
    held = np.array([held_power(plate, x) for x in t])
    return rate_K_per_s * i_s * g / (2 * p * np.sqrt(held * full_W))


def record(tc: LakeShore372, world: World, plate: str, ch: int, t0: float, t1: float,
           dt: float) -> dict[str, np.ndarray]:
    """True plate temperature, controller reading and heater power sampled on [t0, t1]."""
    rows = []
    for t in np.arange(t0, t1 + dt / 2, dt):
        world.advance_to(t)
        rows.append((t, world.thermal.temperature(plate), tc.temperature(ch),
                     world.thermal.heater(plate)))
    a = np.array(rows)
    return {"t": a[:, 0], "true": a[:, 1], "read": a[:, 2], "power": a[:, 3]}
