"""Figures of the `pulses` pipeline: spectra with line fits, average pulses with fits, noise
PSDs and resolutions per channel (PNG, report style of `cryodaq.acquisition.pipelines.plots`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryodaq.acquisition.pipelines import plots

if TYPE_CHECKING:
    from cryodaq.acquisition.pipelines import FigureJob
    from cryodaq.acquisition.pipelines.pulses_channel import ChannelResult


def figure_jobs(
    results: dict[int, ChannelResult], geo: dict[str, Any], directory: Path, prefix: str
) -> list[FigureJob]:
    """The four figures to draw into `directory`."""
    return [
        (_spectra, (results, directory / f"{prefix}_spectrum.png")),
        (_pulses, (results, geo, directory / f"{prefix}_pulses.png")),
        (_psds, (results, geo, directory / f"{prefix}_noise_psd.png")),
        (_resolution, (results, directory / f"{prefix}_resolution.png")),
    ]


#: Above this many channels the spectra share one panel (a grid of 64 panels costs ~10 s of
#: serial drawing, as long as the per-channel analysis of a short run on one core).
GRID_MAX = 16


def _spectra(results: dict[int, ChannelResult], path: Path) -> Path:
    if len(results) > GRID_MAX:
        return _spectra_overlaid(results, path)
    fig, axes = plots.grid(len(results))
    for ax, (ch, r) in zip(axes, sorted(results.items()), strict=True):
        k = r.energy_scale  # the histogram was fitted before the final scale
        ax.stairs(r.counts, r.edges * k, color="0.35")
        fine = np.linspace(r.edges[0], r.edges[-1], 8 * r.edges.size)
        expected = r.line.model(fine) * (np.mean(np.diff(r.edges)) / np.mean(np.diff(fine)))
        ax.plot(0.5 * (fine[1:] + fine[:-1]) * k, expected, color="C3", lw=1)
        n = r.numbers
        ax.set_title(f"ch {ch}: {n['fwhm_eV']:.2f}±{n['fwhm_err_eV']:.2f} eV")
        ax.set_xlabel("energy (eV)")
        half = max(5.0 * n["fwhm_eV"], 15.0)
        ax.set_xlim(max(r.edges[0] * k, r.line.centre * k - half), r.line.centre * k + half)
    fig.suptitle("Spectra at the calibration line; Poisson-likelihood line fits (FWHM)")
    return plots.save(fig, path)


def _spectra_overlaid(results: dict[int, ChannelResult], path: Path) -> Path:
    """Every channel's calibrated spectrum at the line in one panel (fits: resolution figure)."""
    fig, ax = plots.figure()
    for i, (_, r) in enumerate(sorted(results.items())):
        # Step lines, not `stairs`: 64 step patches cost 0.5 s more of serial drawing.
        counts = np.append(r.counts, r.counts[-1])
        style = {"drawstyle": "steps-post", "color": f"C{i % 10}", "lw": 0.6, "alpha": 0.7}
        ax.plot(r.edges * r.energy_scale, counts, **style)
    centre = np.median([r.line.centre * r.energy_scale for r in results.values()])
    half = max(5.0 * np.median([r.numbers["fwhm_eV"] for r in results.values()]), 15.0)
    ax.set_xlim(centre - half, centre + half)
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel("counts per bin")
    ax.set_title(f"Spectra of {len(results)} channels at the calibration line (fits: resolution)")
    return plots.save(fig, path)


def _pulses(results: dict[int, ChannelResult], geo: dict[str, Any], path: Path) -> Path:
    fig, ax = plots.figure()
    t_ms = (np.arange(geo["length"]) - geo["pre"]) / geo["fs"] * 1e3
    for i, (ch, r) in enumerate(sorted(results.items())):
        color = f"C{i % 10}"
        avg = r.avg.sign * r.avg.average
        ax.plot(t_ms, avg / r.fit.amplitude, color=color, lw=1, label=f"ch {ch}")
        model = (r.fit.model(geo["length"]) - r.fit.baseline) / r.fit.amplitude
        ax.plot(t_ms, model, color=color, lw=0.8, ls="--")
    ax.set_xlabel("time from trigger (ms)")
    ax.set_ylabel("average pulse / fitted height")
    ax.set_title("Average pulses (solid) and two-exponential fits (dashed)")
    if len(results) <= 16:
        ax.legend(ncols=4)
    return plots.save(fig, path)


def _psds(results: dict[int, ChannelResult], geo: dict[str, Any], path: Path) -> Path:
    fig, ax = plots.figure()
    for i, (ch, r) in enumerate(sorted(results.items())):
        f, psd = r.filt.noise.freqs_hz[1:], r.filt.noise.psd[1:]
        ax.loglog(f, np.sqrt(psd) * r.scale, color=f"C{i % 10}", lw=0.8, label=f"ch {ch}")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(f"noise ({geo['unit']}/√Hz)")
    ax.set_title("Noise spectral density (one-sided) from the noise records")
    if len(results) <= 16:
        ax.legend(ncols=4)
    return plots.save(fig, path)


def _resolution(results: dict[int, ChannelResult], path: Path) -> Path:
    fig, ax = plots.figure()
    chans = sorted(results)
    num = [results[c].numbers for c in chans]
    x = np.arange(len(chans))
    ax.errorbar(
        x - 0.1, [n["fwhm_eV"] for n in num], [n["fwhm_err_eV"] for n in num],
        fmt="o", label="line FWHM",
    )  # fmt: skip
    ax.errorbar(
        x + 0.1, [n["baseline_fwhm_eV"] for n in num], [n["baseline_fwhm_err_eV"] for n in num],
        fmt="s", label="baseline FWHM (noise records)",
    )  # fmt: skip
    ax.plot(x, [n["predicted_fwhm_eV"] for n in num], "_", ms=14, mew=2, label="filter prediction")
    ax.set_xticks(x, [str(c) for c in chans])
    ax.set_xlabel("channel")
    ax.set_ylabel("FWHM (eV)")
    ax.set_title("Energy resolution per channel")
    ax.legend()
    return plots.save(fig, path)
