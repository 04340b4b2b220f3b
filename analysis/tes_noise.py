"""Noise of a TES read by a demodulated rf-SQUID, in flux units (Phi0^2/Hz, one-sided), as the
sum of its components (seed paper Fig. 7), and the energy resolution it allows.

Component shapes, two ways:
- `model_shapes`: each term of the electrothermal model (`tes_electrothermal`: thermal
  fluctuations across the links, TES Johnson, load Johnson) for a characterised device (its
  small-signal parameters, as IV curves and complex impedance give them), sampled at the ramp
  rate (aliases included) and averaged over each ramp period as the demodulator does
  (cos^2(pi f / f_s)); the readout (SQUID/HEMT) white in flux.
- `pole_shapes`: without a characterisation, from the measured pulse alone: a power noise
  where the energy enters has the pulse's own spectrum |P(f)|^2 ("thermal"); a voltage noise
  in the bias circuit is flat in current above the thermal poles and rolls off with the
  electrical one, |P(f)|^2 (2 pi f tau_fast)^2 ("johnson": TES and load together, which a PSD
  cannot tell apart); the readout white.

Resolution: `optimal_filter.fisher_information` of the unit-energy template in a PSD on a
record's DFT grid (REFERENCE.md section 6: the formula lives there).
"""

from __future__ import annotations

import numpy as np

from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA, NoiseSpectrum, fisher_information
from cryodaq.analysis.pulse_shapes import three_exponential
from cryodaq.analysis.tes_electrothermal import (
    TERMS,
    TesSmallSignal,
    sample_system,
    sampled_noise_psd,
)


def model_shapes(p: TesSmallSignal, phi0_per_A: float, f_hz: np.ndarray,
                 sample_rate_hz: float) -> dict[str, np.ndarray]:
    """PSD (Phi0^2/Hz) of each TES term as the demodulated samples carry it, and `readout`
    (unit white density)."""
    out = np.zeros(p.size)
    out[0] = phi0_per_A
    f = np.asarray(f_hz, dtype=float)
    terms = sampled_noise_psd(sample_system(p, 1.0 / sample_rate_hz), f, out)
    period = np.cos(np.pi * f / sample_rate_hz) ** 2
    shapes = {name: terms[name] * period for name in TERMS}
    shapes["readout"] = np.ones(f.size)
    return shapes


def pole_shapes(rise_s: float, fast_s: float, slow_s: float, slow_fraction: float,
                f_hz: np.ndarray, sample_rate_hz: float) -> dict[str, np.ndarray]:
    """Unit-peak shapes of `thermal` (|P|^2), `johnson` (|P|^2 (w tau_fast)^2) and `readout`
    (white) from the measured pulse's three-exponential constants (see the module)."""
    n = 2 * (np.asarray(f_hz).size - 1)
    span = max(n, int(np.ceil(20.0 * slow_s * sample_rate_hz)))
    t = np.arange(span) / sample_rate_hz
    pulse = three_exponential(t, rise_s, fast_s, slow_s, slow_fraction)
    spec = np.abs(np.fft.rfft(pulse)) ** 2
    grid = np.fft.rfftfreq(span, 1.0 / sample_rate_hz)
    p2 = np.interp(f_hz, grid, spec)
    p2 /= p2.max()
    w = 2.0 * np.pi * np.asarray(f_hz, dtype=float)
    john = p2 * (w * fast_s) ** 2
    return {"thermal": p2, "johnson": john / john.max(), "readout": np.ones(p2.size)}


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
