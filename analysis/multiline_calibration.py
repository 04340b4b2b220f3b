"""Energy calibration of one pixel on every known line it sees (one source or several).

1. Identification, no gain known: the dominant peak of the amplitudes is taken in turn for each
   of the `ANCHORS` most intense lines. From it the other lines are looked for outward (nearest
   in energy first), each in a window around where the scale through the lines found so far
   puts it (through the origin: linear, then E = c1 A + c2 A^2 once the lines span a factor
   1.5); a line is found when its window holds a significant peak away from the window's edge.
   The hypothesis that finds most lines wins (then the most events in them).
2. Each found line is fitted on that scale (`fit_known_line`: natural shape convolved with a
   Gaussian, flat background, Poisson likelihood); a line with fewer than `min_counts` events
   (default 20: below, the Fisher error of a fit with free width is unreliable) or under
   3 sigma is dropped (listed as missing).
3. E(A) = sum_{k=1..d} c_k A^k (no offset: no pulse, no energy): weighted least squares through
   the fitted centres turned back into amplitudes, weights 1 / (centre error^2 + energy error
   of the line^2). A weak line's fitted width can collapse, and its centre's Fisher error with
   it: no centre is taken as better known than with its width held at that of the line with
   most events (or its own, if wider). Degree d: 1 with one line, the exact quadratic with two
   (Mn Ka and Kb, the seed paper's calibration), 2 with three, 3 with four or more (one degree
   of freedom left).
   Steps 2-3 repeat `passes` times; the lines are fitted once more on the final scale.
The result states its uncertainty: the coefficients' covariance (from the line-position errors
alone; chi2/dof says whether the residuals agree), the band sigma_E at any energy, every
line's residual with the spread expected for it, and the nonlinearity E / (c1 A) - 1 (the
energy's excess over the linear term) with its error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cryodaq.analysis.line_calibration import KnownLine, LineResult, fit_known_line
from cryodaq.analysis.line_fit import dominant_peak, line_counts

#: Identification: the anchors tried (the most intense lines), and the window a line is looked
#: for in: 2 (FWHM + natural width) + WINDOW_PER_EV of the distance to the nearest found line.
ANCHORS = 3
WINDOW_PER_EV = 0.01
#: A found peak stands this many Poisson sigma over the sidebands' level.
PEAK_SIGMA = 5.0
#: A line not found at the expected width is looked for again this many times as wide; a
#: line fitted this much wider than its window assumed is fitted again in a wider window.
BROAD = 3.0
REFIT_WIDER = 1.5
#: The highest polynomial degree chosen automatically.
MAX_DEGREE = 3


@dataclass(frozen=True)
class PolynomialCalibration:
    """E(A) = sum_k c_k A^k with c_0 = 0, its covariance and the points it went through."""

    coefficients: tuple[float, ...]  # c0 (= 0), c1, ..., c_d
    covariance: np.ndarray  # (d + 1, d + 1); row and column 0 are zero
    amplitudes: np.ndarray  # of the lines used
    energies_eV: np.ndarray
    errors_eV: np.ndarray  # each point's sigma (centre and reference energy)
    names: tuple[str, ...]

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    def _powers(self, amplitudes: np.ndarray | float) -> np.ndarray:
        a = np.asarray(amplitudes, dtype=np.float64)
        return a[..., None] ** np.arange(self.degree + 1)

    def energy(self, amplitudes: np.ndarray | float) -> np.ndarray:
        return self._powers(amplitudes) @ np.asarray(self.coefficients)

    def slope(self, amplitudes: np.ndarray | float = 0.0) -> np.ndarray:
        """dE/dA (eV per amplitude unit); at A = 0 it converts baseline noise to energy."""
        k = np.arange(1, self.degree + 1)
        a = np.asarray(amplitudes, dtype=np.float64)
        return (a[..., None] ** (k - 1)) @ (k * np.asarray(self.coefficients[1:]))

    def amplitude(self, energy_eV: np.ndarray | float) -> np.ndarray:
        """The amplitude A >= 0 with energy(A) = energy_eV (Newton from the linear term)."""
        e = np.asarray(energy_eV, dtype=np.float64)
        a = e / self.coefficients[1]
        for _ in range(50):
            step = (self.energy(a) - e) / self.slope(a)
            a = a - step
            if np.all(np.abs(step) <= 1e-13 * np.maximum(np.abs(a), 1e-300)):
                break
        return a

    def energy_err(self, amplitudes: np.ndarray | float) -> np.ndarray:
        """sigma of E(A) from the coefficients' covariance (eV)."""
        x = self._powers(amplitudes)
        return np.sqrt(np.clip(np.einsum("...i,ij,...j->...", x, self.covariance, x), 0, None))

    def band(self, energy_eV: np.ndarray | float) -> np.ndarray:
        """The calibration's uncertainty (sigma, eV) at energy `energy_eV`."""
        return self.energy_err(self.amplitude(energy_eV))

    @property
    def residuals_eV(self) -> np.ndarray:
        return self.energy(self.amplitudes) - self.energies_eV

    @property
    def residual_err_eV(self) -> np.ndarray:
        """The spread each residual should have: sigma_i^2 minus the fit's variance there
        (zero where the polynomial goes through every point exactly)."""
        var = self.errors_eV**2 - self.energy_err(self.amplitudes) ** 2
        return np.sqrt(np.clip(var, 0.0, None))

    @property
    def dof(self) -> int:
        return int(self.amplitudes.size - self.degree)

    @property
    def chi2(self) -> float:
        return float(np.sum((self.residuals_eV / self.errors_eV) ** 2))

    def nonlinearity(self, energy_eV: float) -> tuple[float, float]:
        """(E / (c1 A(E)) - 1, its sigma) at `energy_eV`: how far the response bends from the
        linear term (> 0: pulses grow slower than the energy)."""
        c = np.asarray(self.coefficients, dtype=np.float64)

        def value(coef: np.ndarray) -> float:
            cal = PolynomialCalibration(tuple(coef), self.covariance, self.amplitudes,
                                        self.energies_eV, self.errors_eV, self.names)  # fmt: skip
            return float(energy_eV / (coef[1] * cal.amplitude(energy_eV)) - 1.0)

        grad = np.zeros(c.size)
        for k in range(1, c.size):
            h = max(np.sqrt(max(self.covariance[k, k], 0.0)), 1e-9 * abs(c[k]), 1e-300) * 1e-3
            up, dn = c.copy(), c.copy()
            up[k] += h
            dn[k] -= h
            grad[k] = (value(up) - value(dn)) / (2.0 * h)
        return value(c), float(np.sqrt(max(grad @ self.covariance @ grad, 0.0)))


