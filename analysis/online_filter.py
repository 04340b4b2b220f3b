"""Apply a stored linear filter and calibration to triggered records (numpy only)."""

from __future__ import annotations

import numpy as np


def filter_amplitudes(
    records: np.ndarray, pretrig_mean: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Filtered amplitude of each record: `(records[i] - pretrig_mean[i]) @ weights`.

    `records` is (n, L) of any numeric dtype, `pretrig_mean` (n,), `weights` (L,); returns
    float64 (n,). Computed as `records @ w - pretrig_mean * sum(w)` (no baseline-subtracted copy).
    """
    records = np.asarray(records)
    w = np.asarray(weights, dtype=np.float64)
    pm = np.asarray(pretrig_mean, dtype=np.float64)
    if records.ndim != 2:
        raise ValueError(f"records must be 2-D (n, record_length), got shape {records.shape}")
    if w.shape != (records.shape[1],):
        raise ValueError(f"weights have shape {w.shape}, records have length {records.shape[1]}")
    if pm.shape != (records.shape[0],):
        raise ValueError(f"pretrig_mean has shape {pm.shape}, expected ({records.shape[0]},)")
    if records.shape[0] == 0:
        return np.zeros(0)
    return records.astype(np.float64, copy=False) @ w - pm * w.sum()


def matched_filter_weights(template: np.ndarray) -> np.ndarray:
    """White-noise matched filter for `template`, normalised so `weights @ template == 1`.

    Applied to a baseline-subtracted record `a * template + noise` it returns `a` plus noise of
    rms `sigma / sqrt(template @ template)` for white noise of rms `sigma` per sample.
    """
    t = np.asarray(template, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"template must be a non-empty 1-D array, got shape {t.shape}")
    norm = float(t @ t)
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("template must be finite and not all zero")
    return t / norm


def calibrate(amplitudes: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Energies (eV) from amplitudes through a numpy polynomial (highest power first)."""
    c = np.asarray(coefficients, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"calibration coefficients must be non-empty 1-D, got shape {c.shape}")
    return np.polyval(c, np.asarray(amplitudes, dtype=np.float64))
