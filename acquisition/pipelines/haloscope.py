"""Pipeline `haloscope`: the amplification chain of a haloscope calibrated from the cavity's own
radiation (Chang et al. 2024; REFERENCE.md section 4), from a reflection sweep and a set of
power spectra taken at different attenuator and cavity temperatures.

Steps: the S11 sweep (amplitude and phase) is fitted with the line's baseline and delay
(`cryodaq.analysis.cavity.fit_reflection`) -> kappa0, kappae, f_c with errors. Every spectrum is
read with the thermometer readings stored beside it; Eq 9 is fitted to all of them at once
(`cryodaq.analysis.chain_fit.fit_chain`) with five free parameters G', T_a', A1, A_cir, A2, and
again with the losses fixed to given values (the manufacturer's specs). The gain ripple r(f) is the
mean data/fit ratio over the spectra, smoothed by a Savitzky-Golay filter. The fit that
corrects for it (`fit_chain_corrected`, Fig. 5) carries r(f) as a spline common to all spectra
(knots `ripple_knot_Hz` apart) fitted jointly with the chain, so the ripple biases neither
the gain nor the losses and their errors include the correlation: `fit` is that fit,
`fit_uncorrected` the plain one, `ripple.rms_percent` the rms of the paper's r(f) (the
smoothed data / ripple-free model ratio). Both free-loss fits know each spectrum's capture time
(`time_s`) and carry a linear gain drift in time: `ripple.drift_percent_per_hour` (with `_err`)
and `ripple.drift_percent`, the drift over the programme's span `ripple.drift_span_h` (first to
last spectrum). Without the times the drift would be mostly absorbed by T_a' and the losses
(the temperatures change in time too); `ripple.residual_drift_percent_per_hour` is the
regression of the spectra's mean data/fit levels against time left after the fit (~0).

Options (all optional): `reflection` ("s11", the reflection step's name), `spectra` ("spec",
the spectrum step's name; a sweep's points `spec.0`, `spec.1`, ... are all read, in order),
`thermometers` ({att: "tc.2", cav: "tc.3", mx: "tc.1"}, keys of the stored readings),
`hemt_K` (4.0, the HEMT plate), `A3` (0.9, cable 3's transmission: a spec the fit needs for
the outward noise it carries, not a fitted value),
`fixed_losses` ({A1: 0.96, A2: 0.94, A_cir: 0.96}),
`ripple_window_bins` (201, Savitzky-Golay window), `ripple_polyorder` (2),
`ripple_knot_Hz` (250e3, knot spacing of the fitted ripple spline).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import numpy as np

from cryodaq.acquisition.pipelines import PipelineInput, PipelineResult, yfactor
from cryodaq.acquisition.pipelines.haloscope_options import LOSSES, options
from cryodaq.acquisition.pipelines.stored_data import (
    PipelineError,
    read_reflection,
    read_spectra,
)
from cryodaq.analysis.cavity import Cavity, ReflectionFit, fit_reflection

log = logging.getLogger(__name__)

FIT_KEYS = ("gain_dB", "added_noise_K", *LOSSES)
CHAIN_MODULE = "cryodaq.analysis.chain_fit"


def cavity_results(fit: ReflectionFit) -> dict[str, float]:
    c = fit.cavity
    return {
        "kappa0_Hz": c.kappa0_Hz,
        "kappa0_Hz_err": fit.kappa0_err_Hz,
        "kappae_Hz": c.kappae_Hz,
        "kappae_Hz_err": fit.kappae_err_Hz,
        "fc_Hz": c.fc_Hz,
        "fc_Hz_err": fit.fc_err_Hz,
        "loaded_q": c.loaded_q,
        "delay_s": fit.delay_s,
        "residual_rms": fit.residual_rms,
    }


def _chain_module() -> Any:
    try:
        return importlib.import_module(CHAIN_MODULE)
    except ImportError as exc:
        raise PipelineError(
            f"haloscope: the chain fit needs {CHAIN_MODULE} (Eqs 5-9), which cannot be "
            f"imported: {exc}"
        ) from None


def _fit_numbers(fit: Any, keys: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in keys:
        out[key] = float(getattr(fit, key))
        out[f"{key}_err"] = float(getattr(fit, f"{key}_err"))
    out["chi2"] = float(fit.chi2)
    out["dof"] = int(fit.dof)
    out["reduced_chi2"] = float(fit.chi2) / max(int(fit.dof), 1)
    return out


def run(inp: PipelineInput) -> PipelineResult:
    """The `haloscope` pipeline (see module docstring)."""
    from cryodaq.acquisition.pipelines import haloscope_figures as figs

    opts = options(inp.options)
    data_dir = inp.run_dir / "data"
    f_s11, s11 = read_reflection(data_dir, str(opts["reflection"]))
    refl = fit_reflection(f_s11, s11)
    spectra = read_spectra(data_dir, str(opts["spectra"]))
    therm = opts["thermometers"]
    temps = [{k: s.temperature(v) for k, v in therm.items()} for s in spectra]
    prefix = "haloscope"
    out_dir = inp.figures_dir
    figures = [figs.s11_figure(f_s11, s11, refl, out_dir / f"{prefix}_s11.png")]
    results: dict[str, Any] = {
        "cavity": cavity_results(refl),
        "spectra": [
            {"name": s.name, "time_s": s.time_s, **{f"T_{k}_K": t[k] for k in therm}}
            for s, t in zip(spectra, temps, strict=True)
        ],
    }

    chain = _chain_module()
    from cryodaq.analysis.cavity_chain import Temperatures

    data = [
        chain.SpectrumData(
            f_hz=s.f_hz,
            power_W=s.power_W,
            bin_width_Hz=s.bin_width_Hz,
            integration_s=s.integration_s,
            temps=Temperatures(
                att_K=t["att"], cav_K=t["cav"], mx_K=t["mx"], hemt_K=float(opts["hemt_K"])
            ),
        )
        for s, t in zip(spectra, temps, strict=True)
    ]
    cavity: Cavity = refl.cavity
    a3 = float(opts["A3"])
    times = [s.time_s for s in spectra]
    span_h = (max(times) - min(times)) / 3600.0
    timed = times if len(spectra) > 1 and span_h > 0 else None
    window = int(opts["ripple_window_bins"])
    order = int(opts["ripple_polyorder"])
    uncorrected = chain.fit_chain(data, cavity, A3=a3, times_s=timed)
    free, ripple = chain.fit_chain_corrected(
        data,
        cavity,
        window_bins=window,
        knot_Hz=float(opts["ripple_knot_Hz"]),
        polyorder=order,
        A3=a3,
        times_s=timed,
    )
    fixed = chain.fit_chain(data, cavity, fixed=dict(opts["fixed_losses"]), A3=a3)
    ripple_fixed = chain.gain_ripple(data, fixed, window, polyorder=order)
    factors = [free.drift_factor(t) for t in times]
    models = [np.asarray(free.model(d)) * k for d, k in zip(data, factors, strict=True)]
    rate, rate_err = float(free.drift_percent_per_hour), float(free.drift_percent_per_hour_err)
    residual_rate, residual_err = 0.0, 0.0
    if timed is not None:
        level_errors = [d.relative_sigma / np.sqrt(d.f_hz.size) for d in data]
        residual_rate, residual_err = chain.level_drift(ripple.levels, times, level_errors)
    results["fit"] = _fit_numbers(free, FIT_KEYS)
    results["fit_uncorrected"] = _fit_numbers(uncorrected, FIT_KEYS)
    results["fixed_loss_fit"] = {
        **_fit_numbers(fixed, ("gain_dB", "added_noise_K")),
        **opts["fixed_losses"],
    }
    results["ripple"] = {
        "rms_percent": float(ripple.rms_percent),
        "drift_percent": rate * span_h,
        "drift_percent_err": rate_err * span_h,
        "drift_percent_per_hour": rate,
        "drift_percent_per_hour_err": rate_err,
        "residual_drift_percent_per_hour": residual_rate,
        "residual_drift_percent_per_hour_err": residual_err,
        "drift_span_h": span_h,
        "knot_Hz": float(opts["ripple_knot_Hz"]),
        "fitted_rms_percent": float(100.0 * np.std(free.ripple_r)),
        "uncorrected_rms_percent": float(
            chain.gain_ripple(data, uncorrected, window, order, times_s=timed).rms_percent
        ),
        "window_bins": window,
        "fixed_loss_rms_percent": float(ripple_fixed.rms_percent),
    }
    figures += [
        figs.spectra_figure(spectra, temps, models, out_dir / f"{prefix}_spectra.png"),
        figs.ripple_figure(
            spectra,
            temps,
            [
                (free, ripple, models),
                (fixed, ripple_fixed, [np.asarray(fixed.model(d)) for d in data]),
            ],
            out_dir / f"{prefix}_ripple.png",
        ),
        figs.cable_noise_figure(
            float(np.mean([s.f_hz.mean() for s in spectra])), out_dir / f"{prefix}_cable_noise.png"
        ),
    ]
    if opts["yfactor"] is not None and yfactor.has_spectra(data_dir, opts["yfactor"]["spectra"]):
        ystored = read_spectra(data_dir, opts["yfactor"]["spectra"])
        results["yfactor"] = yfactor.yfactor_results(ystored, opts["yfactor"])
    return PipelineResult(results, figures)