def default_degree(n_lines: int) -> int:
    """1 with one line, 2 with two or three, up to MAX_DEGREE with one degree of freedom left."""
    return 1 if n_lines <= 1 else 2 if n_lines <= 3 else min(MAX_DEGREE, n_lines - 1)


def fit_polynomial(
    amplitudes: np.ndarray,
    energies_eV: np.ndarray,
    errors_eV: np.ndarray,
    names: Sequence[str],
    degree: int | None = None,
) -> PolynomialCalibration:
    """Weighted least squares of E = sum_{k=1..degree} c_k A^k through the points."""
    a = np.asarray(amplitudes, dtype=np.float64)
    e = np.asarray(energies_eV, dtype=np.float64)
    s = np.asarray(errors_eV, dtype=np.float64)
    d = default_degree(a.size) if degree is None else int(degree)
    if a.size < 1 or a.shape != e.shape or a.shape != s.shape:
        raise ValueError(f"need matching amplitudes, energies and errors, got {a.shape}, "
                         f"{e.shape}, {s.shape}")  # fmt: skip
    if not 1 <= d <= a.size:
        raise ValueError(f"calibration degree must be in 1..{a.size} (the lines), got {d}")
    if np.any(~(s > 0)):
        raise ValueError(f"calibration point errors must be > 0, got {s}")
    x = a[:, None] ** np.arange(1, d + 1)
    w = 1.0 / s**2
    info = (x * w[:, None]).T @ x
    cov = np.linalg.inv(info)
    sol = cov @ (x.T @ (w * e))
    full = np.zeros((d + 1, d + 1))
    full[1:, 1:] = cov
    return PolynomialCalibration((0.0, *(float(c) for c in sol)), full, a, e, s, tuple(names))


@dataclass(frozen=True)
class MultilineResult:
    """The calibration, the lines fitted on its scale (in the order given) and the lines
    that were not seen."""

    calibration: PolynomialCalibration
    lines: list[LineResult]
    missing: tuple[str, ...]

    def line(self, name: str) -> LineResult | None:
        return next((r for r in self.lines if r.line.name == name), None)


def _natural(line: KnownLine) -> float:
    return max((c.fwhm_eV for c in line.shape), default=0.0) if line.shape else 0.0


def _provisional(points: dict[int, float], lines: Sequence[KnownLine]) -> np.ndarray:
    """(c1, c2) of the scale through `points` (line index -> amplitude), through the origin."""
    a = np.array(list(points.values()))
    e = np.array([lines[i].energy_eV for i in points])
    quad = a.size >= 2 and a.max() >= 1.5 * a.min()
    x = np.column_stack([a, a * a]) if quad else a[:, None]
    sol, *_ = np.linalg.lstsq(x, e, rcond=None)
    return np.array([sol[0], sol[1] if quad else 0.0])


