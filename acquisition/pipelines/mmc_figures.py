"""Figures of the `mmc` pipeline, after the seed paper: the Mn Ka histogram of one pixel with
its fit and the natural line (Fig. 7), the 64-pixel resolution map (Fig. 8), a pulse and the
chi2-zeta plane with the ellipse cut (Fig. 9), the background spectra of every group
(Fig. 10, sqrt(N) errors), the trigger and cut efficiencies versus energy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import voigt_profile

from cryodaq.acquisition.pipelines import plots
from cryodaq.acquisition.pipelines.mmc_options import ROWS
from cryodaq.analysis.xray_lines import MN_KA

if TYPE_CHECKING:
    from cryodaq.acquisition.pipelines import FigureJob
    from cryodaq.acquisition.pipelines.mmc_pixel import PixelOutcome


def figure_jobs(
    ok: dict[str, PixelOutcome],
    spectra: dict[str, tuple[np.ndarray, float]],
    opts: dict[str, Any],
    directory: Path,
    prefix: str,
) -> list[FigureJob]:
    """The figures to draw into `directory`."""
    typical = sorted(ok.values(), key=lambda o: o.numbers["fwhm_eV"])[len(ok) // 2]
    out: list[FigureJob] = [
        (_ka_histogram, (typical, directory / f"{prefix}_ka_histogram.png")),
        (_resolution_map, (ok, directory / f"{prefix}_resolution_map.png")),
        (_pulse_and_shape, (typical, directory / f"{prefix}_pulse_chi2_zeta.png")),
    ]
    if spectra:
        out.append((_background, (spectra, opts, directory / f"{prefix}_background.png")))
    if any(o.efficiency is not None for o in ok.values()):
        out.append((_efficiency, (ok, directory / f"{prefix}_efficiency.png")))
    return out


def _efficiency(ok: dict[str, PixelOutcome], path: Path) -> Path:
    """Trigger and chi2-zeta cut efficiency versus energy: each pixel (thin), their median
    (thick), the median 50 % points (dotted)."""
    fig, ax = plots.figure()
    effs = [o.efficiency for o in ok.values() if o.efficiency is not None]
    for i, (what, curves) in enumerate((
        ("trigger", [e.trigger for e in effs if e.trigger is not None]),
        ("chi2-zeta cut", [e.cut for e in effs]),
    )):  # fmt: skip
        if not curves:
            continue
        for c in curves:
            ax.plot(c.energy_eV, c.efficiency, color=f"C{i}", lw=0.4, alpha=0.4)
        median = np.median([c.efficiency for c in curves], axis=0)
        e50 = [x for x in (c.crossing(0.5) for c in curves) if x is not None]
        low = "≤ " if e50 and np.median(e50) <= curves[0].energy_eV[0] else ""
        label = what + (f": 50 % at {low}{np.median(e50):.0f} eV" if e50 else "")
        ax.plot(curves[0].energy_eV, median, color=f"C{i}", lw=2.0, label=label)
        if e50:
            ax.axvline(float(np.median(e50)), color=f"C{i}", ls=":", lw=1.0)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("E (eV)")
    ax.set_ylabel("efficiency")
    ax.set_title(f"Efficiency from pulses injected in noise records ({len(effs)} pixels)")
    ax.legend(loc="lower right")
    return plots.save(fig, path)


def _ka_histogram(o: PixelOutcome, path: Path) -> Path:
    """100 bins of 0.5 eV around Mn Ka, sqrt(N) errors, the fit and the natural line."""
    fig, ax = plots.figure()
    ev = o.calib_events
    use = ev.inside & (ev.amplitude > 0)
    edges = 5870.0 + 0.5 * np.arange(101)
    counts, _ = np.histogram(ev.energy_eV[use], edges)
    mids = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(mids, counts, np.sqrt(counts), fmt="none", ecolor="C0", lw=0.6)
    ax.stairs(counts, edges, color="C0", label=f"pixel {o.pixel}")
    fine = np.linspace(edges[0], edges[-1], 801)
    model = o.ka.fit.model(fine) * (0.5 / (fine[1] - fine[0]))
    xf = 0.5 * (fine[1:] + fine[:-1])
    ax.plot(xf, model, "--", color="C1",
            label=f"fit: FWHM {o.ka.fit.fwhm:.2f}({o.ka.fit.fwhm_err:.2f}) eV")  # fmt: skip
    shift = o.ka.fit.centre - o.ka.line.energy_eV
    natural = sum(
        c.weight * voigt_profile(xf - c.energy_eV - shift, 0.0, c.fwhm_eV / 2) for c in MN_KA
    )
    ax.plot(xf, natural * model.max() / natural.max(), ":", color="C2", label="natural line")
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel("counts per 0.5 eV")
    ax.set_title(f"Mn Kα of pixel {o.pixel} (Poisson-likelihood fit, Holzer shape ⊗ Gaussian)")
    ax.legend()
    return plots.save(fig, path)


def _resolution_map(ok: dict[str, PixelOutcome], path: Path) -> Path:
    fig, ax = plots.figure(6.0, 5.5)
    grid = np.full((8, 8), np.nan)
    for name, o in ok.items():
        if len(name) == 2 and name[0] in ROWS and name[1] in "12345678":
            grid[ROWS.index(name[0]), int(name[1]) - 1] = o.numbers["fwhm_eV"]
    im = ax.imshow(grid, cmap="viridis")
    for r in range(8):
        for c in range(8):
            missing = np.isnan(grid[r, c])
            ax.text(c, r, "–" if missing else f"{grid[r, c]:.1f}", ha="center", va="center",
                    color="0.4" if missing else "w", fontsize=7)  # fmt: skip
    ax.set_xticks(range(8), [str(c + 1) for c in range(8)])
    ax.set_yticks(range(8), list(ROWS))
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="FWHM at Mn Kα (eV)")
    ax.set_title("Energy resolution of the 64 pixels (– : not analysed)")
    return plots.save(fig, path)


def _pulse_and_shape(o: PixelOutcome, path: Path) -> Path:
    fig, (left, right) = plots.grid(2, panel=3.4)
    fs, pre = o.avg.sample_rate_hz, o.avg.pretrigger
    t_ms = (np.arange(o.example.size) - pre) / fs * 1e3
    left.plot(t_ms, o.example, lw=0.7)
    left.set_xlabel("time from trigger (ms)")
    left.set_ylabel("signal (record units)")
    left.set_title(f"A Mn Kα pulse of pixel {o.pixel}")
    ev, el = o.calib_events, o.ellipse
    right.plot(ev.chi2, ev.zeta, ".", ms=1.5, color="C0")
    phi = np.linspace(0.0, 2.0 * np.pi, 400)
    zs = float(el.zeta_sigma(np.array([el.reference_amplitude]))[0])
    right.plot(el.chi2_centre + el.k * el.chi2_width * np.cos(phi),
               el.zeta_centre + el.k * zs * np.sin(phi), color="C3", lw=1,
               label="ellipse at Kα")  # fmt: skip
    right.set_xlim(el.chi2_centre - 3 * el.k * el.chi2_width,
                   el.chi2_centre + 6 * el.k * el.chi2_width)  # fmt: skip
    right.set_ylim(el.zeta_centre - 6 * el.k * zs, el.zeta_centre + 3 * el.k * zs)
    right.set_xlabel("χ² (reduced, noise units)")
    right.set_ylabel("ζ")
    right.set_title("Calibration events; ellipse cut at Kα")
    return plots.save(fig, path)


def _background(
    spectra: dict[str, tuple[np.ndarray, float]], opts: dict[str, Any], path: Path
) -> Path:
    fig, ax = plots.figure()
    width = float(opts["spectrum_bin_eV"])
    edges = np.arange(0.0, float(opts["spectrum_max_eV"]) + width / 2, width)
    mids = 0.5 * (edges[1:] + edges[:-1]) / 1e3
    for i, (label, (energies, exposure)) in enumerate(spectra.items()):
        counts, _ = np.histogram(energies, edges)
        scale = 1.0 / (width / 1e3 * exposure) if exposure > 0 else 0.0
        ax.stairs(counts * scale, edges / 1e3, color=f"C{i}", ls="-" if i == 0 else "--",
                  label=label)  # fmt: skip
        ax.errorbar(mids, counts * scale, np.sqrt(counts) * scale, fmt="none",
                    ecolor=f"C{i}", lw=0.6)  # fmt: skip
    ax.set_xlabel("E (keV)")
    ax.set_ylabel("background (keV⁻¹ cm⁻² s⁻¹)")
    ax.set_title(f"Background after burst, coincidence and ellipse cuts ({width:g} eV bins)")
    ax.legend()
    return plots.save(fig, path)
