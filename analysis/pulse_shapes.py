"""Pulse shapes of cryogenic microcalorimeters."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def two_exponential(dt: float, rise_s: float, decay_s: float) -> float:
    """Unnormalised pulse exp(-dt/decay) - exp(-dt/rise) for dt >= 0, else 0."""
    if dt < 0.0:
        return 0.0
    return math.exp(-dt / decay_s) - math.exp(-dt / rise_s)


@numba.njit(cache=True)
def peak_time(rise_s: float, decay_s: float) -> float:
    """Time of the maximum of `two_exponential`."""
    return rise_s * decay_s / (decay_s - rise_s) * math.log(decay_s / rise_s)


@numba.njit(cache=True)
def peak_norm(rise_s: float, decay_s: float) -> float:
    """Maximum of `two_exponential`; dividing by it gives a unit-height pulse."""
    return two_exponential(peak_time(rise_s, decay_s), rise_s, decay_s)


def unit_pulse(t: np.ndarray, rise_s: float, decay_s: float) -> np.ndarray:
    """Unit-height two-exponential pulse sampled at times `t` (s, arrival at 0)."""
    if not 0 < rise_s < decay_s:
        raise ValueError(f"need 0 < rise_s < decay_s, got rise {rise_s} s, decay {decay_s} s")
    t = np.asarray(t, dtype=float)
    shape = np.where(
        t >= 0, np.exp(-np.clip(t, 0, None) / decay_s) - np.exp(-np.clip(t, 0, None) / rise_s), 0.0
    )
    return shape / peak_norm(rise_s, decay_s)


def three_exponential(
    t: np.ndarray, rise_s: float, fast_s: float, slow_s: float, slow_fraction: float
) -> np.ndarray:
    """TES pulse with a rise and two decays, per unit energy integral of its decays (1/s).

    (1 - s)/tau2 exp(-t/tau2) + s/tau3 exp(-t/tau3) - ((1 - s)/tau2 + s/tau3) exp(-t/tau1)
    for t >= 0: it starts at zero, and s is the share of the slow decay in the integral of the
    two decays (the "few percent" of the energy in the weakly coupled subsystem).
    """
    if not 0 < rise_s < fast_s <= slow_s or not 0.0 <= slow_fraction <= 1.0:
        raise ValueError(
            "need 0 < rise_s < fast_s <= slow_s and 0 <= slow_fraction <= 1, got "
            f"{rise_s:g}, {fast_s:g}, {slow_s:g} s, {slow_fraction:g}"
        )
    t = np.asarray(t, dtype=float)
    tc = np.clip(t, 0.0, None)
    a_fast, a_slow = (1.0 - slow_fraction) / fast_s, slow_fraction / slow_s
    shape = a_fast * np.exp(-tc / fast_s) + a_slow * np.exp(-tc / slow_s)
    return np.where(t >= 0, shape - (a_fast + a_slow) * np.exp(-tc / rise_s), 0.0)