def _peak(e_sorted: np.ndarray, centre: float, half: float, width: float,
          min_counts: int) -> tuple[int, int, float] | None:  # fmt: skip
    """Index range of the events under a significant peak within centre +- half, and where it
    is (None: no peak). `width`: the line's expected FWHM (resolution + natural width)."""
    lo, hi = np.searchsorted(e_sorted, [centre - half, centre + half])
    inside = e_sorted[lo:hi]
    if inside.size < min_counts:
        return None
    bin_ = width / 4.0
    counts, edges = np.histogram(inside, np.arange(centre - half, centre + half + bin_, bin_))
    k = np.arange(-8, 9)
    kernel = np.exp(-0.5 * (k / (width / 2.3548 / bin_)) ** 2)
    smooth = np.convolve(counts, kernel / kernel.sum(), mode="same")
    at = 0.5 * (edges[:-1] + edges[1:])[int(np.argmax(smooth))]
    if abs(at - centre) > half - width / 2.0:
        return None  # at the edge: a neighbour's flank
    i0, i1 = np.searchsorted(e_sorted, [at - width, at + width])
    side = [np.searchsorted(e_sorted, [centre - 3 * half, centre - half]),
            np.searchsorted(e_sorted, [centre + half, centre + 3 * half])]  # fmt: skip
    density = min(int(j1 - j0) for j0, j1 in side) / (2.0 * half)
    b = density * 2.0 * width
    s = (i1 - i0) - b
    if i1 - i0 < min_counts or s < PEAK_SIGMA * np.sqrt(b + 1.0):
        return None
    j0, j1 = np.searchsorted(e_sorted, [at - width / 2.0, at + width / 2.0])
    return int(j0), int(j1), float(at)


def _grow(a_sorted: np.ndarray, lines: Sequence[KnownLine], anchor: int, at: float,
          fwhm: float, min_counts: int) -> tuple[dict[int, float], dict[int, float]]:  # fmt: skip
    """Lines found from `lines[anchor]` placed at amplitude `at`: line index -> amplitude, and
    line index -> the peak's width (FWHM from the spread of its events, eV)."""
    points, widths = {anchor: at}, {anchor: fwhm}
    e0 = lines[anchor].energy_eV
    energies = np.array([ln.energy_eV for ln in lines])
    for j in sorted(range(len(lines)), key=lambda i: abs(np.log(lines[i].energy_eV / e0))):
        if j in points:
            continue
        c1, c2 = _provisional(points, lines)
        e_sorted = c1 * a_sorted + c2 * a_sorted**2
        if c1 <= 0 or np.any(np.diff(e_sorted) < 0):
            return points, widths
        ej = lines[j].energy_eV
        width = fwhm + _natural(lines[j])
        near = min(abs(ej - lines[i].energy_eV) for i in points)
        for w in (width, BROAD * width):  # a line broader than the resolution (e.g. ~E)
            found = _peak(e_sorted, ej, 2.0 * w + WINDOW_PER_EV * near, w, min_counts)
            # The peak must lie nearer to this line than to any other (not a neighbour's).
            if found is not None and int(np.argmin(np.abs(energies - found[2]))) == j:
                points[j] = float(np.median(a_sorted[found[0]:found[1]]))
                lo, hi = np.searchsorted(e_sorted, [found[2] - 2.0 * w, found[2] + 2.0 * w])
                q1, q3 = np.quantile(e_sorted[lo:hi], [0.25, 0.75])
                widths[j] = float(max(fwhm, 2.3548 * (q3 - q1) / 1.349 - _natural(lines[j])))
                break
    return points, widths


def identify(
    amplitudes: np.ndarray, lines: Sequence[KnownLine], fwhm_eV: float, min_counts: int = 10
) -> tuple[dict[int, float], dict[int, float]]:
    """Line index -> amplitude of its peak, and -> a first estimate of its FWHM (eV, at least
    `fwhm_eV`), for the lines the amplitudes show (step 1 of the module docstring)."""
    a = np.sort(np.asarray(amplitudes, dtype=np.float64))
    at = dominant_peak(a)
    best: tuple[tuple[int, int], tuple[dict[int, float], dict[int, float]]] = ((0, 0), ({}, {}))
    for i in sorted(range(len(lines)), key=lambda i: -lines[i].intensity)[:ANCHORS]:
        points, widths = _grow(a, lines, i, at, fwhm_eV, min_counts)
        c1, c2 = _provisional(points, lines)
        e = c1 * a + c2 * a * a
        held = sum(
            int(np.sum(np.abs(e - lines[j].energy_eV) <= fwhm_eV + _natural(lines[j])))
            for j in points
        )
        if (len(points), held) > best[0]:
            best = ((len(points), held), (points, widths))
    return best[1]


