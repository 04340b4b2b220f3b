"""Headline of the `ho163` pipeline: the calibrated 163Ho spectrum's end point Q and m_nu^2
with their errors, the pile-up against A tau_R, the sensitivity, and each detector's activity,
time resolution and resolution at Q."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines.report_headline import Table, failed_entries, ok_entries
from cryodaq.acquisition.pipelines.report_numbers import count, fmt, fmt_asymmetric, percent

#: The measured unresolved pile-up above this multiple of A tau_R is reported.
PILEUP_HIGH = 5.0

CAPTIONS = {
    "spectrum": "The calibrated summed 163Ho spectrum with the fit's components: the M and N "
    "capture peaks at their energies, the pile-up continuum beyond Q.",
    "endpoint": "The end-point region with the fit: the data should scatter about the model; "
    "the curve's shape near Q carries m_ν.",
    "pileup": "Above Q: the accepted events against the fitted unresolved pile-up and "
    "background, with the flagged (resolved) pairs; the measured f_pp should be of order A τ_R.",
}


def _end_point(results: Mapping[str, Any]) -> Table:
    fit = results.get("fit") or {}
    pile = results.get("pileup") or {}
    sens = results.get("sensitivity") or {}
    interval = results.get("m_nu_sq_95_eV2") or [None, None]
    rows = (
        ("end point Q", fmt(results.get("q_eV"), results.get("q_err_eV"), "eV")),
        ("m_ν²", fmt_asymmetric(results.get("m_nu_sq_eV2"), results.get("m_nu_sq_err_low_eV2"),
                                results.get("m_nu_sq_err_high_eV2"), "eV²")),
        ("m_ν² 95 % interval", f"{fmt(interval[0], digits=2)} to {fmt(interval[1], digits=2)} eV²"),
        ("fit Cash statistic / dof", f"{fmt(fit.get('cash'), digits=4)} / {count(fit.get('dof'))}"),
        ("fit range", f"{fmt(fit.get('from_eV'), digits=4)}–{fmt(fit.get('to_eV'), digits=4)} eV"),
        ("events in the spectrum", count(results.get("events"))),
        ("exposure", fmt(results.get("exposure_detector_years"), unit="detector years",
                         digits=3)),
        ("unresolved pile-up fraction", percent(pile.get("fraction"), pile.get("fraction_err"))),
        ("A τ_R (activity × time resolution)", percent(pile.get("a_tau_R"))),
        ("background", fmt(results.get("background_per_eV_per_detector_year"),
                           unit="/eV/detector/year", digits=3)),
        ("m_ν 90 % sensitivity of this exposure", fmt(sens.get("m_nu_90_eV"), unit="eV",
                                                      digits=3)),
        (f"exposure for m_ν < {fmt(sens.get('target_m_nu_90_eV'), digits=2)} eV at 90 %",
         fmt(sens.get("exposure_for_target_detector_years"), unit="detector years", digits=3)),
    )  # fmt: skip
    return Table("End point, pile-up and sensitivity", ("quantity", "value"), rows)


def _detectors(results: Mapping[str, Any]) -> Table:
    rows = tuple(
        (
            ch,
            fmt(c.get("activity_measured_Bq"), unit="", digits=4),
            fmt(c.get("time_resolution_s"), scale=1e-6, digits=3),
            fmt(c.get("fwhm_at_q_eV"), digits=3),
            count(c.get("pulse_triggers")),
            count(c.get("accepted")),
            count(c.get("flagged_pileup")),
            fmt(c.get("live_time_s"), digits=3),
        )
        for ch, c in ok_entries(results.get("channels")).items()
    )
    return Table(
        "Detectors",
        ("detector", "activity (Bq)", "time resolution (µs)", "FWHM at Q (eV)",
         "pulse triggers", "accepted", "flagged pile-up", "live time (s)"),
        rows,
        "Activity from the trigger rate corrected for dead time and pile-up; FWHM at Q from "
        "the calibration lines' widths extrapolated to the end point.",
    )  # fmt: skip


def tables(results: Mapping[str, Any]) -> list[Table]:
    return [_end_point(results), _detectors(results)]


def problems(results: Mapping[str, Any]) -> list[str]:
    out = failed_entries(results.get("channels"), "detector")
    ratio = (results.get("pileup") or {}).get("ratio_to_a_tau_R")
    if isinstance(ratio, float) and ratio > PILEUP_HIGH:
        out.append(f"the unresolved pile-up is {fmt(ratio, digits=2)} times A τ_R: the "
                   "pile-up flag misses more pairs than the time resolution implies.")
    return out
