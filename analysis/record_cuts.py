"""Selection of clean records: robust outlier cuts and isolation from other triggers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryodaq.analysis.record_apply import noise_stats, rises_after_peak


def robust_sigma(x: np.ndarray) -> float:
    """Gaussian-equivalent sigma from the median absolute deviation."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


@dataclass(frozen=True)
class Band:
    """A robust cut as numbers: x passes when x - median is at most `width` (and, unless
    `upper_only`, at least -width), so it can be applied to records seen later."""

    median: float
    width: float
    upper_only: bool

    def contains(self, x: np.ndarray) -> np.ndarray:
        """True where x passes the cut."""
        dev = np.asarray(x, dtype=np.float64) - self.median
        return dev <= self.width if self.upper_only else np.abs(dev) <= self.width


def robust_band(x: np.ndarray, k: float, *, upper_only: bool = False) -> Band:
    """The band of k robust sigmas about x's median (width 0 when the sigma is 0: then only
    the median passes, or with `upper_only` everything not above it); x must not be empty."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError("a robust band needs at least one value")
    sig = robust_sigma(x)
    return Band(float(np.median(x)), float(k * sig) if sig != 0 else 0.0, upper_only)


def within(x: np.ndarray, k: float, *, upper_only: bool = False) -> np.ndarray:
    """True where x is within k robust sigmas of the median (or only not above it)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    return robust_band(x, k, upper_only=upper_only).contains(x)


def isolated(
    at: np.ndarray, triggers: np.ndarray, before: int, after: int, *, own: bool = False
) -> np.ndarray:
    """True for records triggered at samples `at` with no trigger in [at - before, at + after).

    `triggers` are sample indices (any order) of the same stream. With `own`, each record's
    own trigger (one at exactly `at`) is among `triggers` and does not count.
    """
    at = np.asarray(at, dtype=np.int64)
    t = np.sort(np.asarray(triggers, dtype=np.int64))
    count = np.searchsorted(t, at + after, side="left") - np.searchsorted(t, at - before, "left")
    if own:
        count = count - (np.searchsorted(t, at, "right") > np.searchsorted(t, at, "left"))
    return count == 0


def noise_record_stats(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rms about the mean, largest |deviation| from the mean) of each record."""
    return noise_stats(records)


def rise_after_peak(records: np.ndarray, sign: float = 1.0) -> np.ndarray:
    """Largest one-sample rise (times `sign`, +1 or -1) after each record's peak: pile-up
    shows here."""
    return rises_after_peak(records, sign)
