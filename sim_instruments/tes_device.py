"""One TES device as physics: its transition R(T, I), bias circuit and thermal network, the
operating point the bath sets, and the large-signal pulses integrated from the non-linear
electrothermal equations (Irwin and Hilton 2005; REFERENCE.md section 8).

Transition: R(T, I) = R_n / (1 + exp(-u)), u = (T - T_c) / w + b ln(I / I_d): the logistic
transition of width w whose current dependence b gives beta; at the design point (T0, R0, I0
with the bath at `bath_K`) alpha_I = T0 (1 - R0/R_n) / w and beta_I = b (1 - R0/R_n), so the
design's alpha, beta and R0 fix w, b and T_c. The bias is a voltage V = I0 (R_L + R0) through
the Thevenin load R_L (shunt + parasitic) and the inductance L; another bath temperature moves
the operating point along the power balance I^2 R = K (T^n - T_b^n) at the same V.

Thermal network: body 0 the TES (and the copper bars that carry its link to the bath, G at T0
with exponent n), body 1 the absorber beside it (energy deposits thermalise there) coupled by
the copper link G_link, body 2 a weakly coupled subsystem of the absorber (C_tail, G_tail: the
slow tail the seed paper fits with its third exponential). Heat capacities are constant over a
pulse (ΔT ~ 1 mK at 100 mK); links inside the network conduct linearly.

Pulses: the non-linear equations are integrated (RK4, step a quarter of the fastest mode) from
the operating point after a deposit E in the absorber, for energies on a grid, to `head_s`
after the arrival; by then the TES is back in its small-signal range and the rest follows the
linear system from the state reached (exactly what `tes_electrothermal.system_matrix` gives).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from scipy.optimize import brentq

from cryodaq.analysis.tes_electrothermal import E_CHARGE, TesSmallSignal, time_constants
from cryodaq.sim_instruments.params import number

#: Physical parameters of a device with their allowed ranges (SI units).
RANGES: dict[str, tuple[float, float]] = {
    "t0_K": (0.01, 2.0), "r0_ohm": (1e-5, 1.0), "rn_ohm": (1e-5, 10.0), "alpha": (1.0, 2000.0),
    "beta": (0.0, 50.0), "inductance_H": (1e-10, 1e-5), "load_ohm": (0.0, 1.0),
    "g_W_per_K": (1e-12, 1e-6), "n": (1.0, 6.0), "bath_K": (0.0, 2.0),
    "c_tes_J_per_K": (1e-15, 1e-9), "c_abs_J_per_K": (1e-15, 1e-9),
    "g_link_W_per_K": (1e-11, 1e-3), "c_tail_J_per_K": (0.0, 1e-9),
    "g_tail_W_per_K": (0.0, 1e-6), "phi0_per_A": (1e2, 1e8),
}

#: The four HOLMES designs (seed paper section 3, Fig. 2): a 200x200x2 um Au absorber
#: (0.45 pJ/K of electrons at 0.1 K, Au gamma 0.729 mJ/mol/K^2) beside a Mo/Cu TES (Tc ~100
#: mK) through a copper link, G = 600 pW/K to the bath by the copper bars, 0.8 pJ/K in all
#: (d: 1.0 pJ/K, more copper on the bars), L = 50 nH, R0 a few mOhm, 1 Phi0 ~ 11 uA of TES
#: current (phi0_per_A = 1/11 uA), the bath at 40 mK. (b) has a third bar on the sensor:
#: another transition (lower alpha: it converts heat to current worse); (c) the triangular
#: TES-absorber coupling (a stronger link) at another working point (higher R0 and alpha:
#: faster, larger pulses that exceed the slew limit at Mn Ka); (d) as (c) with the heavier
#: bars, at a lower alpha. What they give at 500 kHz with 0.5 uPhi0/rtHz of readout (model
#: and simulation agree; the paper's Tables 2-3 in brackets): rise / fast / slow decay (us),
#: slow share, Cl Ka height (Phi0), largest Mn Ka slew over the 0.25 Phi0/us limit, noise
#: FWHM (eV): (a) 15.2 / 128 / 533, 7 %, 0.90, 0.74, 2.6 [3.3]; (b) 14.5 / 160 / 648, 9 %,
#: 0.72, 0.57, 2.9 [4.1]; (c) 14.3 / 77 / 519, 4 %, 1.25, 1.31 (slips; Ca Ka 0.78 does not),
#: 2.0 [4.1]; (d) 12.1 / 151 / 530, 8 %, 0.74, 0.69, 2.7 [6.2]. The model has no excess noise:
#: its resolutions are what these parameters allow, below the paper's measured ones.
_COMMON = {"t0_K": 0.100, "rn_ohm": 15e-3, "beta": 0.5, "inductance_H": 50e-9,
           "load_ohm": 0.3e-3, "g_W_per_K": 600e-12, "n": 3.0, "bath_K": 0.040,
           "c_tes_J_per_K": 0.25e-12, "c_abs_J_per_K": 0.45e-12, "g_link_W_per_K": 5e-7,
           "c_tail_J_per_K": 0.10e-12, "g_tail_W_per_K": 2e-10, "phi0_per_A": 1.0 / 11e-6}
DESIGNS: dict[str, dict[str, float]] = {
    "a": {**_COMMON, "r0_ohm": 2.5e-3, "alpha": 35.0},
    "b": {**_COMMON, "r0_ohm": 2.5e-3, "alpha": 28.0, "c_tail_J_per_K": 0.12e-12},
    "c": {**_COMMON, "r0_ohm": 3.0e-3, "alpha": 55.0, "g_link_W_per_K": 1e-6},
    "d": {**_COMMON, "r0_ohm": 3.0e-3, "alpha": 40.0, "g_link_W_per_K": 1e-6,
          "c_tes_J_per_K": 0.45e-12},
}
#: Deposits are tabulated up to this energy (eV) unless a detector sets `max_energy_eV`.
MAX_ENERGY_EV = 10e3
#: Energy step (eV) of the pulse table and its time step (fraction of the rise time).
ENERGY_STEP_EV = 200.0
TIME_STEP_RISE = 1.0 / 40.0
#: The non-linear part of a pulse is followed this many fast decay times.
HEAD_FAST = 8.0


def design_parameters(design: Mapping[str, float], p: Mapping[str, Any], where: str
                      ) -> dict[str, float]:
    """The design's parameters with the entry's overrides, range-checked."""
    return {k: number(p, k, design[k], where, lo, hi) for k, (lo, hi) in RANGES.items()}


@dataclass(frozen=True)
class Transition:
    """R(T, I) = R_n / (1 + exp(-u)), u = (T - T_c)/w + b ln(I / I_d) (see the module)."""

    rn_ohm: float
    tc_K: float
    width_K: float
    b: float
    i_ref_A: float

    def resistance(self, t_K: float, i_A: float) -> float:
        u = (t_K - self.tc_K) / self.width_K + self.b * math.log(max(i_A, 1e-30) / self.i_ref_A)
        return self.rn_ohm / (1.0 + math.exp(-u))

    def temperature(self, r_ohm: float, i_A: float) -> float:
        """T at which R(T, I) = r_ohm (0 < r_ohm < R_n)."""
        u = math.log(r_ohm / (self.rn_ohm - r_ohm))
        return self.tc_K + self.width_K * (u - self.b * math.log(i_A / self.i_ref_A))


class TesDevice:
    """A TES with its circuit and thermal network (`DESIGNS` keys as parameters)."""

    def __init__(self, params: Mapping[str, float], where: str) -> None:
        self.where = where
        self.p = dict(params)
        p = self.p
        if not p["r0_ohm"] < p["rn_ohm"]:
            raise ValueError(f"{where}: r0_ohm {p['r0_ohm']:g} must be below rn_ohm "
                             f"{p['rn_ohm']:g}")
        if not p["bath_K"] < p["t0_K"]:
            raise ValueError(f"{where}: bath_K {p['bath_K']:g} must be below t0_K "
                             f"{p['t0_K']:g}")
        n, t0 = p["n"], p["t0_K"]
        self.k_link = p["g_W_per_K"] / (n * t0 ** (n - 1.0))
        power = self.k_link * (t0**n - p["bath_K"] ** n)
        i0 = math.sqrt(power / p["r0_ohm"])
        s0 = p["r0_ohm"] / p["rn_ohm"]
        width = t0 * (1.0 - s0) / p["alpha"]
        b = p["beta"] / (1.0 - s0)
        tc = t0 - width * math.log(s0 / (1.0 - s0))
        self.transition = Transition(p["rn_ohm"], tc, width, b, i0)
        self.bias_V = i0 * (p["load_ohm"] + p["r0_ohm"])
        self.heat_capacities = (p["c_tes_J_per_K"], p["c_abs_J_per_K"], p["c_tail_J_per_K"])
        self.reference = self.operating_point(p["bath_K"])

    # -- operating point ------------------------------------------------------------------

    def operating_point(self, bath_K: float) -> tuple[float, float, float]:
        """(T0, R0, I0) at bath temperature `bath_K` and the design's bias voltage: the
        stable root of I^2 R - K (T^n - T_b^n) (R above R_L, where the Joule power falls with
        R), found along R (I = V / (R_L + R), T from the transition)."""
        tr, rl, n = self.transition, self.p["load_ohm"], self.p["n"]

        def balance(r: float) -> float:
            i = self.bias_V / (rl + r)
            t = tr.temperature(r, i)
            return i * i * r - self.k_link * (max(t, 0.0) ** n - bath_K**n)

        grid = np.geomspace(max(rl, 1e-4 * tr.rn_ohm) * 1.001, tr.rn_ohm * 0.9999, 400)
        h = np.array([balance(r) for r in grid])
        falls = np.flatnonzero((h[:-1] > 0) & (h[1:] <= 0))
        if falls.size == 0:
            raise ValueError(f"{self.where}: no operating point in the transition at bath "
                             f"{bath_K * 1e3:.2f} mK (bias {self.bias_V:.3g} V)")
        j = int(falls[-1])
        r = brentq(balance, grid[j], grid[j + 1], xtol=1e-16, rtol=1e-13)
        i = self.bias_V / (rl + r)
        return tr.temperature(r, i), r, i

    def small_signal(self, bath_K: float | None = None) -> TesSmallSignal:
        """The linearised device at the operating point of bath `bath_K` (default: design)."""
        p, tr = self.p, self.transition
        tb = p["bath_K"] if bath_K is None else bath_K
        t0, r0, i0 = self.reference if bath_K is None else self.operating_point(tb)
        s = r0 / tr.rn_ohm
        n = p["n"]
        links = [(0, 1, p["g_link_W_per_K"])]
        heat = list(self.heat_capacities[:2])
        if p["c_tail_J_per_K"] > 0 and p["g_tail_W_per_K"] > 0:
            links.append((1, 2, p["g_tail_W_per_K"]))
            heat.append(p["c_tail_J_per_K"])
        return TesSmallSignal(
            t0_K=t0, r0_ohm=r0, i0_A=i0, alpha=t0 * (1.0 - s) / tr.width_K, beta=tr.b * (1 - s),
            inductance_H=p["inductance_H"], load_ohm=p["load_ohm"], load_K=tb,
            heat_capacities=tuple(heat), links=tuple(links),
            bath_g=(n * self.k_link * t0 ** (n - 1.0),) + (0.0,) * (len(heat) - 1),
            n=n, bath_K=tb, deposit=1)

    # -- large signal ---------------------------------------------------------------------

    def pulse_table(self, max_energy_eV: float) -> PulseTable:
        """Current pulses per eV (A/eV, deviation from I0 over the energy) after deposits on an
        energy grid, integrated to `head_s`, and the state reached there (see the module; the
        grid's 0 is integrated at 1 eV: the small-signal pulse)."""
        ss = self.small_signal()
        taus = time_constants(ss)
        dt_tab = TIME_STEP_RISE * taus[1]
        head = HEAD_FAST * taus[-2]
        n_t = int(math.ceil(head / dt_tab)) + 1
        sub = max(1, int(math.ceil(dt_tab / (0.25 * taus[0]))))
        energies = np.arange(0.0, max_energy_eV + ENERGY_STEP_EV, ENERGY_STEP_EV)
        m = len(ss.heat_capacities)
        start = np.zeros(m + 1)
        start[0] = ss.i0_A
        start[1:] = ss.t0_K
        links = np.array([[i, j, g] for i, j, g in ss.links], dtype=float)
        tr, p = self.transition, self.p
        consts = np.array([tr.rn_ohm, tr.tc_K, tr.width_K, tr.b, tr.i_ref_A, self.bias_V,
                           p["load_ohm"], p["inductance_H"], self.k_link, p["n"], p["bath_K"]])
        heat = np.array(ss.heat_capacities)
        current = np.empty((energies.size, n_t))
        state = np.empty((energies.size, m + 1))
        for e_i, e in enumerate(energies):
            e = max(e, 1.0)
            x = start.copy()
            x[1 + ss.deposit] += e * E_CHARGE / heat[ss.deposit]
            _integrate(x, consts, heat, links, dt_tab / sub, sub, current[e_i])
            current[e_i] = (current[e_i] - ss.i0_A) / e
            state[e_i] = (x - start) / e
        return PulseTable(energies, dt_tab, current, state)


@dataclass(frozen=True)
class PulseTable:
    """Large-signal current pulses per eV: `current[e, k]` ((I - I0) / E, A/eV) at k dt_s after
    a deposit E of `energies_eV[e]`; `state[e]` the deviation (I, T_0, T_1, ...) per eV at the
    table's end. Per eV, the pulses change slowly with energy (saturation is smooth), so
    interpolating between the grid's energies shifts a pulse's height by < 0.01 eV of energy
    (measured at 0.3-5.9 keV against direct integration) where the pulses themselves would
    by 0.2 eV."""

    energies_eV: np.ndarray
    dt_s: float
    current: np.ndarray
    state: np.ndarray

    @property
    def head_s(self) -> float:
        return (self.current.shape[1] - 1) * self.dt_s


@numba.njit(cache=True, nogil=True)
def _rates(x, consts, heat, links, out):  # pragma: no cover - numba
    rn, tc, w, b, iref, v, rl, ind, kb, n, tb = consts
    i, t0 = x[0], x[1]
    u = (t0 - tc) / w + b * math.log(max(i, 1e-30) / iref)
    r = rn / (1.0 + math.exp(-u))
    out[0] = (v - i * (rl + r)) / ind
    for k in range(heat.shape[0]):
        out[k + 1] = 0.0
    out[1] = i * i * r - kb * (t0**n - tb**n)
    for row in range(links.shape[0]):
        a, c, g = int(links[row, 0]), int(links[row, 1]), links[row, 2]
        flow = g * (x[1 + a] - x[1 + c])
        out[1 + a] -= flow
        out[1 + c] += flow
    for k in range(heat.shape[0]):
        out[k + 1] /= heat[k]


@numba.njit(cache=True, nogil=True)
def _integrate(x, consts, heat, links, h, sub, current):  # pragma: no cover - numba
    """RK4 with step h; current[k] = I after k * sub steps; x is left at the last one."""
    m = x.shape[0]
    k1, k2, k3, k4, y = (np.empty(m), np.empty(m), np.empty(m), np.empty(m), np.empty(m))
    current[0] = x[0]
    for k in range(1, current.shape[0]):
        for _ in range(sub):
            _rates(x, consts, heat, links, k1)
            for j in range(m):
                y[j] = x[j] + 0.5 * h * k1[j]
            _rates(y, consts, heat, links, k2)
            for j in range(m):
                y[j] = x[j] + 0.5 * h * k2[j]
            _rates(y, consts, heat, links, k3)
            for j in range(m):
                y[j] = x[j] + h * k3[j]
            _rates(y, consts, heat, links, k4)
            for j in range(m):
                x[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j])
        current[k] = x[0]
