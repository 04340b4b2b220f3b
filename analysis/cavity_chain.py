"""Lossy microwave chain around a haloscope cavity (Chang et al. 2024, Eqs 5-9).

Reading of the paper's Fig. 1b used here (equation numbers are the seed paper's):

    attenuator plate (T_att) --cable 1--> circulator (mixing plate, T_mx) --cable 2--> cavity
    cavity --cable 2 (outward)--> circulator --cable 3--> HEMT (4 K plate, T_hemt) -> gain

* Cable 1 runs from the attenuator plate (x = 0) to the circulator on the mixing plate; the
  noise it adds towards the cavity is `cable_noise_temperature(T_att, T_mx, A1)` (Eq 5).
* The circulator sits on the mixing plate (T_cir = T_mx); it passes A_cir and adds
  (1 - A_cir) T~_mx in either direction.
* Cable 2 joins the circulator and the cavity. Inward (towards the cavity) it adds
  T~2* = `cable_noise_temperature(T_mx, T_c, A2)`; outward (towards the circulator, the
  T~2*- of Eq 9) it adds `cable_noise_temperature(T_c, T_mx, A2)`.
* Cable 3 runs from the mixing plate to the HEMT; it adds `cable_noise_temperature(T_mx,
  T_hemt, A3)` at the HEMT's input.

All temperatures handed to the cavity are effective ones (Eq 3, with the half quantum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from cryodaq.analysis.cavity import (
    K_B,
    Cavity,
    effective_temperature,
    emitted_power,
    received_power,
)

#: Gauss-Legendre nodes of the Eq 5 integral.
DEFAULT_NODES = 48
#: Below this transmission Eq 5 is integrated in s = exp(-(L - x)/l) rather than x/L.
SMOOTH_BELOW = 1e-2


def _check_transmission(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def cable_noise_temperature(
    t_near_K: ArrayLike,
    t_far_K: ArrayLike,
    transmission: float,
    f_hz: ArrayLike,
    n: int = DEFAULT_NODES,
) -> np.ndarray:
    """Eq 5: noise temperature (K) a cable delivers at its far end.

    The cable's temperature rises linearly from `t_near_K` at x = 0 to `t_far_K` at x = L; each
    element dx radiates T~(T(x)) dx / l and is attenuated by exp(-(L - x)/l) on its way to the
    far end, with exp(-L/l) = `transmission`:

        T* = integral_0^L T~(T(x)) exp(-(L - x)/l) dx / l.

    It is evaluated by `n`-point Gauss-Legendre quadrature in u = x/L (smooth integrand) or,
    for A < 1e-2, in s = exp(-(L - x)/l), where it reads integral_A^1 T~(T(x(s))) ds. A
    uniform cable gives (1 - A) T~, a lossless one 0, and A -> 0 gives T~(t_far). The same
    cable seen from its other end swaps `t_near_K` and `t_far_K`.
    """
    a = _check_transmission("transmission", transmission)
    t_near = np.asarray(t_near_K, dtype=float)
    t_far = np.asarray(t_far_K, dtype=float)
    f = np.asarray(f_hz, dtype=float)
    shape = np.broadcast_shapes(t_near.shape, t_far.shape, f.shape)
    if a == 1.0:
        effective_temperature(np.broadcast_to(t_near, shape), np.broadcast_to(f, shape))
        return np.zeros(shape)
    nodes, weights = np.polynomial.legendre.leggauss(int(n))
    if a >= SMOOTH_BELOW:
        # In u = x / L the integrand lam exp(-lam (1 - u)) T~(T(u)) is smooth: Gauss-Legendre
        # converges exponentially for lam = -ln A <= ln(1 / SMOOTH_BELOW).
        lam = -np.log(a)
        u = 0.5 * (nodes + 1.0)
        w = 0.5 * weights * lam * np.exp(-lam * (1.0 - u))
    else:
        s = a + (1.0 - a) * 0.5 * (nodes + 1.0)  # nodes in s on [A, 1]
        w = 0.5 * (1.0 - a) * weights
        u = np.ones_like(s) if a == 0.0 else 1.0 + np.log(s) / -np.log(a)
    u = u.reshape((-1,) + (1,) * len(shape))
    temperature = np.broadcast_to(t_near + u * (t_far - t_near), (u.shape[0],) + shape)
    t_eff = effective_temperature(temperature, np.broadcast_to(f, temperature.shape))
    return np.tensordot(w, t_eff, axes=(0, 0)).reshape(shape)


@dataclass(frozen=True)
class ChainLosses:
    """Power transmissions (0..1] of cables 1-3 and the circulator (1: lossless)."""

    A1: float
    A2: float
    A3: float
    A_cir: float

    def __post_init__(self) -> None:
        for name in ("A1", "A2", "A3", "A_cir"):
            _check_transmission(f"ChainLosses.{name}", getattr(self, name))

    @classmethod
    def lossless(cls) -> ChainLosses:
        return cls(1.0, 1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Temperatures:
    """Physical temperatures (K): attenuator plate, cavity, mixing plate (circulator), HEMT."""

    att_K: float
    cav_K: float
    mx_K: float
    hemt_K: float = 4.0


def input_noise(
    f_hz: ArrayLike, temps: Temperatures, losses: ChainLosses
) -> tuple[float, np.ndarray]:
    """Eqs 6/7: noise arriving at the cavity's antenna, T_in = A_in T~_att + T^_in.

    Returns (A_in, T^_in) with A_in = A2 A_cir A1 and
    T^_in = A2 A_cir T~1* + A2 (1 - A_cir) T~_mx + T~2*, cable 1 from the attenuator plate to
    the circulator (T_att -> T_mx), cable 2 from the circulator to the cavity (T_mx -> T_c).
    """
    f = np.asarray(f_hz, dtype=float)
    a1, a2, ac = losses.A1, losses.A2, losses.A_cir
    t1 = cable_noise_temperature(temps.att_K, temps.mx_K, a1, f)
    t2 = cable_noise_temperature(temps.mx_K, temps.cav_K, a2, f)
    t_mx = effective_temperature(temps.mx_K, f)
    return a2 * ac * a1, a2 * ac * t1 + a2 * (1.0 - ac) * t_mx + t2


def incoming_temperature(f_hz: ArrayLike, temps: Temperatures, losses: ChainLosses) -> np.ndarray:
    """Eq 6: T_in = A_in T~_att + T^_in (K) at the cavity's antenna."""
    a_in, t_hat = input_noise(f_hz, temps, losses)
    return a_in * effective_temperature(temps.att_K, f_hz) + t_hat


