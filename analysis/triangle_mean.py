"""Weighted means of irregularly timed values under a triangular kernel, in O(n log n).

With weights w_i at sorted times t_i, the mean at time a is sum w_i k_i v_i / sum w_i k_i with
k_i = 1 - |t_i - a| / W inside +-W. Split at a, each side is linear in t_i, so four prefix
sums (of w v, w v t, w and w t) give every mean at once (HOLMES: the bath signal at each pulse
from the baselines of the records around it).
"""

from __future__ import annotations

import numpy as np


def triangle_mean(t: np.ndarray, values: np.ndarray, weights: np.ndarray, at: np.ndarray,
                  half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """Means of `values` (at sorted times `t`, weighted by `weights`) under the kernel
    1 - |t - at| / `half_width` at each of `at`, and the kernel weight each rests on (0: no
    value within the window; its mean is then 0)."""
    t = np.asarray(t, dtype=np.float64)
    if not half_width > 0:
        raise ValueError(f"half_width must be > 0, got {half_width}")
    if t.size > 1 and np.any(np.diff(t) < 0):
        raise ValueError("times t must be sorted")

    def prefix(x: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(x)])

    t0 = t[0] if t.size else 0.0
    tt, a = t - t0, np.asarray(at, dtype=np.float64) - t0  # small numbers in the sums
    v, w = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    sums = {"v": prefix(w * v), "vt": prefix(w * v * tt), "1": prefix(w), "t": prefix(w * tt)}
    lo = np.searchsorted(tt, a - half_width, side="right")
    mid = np.searchsorted(tt, a, side="right")
    hi = np.searchsorted(tt, a + half_width, side="left")

    def kernel_sum(x: str, xt: str) -> np.ndarray:
        left = (half_width - a) * (sums[x][mid] - sums[x][lo]) + (sums[xt][mid] - sums[xt][lo])
        right = (half_width + a) * (sums[x][hi] - sums[x][mid]) - (sums[xt][hi] - sums[xt][mid])
        return (left + right) / half_width

    norm = kernel_sum("1", "t")
    return kernel_sum("v", "vt") / np.where(norm > 0, norm, 1.0), norm
