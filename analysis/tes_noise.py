"""Noise of a TES read by a demodulated rf-SQUID, in flux units (Phi0^2/Hz, one-sided), as the
sum of its components (seed paper Fig. 7), and the energy resolution it allows.

Each TES term is white noise through H(s) = (n0 + n1 s) / ((1 + s tau_r)(1 + s tau_f)), the
small-signal response of a voltage-biased TES in strong electrothermal feedback (Irwin &
Hilton 2005) with its electrical pole at the rise time tau_r and its effective thermal pole at
the fast decay tau_f; L is the loop gain:
- thermal fluctuation across G: a power noise at the TES, so it has the pulse's own spectrum
  (n0, n1) = (1, 0);
- TES Johnson: suppressed by the feedback below 1/(2 pi tau_f), flat above: (1/(1 + L), tau_f);
- load (shunt) Johnson: less suppressed, (L/(1 + L), tau_f);
- SQUID/HEMT: white in flux (the readout chain's, added by the demodulator, not modelled here).
|H|^2 = (n0^2 + (w n1)^2) / ((1 + (w tau_r)^2)(1 + (w tau_f)^2)), w = 2 pi f.

Resolution: `optimal_filter.fisher_information` of the unit-energy template in this PSD on a
record's DFT grid (REFERENCE.md section 6: the formula lives there).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.optimize import brentq

from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA, NoiseSpectrum, fisher_information

#: The TES components, in the order of `component_numerators`.
TES_COMPONENTS = ("thermal", "tes_johnson", "load_johnson")


def component_numerators(loop_gain: float, fast_s: float) -> dict[str, tuple[float, float]]:
    """(n0, n1) of each TES component's transfer function (see the module)."""
    if not loop_gain > 0 or not fast_s > 0:
        raise ValueError(f"need loop_gain > 0 and fast_s > 0, got {loop_gain:g}, {fast_s:g}")
    return {
        "thermal": (1.0, 0.0),
        "tes_johnson": (1.0 / (1.0 + loop_gain), fast_s),
        "load_johnson": (loop_gain / (1.0 + loop_gain), fast_s),
    }


def component_psd(f_hz: np.ndarray, numerator: tuple[float, float], rise_s: float,
                  fast_s: float) -> np.ndarray:
    """|H(2 pi i f)|^2 of one TES component (unit white input density)."""
    w = 2.0 * np.pi * np.asarray(f_hz, dtype=float)
    n0, n1 = numerator
    return (n0**2 + (w * n1) ** 2) / ((1.0 + (w * rise_s) ** 2) * (1.0 + (w * fast_s) ** 2))


def tes_noise_psd(f_hz: np.ndarray, densities: Mapping[str, float], rise_s: float,
                  fast_s: float, loop_gain: float, readout_density: float = 0.0
                  ) -> dict[str, np.ndarray]:
    """Each component's PSD (Phi0^2/Hz): TES terms of white input density `densities[name]`
    (Phi0/sqrt(Hz)) through their transfer functions, plus `readout` (SQUID/HEMT, white) and
    `total`."""
    numerators = component_numerators(loop_gain, fast_s)
    f = np.asarray(f_hz, dtype=float)
    out = {name: densities.get(name, 0.0) ** 2 * component_psd(f, numerators[name], rise_s,
                                                                 fast_s)
           for name in TES_COMPONENTS}
    out["readout"] = np.full(f.shape, readout_density**2)
    out["total"] = sum(out[name] for name in (*TES_COMPONENTS, "readout"))
    return out


def resolution_fwhm(template_per_eV: np.ndarray, psd_at: np.ndarray,
                    sample_rate_hz: float) -> float:
    """Best optimal-filter FWHM (eV) of a template (flux per eV, one record) in noise of PSD
    `psd_at` on the record's rfft grid (`record_grid`)."""
    noise = NoiseSpectrum(record_grid(template_per_eV.size, sample_rate_hz), psd_at, 0,
                          sample_rate_hz)
    return float(FWHM_PER_SIGMA / np.sqrt(fisher_information(template_per_eV, noise)))


def record_grid(length: int, sample_rate_hz: float) -> np.ndarray:
    """DFT frequencies of a record of `length` samples."""
    return np.fft.rfftfreq(length, 1.0 / sample_rate_hz)


def scale_for_fwhm(target_fwhm_eV: float, template_per_eV: np.ndarray, tes_psd: np.ndarray,
                   readout_psd: np.ndarray, sample_rate_hz: float) -> float:
    """Factor s on the TES noise amplitude such that readout + s^2 TES noise gives the
    optimal-filter FWHM `target_fwhm_eV`; ValueError if the readout alone is already worse."""
    def fwhm(s: float) -> float:
        return resolution_fwhm(template_per_eV, readout_psd + s * s * tes_psd, sample_rate_hz)

    has_readout = bool(np.all(readout_psd[1:] > 0))
    floor = fwhm(0.0) if has_readout else 0.0
    if floor >= target_fwhm_eV:
        raise ValueError(f"noise_fwhm_eV {target_fwhm_eV:g} is below the readout's own "
                         f"{floor:.3g} eV")
    hi = 1.0
    while fwhm(hi) < target_fwhm_eV:
        hi *= 4.0
    lo = 0.0 if has_readout else hi * 1e-12  # without readout noise FWHM is s x fwhm(1)
    return float(brentq(lambda s: fwhm(s) - target_fwhm_eV, lo, hi, xtol=1e-14, rtol=1e-10))