def output_noise(
    f_hz: ArrayLike, temps: Temperatures, losses: ChainLosses
) -> tuple[float, np.ndarray]:
    """Eq 9's A_r = A3 A_cir A2 and T^_r = A3 A_cir T~2*- + A3 (1 - A_cir) T~_mx + T~3*.

    T~2*- is cable 2 seen from the circulator (T_c -> T_mx); cable 3 runs from the mixing plate
    to the HEMT (T_mx -> T_hemt).
    """
    f = np.asarray(f_hz, dtype=float)
    a2, a3, ac = losses.A2, losses.A3, losses.A_cir
    t2_out = cable_noise_temperature(temps.cav_K, temps.mx_K, a2, f)
    t3 = cable_noise_temperature(temps.mx_K, temps.hemt_K, a3, f)
    t_mx = effective_temperature(temps.mx_K, f)
    return a3 * ac * a2, a3 * ac * t2_out + a3 * (1.0 - ac) * t_mx + t3


def received_spectrum(
    f_hz: ArrayLike,
    cavity: Cavity,
    temps: Temperatures,
    losses: ChainLosses,
    gain_dB: float,
    added_noise_K: float,
    bin_width_Hz: ArrayLike,
) -> np.ndarray:
    """Eq 8 then Eq 9: received power (W per bin) through the lossy chain.

    P_c = (|S_r|^2 T_in + |S_t|^2 T~_c) k_B B (bin-averaged cavity response) and
    P_r = G (A_r P_c + k_B T^_r B + k_B T_a B). With every loss 1 this is exactly
    `received_power(lossless_emitted_power(...), B, G, T_a)` (Eqs 1 and 4).
    """
    f = np.asarray(f_hz, dtype=float)
    t_in = incoming_temperature(f, temps, losses)
    p_c = emitted_power(f, cavity, t_in, temps.cav_K, bin_width_Hz)
    a_r, t_hat_r = output_noise(f, temps, losses)
    b = np.asarray(bin_width_Hz, dtype=float)
    before_amp = a_r * p_c + K_B * t_hat_r * b
    return received_power(before_amp, b, 10.0 ** (gain_dB / 10.0), added_noise_K)


