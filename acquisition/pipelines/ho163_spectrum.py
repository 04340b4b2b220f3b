"""The summed calibrated 163Ho spectrum of the `ho163` pipeline: the end-point fit for Q and
m_nu^2 with the pile-up and background components, the unresolved pile-up fraction it
measures against A tau_R, and the statistical sensitivity on m_nu with the exposure a target
needs (`cryodaq.analysis.ho163_fit`).

The likelihood runs over one histogram from `fit_from_eV` (below the M2 line by default: the
M1 and M2 lines, modulated by the phase space (Q - E)^2, pin Q) to `fit_to_eV` (default
2 Q + 100 eV: the region above Q, where only pile-up and background live, measures the
pile-up), leaving out `exclude_eV` around each calibration line. The pile-up pairs come from the
spectrum at the fitted Q and m_nu^2 (a large m_nu lowers the lines that pile up, and the
N1 + M1 pile-up peak lies under the end-point region); a second fit adds the triples in the
share the first measured. The m_nu^2 uncertainties quoted are the profile likelihood's (asymmetric).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.analysis.ho163_fit import (
    EndpointFit,
    EndpointModel,
    Resolution,
    endpoint_model,
    exposure_for,
    fit_endpoint,
    m2_sigma,
    m90,
    scan_m2,
)
from cryodaq.analysis.time_resolution import pileup_fraction

#: Seconds per year (Julian), for exposures in detector-years.
YEAR_S = 365.25 * 86400.0


@dataclass(frozen=True)
class SpectrumInput:
    """Accepted events of all detectors and what the spectrum analysis needs about them."""

    energies_eV: np.ndarray  # calibrated, pile-up the pulse shape resolved left out
    exposure_s: float  # live time summed over the detectors
    resolution: Resolution  # at the end point, one Gaussian per detector
    activity_Bq: float  # mean 163Ho activity per detector
    time_resolution_s: float  # mean measured tau_R
    exclude_eV: tuple[float, ...] = ()  # calibration lines to leave out


@dataclass(frozen=True)
class SpectrumResult:
    numbers: dict[str, Any]
    fit: EndpointFit
    model: EndpointModel
    counts: np.ndarray  # over the fit's bins
    full_counts: np.ndarray  # the whole summed spectrum, 1 eV bins from 0
    full_edges: np.ndarray


def _bins(inp: SpectrumInput, opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    q0 = float(opts["q_guess_eV"])
    lo = float(opts["fit_from_eV"])
    hi = float(opts["fit_to_eV"] or 2.0 * q0 + 100.0)
    if not 0.0 < lo < q0 < hi:
        raise ValueError(f"need 0 < fit_from_eV < q_guess_eV < fit_to_eV, got {lo:g}, "
                         f"{q0:g}, {hi:g}")
    best = min(inp.resolution.fwhm_eV)
    width = float(opts["bin_eV"] or min(2.0, max(0.25, best / 3.0)))
    edges = np.arange(lo, hi + 0.5 * width, width)
    used = np.ones(edges.size - 1, dtype=bool)
    mids = 0.5 * (edges[1:] + edges[:-1])
    for e in inp.exclude_eV:
        used &= np.abs(mids - e) > float(opts["exclude_eV"])
    return edges, used


def analyze_spectrum(inp: SpectrumInput, opts: dict[str, Any]) -> SpectrumResult:
    """The end-point fit, the measured pile-up fraction and the sensitivity (see module)."""
    e = np.asarray(inp.energies_eV, dtype=float)
    recorded = int(e.size)
    if recorded == 0 or not inp.exposure_s > 0:
        raise ValueError(f"need events and a live time, got {recorded} events, "
                         f"{inp.exposure_s:g} s")
    edges, used = _bins(inp, opts)
    counts = np.histogram(e, edges)[0].astype(float)
    q0 = float(opts["q_guess_eV"])
    model = endpoint_model(edges, used, inp.resolution, 0.0, q0)
    fit = fit_endpoint(model, counts, q0)
    # Again with the triples in the share the first fit measured, from where it ended.
    q, m2 = fit.value("q_eV"), fit.value("m2_eV2")
    f_pp = min(max(fit.value("n_pileup") / recorded, 0.0), 0.49)
    model = endpoint_model(edges, used, inp.resolution, f_pp, q)
    fit = fit_endpoint(model, counts, q, (m2,))
    years = inp.exposure_s / YEAR_S
    f_pp = fit.value("n_pileup") / recorded
    f_err = fit.error("n_pileup") / recorded
    a_tau = (pileup_fraction(inp.activity_Bq, inp.time_resolution_s)
             if np.isfinite(inp.activity_Bq * inp.time_resolution_s) else float("nan"))
    zero = fit.theta.copy()
    zero[2] = 0.0
    sigma0 = m2_sigma(model, zero)
    target = float(opts["target_m_nu_eV"])
    scan = scan_m2(model, counts, fit)
    best = int(np.argmin(scan.delta))
    if scan.delta[best] < -0.01:  # a deeper minimum elsewhere along the valley: fit from it
        fit = fit_endpoint(model, counts, float(scan.q_eV[best]), (float(scan.m2_eV2[best]),))
        scan = scan_m2(model, counts, fit)
    m2 = fit.value("m2_eV2")
    low, high = scan.interval(1.0)
    low2, high2 = scan.interval(4.0)
    numbers = {
        "events": recorded,
        "exposure_detector_years": years,
        "q_eV": fit.value("q_eV"),
        "q_err_eV": fit.error("q_eV"),
        "m_nu_sq_eV2": m2,
        "m_nu_sq_err_low_eV2": m2 - low,
        "m_nu_sq_err_high_eV2": high - m2,
        "m_nu_sq_95_eV2": [low2, high2],
        "m_nu_sq_err_fisher_eV2": fit.error("m2_eV2"),
        "m_nu_eV": float(np.sqrt(max(m2, 0.0))),
        "resolution_fwhm_eV": list(inp.resolution.fwhm_eV),
        "pileup": {
            "fraction": f_pp,
            "fraction_err": f_err,
            "activity_Bq": inp.activity_Bq,
            "time_resolution_s": inp.time_resolution_s,
            "a_tau_R": a_tau,
            "ratio_to_a_tau_R": f_pp / a_tau if a_tau > 0 else None,
        },
        "background_per_eV_per_detector_year": fit.value("background_per_eV") / years,
        "fit": {"cash": fit.cash, "dof": fit.dof, "from_eV": float(edges[0]),
                "to_eV": float(edges[-1]), "bin_eV": float(edges[1] - edges[0])},
        "sensitivity": {
            "m_nu_sq_sigma_at_zero_eV2": sigma0,
            "m_nu_90_eV": m90(sigma0),
            "target_m_nu_90_eV": target,
            "exposure_for_target_detector_years": exposure_for(target, sigma0, years),
        },
    }
    full_edges = np.arange(0.0, max(float(edges[-1]), float(np.max(e, initial=0.0))) + 1.0,
                           1.0)
    full = np.histogram(e, full_edges)[0]
    return SpectrumResult(numbers, fit, model, counts, full, full_edges)
