"""A histogram of positive values whose range doubles as larger values come, exactly."""

from __future__ import annotations

import numpy as np


class GrowingHistogram:
    """Counts in `bins` equal bins over [0, top); a value >= top doubles `top` (merging pairs of
    bins, so no count moves to a wrong bin) until it fits. Values < 0 count as `below`."""

    def __init__(self, bins: int = 512) -> None:
        if bins < 2 or bins % 2:
            raise ValueError(f"bins must be an even number >= 2, got {bins}")
        self.counts = np.zeros(bins, np.int64)
        self.top = 0.0
        self.below = 0
        self.invalid = 0

    def add(self, values: np.ndarray) -> None:
        """Count `values` (any shape; NaN and infinities are counted as invalid)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(v)
        self.invalid += int(v.size - finite.sum())
        v = v[finite]
        self.below += int(np.count_nonzero(v < 0))
        v = v[v >= 0]
        if v.size == 0:
            return
        if self.top == 0.0:
            self.top = float(2.0 ** np.ceil(np.log2(max(float(v.max()), 1e-30) * 1.25)))
        while v.max() >= self.top:
            half = self.counts.reshape(-1, 2).sum(axis=1)
            self.counts = np.concatenate([half, np.zeros_like(half)])
            self.top *= 2.0
        n = self.counts.size
        idx = np.minimum((v * (n / self.top)).astype(np.int64), n - 1)
        self.counts += np.bincount(idx, minlength=n)

    @property
    def total(self) -> int:
        """Values counted in range."""
        return int(self.counts.sum())

    def centres(self) -> np.ndarray:
        """Bin centres."""
        n = self.counts.size
        return (np.arange(n) + 0.5) * (self.top / n)

    def merged(self, other: GrowingHistogram) -> GrowingHistogram:
        """A new histogram holding both (over the wider range of the two)."""
        out = GrowingHistogram(self.counts.size)
        out.top = max(self.top, other.top)
        for h in (self, other):
            if h.top:
                factor = int(round(out.top / h.top))
                out.counts[: h.counts.size // factor] += h.counts.reshape(-1, factor).sum(axis=1)
            out.below += h.below
            out.invalid += h.invalid
        return out