def calibrate_lines(
    amplitudes: np.ndarray,
    lines: Sequence[KnownLine],
    fwhm_guess_eV: float,
    *,
    degree: int | None = None,
    passes: int = 1,
    bin_eV: float | None = None,
    min_counts: int = 20,
) -> MultilineResult:
    """Identify, fit and calibrate on `lines` (see module docstring). `fwhm_guess_eV`: the
    detector's resolution to start from; `degree`: of the polynomial (default by the number
    of lines found); `bin_eV`: bins of the line fits (default a fraction of the FWHM)."""
    a = np.asarray(amplitudes, dtype=np.float64)
    a = a[np.isfinite(a) & (a > 0)]
    if a.size < min_counts or not lines:
        raise ValueError(f"need >= {min_counts} positive amplitudes and a line, got {a.size}")
    if not fwhm_guess_eV > 0:
        raise ValueError(f"fwhm_guess_eV must be > 0, got {fwhm_guess_eV}")
    points, fwhm = identify(a, lines, fwhm_guess_eV, min_counts)
    found = sorted(points)
    cal = fit_polynomial(
        np.array([points[i] for i in found]), np.array([lines[i].energy_eV for i in found]),
        np.ones(len(found)), [lines[i].name for i in found], min(len(found), 2),
    )  # fmt: skip
    for _ in range(passes):
        fits = _fit_lines(cal.energy(a), lines, found, fwhm, bin_eV, min_counts)
        found = sorted(fits)
        if not found:
            raise ValueError(f"no calibration line has >= {min_counts} events and 3 sigma")
        centres = np.array([fits[i].fit.centre for i in found])
        best = max(found, key=lambda i: fits[i].fit.counts)
        err = np.hypot([_centre_err(fits[i], fits[best].fit.fwhm) for i in found],
                       [lines[i].energy_err_eV for i in found])  # fmt: skip
        fwhm = {i: max(fits[i].fit.fwhm, 1.0) for i in found}
        if degree is not None and degree > len(found):
            raise ValueError(f"calibration degree {degree} needs {degree} lines; found "
                             f"{[lines[i].name for i in found]}")  # fmt: skip
        cal = fit_polynomial(cal.amplitude(centres), np.array([lines[i].energy_eV for i in found]),
                             err, [lines[i].name for i in found], degree)  # fmt: skip
    final = _fit_lines(cal.energy(a), lines, found, fwhm, bin_eV, 0)
    missing = tuple(ln.name for i, ln in enumerate(lines) if i not in final)
    return MultilineResult(cal, [final[i] for i in sorted(final)], missing)


def _centre_err(r: LineResult, fwhm: float) -> float:
    """The centre's error of fit `r`, at least its Fisher error with the Gaussian width held
    at max(`fwhm`, its own) and the counts, centre and background free."""
    f, ln = r.fit, r.line
    width = max(fwhm, f.fwhm)
    shape = tuple(ln.shape) if ln.shape else None
    ref = ln.energy_eV if shape else None

    def mu(p: np.ndarray) -> np.ndarray:
        return line_counts(r.edges, p[1], width, p[0], p[2], shape, ref)

    p = np.array([f.counts, f.centre, f.background])
    steps = np.array([max(1e-4 * f.counts, 1e-3), 1e-3 * max(width, 1.0),
                      max(1e-4 * abs(f.background), 1e-6)])  # fmt: skip
    jac = np.stack([(mu(p + h * e) - mu(p - h * e)) / (2 * h)
                    for h, e in zip(steps, np.eye(3), strict=True)], axis=1)  # fmt: skip
    m = mu(p)
    used = m > 1e-9 * max(f.counts, 1.0)
    info = (jac[used] / m[used, None]).T @ jac[used]
    held = float(np.sqrt(max(np.linalg.pinv(info)[1, 1], 0.0)))
    return max(f.centre_err, held)


def _fit_lines(
    energies: np.ndarray, lines: Sequence[KnownLine], which: Sequence[int],
    fwhm: dict[int, float], bin_eV: float | None, min_counts: int,
) -> dict[int, LineResult]:  # fmt: skip
    """The lines `which` fitted on `energies`; with min_counts > 0 only those that qualify."""
    out = {}
    for i in which:
        ln, width = lines[i], fwhm[i]
        for _ in range(4):
            margin = 5.0 * width + 2.0 * _natural(ln) + 10.0
            r = fit_known_line(energies, ln, width, bin_eV=bin_eV, margin_eV=margin)
            if not r.fit.fwhm > REFIT_WIDER * width:
                break
            width = r.fit.fwhm
        f = r.fit
        ok = np.isfinite(f.centre_err) and 0 < f.centre_err < margin and abs(
            f.centre - ln.energy_eV) < margin - f.centre_err  # fmt: skip
        if min_counts == 0 or (ok and f.counts >= min_counts and f.counts > 3.0 * f.counts_err):
            out[i] = r
    return out
