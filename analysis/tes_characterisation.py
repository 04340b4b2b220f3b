"""A TES's small-signal parameters fitted to its measured noise (and pulse poles), with only
the bias circuit given: what a lab knows independently of the transition's slopes and the heat
capacities (R_L, L; T0, R0, I0 from the IV curve; G and n from the bath-power curve; the
SQUID's Phi0 per ampere).

Fitted (log-space, bounded): alpha_I, beta_I, the heat capacities of the TES, the absorber
(where energy thermalises) and a weakly coupled tail body, the TES-absorber and absorber-tail
conductances, and the white readout density; the network is the one the three-exponential
pulse shows (TES - absorber - tail, the bath link on the TES). Residuals: log(model /
measured) of the averaged periodogram, each bin's scatter 1/sqrt(records), the model as the
demodulated samples carry it (`tes_noise.model_shapes`); the absolute level (Phi0 per A known)
ties the thermal term to T0, G and the responsivity. The parameters are partly degenerate
(alpha against the heat capacities); the terms' shapes, what the noise split needs, are not
(measured: each term's band power within 11 % of the simulator's model at four devices). The
pulse's slow decay, when measured, sets the heat capacities' starting scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from cryodaq.analysis.optimal_filter import NoiseSpectrum
from cryodaq.analysis.tes_electrothermal import TesSmallSignal, time_constants
from cryodaq.analysis.tes_noise import model_shapes

#: Lowest bins left out: a record's periodogram leaks into them where the PSD is steep.
LOW_BINS = 3
#: Fields of `BiasCircuit` a characterisation sheet must give.
CIRCUIT_KEYS = ("t0_K", "r0_ohm", "i0_A", "inductance_H", "load_ohm", "load_K", "g_W_per_K",
                "n", "bath_K", "phi0_per_A")


@dataclass(frozen=True)
class BiasCircuit:
    """What a lab measures of a TES independently of alpha, beta and the heat capacities."""

    t0_K: float
    r0_ohm: float
    i0_A: float
    inductance_H: float
    load_ohm: float
    load_K: float
    g_W_per_K: float
    n: float
    bath_K: float
    phi0_per_A: float
    ballistic: bool = True


def circuit_from(fields: Mapping[str, object], where: str = "tes") -> BiasCircuit:
    """A `BiasCircuit` from a mapping; ValueError naming a missing or unknown key."""
    missing = [k for k in CIRCUIT_KEYS if k not in fields]
    unknown = sorted(set(fields) - set(CIRCUIT_KEYS) - {"ballistic"})
    if missing or unknown:
        what = (f"missing {', '.join(missing)}" if missing else
                f"unknown {', '.join(unknown)} (the circuit only: alpha, beta and the heat "
                f"capacities are fitted)")
        raise ValueError(f"{where}: {what}; allowed: {', '.join(CIRCUIT_KEYS)}, ballistic")
    out = {k: float(fields[k]) for k in CIRCUIT_KEYS}  # type: ignore[arg-type]
    return BiasCircuit(**out, ballistic=bool(fields.get("ballistic", True)))


@dataclass(frozen=True)
class Characterisation:
    """The fitted device, its readout density (units/sqrt(Hz)) and the fit's quality."""

    device: TesSmallSignal
    readout: float
    chi2_per_bin: float
    converged: bool


def device_from(c: BiasCircuit, alpha: float, beta: float, heat: tuple[float, float, float],
                g_link: float, g_tail: float) -> TesSmallSignal:
    """The three-body device of `c` with these slopes, heat capacities and links."""
    return TesSmallSignal(
        t0_K=c.t0_K, r0_ohm=c.r0_ohm, i0_A=c.i0_A, alpha=alpha, beta=beta,
        inductance_H=c.inductance_H, load_ohm=c.load_ohm, load_K=c.load_K,
        heat_capacities=heat, links=((0, 1, g_link), (1, 2, g_tail)),
        bath_g=(c.g_W_per_K, 0.0, 0.0), n=c.n, bath_K=c.bath_K, deposit=1,
        ballistic=c.ballistic)


def characterise(c: BiasCircuit, noise: NoiseSpectrum,
                 tau_ref_s: float = 0.5e-3, skip: np.ndarray | None = None) -> Characterisation:
    """Fit the device's small-signal parameters to `noise` (units: Phi0, as `c.phi0_per_A`
    reads them); `tau_ref_s`: the pulse's slow decay (the starting scale); `skip`: bins left
    out (artefact lines). See the module."""
    f, fs = noise.freqs_hz, noise.sample_rate_hz
    use = np.ones(f.size, dtype=bool) if skip is None else ~np.asarray(skip, dtype=bool)
    use[:LOW_BINS] = False
    use &= noise.psd > 0
    meas = np.log(noise.psd[use])
    weight = np.sqrt(max(noise.n_records, 1))
    c_ref = c.g_W_per_K * tau_ref_s
    start = np.log([30.0, 0.5, 0.3 * c_ref, 0.6 * c_ref, 300.0 * c.g_W_per_K, 0.15 * c_ref,
                    0.3 * c.g_W_per_K, np.sqrt(np.median(noise.psd[use][-20:]))])
    lo = np.log([1.0, 1e-3, 1e-3 * c_ref, 1e-3 * c_ref, 1.0 * c.g_W_per_K, 1e-3 * c_ref,
                 1e-3 * c.g_W_per_K, 1e-6 * np.exp(start[-1])])
    hi = np.log([2000.0, 50.0, 1e2 * c_ref, 1e2 * c_ref, 1e6 * c.g_W_per_K, 1e2 * c_ref,
                 1e2 * c.g_W_per_K, 10.0 * np.exp(start[-1])])

    def unpack(x: np.ndarray) -> tuple[TesSmallSignal, float]:
        v = np.exp(x)
        return device_from(c, v[0], v[1], (v[2], v[3], v[5]), v[4], v[6]), float(v[7])

    def residuals(x: np.ndarray) -> np.ndarray:
        dev, readout = unpack(x)
        try:
            time_constants(dev)
        except ValueError:  # unstable: far from any measured device
            return np.full(int(use.sum()), 1e3)
        shapes = model_shapes(dev, c.phi0_per_A, f[use], fs)
        model = shapes["thermal"] + shapes["tes_johnson"] + shapes["load_johnson"] + readout**2
        return weight * (np.log(np.maximum(model, 1e-300)) - meas)

    fit = least_squares(residuals, start, bounds=(lo, hi), x_scale=1.0, method="trf",
                        max_nfev=400, ftol=1e-4, xtol=1e-4)
    dev, readout = unpack(fit.x)
    chi2 = float(np.mean(fit.fun**2))
    return Characterisation(dev, readout, chi2, bool(fit.success))
