"""A measured TES noise PSD split into its components (seed paper Fig. 7), and the lines the
flux-ramp demodulation adds at a fixed frequency and its harmonics (62.5 kHz in HOLMES).

The components' shapes come from outside (`cryodaq.analysis.tes_noise`: the electrothermal
model's terms for the device `cryodaq.analysis.tes_characterisation` fits to this noise from
its bias circuit, or the measured pulse's shapes); their amplitudes
are fitted freely, as non-negative scale factors, by weighted least squares, each bin weighted
by the model it should match (an averaged periodogram's relative scatter is the same,
1/sqrt(records), in every bin); no amplitude is assumed. Bins at the artefact's harmonics are
left out of the fit and compared with it after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from cryodaq.analysis.optimal_filter import NoiseSpectrum

#: A harmonic counts as an artefact line when its bin exceeds the smooth model by this many
#: standard deviations of an averaged periodogram bin.
LINE_SIGMAS = 5.0


@dataclass(frozen=True)
class NoiseComponents:
    """Fitted components (PSD arrays at `freqs_hz`, units^2/Hz) and the artefact lines."""

    freqs_hz: np.ndarray
    measured: np.ndarray
    components: dict[str, np.ndarray]
    scales: dict[str, float]  # fitted amplitude of each shape (1: as the shape was given)
    harmonics_hz: np.ndarray  # artefact harmonics below Nyquist
    excess: np.ndarray  # measured / model at each harmonic's bin
    line_found: np.ndarray  # bool per harmonic

    @property
    def model(self) -> np.ndarray:
        return sum(self.components.values())

    @property
    def band_rms(self) -> dict[str, float]:
        """Each component's rms density over the record's band (units/sqrt(Hz))."""
        return {n: float(np.sqrt(np.mean(c[1:]))) for n, c in self.components.items()}

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
    shapes: Mapping[str, np.ndarray],
    artefact_hz: float | None = 62.5e3,
    iterations: int = 4,
) -> NoiseComponents:
    """Fit free non-negative amplitudes of `shapes` (each a PSD at `noise.freqs_hz`) to
    `noise` (see module docstring)."""
    f = noise.freqs_hz
    for name, s in shapes.items():
        if np.shape(s) != f.shape or not np.all(np.isfinite(s)) or np.any(np.asarray(s) < 0):
            raise ValueError(f"noise shape {name!r} must be finite, >= 0 and of the PSD's "
                             f"{f.size} bins")
    df = f[1] - f[0]
    harmonics = artefact_harmonics(f, artefact_hz)
    use = ~artefact_bins(f, artefact_hz)
    use[0] = False
    names = list(shapes)
    design = np.column_stack([np.asarray(shapes[n], dtype=float) for n in names])
    norm = design[use].max(axis=0)
    norm[norm == 0] = 1.0
    design = design / norm
    weight = noise.psd.copy()
    coef = np.zeros(len(names))
    for _ in range(iterations):
        w = 1.0 / np.where(weight > 0, weight, np.inf)
        coef, _ = nnls(design[use] * w[use, None], noise.psd[use] * w[use])
        weight = design @ coef
    components = {n: coef[i] * design[:, i] for i, n in enumerate(names)}
    model = design @ coef
    bins = np.rint(harmonics / df).astype(int)
    excess = noise.psd[bins] / np.where(model[bins] > 0, model[bins], np.inf)
    sigma = 1.0 / np.sqrt(max(noise.n_records, 1))
    return NoiseComponents(
        f, noise.psd, components, {n: float(coef[i] / norm[i]) for i, n in enumerate(names)},
        harmonics, excess, excess > 1.0 + LINE_SIGMAS * sigma,
    )  # fmt: skip


def artefact_harmonics(freqs_hz: np.ndarray, artefact_hz: float | None) -> np.ndarray:
    """The artefact's harmonics (Hz) below the last bin but one of `freqs_hz`."""
    df, nyquist = freqs_hz[1] - freqs_hz[0], freqs_hz[-1]
    if not artefact_hz or artefact_hz >= nyquist:
        return np.zeros(0)
    harmonics = artefact_hz * np.arange(1, int(nyquist / artefact_hz) + 1)
    return harmonics[harmonics < nyquist - df]


def artefact_bins(freqs_hz: np.ndarray, artefact_hz: float | None) -> np.ndarray:
    """Bool per bin: within one bin of an artefact harmonic (left out of smooth fits)."""
    df = freqs_hz[1] - freqs_hz[0]
    out = np.zeros(freqs_hz.size, dtype=bool)
    for h in artefact_harmonics(freqs_hz, artefact_hz):
        k = int(round(h / df))
        out[max(k - 1, 0) : k + 2] = True
    return out


def split_component(comps: NoiseComponents, name: str, parts: Mapping[str, np.ndarray]
                    ) -> NoiseComponents:
    """`comps` with component `name` (fitted as the sum of `parts`' shapes) replaced by its
    parts at the fitted scale: for terms a PSD cannot tell apart, split as their shapes say."""
    scale = comps.scales[name]
    components, scales = {}, {}
    for n, c in comps.components.items():
        if n != name:
            components[n], scales[n] = c, comps.scales[n]
            continue
        for part, shape in parts.items():
            components[part], scales[part] = scale * np.asarray(shape, dtype=float), scale
    return NoiseComponents(comps.freqs_hz, comps.measured, components, scales,
                           comps.harmonics_hz, comps.excess, comps.line_found)
