"""Arrival-phase dependence of filtered pulse heights, and its correction.

With only ~10 samples on the rising edge, where a pulse arrives within its sample changes the
filtered height (seed paper, section 6): the start of the pulse is a kink, and the rising
edge is curved, which the optimal filter's first-order protection (blind to the template's
time derivative) does not capture. The phase is measured per record as the fractional sample
where the pulse first reaches half its peak. Over the one sample it spans, the relative
height is a smooth function of it, and it changes with the pulse height too (the flux-ramp
demodulator errs on fast edges, and periodically in the flux they sweep): g(p, A) = 1 +
sum_jk c_jk P_k(u) P_j(v), Legendre polynomials of the phase and of the amplitude, each
scaled to [-1, 1] over the learned range (and held at its edge beyond), with k >= 1 (up to
`degree`) and j <= 2 (up to `AMPLITUDE_TERMS` phase terms each).

The c_jk are learned on the events of the known calibration lines by maximum likelihood: each
line's corrected energies (provisional calibration, a free scale per line) are drawn from its
natural shape (Lorentzians) convolved with a Gaussian resolution, plus a 1 % flat floor
(pile-up, stray events). The resolutions start from the provisional line fits (broadened by
the very phase dependence) and are refitted per line, in turns with the c_jk. Using the lines'
full shapes, not one reference height per line, matters: the Mn Ka doublet spreads 1e-3 of
the height, ten times the steps to be learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.polynomial import legendre
from scipy.optimize import minimize, minimize_scalar
from scipy.special import wofz

from cryodaq.analysis.line_calibration import Calibration, KnownLine
from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA
from cryodaq.analysis.record_apply import rising_phases

#: Fraction of each line's events given to a flat floor over its window.
FLOOR_FRACTION = 0.01
#: Events per learned coefficient: fewer coefficients (amplitude terms first) below that.
EVENTS_PER_COEFFICIENT = 100
#: Phase terms (k = 1 .. this) that vary with the amplitude, linearly and quadratically.
AMPLITUDE_TERMS = 4
#: A line's events: provisional energy within this many resolution FWHM of its components.
WINDOW_FWHM = 3.0
#: Turns of (c_jk with resolutions fixed, resolutions with c_jk fixed).
TURNS = 3


def rising_phase(records: np.ndarray, pretrigger: int, sign: float = 1.0) -> np.ndarray:
    """Fractional sample index where each record (n, L), baseline-subtracted (pretrigger
    mean) and times `sign`, first reaches half its peak after the pretrigger (linear
    interpolation between the two samples around the crossing)."""
    return rising_phases(records, pretrigger, sign)


@dataclass(frozen=True)
class PhaseCorrection:
    """Relative height g(p, A) = 1 + sum_jk c[k, j] P_k(u) P_j(v), u = 2 (p - lo) / (hi - lo)
    - 1 and v likewise for A over [a_lo, a_hi], both clipped to [-1, 1] (the learned range);
    `coefficients` c[k, j] (k phase, j amplitude order; c[0, :] = 0; empty: no correction)."""

    coefficients: np.ndarray
    lo: float = 0.0
    hi: float = 1.0
    a_lo: float = 0.0
    a_hi: float = 1.0

    def gain(self, phases: np.ndarray, amplitudes: np.ndarray | float | None = None
             ) -> np.ndarray:
        """g at `phases`; at the middle of the learned amplitudes when `amplitudes` is None."""
        p = np.asarray(phases, dtype=np.float64)
        if self.coefficients.size == 0:
            return np.ones_like(p)
        u = _scaled(p, self.lo, self.hi)
        mid = 0.5 * (self.a_lo + self.a_hi)
        a = np.broadcast_to(np.asarray(mid if amplitudes is None else amplitudes, float), p.shape)
        return 1.0 + legendre.legval2d(u, _scaled(a, self.a_lo, self.a_hi), self.coefficients)

    def apply(self, amplitudes: np.ndarray, phases: np.ndarray) -> np.ndarray:
        """Heights as they would be at a typical phase."""
        a = np.asarray(amplitudes, dtype=np.float64)
        return a / self.gain(phases, a)

    def span(self) -> float:
        """Peak-to-peak of g over the learned phases, at the middle of the learned amplitudes."""
        return float(np.ptp(self.gain(np.linspace(self.lo, self.hi, 201))))


def _scaled(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not hi > lo:
        return np.zeros_like(x)
    return np.clip(2.0 * (x - lo) / (hi - lo) - 1.0, -1.0, 1.0)


def no_phase_correction() -> PhaseCorrection:
    return PhaseCorrection(np.zeros((0, 0)))


@dataclass(frozen=True)
class _LineEvents:
    """The events of one calibration line and the shape they are drawn from."""

    index: np.ndarray
    energies_eV: np.ndarray  # Lorentzian centres
    gammas_eV: np.ndarray  # Lorentzian half widths
    weights: np.ndarray  # normalised
    sigma_eV: float  # Gaussian resolution
    floor: float  # flat density of the floor over the window (per eV)


def _line_events(energy: np.ndarray, line: KnownLine, fwhm_eV: float) -> _LineEvents:
    shape = line.shape or ()
    if shape:
        e = np.array([c.energy_eV for c in shape])
        gam = np.array([c.fwhm_eV / 2.0 for c in shape])
        w = np.array([c.weight for c in shape])
    else:
        e, gam, w = np.array([line.energy_eV]), np.zeros(1), np.ones(1)
    lo, hi = e.min() - WINDOW_FWHM * fwhm_eV, e.max() + WINDOW_FWHM * fwhm_eV
    index = np.flatnonzero((energy > lo) & (energy < hi))
    return _LineEvents(index, e, gam, w / w.sum(), fwhm_eV / FWHM_PER_SIGMA,
                       FLOOR_FRACTION / (hi - lo))


def _voigt_and_slope(x: np.ndarray, sigma: float, gamma: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Voigt density and its derivative in x (Faddeeva: V = Re w(z) / (sigma sqrt(2 pi)),
    z = (x + i gamma) / (sigma sqrt 2), w' = 2i/sqrt(pi) - 2 z w)."""
    z = (x + 1j * gamma) / (sigma * np.sqrt(2.0))
    w = wofz(z)
    norm = 1.0 / (sigma * np.sqrt(2.0 * np.pi))
    slope = (2j / np.sqrt(np.pi) - 2.0 * z * w).real * norm / (sigma * np.sqrt(2.0))
    return w.real * norm, slope


