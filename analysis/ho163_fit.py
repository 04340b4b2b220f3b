"""Fit of the 163Ho end-point region for Q and m_nu^2, with unresolved pile-up and a flat
background, by Poisson likelihood; the statistical sensitivity on m_nu and the exposure a
target needs.

Model of the counts in energy bin i (REFERENCE.md section 10):
mu_i = N_s s_i(Q, m^2) + N_pp p_i + b w_i, where s is the single-decay spectrum
(`cryodaq.analysis.ho163.ho163_density_m2`, normalised over all energies) convolved with the
measured resolution (a mixture of Gaussians: one per detector of the summed spectrum), p the
pile-up spectrum (pairs: `cryodaq.analysis.pileup.pair_density` of the spectrum at the same
Q and m_nu^2, a large m_nu lowering the lines that pile up; triples in a given share),
convolved with the same resolution, b a flat background per eV and w_i the bin widths. N_s
and N_pp count single decays and unresolved pile-up events over all energies, so
f_pp = N_pp / (recorded events).
Fit: the Cash statistic sum (mu - n ln mu) over the bins used, minimised from a few starting
m^2; uncertainties from the expected (Fisher) information F_ab = sum d_a mu d_b mu / mu,
and for m^2 also from a scan of the profile likelihood (`scan_m2`: Q and m^2 trade along a
valley, and few events at the edge make it rugged).

Sensitivity: sigma(m^2) from the Fisher information at m^2 = 0 with the other parameters as
fitted scales as 1/sqrt(exposure); the 90 % one-sided limit is m_90 = sqrt(1.645 sigma(m^2)),
so a target m_90 needs exposure x (sigma(m^2) / (m_90^2 / 1.645))^2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.signal import fftconvolve

from cryodaq.analysis.ho163 import HO163_LINES, Q_EV, HoLine, ho163_density_m2
from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA
from cryodaq.analysis.pileup import PILEUP_STEP_EV, pair_density, triple_density

#: Fine grid (eV) of the convolutions.
FINE_STEP_EV = 0.25
#: Gaussian kernels reach this many sigma.
KERNEL_SIGMAS = 8.0
#: One-sided 90 % quantile of a Gaussian: m_90 = sqrt(Z90 sigma(m^2)).
Z90 = 1.645
#: Parameters, in order.
PARAMETERS = ("n_single", "q_eV", "m2_eV2", "n_pileup", "background_per_eV")


@dataclass(frozen=True)
class Resolution:
    """Detector response: a mixture of Gaussians of these FWHMs (eV) and weights."""

    fwhm_eV: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        f, w = np.asarray(self.fwhm_eV, float), np.asarray(self.weights, float)
        if f.size == 0 or f.shape != w.shape or not np.all(f > 0) or not np.all(w >= 0) \
                or not w.sum() > 0:
            raise ValueError(f"resolution needs FWHMs > 0 and weights >= 0 of one size, got "
                             f"{self.fwhm_eV}, {self.weights}")

    @property
    def sigma_max(self) -> float:
        return max(self.fwhm_eV) / FWHM_PER_SIGMA

    def kernel(self, step_eV: float) -> np.ndarray:
        """The response sampled on a grid of `step_eV`, centred, summing to one."""
        half = int(np.ceil(KERNEL_SIGMAS * self.sigma_max / step_eV))
        x = np.arange(-half, half + 1) * step_eV
        k = np.zeros(x.size)
        for fwhm, w in zip(self.fwhm_eV, self.weights, strict=True):
            s = fwhm / FWHM_PER_SIGMA
            g = np.exp(-0.5 * (x / s) ** 2)
            k += w * g / g.sum()
        return k / k.sum()


def _bin_integrals(grid: np.ndarray, density: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Integral of a density sampled on `grid` over each bin (trapezoid; zero outside)."""
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    return np.diff(np.interp(edges, grid, cum, left=0.0, right=cum[-1]))


