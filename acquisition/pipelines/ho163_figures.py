"""Figures of the `ho163` pipeline: the summed 163Ho spectrum with its components and the
M1, M2, N1, N2 lines, the end-point region with the fit, and the pile-up spectrum above Q
(unresolved, from the fit; resolved, the records the pulse shape flagged)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryodaq.acquisition.pipelines import plots
from cryodaq.analysis.ho163 import HO163_LINES

if TYPE_CHECKING:
    from cryodaq.acquisition.pipelines import FigureJob
    from cryodaq.acquisition.pipelines.ho163_spectrum import SpectrumResult

COMPONENTS = (("single", "163Ho decays", "C0"), ("pileup", "unresolved pile-up", "C3"),
              ("background", "flat background", "C2"))


def figure_jobs(spectrum: SpectrumResult, flagged: np.ndarray, directory: Path,
                prefix: str) -> list[FigureJob]:
    """The figures to draw into `directory`."""
    return [
        (_spectrum, (spectrum, directory / f"{prefix}_spectrum.png")),
        (_endpoint, (spectrum, directory / f"{prefix}_endpoint.png")),
        (_pileup, (spectrum, flagged, directory / f"{prefix}_pileup.png")),
    ]


def _model_lines(ax, spectrum: SpectrumResult, lo: float, hi: float, per: float) -> None:  # type: ignore[no-untyped-def]
    """The fit's components and total as counts per `per` eV over [lo, hi]."""
    edges = spectrum.model.edges
    mids = 0.5 * (edges[1:] + edges[:-1])
    sel = (mids >= lo) & (mids <= hi)
    scale = per / np.diff(edges)[sel]
    total = np.zeros(int(sel.sum()))
    for key, label, color in COMPONENTS:
        y = spectrum.fit.components[key][sel] * scale
        total += y
        ax.plot(mids[sel], y, color=color, lw=1.0, label=label)
    ax.plot(mids[sel], total, color="k", lw=0.8, ls="--", label="fit total")


def _spectrum(spectrum: SpectrumResult, path: Path) -> Path:
    fig, ax = plots.figure(9.0, 4.5)
    counts, edges = spectrum.full_counts, spectrum.full_edges
    width = 5
    n = counts.size // width * width
    ax.stairs(counts[:n].reshape(-1, width).sum(axis=1), edges[:n + 1:width], color="0.35",
              label="summed calibrated spectrum")
    fit = spectrum.numbers["fit"]
    _model_lines(ax, spectrum, fit["from_eV"], fit["to_eV"], float(width))
    for line in HO163_LINES:
        ax.axvline(line.energy_eV, color="C1", lw=0.5, alpha=0.6)
        ax.text(line.energy_eV, 0.97, f" {line.name}", color="C1",
                transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    q = spectrum.numbers["q_eV"]
    ax.axvline(q, color="k", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5)
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel(f"counts per {width} eV")
    ax.set_title(f"163Ho spectrum, {spectrum.numbers['events']} events, "
                 f"{spectrum.numbers['exposure_detector_years']:.3g} detector-years; "
                 f"Q = {q:.1f} eV")
    ax.legend(fontsize=8)
    return plots.save(fig, path)


def _endpoint(spectrum: SpectrumResult, path: Path) -> Path:
    fig, ax = plots.figure(8.0, 4.5)
    num = spectrum.numbers
    q = num["q_eV"]
    lo, hi = max(num["fit"]["from_eV"], q - 500.0), q + 200.0
    edges = spectrum.model.edges
    sel = (edges[:-1] >= lo) & (edges[1:] <= hi)
    idx = np.flatnonzero(sel)
    if idx.size:
        ax.stairs(spectrum.counts[idx], edges[idx[0]:idx[-1] + 2], color="0.35", label="data")
    _model_lines(ax, spectrum, lo, hi, float(num["fit"]["bin_eV"]))
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.3)
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel(f"counts per {num['fit']['bin_eV']:.3g} eV")
    ax.set_title(f"End point: Q = {q:.1f} ± {num['q_err_eV']:.1f} eV, m² = "
                 f"{num['m_nu_sq_eV2']:.3g} -{num['m_nu_sq_err_low_eV2']:.2g} "
                 f"+{num['m_nu_sq_err_high_eV2']:.2g} eV²; m_nu(90 %) reach "
                 f"{num['sensitivity']['m_nu_90_eV']:.3g} eV", fontsize=9)
    ax.legend(fontsize=8)
    return plots.save(fig, path)


def _pileup(spectrum: SpectrumResult, flagged: np.ndarray, path: Path) -> Path:
    fig, ax = plots.figure(8.0, 4.5)
    num = spectrum.numbers
    q = num["q_eV"]
    lo, hi = q - 300.0, num["fit"]["to_eV"]
    width = 10.0
    edges = np.arange(lo, hi + width, width)
    mids_fine = spectrum.model.edges
    full_mids = 0.5 * (spectrum.full_edges[1:] + spectrum.full_edges[:-1])
    data = np.histogram(full_mids, edges, weights=spectrum.full_counts)[0]
    ax.stairs(data, edges, color="0.35", label="accepted events")
    if flagged.size:
        ax.stairs(np.histogram(flagged, edges)[0], edges, color="C4",
                  label=f"flagged (resolved) pile-up: {flagged.size} records in all")
    fine_mids = 0.5 * (mids_fine[1:] + mids_fine[:-1])
    pile = np.histogram(fine_mids, edges, weights=spectrum.fit.components["pileup"])[0]
    back = np.histogram(fine_mids, edges, weights=spectrum.fit.components["background"])[0]
    ax.plot(0.5 * (edges[1:] + edges[:-1]), pile, color="C3", label="unresolved pile-up (fit)")
    ax.plot(0.5 * (edges[1:] + edges[:-1]), back, color="C2", label="flat background (fit)")
    p = num["pileup"]
    ax.axvline(q, color="k", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.3)
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel(f"counts per {width:g} eV")
    a_tau = p["a_tau_R"]
    ax.set_title(f"Pile-up: f_pp = {p['fraction']:.3g} ± {p['fraction_err']:.2g} measured; "
                 f"A tau_R = {a_tau:.3g}" if a_tau == a_tau else
                 f"Pile-up: f_pp = {p['fraction']:.3g} ± {p['fraction_err']:.2g} measured",
                 fontsize=9)
    ax.legend(fontsize=8)
    return plots.save(fig, path)
