"""Fit of a Gaussian-broadened line to a histogram with the Poisson likelihood (Cash 1979).

Model counts per bin: mu_i = N * integral over the bin of (L * G_sigma)(E - centre) dE
+ background * bin width, where L is the line's intrinsic shape (offsets from its reference
energy, integrating to 1): a delta (a plain Gaussian line), a set of Lorentzians (e.g. the
Holzer Mn Ka components of `cryodaq.analysis.xray_lines`; L * G is then a sum of Voigt profiles), or
any callable density. The fit minimises C = 2 sum(mu - n + n ln(n / mu)) (REFERENCE section 5:
no least squares on sqrt(N)); errors are from the inverse of the expected (Fisher) information
sum_i (d mu_i / d theta_a)(d mu_i / d theta_b) / mu_i at the minimum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.special import ndtr, voigt_profile

from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA

#: Points per bin where a non-Gaussian model is evaluated (Simpson's rule over the bin).
SUBSAMPLES = 9


@dataclass(frozen=True)
class Lorentzian:
    """One component of a natural line shape: energy, full width (eV), relative intensity."""

    energy_eV: float
    fwhm_eV: float
    weight: float


IntrinsicShape = None | Sequence[Lorentzian] | Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LineFit:
    """Result of `fit_line` (energies in the histogram's units, eV for calibrated spectra)."""

    centre: float  # where the shape's reference energy lies
    centre_err: float
    fwhm: float  # of the Gaussian broadening (the detector's resolution)
    fwhm_err: float
    counts: float  # N, events in the line (over all energies)
    counts_err: float
    background: float  # flat, counts per unit energy
    background_err: float
    cash: float  # C at the minimum; ~ dof for a good fit
    dof: int
    n_events: int  # events in the histogram
    model: Callable[[np.ndarray], np.ndarray]  # expected counts in bins of given edges


def _simpson(edges: np.ndarray, density: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Integral of `density` over each bin by Simpson's rule on SUBSAMPLES points."""
    u = np.linspace(0.0, 1.0, SUBSAMPLES)
    w = np.ones(SUBSAMPLES)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    w /= w.sum()
    width = np.diff(edges)
    x = edges[:-1, None] + width[:, None] * u[None, :]
    return (density(x) * w).sum(axis=1) * width


def _convolved_density(
    shape: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, step: float, sigma: float
) -> Callable[[np.ndarray], np.ndarray]:
    """(shape * Gaussian sigma) on offsets, by convolution on a grid of `step`, interpolated."""
    m = int(np.ceil((8.0 * sigma) / step)) + 4
    # Anchored at `lo` (a bin edge): the grid does not slide as sigma changes.
    grid = lo + step * np.arange(-m, int(np.ceil((hi - lo) / step)) + m + 1)
    k = step * np.arange(-m, m + 1)
    if sigma > 0:  # Gaussian cell probabilities: exact mass, a delta when sigma << step
        kernel = ndtr((k + step / 2) / sigma) - ndtr((k - step / 2) / sigma)
    else:
        kernel = (k == 0).astype(float)
    conv = np.convolve(shape(grid), kernel, mode="same")
    return lambda x: np.interp(x, grid, conv, left=0.0, right=0.0)


def line_counts(
    edges: np.ndarray,
    centre: float,
    fwhm: float,
    counts: float,
    background: float = 0.0,
    shape: IntrinsicShape = None,
    reference: float | None = None,
) -> np.ndarray:
    """Expected counts in bins `edges` of the model (see module docstring)."""
    edges = np.asarray(edges, dtype=np.float64)
    sigma = max(fwhm, 0.0) / FWHM_PER_SIGMA
    if shape is None:
        if sigma > 0:
            z = (edges - centre) / sigma
            upper = z[:-1] > 0  # bins above the centre: differences of upper tails (no 1 - 1)
            prob = np.where(upper, ndtr(-z[:-1]) - ndtr(-z[1:]), ndtr(z[1:]) - ndtr(z[:-1]))
        else:
            prob = np.diff((edges >= centre).astype(float))
    elif callable(shape):
        off = edges - centre
        width = float(np.min(np.diff(edges)))
        step = min(width / 8.0, max(sigma / 3.0, width / 64.0))
        density = _convolved_density(shape, off[0], off[-1], step, sigma)
        prob = _simpson(off, density)
    else:
        comps = list(shape)
        ref = reference_energy(comps) if reference is None else reference
        total = sum(c.weight for c in comps)

        def density(x: np.ndarray) -> np.ndarray:
            out = np.zeros_like(x)
            for c in comps:
                mu = centre + c.energy_eV - ref
                out += c.weight / total * voigt_profile(x - mu, sigma, c.fwhm_eV / 2.0)
            return out

        prob = _simpson(edges, density)
    return counts * prob + background * np.diff(edges)


def reference_energy(components: Sequence[Lorentzian]) -> float:
    """Energy of the component with the highest peak (weight / width)."""
    return max(components, key=lambda c: c.weight / c.fwhm_eV).energy_eV


def _deviance(n: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Signed square roots of the Cash terms: sum of squares = C."""
    mu = np.maximum(mu, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(n > 0, n * np.log(n / mu), 0.0)
    c = 2.0 * (mu - n + term)
    return np.sign(mu - n) * np.sqrt(np.clip(c, 0.0, None))


def fit_line(
    counts: np.ndarray,
    edges: np.ndarray,
    shape: IntrinsicShape = None,
    *,
    reference: float | None = None,
    background: bool = False,
    centre: float | None = None,
    fwhm: float | None = None,
) -> LineFit:
    """Fit a Gaussian-broadened line (intrinsic `shape`) to histogram `counts` over `edges`.

    `shape`: None (delta: the line is a Gaussian), a sequence of `Lorentzian`s (absolute
    energies; the fitted `centre` is where `reference` lands, by default the energy of the
    tallest component), or a callable density of the offset from the centre (integral 1).
    `background` adds a flat term >= 0. `centre`/`fwhm` are starting values (default: from
    the histogram). Needs a histogram with events; raises ValueError otherwise.
    """
    n = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if n.ndim != 1 or edges.shape != (n.size + 1,) or np.any(np.diff(edges) <= 0):
        raise ValueError("need counts (k,) and increasing edges (k + 1,)")
    total = float(n.sum())
    if total < 1 or np.any(n < 0):
        raise ValueError("histogram must have non-negative counts and at least one event")
    mids = 0.5 * (edges[1:] + edges[:-1])
    mean = float(np.sum(n * mids) / total)
    std = float(np.sqrt(np.sum(n * (mids - mean) ** 2) / total))
    if centre is None:
        centre = float(mids[np.argmax(n)]) if n.max() > 3 else mean
    if fwhm is None:
        fwhm = max(FWHM_PER_SIGMA * std * 0.5, 2.0 * float(np.min(np.diff(edges))))
    span = float(edges[-1] - edges[0])

    def mu_of(p: np.ndarray) -> np.ndarray:
        bg = p[3] if background else 0.0
        return line_counts(edges, p[1], p[2], p[0], bg, shape, reference)

    x0 = [total, centre, fwhm] + ([0.1 * total / span] if background else [])
    lo = [0.0, edges[0], 1e-6 * span] + ([0.0] if background else [])
    hi = [np.inf, edges[-1], span] + ([np.inf] if background else [])
    x0 = np.clip(x0, lo, hi)
    fit = least_squares(lambda p: _deviance(n, mu_of(p)), x0, bounds=(lo, hi), method="trf")
    p = fit.x
    mu = mu_of(p)
    jac = _jacobian(mu_of, p, np.array(hi) - np.array(lo))
    used = mu > 1e-9 * max(total, 1.0)  # bins expecting ~nothing carry no information
    info = (jac[used] / mu[used, None]).T @ jac[used]
    cov = np.linalg.pinv(info)
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    cash = float(np.sum(_deviance(n, mu) ** 2))
    bg, bg_err = (float(p[3]), float(err[3])) if background else (0.0, 0.0)
    return LineFit(
        centre=float(p[1]),
        centre_err=float(err[1]),
        fwhm=float(p[2]),
        fwhm_err=float(err[2]),
        counts=float(p[0]),
        counts_err=float(err[0]),
        background=bg,
        background_err=bg_err,
        cash=cash,
        dof=int(n.size - p.size),
        n_events=int(total),
        model=lambda e: line_counts(e, p[1], p[2], p[0], bg, shape, reference),
    )


def _jacobian(f: Callable[[np.ndarray], np.ndarray], p: np.ndarray, span: np.ndarray) -> np.ndarray:
    """d f / d p by central differences with steps relative to each parameter."""
    cols = []
    for i in range(p.size):
        h = 1e-5 * max(abs(p[i]), 1e-3 * (span[i] if np.isfinite(span[i]) else 1.0), 1e-12)
        up, dn = p.copy(), p.copy()
        up[i] += h
        dn[i] -= h
        cols.append((f(up) - f(dn)) / (2 * h))
    return np.stack(cols, axis=1)


def dominant_peak(values: np.ndarray, fraction: float = 0.1) -> float:
    """Centre of the shortest interval holding `fraction` of the values (robust mode)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    k = max(int(fraction * v.size), 3)
    if v.size <= k:
        return float(np.median(v))
    i = int(np.argmin(v[k:] - v[:-k]))
    return float(np.median(v[i : i + k + 1]))


def histogram(values: np.ndarray, lo: float, hi: float, bin_width: float) -> tuple[np.ndarray, ...]:
    """(counts, edges) of `values` in bins of `bin_width` covering [lo, hi]."""
    nbins = max(int(np.ceil((hi - lo) / bin_width)), 1)
    edges = lo + bin_width * np.arange(nbins + 1)
    counts, _ = np.histogram(np.asarray(values, dtype=np.float64), edges)
    return counts, edges
