"""A measured TES noise PSD split into its components (seed paper Fig. 7), and the lines the
flux-ramp demodulation adds at a fixed frequency and its harmonics (62.5 kHz in HOLMES).

Components (`cryodaq.analysis.tes_noise`): thermal fluctuation across G, TES Johnson, load Johnson,
each a white source through the TES's small-signal response (poles at the rise and the fast
decay time, which the pulse fit gives; the loop gain sets the Johnson terms' zeros), and the
SQUID/HEMT readout, white in flux. In this response the three TES terms span only two
spectral shapes (a low-pass and a low-pass times (w tau_f)^2), so a PSD cannot tell them all
apart: the two Johnson terms enter with their density ratio fixed (load / TES, from the bias
circuit: `johnson_ratio`). The thermal, Johnson and readout densities are then fitted as
non-negative amplitudes by weighted least squares, each bin weighted by the model it should
match (an averaged periodogram's relative scatter is the same, 1/sqrt(records), in every
bin); bins at the artefact's harmonics are left out of the fit and compared with it after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from cryodaq.analysis.optimal_filter import NoiseSpectrum
from cryodaq.analysis.tes_noise import TES_COMPONENTS, component_numerators, component_psd

#: Component names in fit order.
COMPONENTS = (*TES_COMPONENTS, "readout")
#: A harmonic counts as an artefact line when its bin exceeds the smooth model by this many
#: standard deviations of an averaged periodogram bin.
LINE_SIGMAS = 5.0


@dataclass(frozen=True)
class NoiseComponents:
    """Fitted components (PSD arrays at `freqs_hz`, units^2/Hz) and the artefact lines."""

    freqs_hz: np.ndarray
    measured: np.ndarray
    components: dict[str, np.ndarray]
    densities: dict[str, float]  # white input density of each (units/sqrt(Hz))
    harmonics_hz: np.ndarray  # artefact harmonics below Nyquist
    excess: np.ndarray  # measured / model at each harmonic's bin
    line_found: np.ndarray  # bool per harmonic

    @property
    def model(self) -> np.ndarray:
        return sum(self.components.values())

    def without_lines(self) -> np.ndarray:
        """The measured PSD with the harmonics' bins replaced by the smooth model."""
        out = self.measured.copy()
        idx = self._bins()
        out[idx] = self.model[idx]
        return out

    def _bins(self) -> np.ndarray:
        df = self.freqs_hz[1] - self.freqs_hz[0]
        return np.rint(self.harmonics_hz / df).astype(int)


def fit_noise_components(
    noise: NoiseSpectrum,
    rise_s: float,
    fast_s: float,
    loop_gain: float,
    johnson_ratio: float,
    artefact_hz: float | None = 62.5e3,
    iterations: int = 4,
) -> NoiseComponents:
    """Fit the component model to `noise` (see module docstring)."""
    f = noise.freqs_hz
    df = f[1] - f[0]
    nyquist = f[-1]
    harmonics = (
        artefact_hz * np.arange(1, int(nyquist / artefact_hz) + 1)
        if artefact_hz and artefact_hz < nyquist
        else np.zeros(0)
    )
    harmonics = harmonics[harmonics < nyquist - df]
    use = np.ones(f.size, dtype=bool)
    use[0] = False
    for h in harmonics:
        k = int(round(h / df))
        use[max(k - 1, 0) : k + 2] = False
    if not johnson_ratio >= 0:
        raise ValueError(f"johnson_ratio must be >= 0, got {johnson_ratio}")
    nums = component_numerators(loop_gain, fast_s)
    shapes = {name: component_psd(f, nums[name], rise_s, fast_s) for name in TES_COMPONENTS}
    shapes["readout"] = np.ones(f.size)
    # Per unit fitted amplitude: the TES Johnson density squared (load: ratio^2 times it).
    share = {"thermal": 1.0, "tes_johnson": 1.0, "load_johnson": johnson_ratio**2,
             "readout": 1.0}
    columns = {"thermal": shapes["thermal"],
               "johnson": shapes["tes_johnson"] + share["load_johnson"] * shapes["load_johnson"],
               "readout": shapes["readout"]}
    design = np.column_stack(list(columns.values()))
    weight = noise.psd.copy()
    coef = np.zeros(len(COMPONENTS))
    for _ in range(iterations):
        w = 1.0 / np.where(weight > 0, weight, np.inf)
        coef, _ = nnls(design[use] * w[use, None], noise.psd[use] * w[use])
        weight = design @ coef
    fitted = dict(zip(columns, coef, strict=True))
    power = {n: share[n] * fitted["johnson" if n.endswith("johnson") else n] for n in COMPONENTS}
    components = {n: power[n] * shapes[n] for n in COMPONENTS}
    model = design @ coef
    bins = np.rint(harmonics / df).astype(int)
    excess = noise.psd[bins] / np.where(model[bins] > 0, model[bins], np.inf)
    sigma = 1.0 / np.sqrt(max(noise.n_records, 1))
    return NoiseComponents(
        f, noise.psd, components, {n: float(np.sqrt(power[n])) for n in COMPONENTS},
        harmonics, excess, excess > 1.0 + LINE_SIGMAS * sigma,
    )  # fmt: skip
