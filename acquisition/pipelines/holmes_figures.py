"""Figures of the `holmes` pipeline, after the seed paper: resonator sweep with the dips found,
demodulated pulses of the designs (Fig. 8), full spectra in flux quanta (Fig. 6), Mn Ka fits
(Fig. 5), noise PSD with its components (Fig. 7), calibration curves (Fig. 4), and the
fraction of pile-up pairs resolved against their separation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryodaq.acquisition.pipelines import plots

if TYPE_CHECKING:
    from cryodaq.acquisition.pipelines import FigureJob
    from cryodaq.acquisition.pipelines.holmes_detector import DetectorResult


def _label(ch: int, designs: dict[int, str]) -> str:
    return f"ch {ch} ({designs[ch]})" if ch in designs else f"ch {ch}"


def _representatives(results: dict[int, DetectorResult], designs: dict[int, str],
                     count: int = 4) -> list[int]:
    """The first channel of each design (or the first `count` channels without designs)."""
    chosen: dict[str, int] = {}
    for ch in sorted(results):
        chosen.setdefault(designs.get(ch, str(ch)), ch)
    return sorted(chosen.values())[:count] if not designs else [
        chosen[d] for d in sorted(chosen)
    ]


def figure_jobs(
    results: dict[int, DetectorResult],
    designs: dict[int, str],
    tune: dict[str, Any] | None,
    geo: dict[str, Any],
    directory: Path,
    prefix: str,
) -> list[FigureJob]:
    """The figures to draw into `directory`."""
    out: list[FigureJob] = []
    if tune is not None:
        out.append((_sweep, (tune, directory / f"{prefix}_resonators.png")))
    if not results:
        return out
    reps = _representatives(results, designs)
    out += [
        (_pulses, (results, designs, reps, geo, directory / f"{prefix}_pulses.png")),
        (_spectra, (results, designs, directory / f"{prefix}_spectra.png")),
        (_noise, (results, designs, reps, directory / f"{prefix}_noise_psd.png")),
        (_calibration, (results, designs, directory / f"{prefix}_calibration.png")),
        (_pairs, (results, designs, directory / f"{prefix}_time_resolution.png")),
    ]
    with_mn = {ch: r for ch, r in results.items() if r.numbers.get("fwhm_eV") is not None}
    if with_mn:
        out.append((_mn_ka, (with_mn, designs, directory / f"{prefix}_mn_ka.png")))
    return out


def _sweep(tune: dict[str, Any], path: Path) -> Path:
    fig, ax = plots.figure(9.0, 4.0)
    f_ghz = (tune["lo_hz"] + tune["baseband_hz"]) / 1e9
    db = 20.0 * np.log10(np.maximum(np.abs(tune["s21"]), 1e-12))
    ax.plot(f_ghz, db, color="0.3", lw=0.6)
    dips = (tune["lo_hz"] + np.asarray(tune["dips_hz"])) / 1e9
    ax.plot(dips, np.interp(dips, f_ghz, db), "v", color="C3", ms=4,
            label=f"{dips.size} resonators found")
    for tone in (tune["lo_hz"] + np.asarray(tune["tones_hz"])) / 1e9:
        ax.axvline(tone, color="C0", lw=0.4, alpha=0.5)
    ax.set_xlabel("frequency (GHz)")
    ax.set_ylabel("|S21| (dB)")
    for c in tune.get("collisions") or []:
        ax.axvspan(c["f1_GHz"], c["f2_GHz"], color="C1", alpha=0.4, lw=0)
    guard = tune.get("guard_factor")
    ax.set_title(f"Resonator sweep: dips found, tones placed (blue), collisions (orange); "
                 f"measured budget {tune.get('budget', '?')}"
                 + (f", g_f {guard:.2f}" if guard else ""))
    ax.legend()
    return plots.save(fig, path)


def _pulses(results: dict[int, DetectorResult], designs: dict[int, str], reps: list[int],
            geo: dict[str, Any], path: Path) -> Path:
    fig, ax = plots.figure()
    t_us = (np.arange(geo["length"]) - geo["pre"]) / geo["fs"] * 1e6
    for i, ch in enumerate(reps):
        r = results[ch]
        if r.example is not None:
            ax.plot(t_us, r.example * r.numbers["polarity"], color=f"C{i}", lw=0.9,
                    label=_label(ch, designs))
    ax.set_xlim(-50, 600)
    ax.set_xlabel("time from trigger (µs)")
    ax.set_ylabel("demodulated flux (Φ0)")
    ax.set_title("Single pulses of the shape line (Cl Kα by default), one per design")
    ax.legend()
    return plots.save(fig, path)


def _spectra(results: dict[int, DetectorResult], designs: dict[int, str], path: Path) -> Path:
    fig, ax = plots.figure()
    top = max(float(np.quantile(r.amplitudes, 0.999)) for r in results.values()) * 1.1
    for i, (ch, r) in enumerate(sorted(results.items())):
        counts, edges = np.histogram(r.amplitudes, bins=1500, range=(0.0, top))
        ax.stairs(counts, edges, color=f"C{i % 10}", lw=0.7, label=_label(ch, designs))
    ax.set_yscale("log")
    ax.set_xlabel("filtered amplitude (Φ0)")
    ax.set_ylabel("counts per bin")
    ax.set_title("Full spectra in flux quanta (Al, Cl, Ca Kα; Mn Kα, Kβ)")
    if len(results) <= 16:
        ax.legend(ncols=2)
    return plots.save(fig, path)


def _mn_ka(results: dict[int, DetectorResult], designs: dict[int, str], path: Path) -> Path:
    fig, axes = plots.grid(len(results), panel=2.8, max_columns=4)
    for ax, (ch, r) in zip(axes, sorted(results.items()), strict=True):
        line = next(x for x in r.lines if x.line.name == "MnKa")
        ax.stairs(line.counts, line.edges, color="0.35")
        fine = np.linspace(line.edges[0], line.edges[-1], 8 * line.edges.size)
        expected = line.fit.model(fine) * (np.mean(np.diff(line.edges)) / np.mean(np.diff(fine)))
        ax.plot(0.5 * (fine[1:] + fine[:-1]), expected, color="C3", lw=1)
        ax.set_xlim(5870, 5915)
        ax.set_xlabel("energy (eV)")
        ax.set_title(f"{_label(ch, designs)}: {line.fit.fwhm:.2f}±{line.fit.fwhm_err:.2f} eV")
    fig.suptitle("Mn Kα1/Kα2 with the Holzer natural shape (Poisson-likelihood fit, FWHM)")
    return plots.save(fig, path)


def _noise(results: dict[int, DetectorResult], designs: dict[int, str], reps: list[int],
           path: Path) -> Path:
    fig, axes = plots.grid(len(reps), panel=4.5, max_columns=2)
    for ax, ch in zip(axes, reps, strict=True):
        comps = results[ch].noise
        f = comps.freqs_hz[1:]
        ax.loglog(f, comps.measured[1:], color="0.4", lw=0.7, label="measured")
        for i, (name, psd) in enumerate(comps.components.items()):
            if np.any(psd > 0):
                ax.loglog(f, psd[1:], color=f"C{i}", lw=1, label=name)
        ax.loglog(f, comps.model[1:], "k--", lw=0.8, label="sum")
        for h, found in zip(comps.harmonics_hz, comps.line_found, strict=True):
            if found:
                ax.axvline(h, color="C3", lw=0.5, alpha=0.5)
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("Φ0²/Hz")
        ax.set_title(f"{_label(ch, designs)}: thermal (G), Johnson, SQUID/HEMT")
        ax.legend(ncols=2, loc="lower left")
    fig.suptitle("Noise PSD components; red lines: demodulation artefacts")
    return plots.save(fig, path)


def _calibration(results: dict[int, DetectorResult], designs: dict[int, str],
                 path: Path) -> Path:
    fig, ax = plots.figure()
    for i, (ch, r) in enumerate(sorted(results.items())):
        cal = r.calibration
        color = f"C{i % 10}"
        ax.plot(cal.amplitudes, cal.energies_eV / 1e3, "o", color=color, ms=4)
        a = np.linspace(0.0, float(cal.amplitudes.max()) * 1.05, 200)
        c0, c1, c2 = cal.coefficients
        ax.plot(a, cal.energy(a) / 1e3, color=color, lw=0.8,
                label=f"{_label(ch, designs)}: E = {c2 / 1e3:.4g} p² + {c1 / 1e3:.4g} p "
                      f"+ {c0 / 1e3:.3g} keV")
    ax.set_xlabel("amplitude p (Φ0)")
    ax.set_ylabel("energy (keV)")
    ax.set_title("Second-order calibration through the known lines")
    if len(results) <= 12:
        ax.legend()
    return plots.save(fig, path)


def _pairs(results: dict[int, DetectorResult], designs: dict[int, str], path: Path) -> Path:
    fig, ax = plots.figure()
    for i, (ch, r) in enumerate(sorted(results.items())):
        if r.pairs is None:
            continue
        tau = r.pairs.time_resolution_s * 1e6
        ax.plot(r.pairs.separations_s * 1e6, r.pairs.resolved, color=f"C{i % 10}", lw=1,
                label=f"{_label(ch, designs)}: τR = {tau:.2f} µs")
    ax.axhline(0.5, color="0.5", lw=0.6, ls="--")
    ax.set_xlabel("separation of two equal-energy pulses (µs)")
    ax.set_ylabel("fraction resolved (Wiener filter)")
    ax.set_title("Time resolution: pile-up pairs on the measured noise")
    if len(results) <= 12:
        ax.legend()
    return plots.save(fig, path)