def effective_chain(
    temps: Temperatures,
    losses: ChainLosses,
    gain_dB: float,
    added_noise_K: float,
    f_hz: ArrayLike,
) -> tuple[float, np.ndarray]:
    """Eq 9's effective chain: G' = G A_r (returned in dB) and T_a' = (T^_r + T_a) / A_r (K)."""
    a_r, t_hat_r = output_noise(f_hz, temps, losses)
    if a_r <= 0.0:
        raise ValueError("A_r = A3 A_cir A2 must be > 0 for an effective chain")
    return gain_dB + 10.0 * float(np.log10(a_r)), (t_hat_r + added_noise_K) / a_r


def load_spectrum(
    f_hz: ArrayLike,
    load_K: float,
    temps: Temperatures,
    losses: ChainLosses,
    gain_dB: float,
    added_noise_K: float,
    bin_width_Hz: ArrayLike,
    path_A: float = 1.0,
    switch_K: float | None = None,
) -> np.ndarray:
    """Y-factor configuration (the paper's Fig. 1a): received power (W per bin) with a cryogenic
    switch at the cavity's port turned to a matched black-body load at `load_K`.

    The load's noise replaces the cavity's output P_c of Eq 9; its extra path to the switch
    (the path difference) has transmission `path_A` at the switch body's temperature `switch_K`
    (default: the mixing plate): P_load = (A_p T~_load + (1 - A_p) T~_sw) k_B B, then
    P_r = G (A_r P_load + k_B T^_r B + k_B T_a B) through the same chain as the cavity.
    """
    a_p = _check_transmission("path_A", path_A)
    f = np.asarray(f_hz, dtype=float)
    b = np.asarray(bin_width_Hz, dtype=float)
    t_sw = temps.mx_K if switch_K is None else switch_K
    t_load = a_p * effective_temperature(load_K, f) + (1.0 - a_p) * effective_temperature(t_sw, f)
    a_r, t_hat_r = output_noise(f, temps, losses)
    before_amp = K_B * b * (a_r * t_load + t_hat_r)
    return received_power(before_amp, b, 10.0 ** (gain_dB / 10.0), added_noise_K)


def y_factor_system_noise(
    temps: Temperatures,
    losses: ChainLosses,
    added_noise_K: float,
    f_hz: ArrayLike,
    path_A: float = 1.0,
    switch_K: float | None = None,
) -> np.ndarray:
    """System noise (K) a Y-factor measurement through `load_spectrum` finds at fixed
    temperatures: referred to the load, T_sys = (T_a' + (1 - A_p) T~_sw) / A_p, with T_a' the
    effective added noise of Eq 9 at the cavity's port (`effective_chain`). With A_p = 1 it is
    T_a' itself; a path difference biases it upwards by ~ (1 - A_p) (T_a' + T~_sw)."""
    a_p = _check_transmission("path_A", path_A)
    if a_p <= 0.0:
        raise ValueError("path_A must be > 0 for a Y-factor")
    _, t_a_eff = effective_chain(temps, losses, 0.0, added_noise_K, f_hz)
    t_sw = temps.mx_K if switch_K is None else switch_K
    return (t_a_eff + (1.0 - a_p) * effective_temperature(t_sw, f_hz)) / a_p
