"""The `mmc` pipeline's energy calibration on known lines: which lines (option `sources`: the
sources in front of the window during the calibration acquisitions, fe55 and/or am241; option
`absorber_thickness_um` for their expected rates), the numbers per pixel and over the pixels,
and the figures: the measured nonlinearity E / (c1 A) - 1 and the residuals at every line with
the calibration's uncertainty band, per pixel; the calibrated spectrum summed over pixels with
the lines marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryodaq.acquisition.pipelines import plots
from cryodaq.acquisition.pipelines.mmc_options import calibration_sources
from cryodaq.analysis.calibration_sources import fe55_lines, source_lines
from cryodaq.analysis.line_calibration import KnownLine
from cryodaq.analysis.multiline_calibration import MultilineResult

if TYPE_CHECKING:
    from cryodaq.acquisition.pipelines import FigureJob
    from cryodaq.acquisition.pipelines.mmc_pixel import PixelOutcome

#: Mn Ka: the line every pixel's template, temperature correction and resolution come from.
KA = fe55_lines()[0]


@lru_cache(maxsize=8)
def _lines(sources: tuple[str, ...], thickness_um: float) -> tuple[KnownLine, ...]:
    return source_lines(sources, thickness_um)


def calibration_lines(opts: dict[str, Any]) -> tuple[KnownLine, ...]:
    """The lines of option `sources` (a name or a list) for absorbers of
    `absorber_thickness_um`; `PipelineError` names what is allowed."""
    return _lines(*calibration_sources(opts))


def calibration_numbers(res: MultilineResult) -> dict[str, Any]:
    """summary.json numbers of one pixel's calibration."""
    cal = res.calibration
    top = float(np.max(cal.energies_eV))
    nl_ka, nl_ka_err = cal.nonlinearity(KA.energy_eV)
    nl_top, nl_top_err = cal.nonlinearity(top)
    lines = {}
    for i, name in enumerate(cal.names):
        fit = res.line(name)
        lines[name] = {
            "energy_eV": float(cal.energies_eV[i]),
            "residual_eV": float(cal.residuals_eV[i]),
            "residual_err_eV": float(cal.residual_err_eV[i]),
            "point_err_eV": float(cal.errors_eV[i]),
            "band_eV": float(cal.energy_err(cal.amplitudes[i])),
            "fwhm_eV": fit.fit.fwhm if fit else None,
            "fwhm_err_eV": fit.fit.fwhm_err if fit else None,
            "counts": fit.fit.counts if fit else None,
        }
    return {
        "calibration_eV": [float(c) for c in cal.coefficients],
        "calibration_degree": cal.degree,
        "calibration_chi2": cal.chi2,
        "calibration_dof": cal.dof,
        "nonlinearity_at_ka": nl_ka,
        "nonlinearity_at_ka_err": nl_ka_err,
        "nonlinearity_top": {"energy_eV": top, "value": nl_top, "err": nl_top_err},
        "calibration_lines": lines,
        "calibration_missing": list(res.missing),
    }


def lines_summary(ok: dict[str, PixelOutcome]) -> dict[str, Any]:
    """Over pixels: chi2 and dof summed, the pixels that saw each line with the mean residual
    and the rms of residual / expected spread (~1 if the stated uncertainties hold), the
    nonlinearity at the highest common line (mean, pixel spread, mean stated error)."""
    if not ok:
        return {}
    per_line: dict[str, list[tuple[float, float]]] = {}
    for o in ok.values():
        cal = o.calibration
        for n, r, s in zip(cal.names, cal.residuals_eV, cal.residual_err_eV, strict=True):
            per_line.setdefault(n, []).append((float(r), float(s)))
    lines = {}
    for name, rs in per_line.items():
        r = np.array([x for x, _ in rs])
        s = np.array([y for _, y in rs])
        pulls = r[s > 0] / s[s > 0]
        lines[name] = {
            "pixels": len(rs),
            "mean_residual_eV": float(r.mean()),
            "pull_rms": float(np.sqrt(np.mean(pulls**2))) if pulls.size else None,
        }
    tops = [o.numbers["nonlinearity_top"] for o in ok.values()]
    common = min(t["energy_eV"] for t in tops)
    nl = [o.calibration.nonlinearity(common) for o in ok.values()]
    return {
        "chi2": float(sum(o.calibration.chi2 for o in ok.values())),
        "dof": int(sum(o.calibration.dof for o in ok.values())),
        "lines": lines,
        "nonlinearity": {
            "energy_eV": common,
            "mean": float(np.mean([v for v, _ in nl])),
            "pixel_spread": float(np.std([v for v, _ in nl])),
            "mean_err": float(np.mean([e for _, e in nl])),
        },
    }


