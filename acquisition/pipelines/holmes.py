"""Pipeline `holmes`: the HOLMES TES array on uMUX, characterised as in the seed paper.

Per detector (`holmes_detector`, independent pieces that Dask can map): slipped events flagged
and set aside, optimal filter (optional moving average), drift correction from the pretrigger
baseline, second-order calibration on the known lines, line fits with their natural widths
(Mn Ka with its full structure), noise-only and predicted resolution, noise PSD components and
the demodulation's artefact lines, three-exponential pulse fit, largest slew against the
limit, Wiener-filter time resolution and the pile-up fraction. Over the array: the channel
budget the `tune` step measured (guard factor from the found resonators' widths and spacings,
the ramp it ran at, the colliding neighbours; `tune_numbers`) and the pile-up fraction A tau_R.

Options (all optional): `lines` (names of the calibration lines, default the 55Fe target's:
AlKa, ClKa, CaKa, MnKa, MnKb), `resolution_line` ("MnKa": its FWHM is `fwhm_eV`),
`shape_line` ("ClKa": the pulse-shape fit, slew and example pulses), `pair_energy_eV` (each
pulse of the pile-up pairs; default Q/2 of 163Ho), `pairs` (Monte Carlo pairs per separation),
`activity_Bq` (per detector for f_pp; default the measured trigger rate), `smooth_samples`
(moving average before the filter; 1 = none), `phase_correction` (True), `isolation_s` (no
other trigger this long before a pulse: 4 ms, ~8 slow decays), `baseline_window_s` (the
drift correction's bath signal: baselines of the quiet records within +-0.15 s of each pulse,
weighted by their noise and a triangle; 0: the pulse's own pretrigger), `isolation_decays` (as in
`pulses`), `tes` (the detectors' bias circuit for the noise components, as a lab's characterisation
sheet gives it: `cryodaq.analysis.tes_characterisation.CIRCUIT_KEYS` (T0, R0, I0 from the IV
curve, G and n from the bath-power curve, L, R_L and its temperature, bath, Phi0 per A), one
mapping for all channels or {channel: mapping}; alpha, beta and the heat capacities are fitted
to the measured noise, never given; without it the components take the measured pulse's
shapes), `artefact_hz` (62.5 kHz), `fwhm_guess_eV`, `min_pulses`, `min_noise`,
`learn_records` (as in `pulses`: slip template, cuts, filter and noise are learned from the
first 20000 records; every record is streamed through them), `channels` (subset), `designs`
(channel -> design label, for the figures), `tune` (name of the tune step whose sweep is
plotted), `seed`.
"""

from __future__ import annotations

import json
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
from cryodaq.acquisition.pipelines.holmes_detector import DetectorResult, analyze_stored_detector
from cryodaq.acquisition.pipelines.holmes_figures import figure_jobs
from cryodaq.acquisition.pipelines.holmes_options import options
from cryodaq.acquisition.pipelines.pulses import Selection, channel_plan
from cryodaq.acquisition.pipelines.stored_runs import (
    jsonable,
)
from cryodaq.analysis.line_calibration import KnownLine
from cryodaq.analysis.line_fit import reference_energy
from cryodaq.analysis.time_resolution import pileup_fraction
from cryodaq.analysis.xray_lines import LINE_SHAPES

#: Ka energies (eV) of the light target elements (REFERENCE.md section 5, Ka1), used when
#: `cryodaq.analysis.xray_lines` has no natural shape for them.
KA_EV = {"AlKa": 1486.7, "ClKa": 2622.4, "CaKa": 3691.7, "MnKa": 5898.853, "MnKb": 6490.89}


def known_line(name: str) -> KnownLine:
    """A calibration line by name: its natural shape if `xray_lines` has one, else a Gaussian
    at its Ka1 energy."""
    shape = LINE_SHAPES.get(name)
    if shape:
        return KnownLine(name, reference_energy(shape), tuple(shape))
    if name not in KA_EV:
        raise PipelineError(
            f"holmes: unknown line {name!r}; known: {', '.join(sorted({*KA_EV, *LINE_SHAPES}))}"
        )
    return KnownLine(name, KA_EV[name])


def plan(inp: PipelineInput) -> ChannelPlan:
    """The `holmes` pipeline as independent per-detector pieces (see `pipelines`)."""
    opts = options(inp.options)
    opts["lines"] = tuple(known_line(n) for n in opts["lines"])

    def combine(sel: Selection, outcomes: Mapping[int, DetectorResult | ChannelFailure], draw: Draw
                ) -> PipelineResult:  # fmt: skip
        return _combine(inp, sel.names, sel.geo, opts, outcomes, draw)

    return channel_plan(inp, "holmes", opts, analyze_stored_detector, combine)


def run(inp: PipelineInput) -> PipelineResult:
    """The `holmes` pipeline (see module docstring), detector after detector."""
    return run_plan(plan(inp))


def _tune_data(inp: PipelineInput, name: str) -> dict[str, Any] | None:
    """The tune step's sweep, dips, tones and budget, if the run has them."""
    data = inp.run_dir / "data"
    path = data / f"{name}.npz"
    if not path.exists():
        return None
    with np.load(path) as npz:
        out: dict[str, Any] = {k: npz[k] for k in npz.files}
    meta = data / f"{name}.json"
    out.update(json.loads(meta.read_text()) if meta.exists() else {})
    return out


def tune_numbers(tune: dict[str, Any] | None) -> dict[str, Any]:
    """The budget the tune measured (None where the run has no tune data or an older one)."""
    tune = tune or {}
    return {
        "channel_budget": int(tune["budget"]) if "budget" in tune else None,
        "board_channel_budget": tune.get("board_channel_budget"),
        "guard_factor": tune.get("guard_factor"),
        "resonator_spacing_Hz": tune.get("spacing_Hz"),
        "resonator_bandwidth_Hz": tune.get("bandwidth_Hz"),
        "resonator_collisions": tune.get("collisions"),
        "resonators_found": int(np.size(tune["dips_hz"])) if "dips_hz" in tune else None,
    }


def _combine(
    inp: PipelineInput,
    names: list[str],
    geo: dict[str, Any],
    opts: dict[str, Any],
    outcomes: Mapping[int, DetectorResult | ChannelFailure],
    draw: Draw,
) -> PipelineResult:
    results = {ch: r for ch, r in outcomes.items() if isinstance(r, DetectorResult)}
    designs = opts["designs"] or {}
    channels: dict[str, Any] = {}
    for ch, r in outcomes.items():
        entry = {"error": r.error} if isinstance(r, ChannelFailure) else jsonable(r.numbers)
        if ch in designs:
            entry["design"] = designs[ch]
        channels[str(ch)] = entry
    tune = _tune_data(inp, str(opts["tune"]))
    taus = [r.numbers["time_resolution_s"] for r in results.values()]
    taus = [t for t in taus if np.isfinite(t)]
    acts = [r.numbers["activity_Bq"] for r in results.values()]
    tau = float(np.mean(taus)) if taus else float("nan")
    act = float(np.mean(acts)) if acts else float("nan")
    out: dict[str, Any] = {
        "acquisitions": names,
        **tune_numbers(tune),
        "pileup_fraction": {
            "activity_Bq": act,
            "time_resolution_s": tau,
            "value": pileup_fraction(act, tau) if np.isfinite(tau * act) else None,
        },
        "channels": channels,
    }
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", "+".join(names))
    figures = draw(figure_jobs(results, designs, tune, geo, inp.figures_dir, f"holmes_{tag}"))
    return PipelineResult(jsonable(out), figures)
