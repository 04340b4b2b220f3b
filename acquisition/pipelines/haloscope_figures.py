"""Figures of the `haloscope` pipeline, after the paper's: S11 with its fit (Fig. 3), spectra
with the Eq 9 fit (Fig. 4), gain ripple and normalised data with free and fixed losses (Fig. 5),
and the noise of a cable with a linear temperature profile (Eq 5, Fig. 2)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryodaq.acquisition.pipelines import plots
from cryodaq.analysis.cavity import ReflectionFit, effective_temperature

if TYPE_CHECKING:
    from cryodaq.acquisition.pipelines.stored_data import StoredSpectrum

#: Bins averaged for display only (the fits use every bin).
DISPLAY_BINS = 20
LABELS = ("a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3")


def _label(i: int, n: int) -> str:
    return LABELS[i] if n == len(LABELS) else f"#{i}"


def _rebin(x: np.ndarray, k: int = DISPLAY_BINS) -> np.ndarray:
    n = (x.size // k) * k
    return x[:n].reshape(-1, k).mean(axis=1) if n else x


def s11_figure(f: np.ndarray, s11: np.ndarray, fit: ReflectionFit, path: Path) -> Path:
    """Fig. 3: |S11| and phase (line delay removed) with the fit."""
    fig, axes = plots.grid(2, panel=3.2, max_columns=2)
    mhz = (f - fit.cavity.fc_Hz) / 1e6
    model = fit.model(f)
    undelay = np.exp(2j * np.pi * (f - fit.reference_Hz) * fit.delay_s) / fit.baseline
    amp, ax_p = axes
    amp.plot(mhz, 20 * np.log10(np.abs(s11 * undelay)), ".", ms=2, color="0.4", label="data")
    amp.plot(mhz, 20 * np.log10(np.abs(model * undelay)), color="C3", lw=1, label="fit")
    amp.set_xlabel("f - f_c (MHz)")
    amp.set_ylabel("|S11| / baseline (dB)")
    amp.legend()
    ax_p.plot(mhz, np.angle(s11 * undelay), ".", ms=2, color="0.4")
    ax_p.plot(mhz, np.angle(model * undelay), color="C3", lw=1)
    ax_p.set_xlabel("f - f_c (MHz)")
    ax_p.set_ylabel("phase, delay removed (rad)")
    c = fit.cavity
    fig.suptitle(
        f"Reflection: κ0 = {c.kappa0_Hz / 1e3:.1f}±{fit.kappa0_err_Hz / 1e3:.1f} kHz, "
        f"κe = {c.kappae_Hz / 1e3:.1f}±{fit.kappae_err_Hz / 1e3:.1f} kHz, "
        f"f_c = {c.fc_Hz / 1e9:.6f} GHz"
    )
    return plots.save(fig, path)


def spectra_figure(
    spectra: list[StoredSpectrum],
    temps: list[dict[str, float]],
    models: list[np.ndarray] | None,
    path: Path,
) -> Path:
    """Fig. 4: every spectrum (averaged over `DISPLAY_BINS` bins for display) with its fit."""
    n = len(spectra)
    fig, axes = plots.grid(n, panel=2.4, max_columns=4)
    for i, (ax, s, t) in enumerate(zip(axes, spectra, temps, strict=True)):
        f0 = np.mean(s.f_hz)
        x = _rebin(s.f_hz - f0) / 1e6
        ax.plot(x, _rebin(s.power_W) * 1e12, color="0.35", lw=0.8)
        if models is not None:
            ax.plot((s.f_hz - f0) / 1e6, models[i] * 1e12, color="C3", lw=1)
        ax.set_title(
            f"{_label(i, n)}: T_att {t['att'] * 1e3:.0f}, T_c {t['cav'] * 1e3:.0f},\n"
            f"T_mx {t['mx'] * 1e3:.0f} mK"
        )
        ax.set_xlabel("f - centre (MHz)")
        ax.set_ylabel("power per bin (pW)")
    fig.suptitle("Spectra (grey) and the global fit of Eq 9 (red)")
    return plots.save(fig, path)


def ripple_figure(
    spectra: list[StoredSpectrum],
    temps: list[dict[str, float]],
    fits: list[tuple[Any, Any, list[np.ndarray]]],
    path: Path,
) -> Path:
    """Fig. 5: for free losses (left) and fixed losses (right): r(f) (top) and the data
    normalised by r(f) with the fits (bottom), each spectrum offset-free in its own colour."""
    with_titles = ("free losses", "fixed losses")
    fig, axes = plots.grid(4, panel=4.2, max_columns=2)
    for col, ((fit, ripple, models), title) in enumerate(zip(fits, with_titles, strict=False)):
        top, bottom = axes[col], axes[2 + col]
        f0 = np.mean(ripple.f_hz)
        top.plot((ripple.f_hz - f0) / 1e6, ripple.ratio, color="0.6", lw=0.6, label="mean data/fit")
        top.plot((ripple.f_hz - f0) / 1e6, ripple.smoothed, color="C3", lw=1.2, label="r(f)")
        top.set_title(
            f"{title}: G' = {fit.gain_dB:.2f} dB, T_a' = {fit.added_noise_K:.2f} K,\n"
            f"r(f) rms {ripple.rms_percent:.3f} %"
        )
        top.set_xlabel("f - centre (MHz)")
        top.set_ylabel("r(f)")
        top.legend()
        for i, (s, model) in enumerate(zip(spectra, models, strict=True)):
            r = np.interp(s.f_hz, ripple.f_hz, ripple.smoothed)
            color = f"C{i % 10}"
            x = (s.f_hz - np.mean(s.f_hz)) / 1e6
            bottom.plot(_rebin(x), _rebin(s.power_W / r) * 1e12, color=color, lw=0.8,
                        label=_label(i, len(spectra)))
            bottom.plot(x, model * 1e12, color=color, lw=0.8, ls="--")
        bottom.set_xlabel("f - centre (MHz)")
        bottom.set_ylabel("power / r(f) (pW)")
        bottom.legend(ncols=2, loc="upper left", fontsize=6)
    fig.suptitle("Gain ripple and normalised data (solid) with the fits of Eq 9 (dashed)")
    return plots.save(fig, path)


def cable_noise_figure(f_hz: float, path: Path, t_cold_K: float = 0.025) -> Path:
    """Fig. 2: noise temperature a cable with a linear temperature profile adds (Eq 5), against
    the temperature of its hot end (an attenuator plate) with the cold end on the mixing plate,
    for several transmissions A. Solid: seen at the cold end (cable 1 towards the circulator);
    dashed: seen at the hot end (direction matters); dotted: T~ of the hot end."""
    from cryodaq.analysis.cavity_chain import cable_noise_temperature

    fig, ax = plots.figure()
    t_hot = np.linspace(0.01, 1.0, 100)
    for i, a in enumerate((0.5, 0.8, 0.9, 0.96, 0.99)):
        cold_end = cable_noise_temperature(t_hot, t_cold_K, a, f_hz)
        hot_end = cable_noise_temperature(t_cold_K, t_hot, a, f_hz)
        ax.plot(t_hot * 1e3, np.asarray(cold_end) * 1e3, color=f"C{i}", label=f"A = {a:g}")
        ax.plot(t_hot * 1e3, np.asarray(hot_end) * 1e3, color=f"C{i}", lw=0.8, ls="--")
    ax.plot(t_hot * 1e3, effective_temperature(t_hot, f_hz) * 1e3, color="0.3", ls=":",
            label="T~ of the hot end")
    ax.set_xlabel("hot-end temperature (mK)")
    ax.set_ylabel("cable noise temperature T~* (mK)")
    ax.set_title(
        f"Eq 5 at {f_hz / 1e9:.4f} GHz, cold end {t_cold_K * 1e3:.0f} mK; "
        "seen at the cold end (solid), at the hot end (dashed)"
    )
    ax.legend()
    return plots.save(fig, path)
