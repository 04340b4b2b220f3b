"""The edge trigger's kernel, its noise, and efficiencies measured by injecting pulses in noise.

The edge kernel of half-width w (what the acquisition's edge trigger compares with its
threshold) is d_w[i] = sum(x[i-w+1 .. i]) - sum(x[i-2w+1 .. i-w]). Its noise `sigma` is the
rms of d_w over a stretch of the stream, estimated robustly from differences of kernel values
4w apart (`kernel_sigma`), so that neither the rare pulse rises nor the slow pulse tails of
the stretch move it.

An efficiency versus energy is measured on the data: the channel's pulse template, scaled to
energy E with its calibration, is added in software to the channel's noise records, and the
fraction of records that pass (the trigger fires near the pulse; or the pulse-shape cut keeps
it) is counted at each E. Expected from the noise and the threshold alone (`model_efficiency`):
the same template in white Gaussian noise of the measured kernel rms; without noise the
efficiency would step from 0 to 1 where the template's largest kernel value equals the
threshold (`expected_threshold_eV`), noise moves the 50 % point a little below that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: MAD of a Gaussian times this is its standard deviation.
MAD_TO_SIGMA = 1.482602218505602
#: Kernel values this many widths apart are compared to measure its noise.
KERNEL_LAG = 4


def edge_kernel(x: np.ndarray, width: int) -> np.ndarray:
    """d_w along the last axis of `x`; element i holds d_w at sample i + 2w - 1 (the first
    sample with a full history), so the result is 2w - 1 samples shorter."""
    if width < 1:
        raise ValueError(f"edge kernel width must be >= 1 sample, got {width}")
    x = np.asarray(x, dtype=np.float64)
    c = np.cumsum(x, axis=-1)
    c = np.concatenate([np.zeros((*x.shape[:-1], 1)), c], axis=-1)
    # sum(x[i-w+1..i]) = c[i+1] - c[i-w+1]; the previous w: c[i-w+1] - c[i-2w+1]
    i = np.arange(2 * width - 1, x.shape[-1])
    return (c[..., i + 1] - 2.0 * c[..., i - width + 1] + c[..., i - 2 * width + 1])


def kernel_sigma(x: np.ndarray, width: int) -> np.ndarray:
    """Robust rms of the edge kernel d_w of `x` (channels x samples, or one row) per row.

    From the differences D[i] = d_w[i] - d_w[i - 4w] (kernel values 4w apart: uncorrelated
    for white noise, whose kernel correlates over 2w samples): sigma = 1.4826 x MAD(D) /
    sqrt(2). The tail of a pulse shifts d_w slowly (its slope times w^2), so it barely moves D,
    and the few samples of a pulse's rise do not move a median.
    """
    d = edge_kernel(np.atleast_2d(x), width)
    lag = KERNEL_LAG * width
    if d.shape[-1] < lag + 2:
        raise ValueError(f"need more than {2 * width + lag} samples to measure the kernel's noise")
    diff = d[..., lag:] - d[..., :-lag]
    med = np.median(diff, axis=-1, keepdims=True)
    return MAD_TO_SIGMA * np.median(np.abs(diff - med), axis=-1) / np.sqrt(2.0)


def kernel_peak(template: np.ndarray, width: int) -> float:
    """Largest |d_w| of a (baseline-subtracted) pulse template."""
    return float(np.max(np.abs(edge_kernel(template, width))))


def expected_threshold_eV(threshold: float, template_per_eV: np.ndarray, width: int) -> float:
    """Energy whose pulse's largest kernel value equals `threshold` (same data units as the
    template): without noise the trigger's step from 0 to 1; with noise its 50 % point."""
    peak = kernel_peak(template_per_eV, width)
    if not peak > 0:
        raise ValueError("the template has no edge: its kernel is zero")
    return float(threshold / peak)


