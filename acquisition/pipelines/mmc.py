"""Pipeline `mmc`: the maXs30 MMC array analysis of the seed paper (REFERENCE section 1).

Calibration (the step's `acquisitions`, 55Fe, optionally with 241Am: option `sources`): per
pixel (`mmc_pixel.analyze_pixel`) the optimal filter, chi2 and zeta, the ellipse cut, the
temperature correction, the energy calibration on every line of the sources the pixel shows
(`mmc_lines`: Mn Ka and Kb, the exact quadratic; with 241Am a cubic through the Np L lines and
gammas too, with residuals, uncertainty band and measured nonlinearity), the Ka resolution,
the baseline resolution and the filter's prediction. Means over pixels leave out noisy
channels: a pixel whose baseline FWHM exceeds `noisy_factor` times the median is listed under
`noisy` (the paper leaves C8/D8 out).

Background (option `background`: label -> acquisitions, e.g. without and with a shield):
the pixels' filters, ellipses and calibrations applied to every record; then per acquisition
(one ADC) the burst cut, the coincidence cut (the trigger engine's multiplicity: set the
acquire step's `coincidence_window`) and the ellipse cut; the rate between `band_eV` per keV,
cm^2 of absorber area of the analysed pixels and second of live time after the burst cut.

Each pixel learns from its channel's first `learn_records` (20000) calibration records (as in
`pulses`); every record, calibration and background, is streamed from the store through what
it learned (`mmc_records`).

Acquisitions hold one ADC each; `wiring` gives the FLL channel of each source's channel 1,
`layout` the two pixels of each FLL channel (positive-going, negative-going), `thermometers`
the FLL channels of the non-gradiometric pairs.

Results: `pixels.<name>` (fwhm_eV, fwhm_err_eV, baseline_fwhm_eV, predicted_fwhm_eV, counts,
...), `mean_fwhm_eV`, `mean_baseline_fwhm_eV`, `mean_predicted_fwhm_eV`, `background` (the first
group: rate_per_keV_cm2_s, rate_err, live_time_s, ...) and `background_groups` (all),
`cuts.<label>.*` (what each cut removed and its live-time cost), `calibration_lines` (chi2 and
dof over pixels, each line's pixels and residual pulls, the nonlinearity), and an event list
`data/mmc_events.npz` (one row per pulse record of every analysed pixel).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.acquisition.pipelines import (
    ChannelFailure,
    ChannelPlan,
    Draw,
    PipelineError,
    PipelineInput,
    PipelineResult,
    mmc_lines,
    run_plan,
)
from cryodaq.acquisition.pipelines.mmc_background_group import background_group
from cryodaq.acquisition.pipelines.mmc_figures import figure_jobs
from cryodaq.acquisition.pipelines.mmc_options import options
from cryodaq.acquisition.pipelines.mmc_pixel import (
    PartInfo,
    PixelOutcome,
    Shared,
    analyze_pixel,
)
from cryodaq.acquisition.pipelines.pulses_channel import ChannelSkipped
from cryodaq.acquisition.pipelines.stored_runs import geometry, jsonable


def _parts(inp: PipelineInput, names: list[str], what: str) -> tuple[PartInfo, ...]:
    out = []
    for name in names:
        parts = inp.parts(name)
        if not parts:
            raise PipelineError(
                f"mmc: no {what} acquisition {name!r} in {inp.run_dir}; it has "
                f"{inp.reader.acquisitions()}"
            )
        for part in parts:
            info = inp.reader.info(part)
            meta = info.get("metadata") or {}
            live = inp.reader.commit(part).processed_samples / info["sample_rate_hz"]
            source = str(meta.get("source", ""))
            origin = tuple(
                (int(ch), str(inst), int(own))
                for ch, (inst, own) in (meta.get("channel_sources") or {}).items()
            )  # several ADCs in one acquisition: each channel's ADC and own number
            start_s = float(meta.get("start_time_ns", 0)) * 1e-9
            out.append(PartInfo(part, source, start_s, live, origin))
    return tuple(out)


def plan(inp: PipelineInput) -> ChannelPlan:
    """The `mmc` pipeline as independent per-pixel pieces (see `cryodaq.acquisition.pipelines`)."""
    opts = options(inp.options)
    if not inp.acquisitions:
        raise PipelineError("mmc: name the calibration acquisitions (55Fe) in `acquisitions`")
    calib = _parts(inp, list(inp.acquisitions), "calibration")
    background = {
        str(label): _parts(inp, list(names), f"background ({label})")
        for label, names in opts["background"].items()
    }
    every = [*calib, *(p for g in background.values() for p in g)]
    wiring = {str(k): int(v) for k, v in opts["wiring"].items()}
    for part in every:
        for source in {o[1] for o in part.channels} or {part.source}:
            if source not in wiring:
                raise PipelineError(
                    f"mmc: acquisition {part.name!r} comes from {source!r}, which option "
                    f"`wiring` (source -> FLL channel of its channel 1) does not name"
                )
    geo = geometry(inp, [p.name for p in every], "mmc")
    for part in (p for g in background.values() for p in g):
        if (inp.reader.info(part.name).get("metadata") or {}).get("trigger", {}).get(
            "coincidence_window", 0
        ) <= 0:
            raise PipelineError(
                f"mmc: background acquisition {part.name!r} has no coincidence flags; give its "
                "acquire step a coincidence_window of at least one sample"
            )
    fll = sorted(
        {
            wiring[p.origin(ch)[0]] + p.origin(ch)[1] - 1
            for p in calib
            for ch in inp.reader.channels(p.name)
        }
    )
    if opts["channels"] is not None:
        fll = [c for c in fll if c in {int(x) for x in opts["channels"]}]
    fll = [c for c in fll if str(c) in opts["layout"]]
    keys = tuple((c, s) for c in fll for s in (1, -1))
    shared = Shared(
        inp.reader.path, geo, opts, calib, background, wiring,
        tuple(int(c) for c in opts["thermometers"]),
    )  # fmt: skip

    def combine(outcomes: Mapping[Any, PixelOutcome | ChannelFailure], draw: Draw
                ) -> PipelineResult:
        return _combine(inp, shared, outcomes, draw)

    return ChannelPlan(
        keys, analyze_pixel, shared, combine,
        expected=(ChannelSkipped, ValueError, np.linalg.LinAlgError),
    )  # fmt: skip


def run(inp: PipelineInput) -> PipelineResult:
    """The `mmc` pipeline (see module docstring), pixel after pixel."""
    return run_plan(plan(inp))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _combine(
    inp: PipelineInput, shared: Shared, outcomes: Mapping[Any, PixelOutcome | ChannelFailure],
    draw: Draw,
) -> PipelineResult:
    opts = shared.opts
    ok = {o.pixel: o for o in outcomes.values() if isinstance(o, PixelOutcome)}
    pixels: dict[str, Any] = {}
    for (ch, sign), o in outcomes.items():
        name = opts["layout"][str(ch)][0 if sign > 0 else 1]
        pixels[name] = (
            {"channel": ch, "polarity": sign, "error": o.error}
            if isinstance(o, ChannelFailure)
            else jsonable(o.numbers)
        )
    base = {n: o.numbers["baseline_fwhm_eV"] for n, o in ok.items()}
    limit = float(opts["noisy_factor"]) * float(np.median(list(base.values()))) if base else 0.0
    noisy = sorted(n for n, b in base.items() if b > limit)
    good = [o for n, o in ok.items() if n not in noisy]
    out: dict[str, Any] = {
        "calibration": [p.name for p in shared.calibration],
        "pixels": pixels,
        "analysed": len(ok),
        "noisy": noisy,
        "mean_fwhm_eV": _mean([o.numbers["fwhm_eV"] for o in good]),
        "mean_fwhm_err_eV": (
            float(np.sqrt(sum(o.numbers["fwhm_err_eV"] ** 2 for o in good)) / len(good))
            if good else None
        ),
        "mean_baseline_fwhm_eV": _mean([o.numbers["baseline_fwhm_eV"] for o in good]),
        "mean_predicted_fwhm_eV": _mean([o.numbers["predicted_fwhm_eV"] for o in good]),
        "cuts": {
            "calibration_ellipse_rejected_fraction": _mean(
                [o.numbers["ellipse"]["rejected_ka_fraction"] for o in ok.values()]
            )
        },
    }  # fmt: skip
    groups: dict[str, Any] = {}
    spectra: dict[str, tuple[np.ndarray, float]] = {}
    for label, parts in shared.background.items():
        groups[label], energies, exposure_s = background_group(shared, label, parts, ok)
        out["cuts"][label] = groups[label].pop("cuts")
        spectra[label] = (energies, exposure_s)
    if groups:
        out["background"] = groups[next(iter(groups))]
        out["background_groups"] = groups
    out = jsonable(out)
    out["events_file"] = str(_save_events(inp.run_dir / "data" / "mmc_events.npz", ok, shared))
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", "+".join(inp.acquisitions))
    out["calibration_lines"] = jsonable(mmc_lines.lines_summary(ok))
    jobs = figure_jobs(ok, spectra, opts, inp.figures_dir, f"mmc_{tag}") if ok else []
    jobs += mmc_lines.figure_jobs(ok, opts, inp.figures_dir, f"mmc_{tag}")
    figures = draw(jobs) if jobs else []
    return PipelineResult(out, figures)


def _save_events(path: Path, ok: dict[str, PixelOutcome], shared: Shared) -> Path:
    """One row per pulse record of each analysed pixel, for every group (calibration first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(ok)
    cols: dict[str, list[np.ndarray]] = {}
    groups = ["calibration", *shared.background]
    for gi, label in enumerate(groups):
        for pi, name in enumerate(names):
            o = ok[name]
            ev = o.calib_events if label == "calibration" else o.background.get(label)
            if ev is None:
                continue
            fields = {
                "group": np.full(ev.time_s.size, gi), "pixel": np.full(ev.time_s.size, pi),
                "channel": np.full(ev.time_s.size, o.channel), "part": ev.part,
                "time_s": ev.time_s, "amplitude": ev.amplitude, "energy_eV": ev.energy_eV,
                "chi2": ev.chi2, "zeta": ev.zeta, "inside": ev.inside,
                "coincidence": ev.coincidence, "clean": ev.clean,
            }  # fmt: skip
            for k, v in fields.items():
                cols.setdefault(k, []).append(np.asarray(v))
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    np.savez(path, groups=np.array(groups), pixels=np.array(names), **arrays)
    return path
