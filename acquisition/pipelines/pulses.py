"""Pipeline `pulses`: resolution of microcalorimeter channels from edge (pulse) and auto
(noise) records, per channel.

For each channel of the named acquisitions (all parts of each): clean pulses and noise records
(isolated from other pulse triggers; robust outlier cuts); average pulse and its two-exponential
fit; noise PSD; optimal filter (DC-free, arrival-safe, `cryodaq.analysis.optimal_filter`); filtered
amplitudes; linear calibration on the dominant line (`line_eV`); a Poisson-likelihood fit of
that line (Gaussian broadening of a delta, or of a named natural shape such as "MnKa");
baseline resolution from the noise records; the filter's predicted resolution; the pulse
trigger rate per live second. A channel that cannot be analysed is reported with the reason.

Options (all optional): `line_eV` (5898.75, Mn Ka), `line_shape` ("gaussian" or a name in
`cryodaq.analysis.xray_lines.LINE_SHAPES`), `bin_eV`, `window_eV` (half-width of the line fit),
`background` (flat term in the line fit), `min_pulses` (20), `min_noise` (20),
`isolation_decays` (8: no other pulse trigger within this many decay times before a record),
`channels` (subset), `save_filter` (True: the filters and calibrations as an online
`StoredFilter` file under `<run>/filters/`), `learn_records` (20000: the filter and the cuts are
learned from each channel's first this many pulse and noise records, null: from all; every
record is then filtered, streamed from the store in blocks, `pulses_apply`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.acquisition.pipelines import (
    ChannelFailure,
    ChannelPlan,
    Draw,
    PipelineInput,
    PipelineResult,
    run_plan,
)
from cryodaq.acquisition.pipelines.pulses_apply import apply_pass
from cryodaq.acquisition.pipelines.pulses_channel import (
    ChannelResult,
    ChannelSkipped,
    calibrate,
    learn_filter,
    read_stream,
)
from cryodaq.acquisition.pipelines.pulses_figures import figure_jobs
from cryodaq.acquisition.pipelines.pulses_options import options
from cryodaq.acquisition.pipelines.stored_runs import (
    geometry,
    jsonable,
    selected_channels,
    selected_parts,
)
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.stream.online_analysis import ChannelFilter, StoredFilter

#: Means over channels are taken of these results.
MEAN_KEYS = (
    "rate_hz",
    "rise_s",
    "decay_s",
    "fwhm_eV",
    "baseline_fwhm_eV",
    "predicted_fwhm_eV",
    "gain_eV_per_unit",
)


def _mean(channels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ok = [c for c in channels.values() if "error" not in c]
    out: dict[str, Any] = {"channels": len(ok)}
    for key in MEAN_KEYS:
        vals = [c[key] for c in ok if isinstance(c.get(key), int | float)]
        out[key] = float(np.mean(vals)) if vals else None
    errs = [c["fwhm_err_eV"] for c in ok]
    out["fwhm_err_eV"] = float(np.sqrt(np.sum(np.square(errs))) / len(errs)) if errs else None
    return out


@dataclass(frozen=True)
class Shared:
    """What every channel's work needs (picklable: sent to Dask workers)."""

    store: Path
    parts: tuple[str, ...]
    geo: dict[str, Any]
    opts: dict[str, Any]


@dataclass(frozen=True)
class Selection:
    """What a record pipeline's combine step gets besides the outcomes: the acquisitions the
    step named, all their parts, their record geometry (`stored_runs.geometry`)."""

    names: list[str]
    parts: list[str]
    geo: dict[str, Any]


def channel_plan(
    inp: PipelineInput,
    pipeline: str,
    opts: dict[str, Any],
    analyze: Callable[[Shared, int], Any],
    combine: Callable[[Selection, Mapping[int, Any], Draw], PipelineResult],
) -> ChannelPlan:
    """A record pipeline as independent per-channel pieces: the step's acquisitions and their
    resumed parts, their channels restricted to option `channels`, `analyze(shared, ch)` per
    channel and `combine(selection, outcomes, draw)` over all of them."""
    names, parts = selected_parts(inp, pipeline)
    selection = Selection(names, parts, geometry(inp, parts, pipeline))
    return ChannelPlan(
        tuple(selected_channels(inp, parts, opts["channels"])),
        analyze,
        Shared(inp.reader.path, tuple(parts), selection.geo, opts),
        lambda outcomes, draw: combine(selection, outcomes, draw),
        expected=(ChannelSkipped, ValueError, np.linalg.LinAlgError),
    )


def analyze_stored_channel(shared: Shared, ch: int) -> ChannelResult:
    """One channel, read from the run store by whoever runs it (this process or a worker):
    learned from its first `learn_records` pulse and noise records, applied to all of them
    streamed from the store (`pulses_apply`); raises ChannelSkipped."""
    reader, parts, geo, opts = RunReader(shared.store), list(shared.parts), shared.geo, shared.opts
    stream = read_stream(reader, parts, ch, opts["learn_records"])
    learned = learn_filter(stream, geo, opts)
    applied = apply_pass(reader, stream, ch, learned, geo)
    result = calibrate(stream, geo, opts, learned, applied.clean_pulses(), applied.clean_noise())
    result.numbers["isolated_pulses"] = int(applied.pulse_isolated.sum())
    return result


def plan(inp: PipelineInput) -> ChannelPlan:
    """The `pulses` pipeline as independent per-channel pieces (see `pipelines`)."""
    opts = options(inp.options)

    def combine(sel: Selection, outcomes: Mapping[int, ChannelResult | ChannelFailure],
                draw: Draw) -> PipelineResult:  # fmt: skip
        return _combine(inp, sel.names, sel.parts, sel.geo, opts, outcomes, draw)

    return channel_plan(inp, "pulses", opts, analyze_stored_channel, combine)


def run(inp: PipelineInput) -> PipelineResult:
    """The `pulses` pipeline (see module docstring), channel after channel."""
    return run_plan(plan(inp))


def _combine(
    inp: PipelineInput,
    names: list[str],
    parts: list[str],
    geo: dict[str, Any],
    opts: dict[str, Any],
    outcomes: Mapping[int, ChannelResult | ChannelFailure],
    draw: Draw,
) -> PipelineResult:
    results = {ch: r for ch, r in outcomes.items() if isinstance(r, ChannelResult)}
    channels = {
        str(ch): {"error": r.error} if isinstance(r, ChannelFailure) else jsonable(r.numbers)
        for ch, r in outcomes.items()
    }
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", "+".join(names))
    out: dict[str, Any] = {
        "acquisitions": names,
        "parts": parts,
        "line_eV": float(opts["line_eV"]),
        "line_shape": opts["line_shape"],
        "channels": channels,
        "mean": jsonable(_mean(channels)),
    }
    figures = draw(figure_jobs(results, geo, inp.figures_dir, f"pulses_{tag}")) if results else []
    if opts["save_filter"] and results:
        out["filter_file"] = str(_save_filter(results, inp.run_dir / "filters" / f"{tag}.npz"))
    return PipelineResult(out, figures)


def _save_filter(results: dict[int, ChannelResult], path: Path) -> Path:
    """The filters and linear calibrations (amplitude in data units -> eV) for online use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    filters = {
        ch: ChannelFilter(r.filt.weights, np.array([r.gain, 0.0]), 1.0) for ch, r in results.items()
    }
    return StoredFilter(filters).save(path)