def fires(
    records: np.ndarray, threshold: float, width: int, polarity: int, window: tuple[int, int]
) -> np.ndarray:
    """Per record: whether the edge trigger (threshold, polarity +1/-1/0) crosses upward at a
    sample in [window[0], window[1]) of the record."""
    off = 2 * width - 1
    lo, hi = max(window[0], off + 1), min(window[1], records.shape[-1])
    if hi <= lo:
        raise ValueError(f"trigger window {window} leaves no sample with a full kernel history")
    seg = edge_kernel(records[..., lo - off - 1 : hi], width)  # d at samples lo-1 .. hi-1
    s = np.abs(seg) if polarity == 0 else polarity * seg
    return np.any((s[..., 1:] >= threshold) & (s[..., :-1] < threshold), axis=-1)


def model_efficiency(
    template_per_eV: np.ndarray,
    threshold: float,
    sigma: float,
    width: int,
    polarity: int,
    window: tuple[int, int],
    energies_eV: np.ndarray,
    trials: int = 400,
    seed: int = 0,
) -> EfficiencyCurve:
    """The trigger's efficiency expected from the noise and the threshold alone: the template
    at each energy in white Gaussian noise whose kernel rms is `sigma` (per-sample rms
    sigma / sqrt(2w)), `trials` draws; the edge trigger as `fires` applies it."""
    lo = max(window[0] - 2 * width - 1, 0)
    seg = np.asarray(template_per_eV, dtype=np.float64)[lo : window[1]]
    noise = np.random.default_rng(seed).normal(0.0, sigma / np.sqrt(2 * width), (trials, seg.size))
    inner = (window[0] - lo, window[1] - lo)

    def passes(records: np.ndarray, energy: float) -> np.ndarray:
        return fires(records, threshold, width, polarity, inner)

    return efficiency_curve(noise, seg, lambda e: np.asarray(e), energies_eV, passes)


@dataclass(frozen=True)
class EfficiencyCurve:
    """Fraction passing at each energy, with its binomial error, and the 50 % / 90 % points."""

    energy_eV: np.ndarray
    efficiency: np.ndarray
    error: np.ndarray
    trials: int

    def at(self, energy_eV: np.ndarray | float) -> np.ndarray:
        """Efficiency at `energy_eV` (interpolated; 1 above the measured range)."""
        return np.interp(energy_eV, self.energy_eV, self.efficiency, right=1.0)

    def crossing(self, level: float) -> float | None:
        """Lowest energy where the curve reaches `level` (linear between points; the lowest
        energy measured if it starts there: an upper bound), or None (never reached)."""
        e, f = self.energy_eV, self.efficiency
        above = np.flatnonzero(f >= level)
        if above.size == 0:
            return None
        k = int(above[0])
        if k == 0:
            return float(e[0])
        return float(e[k - 1] + (level - f[k - 1]) * (e[k] - e[k - 1]) / (f[k] - f[k - 1]))


def efficiency_curve(
    noise: np.ndarray,
    template: np.ndarray,
    amplitude_of: Callable[[np.ndarray], np.ndarray],
    energies_eV: np.ndarray,
    passes: Callable[[np.ndarray, float], np.ndarray],
) -> EfficiencyCurve:
    """The fraction of `noise` records (n, L) with `amplitude_of(E) * template` added that
    `passes(records, E)` says pass, at each energy."""
    noise = np.asarray(noise, dtype=np.float64)
    if noise.ndim != 2 or noise.shape[0] == 0:
        raise ValueError(f"need noise records (n, L) with n >= 1, got shape {noise.shape}")
    e = np.asarray(energies_eV, dtype=np.float64)
    amps = np.asarray(amplitude_of(e), dtype=np.float64)
    eff = np.array(
        [np.mean(passes(noise + a * template, float(x))) for a, x in zip(amps, e, strict=True)],
        dtype=np.float64,
    )
    n = noise.shape[0]
    return EfficiencyCurve(e, eff, np.sqrt(np.maximum(eff * (1 - eff), 1.0 / n) / n), n)
