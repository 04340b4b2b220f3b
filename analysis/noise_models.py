"""Noise power spectral densities."""

from __future__ import annotations

import numpy as np


def white_plus_one_over_f(f: np.ndarray, white_density: float, knee_hz: float) -> np.ndarray:
    """One-sided PSD (units^2/Hz) of white noise `white_density` (units/sqrt(Hz)) plus 1/f noise
    that equals the white level at `knee_hz`: S(f) = w^2 (1 + f_knee / f)."""
    f = np.asarray(f, dtype=float)
    with np.errstate(divide="ignore"):
        return white_density**2 * (1.0 + knee_hz / f)
