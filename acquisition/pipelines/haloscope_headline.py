"""Headline of the `haloscope` pipeline: the chain's gain G' and added noise T_a' with the
losses A1, A_cir, A2 from the cavity-radiation fit (ripple-corrected, plain and with the losses
fixed to their specs, side by side), the fits' chi2/dof, the gain ripple and drift, the cavity
from its reflection, and the Y factor when the run has the load spectra."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines.haloscope_options import LOSSES
from cryodaq.acquisition.pipelines.report_headline import Table
from cryodaq.acquisition.pipelines.report_numbers import count, fmt, percent
from cryodaq.acquisition.pipelines.yfactor_headline import yfactor_table

#: A fit whose chi2 exceeds its dof by more than this many standard deviations (sqrt(2 dof))
#: does not describe the spectra: reported.
CHI2_SIGMAS = 5.0

CAPTIONS = {
    "s11": "Reflection S11 of the cavity with its fit (amplitude and phase): the fit should "
    "follow the dip and the phase swing; κ0, κe and f_c come from it.",
    "spectra": "Noise spectra at each temperature set (grey) with the global fit of Eq 9 (red): "
    "the cavity line is a dip while the cavity is colder than the attenuator's noise, a peak "
    "once hotter; the fit should follow every one.",
    "ripple": "The gain ripple r(f) and the normalised data with the fits, free and with the "
    "losses fixed: a ripple that differs between the two means the fixed specs are wrong.",
    "cable_noise": "Eq 5: the noise a lossy cable adds against its hot end's temperature, for "
    "several transmissions A, seen from either end: why warm lossy cables dominate T_a′.",
}

FITS = (("fit", "ripple-corrected"), ("fit_uncorrected", "without ripple"),
        ("fixed_loss_fit", "losses fixed"))  # fmt: skip


def _cell(fit: Mapping[str, Any], key: str) -> str:
    """A fitted parameter with its error; a fixed one (no `_err` entry) marked so, and a fitted
    one whose error is null (not finite: the fit did not constrain it) said so."""
    if key not in fit:
        return "–"
    if f"{key}_err" not in fit:
        return f"{fmt(fit[key], digits=3)} (fixed)"
    err = fit[f"{key}_err"]
    return fmt(fit[key], err) if err is not None else f"{fmt(fit[key], digits=3)} (no error)"


def _chain(results: Mapping[str, Any]) -> Table:
    fits = [(results.get(k) or {}, label) for k, label in FITS]
    rows = [
        ("gain G′ (dB)", *(_cell(f, "gain_dB") for f, _ in fits)),
        ("added noise T_a′ (K)", *(_cell(f, "added_noise_K") for f, _ in fits)),
        *((f"transmission {loss}", *(_cell(f, loss) for f, _ in fits)) for loss in LOSSES),
        ("χ² / dof", *(
            f"{fmt(f.get('chi2'), digits=5)} / {count(f.get('dof'))} = "
            f"{fmt(f.get('reduced_chi2'), digits=3)}" if "chi2" in f else "–"
            for f, _ in fits
        )),
    ]  # fmt: skip
    return Table(
        "Amplification chain from the cavity's radiation (Eq 9)",
        ("quantity", *(label for _, label in fits)),
        tuple(rows),
        "Gain and noise referred to the cavity output; A1 (attenuator to cavity), A_cir "
        "(circulator), A2 (cavity to HEMT) fitted unless fixed.",
    )


def _ripple(r: Mapping[str, Any]) -> Table:
    rows = (
        ("gain ripple r(f) rms", fmt(r.get("rms_percent"), unit="%", digits=2)),
        ("ripple rms, losses fixed", fmt(r.get("fixed_loss_rms_percent"), unit="%", digits=2)),
        (f"gain drift over {fmt(r.get('drift_span_h'), unit='h', digits=2)}",
         fmt(r.get("drift_percent"), r.get("drift_percent_err"), "%")),
        ("residual drift after the fit", fmt(r.get("residual_drift_percent_per_hour"),
                                             r.get("residual_drift_percent_per_hour_err"),
                                             "%/h")),
    )  # fmt: skip
    return Table("Gain ripple and drift", ("quantity", "value"), rows)


def _cavity(c: Mapping[str, Any]) -> Table:
    rows = (
        ("resonance f_c", fmt(c.get("fc_Hz"), c.get("fc_Hz_err"), "GHz", 1e9)),
        ("internal loss rate κ0", fmt(c.get("kappa0_Hz"), c.get("kappa0_Hz_err"), "kHz", 1e3)),
        ("coupling rate κe", fmt(c.get("kappae_Hz"), c.get("kappae_Hz_err"), "kHz", 1e3)),
        ("loaded Q", fmt(c.get("loaded_q"), digits=4)),
        ("coupling β = κe / κ0", fmt(_ratio(c.get("kappae_Hz"), c.get("kappa0_Hz")), digits=3)),
    )
    return Table("Cavity, from the reflection fit", ("quantity", "value"), rows)


def _ratio(a: Any, b: Any) -> float | None:
    ok = isinstance(a, int | float) and isinstance(b, int | float) and b
    return a / b if ok else None


def tables(results: Mapping[str, Any]) -> list[Table]:
    out = [_chain(results)]
    if isinstance(results.get("ripple"), Mapping):
        out.append(_ripple(results["ripple"]))
    if isinstance(results.get("cavity"), Mapping):
        out.append(_cavity(results["cavity"]))
    if isinstance(results.get("yfactor"), Mapping):
        out.append(yfactor_table(results["yfactor"]))
    return out


def problems(results: Mapping[str, Any]) -> list[str]:
    out = []
    fit = results.get("fit") or {}
    chi2, dof = fit.get("chi2"), fit.get("dof")
    if isinstance(chi2, float) and isinstance(dof, int) and dof > 0:
        excess = (chi2 - dof) / math.sqrt(2 * dof)
        if excess > CHI2_SIGMAS:
            out.append(f"the chain fit's χ²/dof is {fmt(chi2 / dof, digits=3)} "
                       f"({fmt(excess, digits=2)} σ above 1): Eq 9 does not describe the spectra.")
    for loss in LOSSES:
        v, err = fit.get(loss), fit.get(f"{loss}_err")
        if isinstance(v, float) and isinstance(err, float) and v - 2 * err > 1.0:
            out.append(f"the fitted transmission {loss} = {fmt(v, err)} exceeds 1: a passive "
                       "element cannot amplify.")
    drift = (results.get("ripple") or {}).get("drift_percent")
    if isinstance(drift, float) and abs(drift) > 1.0:
        out.append(f"the gain drifted by {percent(drift / 100)} over the programme.")
    return out
