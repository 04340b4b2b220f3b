"""Pipeline `ho163`: the 163Ho spectrum of implanted HOLMES detectors, to a neutrino-mass
sensitivity (REFERENCE.md sections 2 and 10).

Per detector (`ho163_detector`, independent pieces that Dask can map): optimal filter,
second-order calibration on the fluorescence lines, the pile-up the pulse shape resolves
flagged (Wiener filter, second spike) and its time resolution tau_R, records behind an earlier
pulse's tail set aside, the resolution at Q and the activity. Over the array
(`ho163_spectrum`): the summed calibrated spectrum with the M1, M2, N1, N2 lines; the
end-point fit for Q and m_nu^2 (Poisson likelihood: 163Ho spectrum convolved with the
measured resolutions, unresolved pile-up, flat background); the unresolved pile-up fraction it
measures against A tau_R; the statistical sensitivity on m_nu reached and the exposure
(detector-years) `target_m_nu_eV` would need at this resolution and pile-up.

Options (all optional): `lines` (calibration lines; default the end-point-free target's
AlKa, CaKa, MnKa, MnKb), `q_guess_eV`, `fit_from_eV`, `fit_to_eV`, `bin_eV`, `exclude_eV`
(around each calibration line, left out of the spectrum fit and of the activity),
`target_m_nu_eV`, `activity_Bq` (per detector for A tau_R; default the measured one),
`isolation_s` (an earlier trigger this close sets a record aside), `isolation_decays`,
`min_pulses`, `min_noise` and `learn_records` (as in `pulses`: the filter, cuts and pile-up flag
are learned from the first 20000 records; every record is streamed through them),
`fwhm_guess_eV`, `pairs` (Monte Carlo pairs per separation for tau_R), `channels` (subset),
`seed`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from cryodaq.acquisition.pipelines import (
    ChannelFailure,
    ChannelPlan,
    Draw,
    PipelineError,
    PipelineInput,
    PipelineResult,
    run_plan,
)
from cryodaq.acquisition.pipelines.ho163_detector import (
    Ho163Detector,
    analyze_stored_ho163_detector,
)
from cryodaq.acquisition.pipelines.ho163_figures import figure_jobs
from cryodaq.acquisition.pipelines.ho163_options import options
from cryodaq.acquisition.pipelines.ho163_spectrum import (
    SpectrumInput,
    analyze_spectrum,
)
from cryodaq.acquisition.pipelines.holmes import known_line
from cryodaq.acquisition.pipelines.pulses import Selection, channel_plan
from cryodaq.acquisition.pipelines.stored_runs import (
    jsonable,
)
from cryodaq.analysis.ho163_fit import Resolution


def plan(inp: PipelineInput) -> ChannelPlan:
    """The `ho163` pipeline as independent per-detector pieces (see `pipelines`)."""
    opts = options(inp.options)
    opts["lines"] = tuple(known_line(n) for n in opts["lines"])

    def combine(sel: Selection, outcomes: Mapping[int, Ho163Detector | ChannelFailure], draw: Draw
                ) -> PipelineResult:  # fmt: skip
        return _combine(inp, sel.names, opts, outcomes, draw)

    return channel_plan(inp, "ho163", opts, analyze_stored_ho163_detector, combine)


def run(inp: PipelineInput) -> PipelineResult:
    """The `ho163` pipeline (see module docstring), detector after detector."""
    return run_plan(plan(inp))


def spectrum_input(results: Mapping[int, Ho163Detector], opts: dict[str, Any]) -> SpectrumInput:
    """The summed spectrum's input: every detector's accepted events, live time, resolution
    at Q (weighted by its events), activity and tau_R (means over the detectors)."""
    if not results:
        raise PipelineError("ho163: no detector could be analysed")
    dets = [results[ch] for ch in sorted(results)]
    taus = [d.numbers["time_resolution_s"] for d in dets]
    taus = [t for t in taus if np.isfinite(t)]
    exclude = sorted({c.energy_eV for line in opts["lines"]
                      for c in (line.shape or [line])})
    return SpectrumInput(
        np.concatenate([d.energies for d in dets]),
        float(sum(d.numbers["live_time_s"] for d in dets)),
        Resolution(tuple(d.numbers["fwhm_at_q_eV"] for d in dets),
                   tuple(float(d.energies.size) for d in dets)),
        float(np.mean([d.numbers["activity_Bq"] for d in dets])),
        float(np.mean(taus)) if taus else float("nan"),
        tuple(float(e) for e in exclude),
    )


def _combine(inp: PipelineInput, names: list[str], opts: dict[str, Any],
             outcomes: Mapping[int, Ho163Detector | ChannelFailure], draw: Draw
             ) -> PipelineResult:
    results = {ch: r for ch, r in outcomes.items() if isinstance(r, Ho163Detector)}
    channels = {str(ch): {"error": r.error} if isinstance(r, ChannelFailure)
                else jsonable(r.numbers) for ch, r in outcomes.items()}
    spectrum = analyze_spectrum(spectrum_input(results, opts), opts)
    out = {"acquisitions": names, **spectrum.numbers,
           "flagged_pileup": int(sum(r.numbers["flagged_pileup"] for r in results.values())),
           "channels": channels}
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", "+".join(names))
    flagged = np.concatenate([r.flagged for r in results.values()])
    figures = draw(figure_jobs(spectrum, flagged, inp.figures_dir, f"ho163_{tag}"))
    return PipelineResult(jsonable(out), figures)