def learn_phase_correction(
    amplitudes: np.ndarray,
    phases: np.ndarray,
    calibration: Calibration,
    lines: Sequence[tuple[KnownLine, float]],
    *,
    degree: int = 6,
) -> PhaseCorrection:
    """g(p, A) learned on the events of `lines` ((line, resolution FWHM eV) pairs, the lines
    found by `calibration`, a provisional one) by maximum likelihood (see module docstring);
    one coefficient per `EVENTS_PER_COEFFICIENT` events of those lines at most, amplitude
    terms only with 2 (linear) or 3 (quadratic) lines (no correction under 100 events)."""
    a = np.asarray(amplitudes, dtype=np.float64)
    p = np.asarray(phases, dtype=np.float64)
    if a.shape != p.shape:
        raise ValueError(f"amplitudes {a.shape} and phases {p.shape} differ in shape")
    if not 1 <= degree <= 12:
        raise ValueError(f"degree must be 1 .. 12, got {degree}")
    ok = np.isfinite(a) & np.isfinite(p)
    energy = np.where(ok, calibration.energy(np.where(ok, a, 0.0)), np.nan)
    groups = [g for g in (_line_events(energy, ln, fw) for ln, fw in lines) if g.index.size]
    used = np.unique(np.concatenate([g.index for g in groups])) if groups else np.zeros(0, int)
    budget = used.size // EVENTS_PER_COEFFICIENT
    degree = min(degree, budget)
    if degree < 1:
        return no_phase_correction()
    lo, hi = float(p[used].min()), float(p[used].max())
    a_lo, a_hi = float(a[used].min()), float(a[used].max())
    if not hi > lo:
        return no_phase_correction()
    terms = [(k, 0) for k in range(1, degree + 1)]  # (phase order, amplitude order)
    for j in range(1, min(len(groups) - 1, 2) + 1):
        n = min(AMPLITUDE_TERMS, degree, budget - len(terms))
        terms += [(k, j) for k in range(1, n + 1)]
    u = legendre.legvander(_scaled(p, lo, hi), degree)
    v = legendre.legvander(_scaled(a, a_lo, a_hi), 2)
    basis = np.column_stack([u[:, k] * v[:, j] for k, j in terms])
    n_coef, n_lines = len(terms), len(groups)

    def line_terms(theta: np.ndarray, k: int, grp: _LineEvents
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per event of line k: likelihood, its slope in energy, energy, corrected amplitude,
        gain."""
        i = grp.index
        gain = 1.0 + basis[i] @ theta[:n_coef]
        corrected = a[i] / gain
        e = calibration.energy(corrected)
        x = (1.0 + theta[n_coef + k]) * e
        dens, slope = np.zeros(i.size), np.zeros(i.size)
        for ec, gam, wt in zip(grp.energies_eV, grp.gammas_eV, grp.weights, strict=True):
            v, dv = _voigt_and_slope(x - ec, grp.sigma_eV, gam)
            dens += wt * v
            slope += wt * dv
        like = (1.0 - FLOOR_FRACTION) * dens + grp.floor
        return like, (1.0 - FLOOR_FRACTION) * slope, e, corrected, gain

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(theta)
        for k, grp in enumerate(groups):
            like, slope, e, corrected, gain = line_terms(theta, k, grp)
            total -= float(np.sum(np.log(like)))
            dlog = -slope / like  # d(-log L)/dx per event
            de_dc = -(calibration.slope(corrected) * corrected / gain)[:, None] * basis[grp.index]
            grad[:n_coef] += (dlog * (1.0 + theta[n_coef + k])) @ de_dc
            grad[n_coef + k] = float(dlog @ e)
        return total, grad

    def refit_sigma(theta: np.ndarray, k: int, grp: _LineEvents) -> _LineEvents:
        def cost(log_sigma: float) -> float:
            trial = replace(grp, sigma_eV=float(np.exp(log_sigma)))
            return -float(np.sum(np.log(line_terms(theta, k, trial)[0])))
        start = np.log(grp.sigma_eV)
        best = minimize_scalar(cost, bounds=(start - 3.0, start + 1.0), method="bounded")
        return replace(grp, sigma_eV=float(np.exp(best.x)))

    theta = np.zeros(n_coef + n_lines)
    for _ in range(TURNS):
        res = minimize(nll, theta, jac=True, method="L-BFGS-B",
                       options={"ftol": 1e-12, "gtol": 1e-8, "maxiter": 2000})
        if not np.all(np.isfinite(res.x)):
            return no_phase_correction()
        theta = res.x
        groups = [refit_sigma(theta, k, g) for k, g in enumerate(groups)]
    coefficients = np.zeros((degree + 1, 3))
    for (k, j), c in zip(terms, theta[:n_coef], strict=True):
        coefficients[k, j] = c
    return PhaseCorrection(coefficients, lo, hi, a_lo, a_hi)
