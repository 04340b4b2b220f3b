"""Energy calibration of a detector from several known X-ray lines over a wide energy range.

Peaks of the amplitude histogram are found without knowing the gain; the known lines are
identified among them as the increasing assignment (peaks in amplitude order onto lines in
energy order) that a gently curved E(A) = c1 A + c2 A^2 maps best, with as many lines as
possible; then each line is fitted on that provisional scale (Poisson likelihood, its natural
shape or a Gaussian) and the final second-order calibration E = c0 + c1 A + c2 A^2 (HOLMES,
seed paper Fig. 4) goes through the fitted centres, converted back to amplitudes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from cryodaq.analysis.line_fit import IntrinsicShape, LineFit, Lorentzian, fit_line, histogram

#: Identification: the largest relative energy residual an assignment may leave.
MATCH_TOLERANCE = 0.01
#: Identification: E(A) may bend by at most this fraction of its slope over the peaks' range.
MAX_CURVATURE = 0.5


@dataclass(frozen=True)
class KnownLine:
    """A calibration line: its name, the energy its fitted centre stands for, its shape
    (Lorentzians with absolute energies, or None for a Gaussian), the uncertainty of that
    energy and its expected relative rate (any common unit within one source)."""

    name: str
    energy_eV: float
    shape: Sequence[Lorentzian] | None = None
    energy_err_eV: float = 0.0
    intensity: float = 1.0


@dataclass(frozen=True)
class Calibration:
    """E = c0 + c1 A + c2 A^2 (eV; A in amplitude units), increasing over the calibrated range."""

    coefficients: tuple[float, float, float]  # c0, c1, c2
    amplitudes: np.ndarray  # of the lines used
    energies_eV: np.ndarray
    names: tuple[str, ...]

    def energy(self, amplitudes: np.ndarray | float) -> np.ndarray:
        c0, c1, c2 = self.coefficients
        a = np.asarray(amplitudes, dtype=np.float64)
        return c0 + c1 * a + c2 * a * a

    def slope(self, amplitudes: np.ndarray | float = 0.0) -> np.ndarray:
        """dE/dA (eV per amplitude unit); at A = 0 it converts baseline noise to energy."""
        return self.coefficients[1] + 2.0 * self.coefficients[2] * np.asarray(amplitudes, float)

    def amplitude(self, energy_eV: np.ndarray | float) -> np.ndarray:
        """The amplitude A >= 0 with energy(A) = energy_eV (the increasing branch)."""
        c0, c1, c2 = self.coefficients
        e = np.asarray(energy_eV, dtype=np.float64) - c0
        if abs(c2) < 1e-12 * abs(c1):
            return e / c1
        return 2.0 * e / (c1 + np.sqrt(np.clip(c1 * c1 + 4.0 * c2 * e, 0.0, None)))

    @property
    def residuals_eV(self) -> np.ndarray:
        return self.energy(self.amplitudes) - self.energies_eV


def find_peaks_in(
    amplitudes: np.ndarray, *, bins: int = 2000, min_counts: int = 20, max_peaks: int = 12
) -> np.ndarray:
    """Positions of the significant peaks of the amplitude histogram, in increasing order.

    The histogram spans 0 .. the 99.9th percentile; it is smoothed by a Gaussian kernel of a
    few bins; a peak must hold `min_counts` and stand out by 5 sigma of Poisson noise over its
    surroundings. Positions are refined to the median of the events within its half maximum.
    """
    a = np.asarray(amplitudes, dtype=np.float64)
    a = a[np.isfinite(a) & (a > 0)]
    if a.size < min_counts:
        return np.zeros(0)
    hi = float(np.quantile(a, 0.999)) * 1.05
    counts, edges = np.histogram(a, bins=bins, range=(0.0, hi))
    x = np.arange(-12, 13)
    kernel = np.exp(-0.5 * (x / 3.0) ** 2)
    kernel /= kernel.sum()
    smooth = np.convolve(counts, kernel, mode="same")
    # Poisson noise of the smoothed histogram: sqrt(sum k^2 n) per bin, with n at least 1.
    noise = np.sqrt(np.convolve(np.maximum(counts, 1), kernel**2, mode="same"))
    _, props = find_peaks(smooth, prominence=5.0 * noise, width=1)
    mids = 0.5 * (edges[1:] + edges[:-1])
    out = []
    for left, right in zip(props["left_ips"], props["right_ips"], strict=True):
        lo, hi_ = np.interp([left, right], np.arange(mids.size), mids)
        inside = a[(a >= lo) & (a <= hi_)]
        if inside.size >= min_counts:
            out.append((inside.size, float(np.median(inside))))
    out.sort(reverse=True)
    return np.sort(np.array([p for _, p in out[:max_peaks]]))


def identify_lines(
    peaks: np.ndarray, lines: Sequence[KnownLine], *, min_lines: int = 3
) -> list[tuple[int, int]]:
    """(peak index, line index) pairs: the increasing assignment with the most lines whose
    fit E = c1 A + c2 A^2 (c1 > 0, mild curvature) leaves relative residuals under
    `MATCH_TOLERANCE`; ties go to the smallest residual. Empty if none qualifies."""
    p = np.asarray(peaks, dtype=np.float64)
    order = np.argsort([ln.energy_eV for ln in lines])
    e_all = np.array([lines[i].energy_eV for i in order])
    best: tuple[int, float, list[tuple[int, int]]] = (0, np.inf, [])
    for k in range(min(p.size, len(lines)), min_lines - 1, -1):
        for pk in itertools.combinations(range(p.size), k):
            a = p[list(pk)]
            design = np.column_stack([a, a * a])
            for ln in itertools.combinations(range(len(lines)), k):
                e = e_all[list(ln)]
                (c1, c2), *_ = np.linalg.lstsq(design, e, rcond=None)
                if not c1 > 0 or abs(2.0 * c2 * a[-1]) > MAX_CURVATURE * c1:
                    continue
                worst = float(np.max(np.abs(design @ (c1, c2) - e) / e))
                if worst < MATCH_TOLERANCE and (k, -worst) > (best[0], -best[1]):
                    best = (k, worst, [(i, int(order[j])) for i, j in zip(pk, ln, strict=True)])
        if best[2]:
            return best[2]
    return []


def polynomial_calibration(
    amplitudes: np.ndarray, energies_eV: np.ndarray, names: Sequence[str], degree: int = 2
) -> Calibration:
    """E = c0 + c1 A + c2 A^2 through the points by least squares (exact through three);
    with fewer points than the polynomial needs, the offset is dropped, then the curvature."""
    a = np.asarray(amplitudes, dtype=np.float64)
    e = np.asarray(energies_eV, dtype=np.float64)
    if a.size < 1 or a.shape != e.shape:
        raise ValueError(f"need matching amplitudes and energies, got {a.shape} and {e.shape}")
    powers = (0, 1, 2)[: degree + 1] if a.size > degree else (1, 2)[: max(a.size, 1)]
    design = np.column_stack([a**q for q in powers])
    sol, *_ = np.linalg.lstsq(design, e, rcond=None)
    coef = [0.0, 0.0, 0.0]
    for q, c in zip(powers, sol, strict=True):
        coef[q] = float(c)
    return Calibration((coef[0], coef[1], coef[2]), a, e, tuple(names))


@dataclass(frozen=True)
class LineResult:
    """A calibration line fitted on the final energy scale."""

    line: KnownLine
    fit: LineFit
    counts: np.ndarray
    edges: np.ndarray


def fit_known_line(
    energies: np.ndarray,
    line: KnownLine,
    fwhm_eV: float,
    *,
    bin_eV: float | None = None,
    margin_eV: float | None = None,
) -> LineResult:
    """Poisson-likelihood fit of `line` (natural shape or Gaussian, with a flat background) to
    the calibrated `energies` around it (the shape's span plus `margin_eV` each side, by
    default 5 FWHM + 10 eV)."""
    shape: IntrinsicShape = tuple(line.shape) if line.shape else None
    span = [c.energy_eV for c in line.shape] if line.shape else [line.energy_eV]
    width = max(fwhm_eV, 1.0)
    margin = 5.0 * width + 10.0 if margin_eV is None else margin_eV
    lo, hi = min(span) - margin, max(span) + margin
    bin_ = bin_eV or max(0.25, width / 8.0)
    counts, edges = histogram(energies, lo, hi, bin_)
    fit = fit_line(
        counts, edges, shape, reference=line.energy_eV if shape else None, background=True,
        centre=line.energy_eV, fwhm=width,
    )  # fmt: skip
    return LineResult(line, fit, counts, edges)


def calibrate(
    amplitudes: np.ndarray, lines: Sequence[KnownLine], fwhm_guess_eV: float
) -> tuple[Calibration, list[LineResult]]:
    """Find, identify and fit the known lines; return the second-order calibration through the
    fitted centres and the line fits on its scale (see module docstring)."""
    a = np.asarray(amplitudes, dtype=np.float64)
    peaks = find_peaks_in(a)
    pairs = identify_lines(peaks, lines, min_lines=min(3, len(lines)))
    if not pairs:
        raise ValueError(
            f"could not identify the calibration lines among {peaks.size} peaks at "
            f"{np.array2string(peaks, precision=4)}"
        )
    found = [lines[j] for _, j in pairs]
    cal = polynomial_calibration(
        peaks[[i for i, _ in pairs]], np.array([ln.energy_eV for ln in found]),
        [ln.name for ln in found],
    )  # fmt: skip
    for _ in range(2):  # fit on the scale, move the points to the fitted centres, refit
        fits = [fit_known_line(cal.energy(a), ln, fwhm_guess_eV) for ln in found]
        amp = cal.amplitude(np.array([f.fit.centre for f in fits]))
        cal = polynomial_calibration(amp, np.array([ln.energy_eV for ln in found]),
                                     [ln.name for ln in found])
    return cal, [fit_known_line(cal.energy(a), ln, fwhm_guess_eV) for ln in found]
