"""Moving-average smoothing of records (HOLMES: against the arrival-time dependence of the
pulse amplitude when only ~20 samples sit on the rising edge)."""

from __future__ import annotations

import numpy as np


def moving_average(records: np.ndarray, samples: int) -> np.ndarray:
    """Causal moving average over `samples` samples along each record (n, L); the first
    samples average what precedes them in the record. `samples` = 1 returns a float copy."""
    x = np.asarray(records, dtype=np.float64)
    if samples < 1 or samples > x.shape[-1]:
        raise ValueError(f"samples must be in 1 .. {x.shape[-1]}, got {samples}")
    c = np.cumsum(x, axis=-1)
    out = c.copy()
    out[..., samples:] = c[..., samples:] - c[..., :-samples]
    counts = np.minimum(np.arange(1, x.shape[-1] + 1), samples)
    return out / counts