def figure_jobs(ok: dict[str, PixelOutcome], opts: dict[str, Any], directory: Path,
                prefix: str) -> list[FigureJob]:  # fmt: skip
    """The calibration figures, when some pixel was calibrated on more than two lines."""
    if not any(o.calibration.amplitudes.size > 2 for o in ok.values()):
        return []
    expected = [(ln.energy_eV, ln.name) for ln in calibration_lines(opts)]
    return [
        (_calibration_curve, (ok, directory / f"{prefix}_calibration_lines.png")),
        (_summed_spectrum, (ok, expected, directory / f"{prefix}_calibration_spectrum.png")),
    ]


def _typical(ok: dict[str, PixelOutcome]) -> PixelOutcome:
    return sorted(ok.values(), key=lambda o: (-o.calibration.amplitudes.size, o.pixel))[0]


def _calibration_curve(ok: dict[str, PixelOutcome], path: Path) -> Path:
    """Left: E / (c1 A) - 1 against E for every pixel (lines: the calibration, points: the
    fitted lines); right: residuals with their expected spread, and one pixel's band."""
    fig, (left, right) = plots.grid(2, panel=3.6)
    typical = _typical(ok)
    top = max(float(np.max(o.calibration.energies_eV)) for o in ok.values())
    grid = np.linspace(0.02 * top, top * 1.02, 300)
    for k, o in enumerate(ok.values()):
        cal = o.calibration
        a = cal.amplitude(grid)
        left.plot(grid / 1e3, (grid / (cal.coefficients[1] * a) - 1) * 100, lw=0.5, color="0.6")
        pts = cal.energies_eV / (cal.coefficients[1] * cal.amplitudes) - 1
        left.plot(cal.energies_eV / 1e3, pts * 100, ".", ms=3, color="C0")
        jitter = (k % 7 - 3) * 0.04  # keV, so the pixels' points do not hide each other
        right.errorbar(cal.energies_eV / 1e3 + jitter, cal.residuals_eV, cal.residual_err_eV,
                       fmt=".", ms=3, lw=0.5, color="C0", alpha=0.6)  # fmt: skip
    cal = typical.calibration
    band = cal.band(grid)
    right.fill_between(grid / 1e3, -band, band, color="C1", alpha=0.3,
                       label=f"±1σ calibration band, pixel {typical.pixel}")  # fmt: skip
    nl = (grid / (cal.coefficients[1] * cal.amplitude(grid)) - 1) * 100
    left.fill_between(grid / 1e3, nl - 100 * band / grid, nl + 100 * band / grid, color="C1",
                      alpha=0.3, label=f"pixel {typical.pixel} ±1σ")  # fmt: skip
    left.set_xlabel("E (keV)")
    left.set_ylabel("E / (c₁A) − 1 (%)")
    left.set_title(f"Nonlinearity of {len(ok)} pixels (points: lines)")
    left.legend(loc="upper left")
    spread = np.concatenate([np.abs(o.calibration.residuals_eV) for o in ok.values()])
    right.set_ylim(-3.0 * np.percentile(spread, 95) - 0.5, 3.0 * np.percentile(spread, 95) + 0.5)
    right.axhline(0.0, color="k", lw=0.5)
    right.set_xlabel("E (keV)")
    right.set_ylabel("E(A) − E_line (eV)")
    right.set_title("Residuals (bars: expected spread)")
    right.legend(loc="upper left")
    return plots.save(fig, path)


def _summed_spectrum(ok: dict[str, PixelOutcome], expected: Sequence[tuple[float, str]],
                     path: Path) -> Path:  # fmt: skip
    """Calibrated energies of the calibration events inside the ellipse, all pixels; the
    lines some pixel calibrated on in red, the other expected lines in grey."""
    fig, ax = plots.figure(8.0, 4.5)
    energies = [o.calib_events.energy_eV[o.calib_events.inside] for o in ok.values()]
    e = np.concatenate(energies) if energies else np.zeros(0)
    used = {n for _, n in _all_lines(ok)}
    top = max(energy for energy, _ in expected) * 1.05
    edges = np.arange(0.0, top + 20.0, 20.0)
    counts, _ = np.histogram(e, edges)
    ax.stairs(counts, edges / 1e3, color="C0", label=f"{len(ok)} pixels, inside the ellipse")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.7)
    for energy, name in expected:
        color = "C3" if name in used else "0.6"
        ax.axvline(energy / 1e3, color=color, lw=0.4, alpha=0.6, zorder=0)
        ax.text(energy / 1e3, 0.98, name, rotation=90, va="top", ha="right", fontsize=6,
                color=color, transform=ax.get_xaxis_transform())  # fmt: skip
    ax.set_xlabel("E (keV)")
    ax.set_ylabel("counts per 20 eV")
    ax.set_title("Calibration spectrum (red: lines calibrated on; grey: expected, not used)")
    ax.legend(loc="center right")
    return plots.save(fig, path)


def _all_lines(ok: dict[str, PixelOutcome]) -> Sequence[tuple[float, str]]:
    seen = {n: float(e) for o in ok.values()
            for n, e in zip(o.calibration.names, o.calibration.energies_eV, strict=True)}
    return sorted((e, n) for n, e in seen.items())
