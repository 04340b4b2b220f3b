"""Y-factor calibration of an amplification chain (the method the cavity-emitted radiation
replaces; REFERENCE.md section 4): a switch turns the chain to a black-body load measured at a
cold and a hot temperature, Y = P_hot / P_cold and T_sys = (T~_hot - Y T~_cold) / (Y - 1) with
T~ from Eq 3. The result is referred to the load: a path difference between the load and the
cavity (transmission A_p at T_sw) makes it (T_a' + (1 - A_p) T~_sw) / A_p rather than the
cavity port's T_a' (`cryodaq.analysis.cavity_chain.y_factor_system_noise`), and the gain G' A_p.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from cryodaq.analysis.cavity import K_B, effective_temperature


def y_factor_noise(
    p_hot_W: np.ndarray | float,
    p_cold_W: np.ndarray | float,
    t_hot_K: float,
    t_cold_K: float,
    f_hz: np.ndarray | float,
) -> np.ndarray:
    """Y-factor system noise: Y = P_hot / P_cold, T_sys = (T~_hot - Y T~_cold) / (Y - 1),
    with T~ the effective temperatures of Eq 3 at `f_hz`."""
    y = np.asarray(p_hot_W, dtype=float) / np.asarray(p_cold_W, dtype=float)
    hot = effective_temperature(t_hot_K, f_hz)
    cold = effective_temperature(t_cold_K, f_hz)
    return (hot - y * cold) / (y - 1.0)


@dataclass(frozen=True)
class YFactor:
    """Band-averaged Y-factor result: Y, the system noise (K) and the gain (dB) it implies,
    with 1-sigma errors from the spectra's radiometer scatter."""

    y: float
    y_err: float
    system_noise_K: float
    system_noise_K_err: float
    gain_dB: float
    gain_dB_err: float
    t_hot_eff_K: float
    t_cold_eff_K: float


def y_factor(
    f_hz: ArrayLike,
    p_hot_W: ArrayLike,
    p_cold_W: ArrayLike,
    t_hot_K: float,
    t_cold_K: float,
    bin_width_Hz: float,
    relative_sigma_hot: float,
    relative_sigma_cold: float,
) -> YFactor:
    """Y from the band's summed powers (the gain ripple cancels bin by bin), T_sys with T~ at
    the band's mean frequency, G = P_cold / (k_B B (T~_cold + T_sys)) per bin, averaged.

    `relative_sigma_*` is one bin's relative scatter (1/sqrt(B tau)); the sums' relative errors
    are that over sqrt(bins)."""
    f = np.asarray(f_hz, dtype=float)
    hot = np.asarray(p_hot_W, dtype=float)
    cold = np.asarray(p_cold_W, dtype=float)
    if hot.shape != cold.shape or hot.shape != f.shape or f.size == 0:
        raise ValueError("y_factor: hot, cold and frequencies need the same, non-empty bins")
    if not t_hot_K > t_cold_K:
        raise ValueError(f"y_factor: hot load {t_hot_K!r} K not above cold {t_cold_K!r} K")
    f_mean = float(f.mean())
    th = float(effective_temperature(t_hot_K, f_mean))
    tc = float(effective_temperature(t_cold_K, f_mean))
    y = float(hot.sum() / cold.sum())
    if not y > 1.0:
        raise ValueError(f"y_factor: Y = {y:.6g} <= 1 (is the switch on the load?)")
    rel = math.hypot(relative_sigma_hot, relative_sigma_cold) / math.sqrt(f.size)
    y_err = y * rel
    t_sys = float(y_factor_noise(hot.sum(), cold.sum(), t_hot_K, t_cold_K, f_mean))
    t_sys_err = abs(tc - th) / (y - 1.0) ** 2 * y_err
    gain = float(np.mean(cold / (K_B * bin_width_Hz * (tc + t_sys))))
    # The gain's error: the cold sum's scatter and T_sys's error (dominant), in quadrature.
    g_rel = math.hypot(relative_sigma_cold / math.sqrt(f.size), t_sys_err / (tc + t_sys))
    return YFactor(
        y=y,
        y_err=y_err,
        system_noise_K=float(t_sys),
        system_noise_K_err=float(t_sys_err),
        gain_dB=10.0 * math.log10(gain),
        gain_dB_err=10.0 / math.log(10.0) * g_rel,
        t_hot_eff_K=th,
        t_cold_eff_K=tc,
    )