@dataclass(frozen=True)
class EndpointModel:
    """The expected counts per bin for parameters (N_s, Q, m^2, N_pp, b)."""

    edges: np.ndarray
    used: np.ndarray  # bins in the likelihood
    resolution: Resolution
    triples: np.ndarray  # probability per bin of a pile-up event of three decays
    pileup_fraction: float  # f: triples : pairs = f : 1
    lines: tuple[HoLine, ...] = HO163_LINES
    _pairs: dict[tuple[float, float], np.ndarray] = field(default_factory=dict, repr=False,
                                                          compare=False)

    def pileup_at(self, q_eV: float, m2_eV2: float) -> np.ndarray:
        """p_i: probability per bin of an unresolved pile-up event, from the spectrum at
        (Q, m^2) (pairs; the triples' small share at a reference)."""
        key = (float(q_eV), float(m2_eV2))
        if key not in self._pairs:
            if len(self._pairs) > 4096:
                self._pairs.clear()
            grid, dens = pair_density(q_eV, m2_eV2, self.lines)
            conv = fftconvolve(dens, self.resolution.kernel(PILEUP_STEP_EV), mode="same")
            self._pairs[key] = _bin_integrals(grid, np.clip(conv, 0.0, None), self.edges)
        f = self.pileup_fraction
        return (self._pairs[key] + f * self.triples) / (1.0 + f)

    def single(self, q_eV: float, m2_eV2: float) -> np.ndarray:
        """s_i: probability of a single decay landing in each bin."""
        step = FINE_STEP_EV
        full = np.arange(step, q_eV + step, step)
        norm = float(np.sum(ho163_density_m2(full, q_eV, m2_eV2, self.lines)) * step)
        if not norm > 0:  # m^2 beyond (Q - E)^2 everywhere: no spectrum left
            return np.zeros(self.edges.size - 1)
        pad = KERNEL_SIGMAS * self.resolution.sigma_max + 2.0 * step
        lo, hi = self.edges[0] - pad, min(self.edges[-1], q_eV) + pad
        grid = np.arange(lo, hi + step, step)
        dens = ho163_density_m2(grid, q_eV, m2_eV2, self.lines) / norm
        conv = fftconvolve(dens, self.resolution.kernel(step), mode="same")
        return _bin_integrals(grid, np.clip(conv, 0.0, None), self.edges)

    def expected(self, theta: np.ndarray) -> np.ndarray:
        n_s, q, m2, n_pp, b = theta
        return n_s * self.single(q, m2) + n_pp * self.pileup_at(q, m2) + b * np.diff(self.edges)

    def gradients(self, theta: np.ndarray) -> np.ndarray:
        """d mu_i / d theta_a (5, bins): exact for the linear parameters, central differences
        for Q (0.05 eV) and m^2 (0.5 % or 20 eV^2)."""
        n_s, q, m2, n_pp, _ = theta
        dq = 0.05
        dm2 = max(20.0, 0.005 * abs(m2))

        def shapes(q_: float, m2_: float) -> np.ndarray:
            return n_s * self.single(q_, m2_) + n_pp * self.pileup_at(q_, m2_)

        return np.array([
            self.single(q, m2),
            (shapes(q + dq, m2) - shapes(q - dq, m2)) / (2.0 * dq),
            (shapes(q, m2 + dm2) - shapes(q, m2 - dm2)) / (2.0 * dm2),
            self.pileup_at(q, m2),
            np.diff(self.edges),
        ])

    def fisher(self, theta: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Expected information over the bins used, for an exposure `scale` times this one."""
        mu = np.maximum(self.expected(theta)[self.used], 1e-300)
        g = self.gradients(theta)[:, self.used]
        return scale * (g / mu) @ g.T


def endpoint_model(edges: np.ndarray, used: np.ndarray, resolution: Resolution,
                   pileup_fraction: float = 0.0, reference_q_eV: float = Q_EV,
                   lines: tuple[HoLine, ...] = HO163_LINES) -> EndpointModel:
    """The model on these bins; the triples' shape at `reference_q_eV`, in the share
    `pileup_fraction` (`cryodaq.analysis.pileup.pileup_density`)."""
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or e.size < 3 or not np.all(np.diff(e) > 0):
        raise ValueError("edges must be increasing, at least 3")
    mask = np.asarray(used, dtype=bool)
    if mask.shape != (e.size - 1,) or not mask.any():
        raise ValueError(f"used must be a bool per bin ({e.size - 1}) with some True")
    if not 0.0 <= pileup_fraction < 0.5:
        raise ValueError(f"pileup_fraction must be in [0, 0.5), got {pileup_fraction}")
    kernel = resolution.kernel(PILEUP_STEP_EV)
    grid, triple = triple_density(reference_q_eV, 0.0, lines)
    conv = fftconvolve(triple, kernel, mode="same")
    triples = _bin_integrals(grid, np.clip(conv, 0.0, None), e)
    return EndpointModel(e, mask, resolution, triples, float(pileup_fraction), lines)


@dataclass(frozen=True)
class EndpointFit:
    """Best parameters, their covariance (Fisher), the fit's statistic and components."""

    theta: np.ndarray  # PARAMETERS
    covariance: np.ndarray
    cash: float  # sum over used bins of 2 (mu - n + n ln(n/mu)): ~ chi^2 with dof
    dof: int
    components: dict[str, np.ndarray]  # expected counts per bin: single, pileup, background

    def value(self, name: str) -> float:
        return float(self.theta[PARAMETERS.index(name)])

    def error(self, name: str) -> float:
        i = PARAMETERS.index(name)
        return float(np.sqrt(max(self.covariance[i, i], 0.0)))


def _deviance(mu: np.ndarray, n: np.ndarray) -> float:
    """2 sum (mu - n + n ln(n / mu)): the Cash statistic against the saturated model."""
    mu = np.maximum(mu, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(n > 0, n * np.log(n / mu), 0.0)
    return float(2.0 * np.sum(mu - n + term))


def _linear(design: np.ndarray, n: np.ndarray, iterations: int = 60) -> tuple[np.ndarray,
                                                                               float]:
    """Best non-negative amplitudes x of mu = design @ x and the deviance there: a convex
    problem, solved by Newton steps (exact gradient and Hessian) kept inside x >= 0 by
    halving, from counts shared equally among the (unit-sum scaled) columns."""
    norm = np.maximum(design.sum(axis=0), 1e-300)
    a = design / norm
    floor = 1e-9 * max(float(n.sum()), 1.0)
    y = np.full(a.shape[1], max(float(n.sum()), 1.0) / a.shape[1])
    dev = _deviance(a @ y, n)
    for _ in range(iterations):
        mu = np.maximum(a @ y, 1e-300)
        grad = 2.0 * a.T @ (1.0 - n / mu)
        hess = 2.0 * (a.T * (n / mu**2)) @ a + 1e-12 * np.eye(a.shape[1])
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = grad / np.diag(hess)
        t = 1.0
        while t > 1e-6:
            trial = np.maximum(y - t * step, floor)
            new = _deviance(a @ trial, n)
            if new <= dev:
                break
            t *= 0.5
        else:
            break
        done = dev - new < 1e-9
        y, dev = trial, new
        if done:
            break
    return y / norm, dev


def fit_endpoint(model: EndpointModel, counts: np.ndarray, q_guess_eV: float,
                 m2_starts: tuple[float, ...] | None = None) -> EndpointFit:
    """Poisson maximum likelihood of (N_s, Q, m^2, N_pp, b) (see module docstring): the
    amplitudes N_s, N_pp, b profiled for each (Q, m^2), which a simplex search moves."""
    n = np.asarray(counts, dtype=float)
    if n.shape != (model.edges.size - 1,):
        raise ValueError(f"counts must have one value per bin ({model.edges.size - 1})")
    used = model.used
    widths = np.diff(model.edges)
    nu = n[used]
    cache: dict[tuple[float, float], tuple[np.ndarray, float]] = {}

    def profile(q: float, m2: float) -> tuple[np.ndarray, float]:
        key = (q, m2)
        if key not in cache:
            design = np.column_stack([model.single(q, m2), model.pileup_at(q, m2),
                                      widths])[used]
            cache[key] = _linear(design, nu)
        return cache[key]

    span = float(q_guess_eV - model.edges[0])
    starts = m2_starts if m2_starts is not None else (0.0, (0.5 * span) ** 2)
    # The simplex moves in units of a few eV in Q and a tenth of the window squared in m^2.
    unit = np.array([2.0 * model.resolution.sigma_max + 2.0, 0.1 * span**2])
    best = None
    for m2 in starts:
        origin = np.array([q_guess_eV, m2])
        res = minimize(lambda u, o=origin: profile(*(float(v) for v in o + u * unit))[1],
                       np.zeros(2), method="Nelder-Mead",
                       options={"initial_simplex": np.array([[0, 0], [1, 0], [0, 1]], float),
                                "xatol": 1e-4, "fatol": 1e-5, "maxiter": 600})
        if best is None or res.fun < best[1]:
            best = (origin + res.x * unit, float(res.fun))
    assert best is not None
    q, m2 = float(best[0][0]), float(best[0][1])
    amps, dev = profile(q, m2)
    theta = np.array([amps[0], q, m2, amps[1], amps[2]])
    info = model.fisher(theta)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(info)
    comps = {"single": theta[0] * model.single(q, m2),
             "pileup": theta[3] * model.pileup_at(q, m2),
             "background": theta[4] * widths}
    return EndpointFit(theta, cov, dev, int(used.sum()) - len(PARAMETERS), comps)


def deviance_at(model: EndpointModel, counts: np.ndarray, q_eV: float, m2_eV2: float) -> float:
    """Deviance at fixed (Q, m^2) with the amplitudes profiled: against the fit's, a
    likelihood-ratio test of a (Q, m^2) pair (Delta <= 5.99: inside the joint 95 % region)."""
    used = model.used
    design = np.column_stack([model.single(q_eV, m2_eV2), model.pileup_at(q_eV, m2_eV2),
                              np.diff(model.edges)])[used]
    return _linear(design, np.asarray(counts, dtype=float)[used])[1]


def profile_m2(model: EndpointModel, counts: np.ndarray, m2: float, q_hat: float,
               q_span: float) -> tuple[float, float]:
    """(deviance, Q) at `m2` with Q (within +-q_span of q_hat) and the amplitudes profiled."""

    def dev(q: float) -> float:
        return deviance_at(model, counts, q, m2)

    res = minimize_scalar(dev, bounds=(q_hat - q_span, q_hat + q_span), method="bounded",
                          options={"xatol": 0.05})
    return float(res.fun), float(res.x)


@dataclass(frozen=True)
class M2Profile:
    """The profile deviance over a grid of m^2 around the fit, less the fit's deviance."""

    m2_eV2: np.ndarray
    delta: np.ndarray
    q_eV: np.ndarray  # the profiled Q at each

    def interval(self, level: float = 1.0) -> tuple[float, float]:
        """(lowest, highest) m^2 where the profile stays within `level` of the minimum
        (interpolated between grid points; the grid's end if it never leaves)."""
        x, d = self.m2_eV2, self.delta - self.delta.min()
        inside = np.flatnonzero(d <= level)
        i, j = int(inside[0]), int(inside[-1])
        lo = x[i] if i == 0 else np.interp(level, [d[i], d[i - 1]], [x[i], x[i - 1]])
        hi = x[j] if j == x.size - 1 else np.interp(level, [d[j], d[j + 1]], [x[j], x[j + 1]])
        return float(lo), float(hi)


def scan_m2(model: EndpointModel, counts: np.ndarray, fit: EndpointFit, sigmas: float = 4.0,
            points: int = 17) -> M2Profile:
    """Profile deviance on `points` values of m^2 within +-`sigmas` Fisher errors of the fit:
    with few events at the end point the likelihood is rugged (each event the edge Q - m_nu
    passes makes a step), so the interval comes from the scan, not from a parabola."""
    q_hat, m2_hat = fit.value("q_eV"), fit.value("m2_eV2")
    half = sigmas * max(fit.error("m2_eV2"), 100.0)
    grid = np.linspace(m2_hat - half, m2_hat + half, points)
    grid = np.sort(np.append(grid, m2_hat))
    q_span = 6.0 * fit.error("q_eV") + 5.0
    out = [profile_m2(model, counts, float(m2), q_hat, q_span) for m2 in grid]
    return M2Profile(grid, np.array([o[0] for o in out]) - fit.cash,
                     np.array([o[1] for o in out]))


def m2_sigma(model: EndpointModel, theta: np.ndarray, scale: float = 1.0) -> float:
    """sigma(m^2) (eV^2) from the Fisher information at `theta` for `scale` x the exposure."""
    info = model.fisher(np.asarray(theta, dtype=float), scale)
    i = PARAMETERS.index("m2_eV2")
    return float(np.sqrt(np.linalg.inv(info)[i, i]))


def m90(sigma_m2_eV2: float) -> float:
    """90 % one-sided sensitivity on m_nu (eV) for a Gaussian m^2 of this sigma at zero."""
    return float(np.sqrt(Z90 * sigma_m2_eV2))


def exposure_for(target_m90_eV: float, sigma_m2_eV2: float, exposure: float) -> float:
    """Exposure (in the unit of `exposure`) reaching `target_m90_eV`, sigma(m^2) ~ 1/sqrt(T)."""
    if not target_m90_eV > 0 or not sigma_m2_eV2 > 0:
        raise ValueError(f"need target > 0 and sigma > 0, got {target_m90_eV}, {sigma_m2_eV2}")
    return float(exposure * (sigma_m2_eV2 / (target_m90_eV**2 / Z90)) ** 2)
